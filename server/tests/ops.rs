//! Operations over real sockets on 127.0.0.1: per-IP limits before the WebSocket upgrade, the
//! auth-failure backoff, `/metrics` (where it is served, and that a join moves it), and the
//! idle timeout.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Client, STEP, join_message, keys, start, token};
use futures_util::StreamExt;
use hush_proto::{Audience, ClientMessage, ErrorCode, Grants, Ping, ServerMessage, TokenClaims};
use hush_relay::http::{RelayOptions, serve_all};
use hush_relay::ops::limits::IpLimits;
use hush_relay::routing::RateLimit;
use hush_relay::token::{SigningKey, mint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::{self, Message};

/// Limits that let everything through, to change one at a time.
fn open_limits() -> IpLimits {
    let mut limits = IpLimits::default();
    limits.connect_rate = RateLimit {
        burst: 1000,
        per_second: 1000,
    };
    limits.max_concurrent = 1000;
    limits
}

/// A WebSocket handshake from `source` (an address on the loopback interface): the socket, or
/// the HTTP status and body of the refusal.
async fn ws_from(addr: SocketAddr, source: &str) -> Result<Client, (u16, String, Option<String>)> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let stream = tokio::time::timeout(STEP, socket.connect(addr))
        .await
        .unwrap()
        .unwrap();
    let url = format!("ws://{addr}/v1/rtc");
    let handshake = tokio::time::timeout(
        STEP,
        tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(stream)),
    )
    .await
    .unwrap();
    match handshake {
        Ok((ws, _)) => Ok(Client { ws }),
        Err(tungstenite::Error::Http(response)) => {
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let body = String::from_utf8(response.body().clone().unwrap_or_default()).unwrap();
            Err((response.status().as_u16(), body, retry_after))
        }
        Err(other) => panic!("handshake failed: {other}"),
    }
}

/// `GET path`: status and body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(STEP, stream.read_to_string(&mut response))
        .await
        .unwrap()
        .unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The value of the metric line starting with `prefix` (name and labels), if present.
fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix)?.strip_prefix(' ')?.parse().ok())
}

