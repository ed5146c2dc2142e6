//! Operations over real sockets on 127.0.0.1: per-IP limits before the WebSocket upgrade, the
//! auth-failure backoff, `/metrics` (where it is served, and that a join moves it), and the
//! idle timeout.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use hush_proto::{ClientMessage, ErrorCode, Ping};
use hush_relay::ops::limits::IpLimits;
use hush_relay::routing::RateLimit;
use hush_testkit::client::RawSignal;
use hush_testkit::http::{HttpResponse, assert_metrics, get, metric};
use hush_testkit::relay::{StartError, TestRelay};
use tokio_tungstenite::tungstenite::Message;

const HOME: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const ELSEWHERE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// A WebSocket handshake from `source` (an address on the loopback interface).
async fn ws_from(relay: &TestRelay, source: IpAddr) -> Result<RawSignal, HttpResponse> {
    RawSignal::connect_from(relay.addr(), source).await
}

/// A relay whose per-IP limits let everything through but what `change` sets.
async fn limited(change: impl FnOnce(&mut IpLimits)) -> TestRelay {
    TestRelay::builder().open_ip_limits(change).start().await
}

/// Asserts a `429` refusal of the upgrade for `reason`, with `Retry-After: 1` if `retry_after`.
fn assert_refused(refusal: &HttpResponse, reason: &str, retry_after: bool) {
    assert_eq!(refusal.status, 429);
    assert!(
        refusal.body.contains(&format!("\"{reason}\"")),
        "{}",
        refusal.body
    );
    if retry_after {
        assert_eq!(refusal.header("retry-after"), Some("1"));
    }
}

/// Sends `join` with `token` and expects `joined`.
async fn joins(c: &mut RawSignal, token: String) {
    c.join_with(token, None).await;
    c.expect_joined().await;
}

/// A token with a valid shape signed with the wrong secret.
fn forged_token(relay: &TestRelay, sub: &str, room: &str) -> String {
    relay
        .tokens()
        .mint(room, sub)
        .signed_with([7u8; 32])
        .string()
}

#[tokio::test]
async fn a_loop_of_connections_from_one_address_is_refused_after_the_rate_limit() {
    let relay = limited(|l| {
        l.connect_rate = RateLimit {
            burst: 5,
            per_second: 1,
        }
    })
    .await;
    let mut accepted = 0;
    let mut refusals = Vec::new();
    for _ in 0..12 {
        match ws_from(&relay, HOME).await {
            Ok(mut c) => {
                accepted += 1;
                let _ = c.close().await;
            }
            Err(refusal) => refusals.push(refusal),
        }
    }
    // The bucket holds 5; the loop takes well under a second, so at most one more refills.
    assert!((5..=6).contains(&accepted), "accepted {accepted}");
    assert_eq!(refusals.len(), 12 - accepted);
    for refusal in &refusals {
        assert_refused(refusal, "connect_rate", true);
    }
    // Another address is not affected.
    let other = ws_from(&relay, ELSEWHERE).await;
    assert!(other.is_ok(), "127.0.0.2 was refused: {:?}", other.err());
    // Refusals are counted by reason.
    let text = relay.metrics().await;
    let refused = metric(
        &text,
        "hush_connections_refused_total{reason=\"connect_rate\"}",
    );
    assert_eq!(refused, Some((12 - accepted) as f64), "{text}");
}

