//! Floods against the listener (issue 13 item 2): one address opening 1,000 TCP connections to
//! the TLS listener that never send a byte (half-open handshakes) holds at most its share
//! (8 handshakes in progress and 64 connections; a handshake is cut after 5 s); another address still
//! completes its handshake and joins at once, and the refusals are counted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hush_proto::{AccessToken, ClientMessage, Join, OpaqueBytes, ServerMessage};
use hush_testkit::http::metric;
use hush_testkit::relay::TestRelay;
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_tungstenite::tungstenite::Message;

const FLOODER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const HONEST: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// A TLS relay with a fresh self-signed certificate for `localhost`, and a client config that
/// trusts it.
async fn tls_relay() -> (TestRelay, Arc<ClientConfig>) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = std::env::temp_dir().join(format!("hush-floods-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let config = hush_relay::ops::tls::server_config(&cert, &key).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let relay = TestRelay::builder()
        .tls(config)
        .metrics_listener()
        .start()
        .await;
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(ck.cert.der().to_vec()))
        .unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (relay, Arc::new(client))
}

async fn tcp_from(source: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(to).await
}

/// From `source`: TCP, TLS, the WebSocket upgrade and `join`; the answer's type.
async fn join_over_tls(
    relay: &TestRelay,
    client: &Arc<ClientConfig>,
    source: IpAddr,
) -> Result<&'static str, String> {
    let tcp = tcp_from(source, relay.addr())
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::clone(client))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let url = format!("wss://localhost:{}/v1/rtc", relay.addr().port());
    let (mut ws, _) = tokio_tungstenite::client_async(url, tls)
        .await
        .map_err(|e| format!("WebSocket: {e}"))?;
    let join = ClientMessage::Join(Join {
        token: AccessToken::new(relay.tokens().member("flood", "honest")),
        room: None,
        identity_key: OpaqueBytes::new([5u8; 32]),
        attestation: None,
        offers_first: Some(false),
    });
    ws.send(Message::text(join.encode()))
        .await
        .map_err(|e| e.to_string())?;
    while let Some(msg) = ws.next().await {
        if let Message::Text(t) = msg.map_err(|e| e.to_string())? {
            let msg = ServerMessage::decode(t.as_str()).map_err(|e| e.to_string())?;
            return Ok(msg.type_name());
        }
    }
    Err("closed".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_half_open_tls_connections_do_not_keep_another_address_out() {
    let (relay, client) = tls_relay().await;
    // 1,000 connections that never say a word, all from one address, opened as fast as the
    // relay lets them in, while another address joins.
    let addr = relay.addr();
    let flood = tokio::spawn(async move {
        let mut silent = Vec::new();
        for _ in 0..1000 {
            if let Ok(s) = tcp_from(FLOODER, addr).await {
                silent.push(s);
            }
        }
        silent
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The other address gets in at once: its handshake is not queued behind the flood's.
    let started = Instant::now();
    let joined = tokio::time::timeout(
        Duration::from_secs(3),
        join_over_tls(&relay, &client, HONEST),
    )
    .await
    .expect("the honest client waited behind the flood");
    assert_eq!(joined, Ok("joined"));
    let honest_ms = started.elapsed().as_millis();
    let silent = tokio::time::timeout(Duration::from_secs(30), flood)
        .await
        .expect("the flood never finished")
        .unwrap();
    assert!(silent.len() >= 990, "{} connected", silent.len());
    eprintln!(
        "figures {{\"honest_join_ms\":{honest_ms},\"flood_connections\":{}}}",
        silent.len()
    );
    // The flooding address itself is held to its share: refusals counted.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = hush_testkit::http::get(relay.metrics_addr().unwrap(), "/metrics")
        .await
        .body;
    let refused = |reason: &str| -> f64 {
        let prefix = format!("hush_connections_refused_total{{reason=\"{reason}\"}}");
        metric(&text, &prefix).unwrap_or(0.0)
    };
    // Closed at once: over the 8 handshakes in progress (or the 64 connections) it may hold.
    let held_back = refused("handshakes_per_ip") + refused("tcp_per_ip");
    assert!(held_back >= 900.0, "{text}");
    drop(silent);
}

/// Reads from `stream` until the relay closes it (end of stream or an error) or `limit` passes:
/// how long that took, or `None` if it stayed open. Bytes that arrive are discarded.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    use tokio::io::AsyncReadExt;
    let start = Instant::now();
    let mut buf = [0u8; 512];
    loop {
        match tokio::time::timeout_at((start + limit).into(), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
            Err(_) => return None,
        }
    }
}

/// A connection that never sends a request, one that sends its head a byte at a time, and a
/// keep-alive connection idle after its first answer are closed once the header timeout has
/// passed (before it, one of each was held for ever: `axum::serve` runs hyper without a timer);
/// a WebSocket, past its head, is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_without_a_request_head_in_time_are_closed_and_websockets_are_not() {
    use tokio::io::AsyncWriteExt;
    let timeout = Duration::from_millis(800);
    let relay = TestRelay::builder()
        .configure(|o| o.header_timeout = timeout)
        .start()
        .await;
    let mut ws = hush_testkit::client::RawSignal::connect(&relay.ws_url()).await;
    ws.join_with(relay.tokens().member("ws", "room"), None)
        .await;
    ws.expect_joined().await;

    let mut silent = TcpStream::connect(relay.addr()).await.unwrap();
    let mut dribbler = TcpStream::connect(relay.addr()).await.unwrap();
    let dribble = tokio::spawn(async move {
        for byte in b"GET /healthz HTTP/1.1\r\nHost: relay\r\nX-Slow: " {
            if dribbler.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        dribbler
    });
    let mut kept = TcpStream::connect(relay.addr()).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 12];
    tokio::io::AsyncReadExt::read_exact(&mut kept, &mut answer)
        .await
        .unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200", "a request in time is answered");

    let limit = timeout * 4;
    let silent_closed = closed_within(&mut silent, limit).await;
    assert!(
        silent_closed.is_some_and(|t| t >= timeout * 3 / 4),
        "a silent connection: {silent_closed:?}"
    );
    let kept_closed = closed_within(&mut kept, limit).await;
    assert!(
        kept_closed.is_some(),
        "an idle keep-alive connection stayed open"
    );
    let mut dribbler = dribble.await.unwrap();
    assert!(
        closed_within(&mut dribbler, limit).await.is_some(),
        "a head sent a byte at a time stayed open"
    );

    // The WebSocket joined before all this, silent since, is still served.
    ws.send(&ClientMessage::Ping(hush_proto::Ping { seq: 7 }))
        .await;
    let pong = ws.recv_until(|m| matches!(m, ServerMessage::Pong(_))).await;
    assert!(matches!(pong, ServerMessage::Pong(p) if p.seq == 7));
}

/// When the relay stops serving (its serve future dropped), an open keep-alive connection is
/// closed at once, as `axum::serve` did; the serve loop's connection tasks used to keep
/// answering on it (with the old router) until the header timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_connections_close_when_the_relay_stops_serving() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let relay = TestRelay::start().await;
    let mut kept = TcpStream::connect(relay.addr()).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 12];
    kept.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    drop(relay);
    let closed = closed_within(&mut kept, Duration::from_secs(3)).await;
    assert!(closed.is_some(), "the connection outlived the relay");
}
