#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic
//! The admin API over real sockets: every endpoint's success and refusals, and what the
//! participants see of it (a removal closes the WebSocket, a locked room refuses newcomers).

mod common;

use std::net::SocketAddr;

use common::{Client, STEP, join_message, keys, start, token};
use hush_proto::{
    ClientMessage, ErrorCode, LeaveReason, Publish, ServerMessage, Source, Unpublish,
};
use hush_relay::http::RelayOptions;
use hush_relay::http::admin::AdminToken;
use hush_relay::ops::limits::IpLimits;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ADMIN: &str = "admin-token-0123456789-abcdefghijklmnop";

fn options(admin: bool) -> RelayOptions {
    let mut options = RelayOptions::new(keys());
    if admin {
        options.admin_token = Some(AdminToken::new(ADMIN.as_bytes()).unwrap());
    }
    options
}

/// One HTTP/1.1 request: status, `Retry-After` if any, and the body as JSON (`Null` if none).
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: &str,
) -> (u16, Option<String>, Value) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = bearer.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(STEP, stream.read_to_string(&mut response))
        .await
        .unwrap()
        .unwrap();
    let status = response[9..12].parse().unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let retry_after = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("retry-after")
            .then(|| value.trim().to_owned())
    });
    let json = serde_json::from_str(body.trim()).unwrap_or(Value::Null);
    (status, retry_after, json)
}

async fn admin(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, Value) {
    let (status, _, json) = call(addr, method, path, Some(ADMIN), body).await;
    (status, json)
}

/// Expects `error {code}` as the next message, then the socket to close.
async fn expect_fatal(client: &mut Client, code: ErrorCode) {
    match client.recv().await {
        Some(ServerMessage::Error(e)) => {
            assert_eq!(e.code, code, "{e:?}");
            assert!(e.fatal);
        }
        other => panic!("expected error {code:?}, got {other:?}"),
    }
    client.expect_closed().await;
}

#[tokio::test]
async fn requests_without_the_right_token_are_refused() {
    let addr = start(options(true)).await;
    let path = "/v1/admin/rooms/r1";
    let (status, _, body) = call(addr, "GET", path, None, "").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _, body) = call(addr, "GET", path, Some("not-the-admin-token"), "").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized"))
    );
    // The right token with a prefix or suffix is a wrong token.
    let longer = format!("{ADMIN}x");
    let (status, _, _) = call(addr, "POST", "/v1/admin/rooms/r1/close", Some(&longer), "").await;
    assert_eq!(status, 401);
    let (status, _, _) = call(addr, "GET", path, Some(&ADMIN[1..]), "").await;
    assert_eq!(status, 401);
    // A wrong token changes nothing: the room was not created by the refused close.
    let (status, body) = admin(addr, "GET", path, "").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("unknown_room"))
    );
}

#[tokio::test]
async fn wrong_tokens_back_off_the_address_like_refused_access_tokens() {
    let mut options = options(true);
    let mut limits = IpLimits::default();
    limits.free_auth_failures = 1;
    options.ip_limits = limits;
    let addr = start(options).await;
    let path = "/v1/admin/rooms/r1";
    for _ in 0..2 {
        let (status, _, _) = call(addr, "GET", path, Some("guess-guess-guess"), "").await;
        assert_eq!(status, 401);
    }
    // Backing off: even the right token waits.
    let (status, retry_after, body) = call(addr, "GET", path, Some(ADMIN), "").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("auth_backoff"))
    );
    let retry_after: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
}

#[tokio::test]
async fn without_an_admin_token_there_is_no_admin_api() {
    let addr = start(options(false)).await;
    let (status, _, body) = call(addr, "GET", "/v1/admin/rooms/r1", Some(ADMIN), "").await;
    assert_eq!(status, 404);
    assert!(body.get("participants").is_none());
    let (status, _, _) = call(addr, "POST", "/v1/admin/rooms/r1/close", Some(ADMIN), "").await;
    assert!(status == 404 || status == 405, "{status}");
}