#[tokio::test]
async fn concurrent_connections_are_capped_per_address_until_one_closes() {
    let relay = limited(|l| l.max_concurrent = 3).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(ws_from(&relay, HOME).await.unwrap());
    }
    let Err(refusal) = ws_from(&relay, HOME).await else {
        panic!("a fourth connection was accepted");
    };
    assert_refused(&refusal, "too_many_connections", false);
    // Others still get in.
    let _other = ws_from(&relay, ELSEWHERE).await.unwrap();
    // Once one closes, one more gets in (the relay notices the close asynchronously).
    let mut first = open.remove(0);
    first.close().await.unwrap();
    first.expect_closed().await;
    let mut admitted = None;
    for _ in 0..50 {
        if let Ok(c) = ws_from(&relay, HOME).await {
            admitted = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(admitted.is_some(), "no slot came back after a close");
    // The open ones work.
    let mut c = admitted.unwrap();
    joins(&mut c, relay.tokens().member("cap", "carol")).await;
}

#[tokio::test]
async fn repeated_token_refusals_bring_a_backoff_for_that_address_only() {
    let relay = limited(|l| l.free_auth_failures = 2).await;
    for i in 0..3 {
        let mut c = ws_from(&relay, HOME).await.unwrap();
        c.join_with(forged_token(&relay, &format!("eve{i}"), "vault"), None)
            .await;
        c.expect_fatal(ErrorCode::TokenBadSignature).await;
    }
    // The third failure started a one-second backoff: refused before the upgrade.
    let Err(refusal) = ws_from(&relay, HOME).await else {
        panic!("accepted during the backoff");
    };
    assert_refused(&refusal, "auth_backoff", true);
    // Honest clients elsewhere are served meanwhile.
    let mut honest = ws_from(&relay, ELSEWHERE).await.unwrap();
    joins(&mut honest, relay.tokens().member("vault", "bob")).await;
    // After the backoff the address may try again, and a good token clears its record.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut c = ws_from(&relay, HOME).await.unwrap();
    joins(&mut c, relay.tokens().member("vault", "alice")).await;
    // Failures that are not about tokens (here: no join before a message) never count.
    for _ in 0..4 {
        let mut c = ws_from(&relay, HOME).await.unwrap();
        c.send(&ClientMessage::Ping(Ping { seq: 1 })).await;
        assert_eq!(c.expect_error().await.code, ErrorCode::NotJoined);
        c.expect_closed().await;
    }
    assert!(ws_from(&relay, HOME).await.is_ok());
}

#[tokio::test]
async fn metrics_render_and_a_join_moves_them() {
    let relay = TestRelay::start().await;
    let before = relay.metrics().await;
    assert!(before.ends_with("# EOF\n"), "{before}");
    for name in [
        "hush_joins_total",
        "hush_participants",
        "hush_forwarded_packets_total",
        "hush_forwarded_bytes_total",
    ] {
        assert_eq!(metric(&before, name), Some(0.0), "{name}");
    }

    let (_alice, _) = relay.join("alice", "m1").await;
    let (bob, _) = relay.join("bob", "m1").await;
    let (_carol, _) = relay.join("carol", "m2").await;
    let mut eve = relay.signal().await;
    eve.join_with(forged_token(&relay, "eve", "m1"), None).await;
    eve.expect_error().await;

    let text = relay.metrics().await;
    let expected = [
        ("hush_joins_total", 3.0),
        ("hush_rooms", 2.0),
        ("hush_participants", 3.0),
        ("hush_connections_total", 4.0),
        ("hush_messages_out_total{type=\"joined\"}", 3.0),
        ("hush_messages_in_total{type=\"join\"}", 4.0),
        ("hush_refusals_total{code=\"token_bad_signature\"}", 1.0),
    ];
    assert_metrics(&text, &expected);
    // Bob leaves: the gauges follow (the relay notices the close asynchronously).
    drop(bob);
    let mut participants = None;
    for _ in 0..50 {
        participants = metric(&relay.metrics().await, "hush_participants");
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
    // Public listener on every address (plain HTTP: behind a TLS proxy, `--insecure`): no
    // /metrics there.
    let public = TestRelay::builder()
        .bind(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
        .configure(|o| o.insecure = true)
        .try_start()
        .await;
    let public = match public {
        Ok(relay) => relay,
        Err(StartError::Bind(_)) => return, // no IPv4 wildcard here
        Err(e) => panic!("{e:?}"),
    };
    let response = public.get("/metrics").await;
    assert_eq!(response.status, 404, "{}", response.body);

    // With a metrics listener: there, and not on the public one (even on loopback).
    let relay = TestRelay::builder().metrics_listener().start().await;
    let metrics_addr: SocketAddr = relay.metrics_addr().unwrap();
    assert_eq!(relay.get("/metrics").await.status, 404);
    let text = relay.metrics().await;
    assert!(text.contains("# TYPE hush_joins counter"), "{text}");
    let healthz = get(metrics_addr, "/healthz").await;
    assert_eq!((healthz.status, healthz.body.as_str()), (200, "ok\n"));
    // The metrics listener serves nothing else.
    assert_eq!(get(metrics_addr, "/v1/rtc").await.status, 404);
}

/// A loopback relay behind a trusted reverse proxy is public through it: no /metrics on its
/// listener (before, loopback alone put /metrics there, and the proxy forwarded it to anyone).
#[tokio::test]
async fn metrics_are_not_public_on_loopback_behind_a_trusted_proxy() {
    let relay = TestRelay::builder()
        .configure(|o| {
            o.trusted_proxies =
                hush_relay::ops::proxy::TrustedProxies::parse(["127.0.0.1"]).unwrap();
        })
        .start()
        .await;
    let response = relay.get("/metrics").await;
    assert_eq!(response.status, 404, "{}", response.body);
    assert_eq!(relay.get("/healthz").await.status, 200);
    // Without a proxy, loopback still serves it (development).
    let local = TestRelay::start().await;
    assert_eq!(local.get("/metrics").await.status, 200);
}

/// A relay that closes a WebSocket silent for 400 ms.
async fn idle_relay() -> TestRelay {
    TestRelay::builder()
        .idle_timeout(Duration::from_millis(400))
        .start()
        .await
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_idle_timeout() {
    let relay = idle_relay().await;
    let (mut c, _) = relay.join("sleepy", "idle").await;
    // Not reading means not answering the relay's ping.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let mut close_code = None;
    for _ in 0..10 {
        match c.next_raw().await {
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
    let relay = idle_relay().await;
    let (mut reader, _) = relay.join("reader", "awake").await;
    let (mut talker, _) = relay.join("talker", "awake").await;
    let mut pings = 0;
    let start = tokio::time::Instant::now();
    let mut seq = 0;
    // Three idle timeouts long: the reader only reads (tungstenite answers pings), the talker
    // sends `ping` messages.
    while start.elapsed() < Duration::from_millis(1200) {
        if let Ok(frame) = reader.next_raw_within(Duration::from_millis(50)).await {
            match frame {
                Some(Ok(Message::Ping(_))) => pings += 1,
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => panic!("reader closed"),
                Some(Ok(_)) => {}
            }
        }
        seq += 1;
        talker.ping(seq).await;
    }
    assert!(pings >= 2, "the relay pinged {pings} times");
    reader.ping(99).await;
}

#[tokio::test]
async fn every_page_carries_the_security_headers_and_plain_http_no_hsts() {
    let relay = hush_testkit::relay::TestRelay::start().await;
    for path in ["/healthz", "/readyz", "/r/demo", "/no-such-file"] {
        let response = relay.get(path).await;
        let header = |name: &str| {
            response
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        assert_eq!(
            header("x-content-type-options").as_deref(),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(
            header("referrer-policy").as_deref(),
            Some("no-referrer"),
            "{path}"
        );
        assert_eq!(header("x-frame-options").as_deref(), Some("DENY"), "{path}");
        let csp = header("content-security-policy").unwrap_or_default();
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("object-src 'none'"));
        assert!(
            csp.contains("script-src 'self' 'wasm-unsafe-eval'"),
            "{csp}"
        );
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("'unsafe-eval'"),
            "{csp}"
        );
        assert!(header("permissions-policy").is_some_and(|p| p.contains("camera=(self)")));
        // HSTS over plain HTTP would be ignored at best; it is sent on TLS listeners only.
        assert_eq!(header("strict-transport-security"), None, "{path}");
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_limits_count_the_clients_it_names() {
    let forwarded = |ip: &'static str| [("X-Forwarded-For", ip)];
    // Trusting the loopback proxy: each forwarded client gets its own allowance.
    let relay = TestRelay::builder()
        .open_ip_limits(|l| l.max_concurrent = 2)
        .configure(|o| {
            o.trusted_proxies =
                hush_relay::ops::proxy::TrustedProxies::parse(["127.0.0.1/32"]).unwrap();
        })
        .start()
        .await;
    let addr = relay.addr();
    let mut open = Vec::new();
    for _ in 0..2 {
        open.push(
            RawSignal::connect_with_headers(addr, &forwarded("198.51.100.7"))
                .await
                .unwrap(),
        );
    }
    let Err(refusal) = RawSignal::connect_with_headers(addr, &forwarded("198.51.100.7")).await
    else {
        panic!("a third connection of one forwarded client was accepted");
    };
    assert_refused(&refusal, "too_many_connections", false);
    // Another client behind the same proxy is not held back by the first one.
    let mut other = RawSignal::connect_with_headers(addr, &forwarded("198.51.100.8"))
        .await
        .unwrap();
    joins(&mut other, relay.tokens().member("proxied", "bob")).await;

    // Not trusting it (the default): the header is anyone's to write and changes nothing.
    let relay = limited(|l| l.max_concurrent = 2).await;
    let addr = relay.addr();
    let _a = RawSignal::connect_with_headers(addr, &forwarded("198.51.100.1"))
        .await
        .unwrap();
    let _b = RawSignal::connect_with_headers(addr, &forwarded("198.51.100.2"))
        .await
        .unwrap();
    let Err(refusal) = RawSignal::connect_with_headers(addr, &forwarded("198.51.100.3")).await
    else {
        panic!("a spoofed X-Forwarded-For got past the per-IP cap");
    };
    assert_refused(&refusal, "too_many_connections", false);
}

/// A web root serves the demo; an empty one (`static_dir = ""`) serves no page at all, not the
/// working directory.
#[tokio::test]
async fn an_empty_web_root_serves_no_pages() {
    let root = std::env::temp_dir().join(format!("hush-web-root-{}", std::process::id()));
    std::fs::create_dir_all(root.join("demo")).unwrap();
    std::fs::write(root.join("demo").join("index.html"), "<p>demo</p>").unwrap();
    let served = root.clone();
    let relay = TestRelay::builder()
        .configure(move |o| o.static_dir = served)
        .start()
        .await;
    let page = relay.get("/r/standup").await;
    assert_eq!((page.status, page.body.as_str()), (200, "<p>demo</p>"));
    let relay = TestRelay::builder()
        .configure(|o| o.static_dir = std::path::PathBuf::new())
        .start()
        .await;
    for path in [
        "/r/standup",
        "/",
        "/index.html",
        "/dist/worker.js",
        "/Cargo.toml",
    ] {
        assert_eq!(relay.get(path).await.status, 404, "{path}");
    }
    assert_eq!(relay.get("/healthz").await.status, 200);
}