/// A token with a valid shape signed with the wrong secret.
fn forged_token(sub: &str, room: &str) -> String {
    let now = common::now_unix();
    let claims = TokenClaims {
        sub: sub.try_into().unwrap(),
        room: room.try_into().unwrap(),
        aud: Audience::from("hush"),
        exp: now + 300,
        nbf: None,
        iat: Some(now),
        jti: Some(format!("forged-{sub}-{now}")),
        grants: Grants::default(),
    };
    mint(
        &claims,
        &SigningKey::hs256(common::KID, &[7u8; 32]).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_loop_of_connections_from_one_address_is_refused_after_the_rate_limit() {
    let mut options = RelayOptions::new(keys());
    options.ip_limits = open_limits();
    options.ip_limits.connect_rate = RateLimit {
        burst: 5,
        per_second: 1,
    };
    let addr = start(options).await;
    let mut accepted = 0;
    let mut refusals = Vec::new();
    for _ in 0..12 {
        match ws_from(addr, "127.0.0.1").await {
            Ok(mut c) => {
                accepted += 1;
                let _ = c.ws.close(None).await;
            }
            Err(refusal) => refusals.push(refusal),
        }
    }
    // The bucket holds 5; the loop takes well under a second, so at most one more refills.
    assert!((5..=6).contains(&accepted), "accepted {accepted}");
    assert_eq!(refusals.len(), 12 - accepted);
    for (status, body, retry_after) in &refusals {
        assert_eq!(*status, 429);
        assert!(body.contains("\"connect_rate\""), "{body}");
        assert_eq!(retry_after.as_deref(), Some("1"));
    }
    // Another address is not affected.
    let other = ws_from(addr, "127.0.0.2").await;
    assert!(other.is_ok(), "127.0.0.2 was refused: {:?}", other.err());
    // Refusals are counted by reason.
    let (status, text) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    let refused = metric(
        &text,
        "hush_connections_refused_total{reason=\"connect_rate\"}",
    );
    assert_eq!(refused, Some((12 - accepted) as f64), "{text}");
}

#[tokio::test]
async fn concurrent_connections_are_capped_per_address_until_one_closes() {
    let mut options = RelayOptions::new(keys());
    options.ip_limits = open_limits();
    options.ip_limits.max_concurrent = 3;
    let addr = start(options).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(ws_from(addr, "127.0.0.1").await.unwrap());
    }
    let Err((status, body, _)) = ws_from(addr, "127.0.0.1").await else {
        panic!("a fourth connection was accepted");
    };
    assert_eq!(status, 429);
    assert!(body.contains("\"too_many_connections\""), "{body}");
    // Others still get in.
    let _other = ws_from(addr, "127.0.0.2").await.unwrap();
    // Once one closes, one more gets in (the relay notices the close asynchronously).
    let mut first = open.remove(0);
    first.ws.close(None).await.unwrap();
    first.expect_closed().await;
    let mut admitted = None;
    for _ in 0..50 {
        if let Ok(c) = ws_from(addr, "127.0.0.1").await {
            admitted = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(admitted.is_some(), "no slot came back after a close");
    // The open ones work.
    let mut c = admitted.unwrap();
    c.send(&join_message(token("carol", "cap", 300), None))
        .await;
    assert!(matches!(c.recv().await, Some(ServerMessage::Joined(_))));
}

#[tokio::test]
async fn repeated_token_refusals_bring_a_backoff_for_that_address_only() {
    let mut options = RelayOptions::new(keys());
    options.ip_limits = open_limits();
    options.ip_limits.free_auth_failures = 2;
    let addr = start(options).await;
    for i in 0..3 {
        let mut c = ws_from(addr, "127.0.0.1").await.unwrap();
        c.send(&join_message(
            forged_token(&format!("eve{i}"), "vault"),
            None,
        ))
        .await;
        match c.recv().await {
            Some(ServerMessage::Error(e)) => {
                assert_eq!(e.code, ErrorCode::TokenBadSignature);
                assert!(e.fatal);
            }
            other => panic!("expected token_bad_signature, got {other:?}"),
        }
        c.expect_closed().await;
    }
    // The third failure started a one-second backoff: refused before the upgrade.
    let Err((status, body, retry_after)) = ws_from(addr, "127.0.0.1").await else {
        panic!("accepted during the backoff");
    };
    assert_eq!(status, 429);
    assert!(body.contains("\"auth_backoff\""), "{body}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    // Honest clients elsewhere are served meanwhile.
    let mut honest = ws_from(addr, "127.0.0.2").await.unwrap();
    honest
        .send(&join_message(token("bob", "vault", 300), None))
        .await;
    assert!(matches!(
        honest.recv().await,
        Some(ServerMessage::Joined(_))
    ));
    // After the backoff the address may try again, and a good token clears its record.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut c = ws_from(addr, "127.0.0.1").await.unwrap();
    c.send(&join_message(token("alice", "vault", 300), None))
        .await;
    assert!(matches!(c.recv().await, Some(ServerMessage::Joined(_))));
    // Failures that are not about tokens (here: no join before a message) never count.
    for _ in 0..4 {
        let mut c = ws_from(addr, "127.0.0.1").await.unwrap();
        c.send(&ClientMessage::Ping(Ping { seq: 1 })).await;
        assert!(
            matches!(c.recv().await, Some(ServerMessage::Error(e)) if e.code == ErrorCode::NotJoined)
        );
        c.expect_closed().await;
    }
    assert!(ws_from(addr, "127.0.0.1").await.is_ok());
}

#[tokio::test]
async fn metrics_render_and_a_join_moves_them() {
    let addr = start(RelayOptions::new(keys())).await;
    let (status, before) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(before.ends_with("# EOF\n"), "{before}");
    assert_eq!(metric(&before, "hush_joins_total"), Some(0.0));
    assert_eq!(metric(&before, "hush_participants"), Some(0.0));
    assert_eq!(metric(&before, "hush_forwarded_packets_total"), Some(0.0));

    let (_alice, _) = Client::join(addr, "alice", "m1").await;
    let (bob, _) = Client::join(addr, "bob", "m1").await;
    let (_carol, _) = Client::join(addr, "carol", "m2").await;
    let mut eve = Client::connect(addr).await;
    eve.send(&join_message(forged_token("eve", "m1"), None))
        .await;
    assert!(matches!(eve.recv().await, Some(ServerMessage::Error(_))));

    let (_, text) = get(addr, "/metrics").await;
    assert_eq!(metric(&text, "hush_joins_total"), Some(3.0), "{text}");
    assert_eq!(metric(&text, "hush_rooms"), Some(2.0));
    assert_eq!(metric(&text, "hush_participants"), Some(3.0));
    assert_eq!(metric(&text, "hush_connections_total"), Some(4.0));
    assert_eq!(
        metric(&text, "hush_messages_out_total{type=\"joined\"}"),
        Some(3.0)
    );
    assert_eq!(
        metric(&text, "hush_refusals_total{code=\"token_bad_signature\"}"),
        Some(1.0)
    );
    // Bob leaves: the gauges follow (the relay notices the close asynchronously).
    drop(bob);
    let mut participants = None;
    for _ in 0..50 {
        let (_, text) = get(addr, "/metrics").await;
        participants = metric(&text, "hush_participants");
        if participants == Some(2.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(participants, Some(2.0));
    assert!(
        !text.contains("alice") && !text.contains("m1"),
        "ids in metrics"
    );
}

#[tokio::test]
async fn metrics_are_not_public_off_loopback_and_go_to_the_metrics_listener() {
    // Public listener on every address: no /metrics there.
    let Ok(public) = tokio::net::TcpListener::bind("0.0.0.0:0").await else {
        return; // no IPv4 wildcard here
    };
    let port = public.local_addr().unwrap().port();
    tokio::spawn(serve_all(public, None, None, RelayOptions::new(keys())));
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_healthy(addr).await;
    let (status, body) = get(addr, "/metrics").await;
    assert_eq!(status, 404, "{body}");

    // With a metrics listener: there, and not on the public one (even on loopback).
    let public = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (addr, admin_addr) = (public.local_addr().unwrap(), admin.local_addr().unwrap());
    tokio::spawn(serve_all(
        public,
        None,
        Some(admin),
        RelayOptions::new(keys()),
    ));
    wait_healthy(addr).await;
    assert_eq!(get(addr, "/metrics").await.0, 404);
    let (status, text) = get(admin_addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(text.contains("# TYPE hush_joins counter"), "{text}");
    assert_eq!(get(admin_addr, "/healthz").await, (200, "ok\n".to_owned()));
    // The metrics listener serves nothing else.
    assert_eq!(get(admin_addr, "/v1/rtc").await.0, 404);
}

async fn wait_healthy(addr: SocketAddr) {
    for _ in 0..100 {
        if let Ok(Ok(mut s)) =
            tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await
        {
            let _ = s.shutdown().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{addr} never answered");
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_idle_timeout() {
    let mut options = RelayOptions::new(keys());
    options.idle_timeout = Duration::from_millis(400);
    let addr = start(options).await;
    let (mut c, _) = Client::join(addr, "sleepy", "idle").await;
    // Not reading means not answering the relay's ping.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let mut close_code = None;
    for _ in 0..10 {
        match tokio::time::timeout(STEP, c.ws.next()).await.unwrap() {
            Some(Ok(Message::Close(frame))) => {
                close_code = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                break;
            }
            Some(Ok(_)) => {}
            None | Some(Err(_)) => break,
        }
    }
    assert_eq!(close_code, Some((1001, "idle timeout".to_owned())));
}

#[tokio::test]
async fn a_connection_that_answers_pings_or_sends_stays_open() {
    let mut options = RelayOptions::new(keys());
    options.idle_timeout = Duration::from_millis(400);
    let addr = start(options).await;
    let (mut reader, _) = Client::join(addr, "reader", "awake").await;
    let (mut talker, _) = Client::join(addr, "talker", "awake").await;
    let mut pings = 0;
    let start = tokio::time::Instant::now();
    let mut seq = 0;
    // Three idle timeouts long: the reader only reads (tungstenite answers pings), the talker
    // sends `ping` messages.
    while start.elapsed() < Duration::from_millis(1200) {
        if let Ok(frame) = tokio::time::timeout(Duration::from_millis(50), reader.ws.next()).await {
            match frame {
                Some(Ok(Message::Ping(_))) => pings += 1,
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => panic!("reader closed"),
                Some(Ok(_)) => {}
            }
        }
        seq += 1;
        talker.send(&ClientMessage::Ping(Ping { seq })).await;
        let pong = talker
            .recv_until(|m| matches!(m, ServerMessage::Pong(_)))
            .await;
        assert_eq!(pong, ServerMessage::Pong(Ping { seq }));
    }
    assert!(pings >= 2, "the relay pinged {pings} times");
    reader.send(&ClientMessage::Ping(Ping { seq: 99 })).await;
    let pong = reader
        .recv_until(|m| matches!(m, ServerMessage::Pong(_)))
        .await;
    assert_eq!(pong, ServerMessage::Pong(Ping { seq: 99 }));
}