#[tokio::test]
async fn configure_sets_the_room_limit_and_refuses_bad_input() {
    let addr = start(options(true)).await;
    let path = "/v1/admin/rooms/r-conf";
    for bad in [
        "{",
        "[]",
        r#"{"max_participants":0}"#,
        r#"{"max_participants":-1}"#,
        r#"{"empty_timeout_secs":999999999}"#,
        r#"{"max_participant":2}"#,
    ] {
        let (status, body) = admin(addr, "PUT", path, bad).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("bad_request")),
            "{bad}"
        );
    }
    let (status, body) = admin(addr, "GET", "/v1/admin/rooms/bad%20room", "").await;
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_request")));
    // Nothing was created by the refusals.
    let (status, _) = admin(addr, "GET", path, "").await;
    assert_eq!(status, 404);

    let (status, body) = admin(
        addr,
        "PUT",
        path,
        r#"{"max_participants":2,"empty_timeout_secs":30}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["participants"], 0);
    assert_eq!(body["max_participants"], 2);
    assert_eq!(body["empty_timeout_secs"], 30);
    assert_eq!(body["locked"], false);

    let (_a, _) = Client::join(addr, "alice", "r-conf").await;
    let (_b, _) = Client::join(addr, "bob", "r-conf").await;
    let (status, body) = admin(addr, "GET", path, "").await;
    assert_eq!((status, body["participants"].as_u64()), (200, Some(2)));
    // The state names nobody.
    assert!(!body.to_string().contains("alice"), "{body}");
    let mut carol = Client::connect(addr).await;
    carol
        .send(&join_message(token("carol", "r-conf", 300), None))
        .await;
    expect_fatal(&mut carol, ErrorCode::RoomFull).await;
}

