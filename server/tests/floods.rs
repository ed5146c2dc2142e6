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
