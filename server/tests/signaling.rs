//! Signaling over real WebSockets on 127.0.0.1: joins, precise refusals, isolation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

use std::net::{IpAddr, Ipv4Addr};

use hush_proto::{ClientMessage, ErrorCode, MAX_MESSAGE_BYTES, Ping, Sdp, ServerMessage};
use hush_relay::http::ServeError;
use hush_testkit::relay::{StartError, TestRelay};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn a_good_token_joins_and_the_second_member_is_announced() {
    let relay = TestRelay::start().await;
    let (mut alice, joined) = relay.join("alice", "standup").await;
    assert_eq!(joined.room.as_str(), "standup");
    assert!(joined.participants.is_empty());
    let (_bob, joined_bob) = relay.join("bob", "standup").await;
    assert_eq!(joined_bob.participants.len(), 1);
    assert_ne!(joined.sender_index, joined_bob.sender_index);
    let event = alice
        .recv_until(|m| matches!(m, ServerMessage::ParticipantJoined(_)))
        .await;
    let ServerMessage::ParticipantJoined(p) = event else {
        unreachable!()
    };
    assert_eq!(p.participant.id.as_str(), "bob");
    alice.ping(7).await;
}

#[tokio::test]
async fn bad_input_gets_precise_codes_and_others_keep_being_served() {
    let relay = TestRelay::start().await;
    let (mut bystander, _) = relay.join("bystander", "room1").await;
    let (mut c, _) = relay.join("mallory", "room1").await;

    let big = format!(
        r#"{{"v":1,"type":"ping","seq":1,"pad":"{}"}}"#,
        "x".repeat(MAX_MESSAGE_BYTES)
    );
    let cases = [
        (Message::text("{not json"), ErrorCode::MalformedMessage),
        (
            Message::text(r#"{"v":2,"type":"ping","seq":1}"#),
            ErrorCode::UnsupportedVersion,
        ),
        (
            Message::text(r#"{"v":1,"type":"teleport"}"#),
            ErrorCode::UnknownMessageType,
        ),
        (Message::text(big), ErrorCode::MessageTooLarge),
        (
            Message::binary(vec![1u8, 2, 3]),
            ErrorCode::MalformedMessage,
        ),
    ];
    for (message, code) in cases {
        c.send_raw(message).await;
        let e = c.expect_error().await;
        assert_eq!((e.code, e.fatal), (code, false));
    }

    let garbage = ClientMessage::Offer(Sdp {
        sdp: "v=0\r\nthis is not sdp".into(),
    });
    c.send(&garbage).await;
    let e = c.next_error().await;
    assert_eq!((e.code, e.fatal), (ErrorCode::MalformedMessage, false));

    // The offender is still served, and so is everyone else.
    c.ping(1).await;
    bystander.ping(2).await;
    let (_late, joined) = relay.join("late", "room1").await;
    assert_eq!(joined.participants.len(), 2);
}

#[tokio::test]
async fn frames_beyond_the_websocket_limit_close_only_that_socket() {
    let relay = TestRelay::start().await;
    let (mut bystander, _) = relay.join("bystander", "room2").await;
    let (mut c, _) = relay.join("flooder", "room2").await;
    let huge = "x".repeat(5 * MAX_MESSAGE_BYTES);
    let _ = c.try_send_raw(Message::text(huge)).await;
    c.expect_closed().await;
    let left = bystander
        .recv_until(|m| matches!(m, ServerMessage::ParticipantLeft(_)))
        .await;
    assert!(matches!(left, ServerMessage::ParticipantLeft(_)));
    bystander.ping(3).await;
}

#[tokio::test]
async fn expired_and_wrong_room_tokens_are_refused_and_closed() {
    let relay = TestRelay::start().await;
    let tokens = relay.tokens();

    let mut c = relay.signal().await;
    let expired = tokens.mint("room3", "eve").publish().subscribe();
    c.join_with(expired.expires_in(-300).string(), None).await;
    c.expect_fatal(ErrorCode::TokenExpired).await;

    let mut c = relay.signal().await;
    c.join_with(tokens.member("room3", "eve"), Some("other-room"))
        .await;
    c.expect_fatal(ErrorCode::TokenWrongRoom).await;

    // Anything before join is fatal too.
    let mut c = relay.signal().await;
    c.send(&ClientMessage::Ping(Ping { seq: 1 })).await;
    c.expect_fatal(ErrorCode::NotJoined).await;

    // The relay still serves good tokens.
    let (_ok, joined) = relay.join("eve", "room3").await;
    assert_eq!(joined.room.as_str(), "room3");
}

#[tokio::test]
async fn dev_tokens_only_in_dev_mode() {
    let relay = TestRelay::start().await;
    let response = relay.post("/dev/token", r#"{"room":"x"}"#).await;
    assert_eq!(response.status, 404, "{}", response.body);
    assert!(response.body.contains("dev mode is off"));

    let relay = TestRelay::builder().dev_mode().start().await;
    let response = relay.post("/dev/token", r#"{"room":"devroom"}"#).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let token = response.json()["token"].as_str().unwrap().to_owned();
    let mut c = relay.signal().await;
    c.join_with(token, None).await;
    assert_eq!(c.expect_joined().await.room.as_str(), "devroom");

    let response = relay.post("/dev/token", r#"{"room":"no spaces"}"#).await;
    assert_eq!(response.status, 400);
    assert_eq!(relay.post("/dev/token", "not json").await.status, 400);
}

/// DNS rebinding and cross-origin pages: a dev endpoint answers only a loopback `Host` and no
/// other `Origin` than the relay's own.
#[tokio::test]
async fn dev_endpoints_refuse_foreign_hosts_and_other_origins() {
    let relay = TestRelay::builder().dev_mode().start().await;
    let addr = relay.addr();
    let own = format!("http://{addr}");
    let body = r#"{"room":"devroom"}"#;
    let post = |headers: Vec<(&'static str, String)>, path: &'static str, body: &'static str| async move {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        hush_testkit::http::request_with(addr, "POST", path, &headers, body).await
    };
    let ok = post(vec![("Origin", own.clone())], "/dev/token", body).await;
    assert_eq!(ok.status, 200, "same origin: {}", ok.body);
    let host = format!("localhost:{}", addr.port());
    let ok = post(
        vec![("Host", host.clone()), ("Origin", format!("http://{host}"))],
        "/dev/token",
        body,
    )
    .await;
    assert_eq!(ok.status, 200, "localhost: {}", ok.body);
    for (headers, why) in [
        (
            vec![("Host", format!("evil.example:{}", addr.port()))],
            "DNS rebinding",
        ),
        (
            vec![("Origin", "http://127.0.0.1:1".to_owned())],
            "cross-origin",
        ),
        (
            vec![("Origin", "https://evil.example".to_owned())],
            "cross-origin",
        ),
        (vec![("Origin", "null".to_owned())], "cross-origin"),
    ] {
        for path in ["/dev/token", "/dev/attest"] {
            let r = post(headers.clone(), path, body).await;
            assert_eq!(r.status, 403, "{path} {headers:?}: {}", r.body);
            let error = r.error().unwrap();
            assert!(
                error.contains(if why == "DNS rebinding" {
                    "loopback Host"
                } else {
                    "cross-origin"
                }),
                "{error}"
            );
        }
    }
    let key = hush_testkit::http::request_with(
        addr,
        "GET",
        "/dev/backend-key",
        &[("Origin", "https://evil.example")],
        "",
    )
    .await;
    assert_eq!(key.status, 403, "{}", key.body);
}

#[tokio::test]
async fn dev_attestations_only_in_dev_mode_and_bad_input_refused() {
    let relay = TestRelay::start().await;
    let body = r#"{"room":"r","participant":"p","identity_key":"CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk="}"#;
    let off = relay.post("/dev/attest", body).await;
    assert_eq!(off.status, 404, "{}", off.body);
    assert_eq!(relay.get("/dev/backend-key").await.status, 404);

    let relay = TestRelay::builder().dev_mode().start().await;
    let ok = relay.post("/dev/attest", body).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let attestation = ok.json()["attestation"].as_str().unwrap().to_owned();
    assert_eq!(attestation.len(), 96, "72 bytes in base64");
    let key = relay.get("/dev/backend-key").await;
    assert_eq!(key.status, 200, "{}", key.body);
    assert_eq!(key.json()["backend_key"].as_str().unwrap().len(), 44);

    for bad in [
        "not json",
        r#"{"room":"r"}"#,
        r#"{"room":"no spaces","participant":"p","identity_key":"CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk="}"#,
        r#"{"room":"r","participant":"p","identity_key":"AAAA"}"#,
    ] {
        let r = relay.post("/dev/attest", bad).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(r.json()["error"].is_string(), "{}", r.body);
    }
}

/// A proxy on the relay's host makes a loopback listener public, and its requests carry the
/// `Host` it was configured with and often no `Origin`: dev mode's checks would pass for
/// anyone. With trusted proxies configured, dev mode does not start (it did).
#[tokio::test]
async fn dev_mode_is_refused_behind_a_trusted_proxy() {
    let start = TestRelay::builder()
        .dev_mode()
        .configure(|o| {
            o.trusted_proxies =
                hush_relay::ops::proxy::TrustedProxies::parse(["127.0.0.1/32"]).unwrap();
        })
        .try_start()
        .await;
    match start {
        Err(StartError::Serve(ServeError::DevBehindProxy)) => {}
        other => panic!("expected DevBehindProxy, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn dev_mode_is_refused_off_loopback() {
    let start = TestRelay::builder()
        .dev_mode()
        .bind(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
        .try_start()
        .await;
    match start {
        Err(StartError::Bind(_)) => {} // no IPv4 wildcard here
        Err(StartError::Serve(ServeError::DevNotLoopback)) => {}
        other => panic!("expected DevNotLoopback, got {other:?}"),
    }
}