#[tokio::test]
async fn remove_closes_the_participants_socket_and_tells_the_others() {
    let addr = start(options(true)).await;
    let (mut alice, _) = Client::join(addr, "alice", "r-rm").await;
    let (mut bob, _) = Client::join(addr, "bob", "r-rm").await;
    let base = "/v1/admin/rooms/r-rm/participants";

    let (status, body) = admin(addr, "POST", &format!("{base}/nobody/remove"), "").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("unknown_participant"))
    );
    let (status, body) = admin(
        addr,
        "POST",
        "/v1/admin/rooms/r-none/participants/bob/remove",
        "",
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("unknown_room"))
    );
    let (status, body) = admin(addr, "POST", &format!("{base}/b%20b/remove"), "").await;
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_request")));

    let (status, body) = admin(addr, "POST", &format!("{base}/bob/remove"), "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["participants"], 1);
    let left = alice
        .recv_until(|m| matches!(m, ServerMessage::ParticipantLeft(_)))
        .await;
    match left {
        ServerMessage::ParticipantLeft(left) => {
            assert_eq!(left.participant.as_str(), "bob");
            assert_eq!(left.reason, LeaveReason::Removed);
        }
        _ => unreachable!(),
    }
    let error = bob
        .recv_until(|m| matches!(m, ServerMessage::Error(_)))
        .await;
    match error {
        ServerMessage::Error(e) => assert_eq!((e.code, e.fatal), (ErrorCode::Removed, true)),
        _ => unreachable!(),
    }
    bob.expect_closed().await;
    // Removed once is gone: a second removal finds nobody.
    let (status, _) = admin(addr, "POST", &format!("{base}/bob/remove"), "").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn unpublish_stops_a_track_and_refuses_bad_sources() {
    let addr = start(options(true)).await;
    let (mut alice, _) = Client::join(addr, "alice", "r-up").await;
    let (mut bob, _) = Client::join(addr, "bob", "r-up").await;
    alice
        .send(&ClientMessage::Publish(Publish {
            source: Source::Camera,
            mid: None,
        }))
        .await;
    bob.recv_until(|m| matches!(m, ServerMessage::TrackPublished(_)))
        .await;
    let path = "/v1/admin/rooms/r-up/participants/alice/unpublish";
    for bad in [
        "",
        "{",
        r#"{"source":"webcam"}"#,
        r#"{"source":7}"#,
        r#"{}"#,
    ] {
        let (status, body) = admin(addr, "POST", path, bad).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("bad_request")),
            "{bad}"
        );
    }
    let (status, body) = admin(addr, "POST", path, r#"{"source":"microphone"}"#).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("not_published"))
    );
    let (status, body) = admin(addr, "GET", "/v1/admin/rooms/r-up", "").await;
    assert_eq!((status, body["tracks"].as_u64()), (200, Some(1)));

    let (status, body) = admin(addr, "POST", path, r#"{"source":"camera"}"#).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tracks"], 0);
    let gone = bob
        .recv_until(|m| matches!(m, ServerMessage::TrackUnpublished(_)))
        .await;
    match gone {
        ServerMessage::TrackUnpublished(t) => {
            assert_eq!(
                (t.participant.as_str(), t.source),
                ("alice", Source::Camera)
            );
        }
        _ => unreachable!(),
    }
    // Alice is still in the room and may publish again.
    alice
        .send(&ClientMessage::Unpublish(Unpublish {
            source: Source::Camera,
        }))
        .await;
    let refused = alice
        .recv_until(|m| matches!(m, ServerMessage::Error(_)))
        .await;
    match refused {
        ServerMessage::Error(e) => assert_eq!(e.code, ErrorCode::NotPublished),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn lock_refuses_newcomers_and_close_removes_everyone() {
    let addr = start(options(true)).await;
    let (mut alice, _) = Client::join(addr, "alice", "r-lock").await;
    let lock = "/v1/admin/rooms/r-lock/lock";
    for bad in ["", r#"{"locked":"yes"}"#, r#"{"lock":true}"#] {
        let (status, body) = admin(addr, "POST", lock, bad).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("bad_request")),
            "{bad}"
        );
    }
    let (status, body) = admin(
        addr,
        "POST",
        "/v1/admin/rooms/r-none/lock",
        r#"{"locked":true}"#,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("unknown_room"))
    );

    let (status, body) = admin(addr, "POST", lock, r#"{"locked":true}"#).await;
    assert_eq!(
        (status, body["locked"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    let locked = alice
        .recv_until(|m| matches!(m, ServerMessage::RoomLocked(_)))
        .await;
    assert!(matches!(locked, ServerMessage::RoomLocked(l) if l.locked));
    let mut dave = Client::connect(addr).await;
    dave.send(&join_message(token("dave", "r-lock", 300), None))
        .await;
    expect_fatal(&mut dave, ErrorCode::RoomLocked).await;

    // Unlocked, a newcomer gets in again.
    let (status, _) = admin(addr, "POST", lock, r#"{"locked":false}"#).await;
    assert_eq!(status, 200);
    let (_erin, joined) = Client::join(addr, "erin", "r-lock").await;
    assert!(!joined.locked);

    let (status, body) = admin(addr, "POST", "/v1/admin/rooms/r-lock/close", "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["closed"].as_bool(), body["participants"].as_u64()),
        (Some(true), Some(0))
    );
    let error = alice
        .recv_until(|m| matches!(m, ServerMessage::Error(_)))
        .await;
    assert!(matches!(error, ServerMessage::Error(e) if e.code == ErrorCode::RoomClosed));
    alice.expect_closed().await;
    // A closed room cannot be unlocked or reconfigured, and refuses joins.
    let (status, body) = admin(addr, "POST", lock, r#"{"locked":false}"#).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("room_closed")));
    let (status, body) = admin(addr, "PUT", "/v1/admin/rooms/r-lock", "{}").await;
    assert_eq!((status, body["error"].as_str()), (409, Some("room_closed")));
    let mut frank = Client::connect(addr).await;
    frank
        .send(&join_message(token("frank", "r-lock", 300), None))
        .await;
    expect_fatal(&mut frank, ErrorCode::RoomClosed).await;
    // Closing again is not an error.
    let (status, _) = admin(addr, "POST", "/v1/admin/rooms/r-lock/close", "").await;
    assert_eq!(status, 200);
}
