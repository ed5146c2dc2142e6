#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic
//! The admin API over real sockets: every endpoint's success and refusals, and what the
//! participants see of it (a removal closes the WebSocket, a locked room refuses newcomers).

use hush_proto::{
    ClientMessage, ErrorCode, LeaveReason, Publish, ServerMessage, Source, Unpublish,
};
use hush_relay::ops::limits::IpLimits;
use hush_testkit::client::RawSignal;
use hush_testkit::http::{HttpResponse, request};
use hush_testkit::relay::{ADMIN_TOKEN, TestRelay};

/// A relay with the admin API.
async fn relay() -> TestRelay {
    TestRelay::builder().admin().start().await
}

/// A request to `relay` with `bearer` (or none).
async fn call(relay: &TestRelay, method: &str, path: &str, bearer: Option<&str>) -> HttpResponse {
    request(relay.addr(), method, path, bearer, "").await
}

/// An admin request: the status and the `error` string of the body, if any.
async fn admin_error(
    relay: &TestRelay,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, Option<String>) {
    let response = relay.admin_request(method, path, body).await;
    (response.status, response.error())
}

/// Waits for the first message that `pick` takes something from, and returns that.
async fn recv_map<T>(client: &mut RawSignal, pick: impl Fn(&ServerMessage) -> Option<T>) -> T {
    let message = client.recv_until(|m| pick(m).is_some()).await;
    pick(&message).expect("recv_until returned a message that `pick` takes")
}

/// Asserts that every one of `bodies` is refused with `400 bad_request`.
async fn refuses_bad_bodies(relay: &TestRelay, method: &str, path: &str, bodies: &[&str]) {
    for bad in bodies {
        let refusal = admin_error(relay, method, path, bad).await;
        assert_eq!(refusal, (400, Some("bad_request".into())), "{bad}");
    }
}

/// Sends `join` for `sub` in `room`: the relay's answer must be the fatal `code`.
async fn join_refused(relay: &TestRelay, sub: &str, room: &str, code: ErrorCode) {
    let mut c = relay.signal().await;
    c.join_with(relay.tokens().member(room, sub), None).await;
    c.expect_fatal(code).await;
}

/// An admin request that must succeed: the body.
async fn admin_ok(relay: &TestRelay, method: &str, path: &str, body: &str) -> serde_json::Value {
    let response = relay.admin_request(method, path, body).await;
    assert_eq!(response.status, 200, "{}", response.body);
    response.json()
}

fn err(status: u16, error: &str) -> (u16, Option<String>) {
    (status, Some(error.to_owned()))
}

#[tokio::test]
async fn requests_without_the_right_token_are_refused() {
    let relay = relay().await;
    let path = "/v1/admin/rooms/r1";
    for bearer in [None, Some("not-the-admin-token")] {
        let response = call(&relay, "GET", path, bearer).await;
        assert_eq!(
            (response.status, response.error()),
            err(401, "unauthorized")
        );
    }
    // The right token with a prefix or suffix is a wrong token.
    let longer = format!("{ADMIN_TOKEN}x");
    let close = "/v1/admin/rooms/r1/close";
    assert_eq!(call(&relay, "POST", close, Some(&longer)).await.status, 401);
    let shorter = &ADMIN_TOKEN[1..];
    assert_eq!(call(&relay, "GET", path, Some(shorter)).await.status, 401);
    // A wrong token changes nothing: the room was not created by the refused close.
    let state = admin_error(&relay, "GET", path, "").await;
    assert_eq!(state, err(404, "unknown_room"));
}

#[tokio::test]
async fn wrong_tokens_back_off_the_address_like_refused_access_tokens() {
    let mut limits = IpLimits::default();
    limits.free_auth_failures = 1;
    let relay = TestRelay::builder().admin().ip_limits(limits).start().await;
    let path = "/v1/admin/rooms/r1";
    for _ in 0..2 {
        let response = call(&relay, "GET", path, Some("guess-guess-guess")).await;
        assert_eq!(response.status, 401);
    }
    // Backing off: even the right token waits.
    let response = call(&relay, "GET", path, Some(ADMIN_TOKEN)).await;
    assert_eq!(
        (response.status, response.error()),
        err(429, "auth_backoff")
    );
    let retry_after: u64 = response
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
}

#[tokio::test]
async fn without_an_admin_token_there_is_no_admin_api() {
    let relay = TestRelay::start().await;
    let response = call(&relay, "GET", "/v1/admin/rooms/r1", Some(ADMIN_TOKEN)).await;
    assert_eq!(response.status, 404);
    assert!(response.json().get("participants").is_none());
    let close = "/v1/admin/rooms/r1/close";
    let status = call(&relay, "POST", close, Some(ADMIN_TOKEN)).await.status;
    assert!(status == 404 || status == 405, "{status}");
}

#[tokio::test]
async fn configure_sets_the_room_limit_and_refuses_bad_input() {
    let relay = relay().await;
    let path = "/v1/admin/rooms/r-conf";
    let bad = [
        "{",
        "[]",
        r#"{"max_participants":0}"#,
        r#"{"max_participants":-1}"#,
        r#"{"empty_timeout_secs":999999999}"#,
        r#"{"max_participant":2}"#,
    ];
    refuses_bad_bodies(&relay, "PUT", path, &bad).await;
    let bad_room = admin_error(&relay, "GET", "/v1/admin/rooms/bad%20room", "").await;
    assert_eq!(bad_room, err(400, "bad_request"));
    // Nothing was created by the refusals.
    assert_eq!(relay.admin_request("GET", path, "").await.status, 404);

    let config = r#"{"max_participants":2,"empty_timeout_secs":30}"#;
    let body = admin_ok(&relay, "PUT", path, config).await;
    assert_eq!(body["participants"], 0);
    assert_eq!(body["max_participants"], 2);
    assert_eq!(body["empty_timeout_secs"], 30);
    assert_eq!(body["locked"], false);

    let (_a, _) = relay.join("alice", "r-conf").await;
    let (_b, _) = relay.join("bob", "r-conf").await;
    let response = relay.admin_request("GET", path, "").await;
    let body = response.json();
    assert_eq!(
        (response.status, body["participants"].as_u64()),
        (200, Some(2))
    );
    // The state names nobody.
    assert!(!body.to_string().contains("alice"), "{body}");
    join_refused(&relay, "carol", "r-conf", ErrorCode::RoomFull).await;
}

#[tokio::test]
async fn remove_closes_the_participants_socket_and_tells_the_others() {
    let relay = relay().await;
    let (mut alice, _) = relay.join("alice", "r-rm").await;
    let (mut bob, _) = relay.join("bob", "r-rm").await;
    let base = "/v1/admin/rooms/r-rm/participants";

    let refusals = [(format!("{base}/b%20b/remove"), err(400, "bad_request"))];
    for (path, refusal) in refusals {
        assert_eq!(
            admin_error(&relay, "POST", &path, "").await,
            refusal,
            "{path}"
        );
    }

    let remove_bob = format!("{base}/bob/remove");
    let body = admin_ok(&relay, "POST", &remove_bob, "").await;
    assert_eq!(body["participants"], 1);
    let left = recv_map(&mut alice, |m| match m {
        ServerMessage::ParticipantLeft(left) => Some(left.clone()),
        _ => None,
    })
    .await;
    assert_eq!(left.participant.as_str(), "bob");
    assert_eq!(left.reason, LeaveReason::Removed);
    let error = bob.next_error().await;
    assert_eq!((error.code, error.fatal), (ErrorCode::Removed, true));
    bob.expect_closed().await;
    // Someone not in the room now (bob, gone; nobody, never there) is remembered as removed
    // all the same: the backend's word holds for a participant away for a moment.
    for who in ["bob", "nobody"] {
        let body = admin_ok(&relay, "POST", &format!("{base}/{who}/remove"), "").await;
        assert_eq!(body["participants"], 1);
    }
    join_refused(&relay, "nobody", "r-rm", ErrorCode::Removed).await;
    // So is someone removed from a room the relay does not hold now (empty and forgotten).
    let body = admin_ok(
        &relay,
        "POST",
        "/v1/admin/rooms/r-none/participants/bob/remove",
        "",
    )
    .await;
    assert_eq!(body["participants"], 0);
    join_refused(&relay, "bob", "r-none", ErrorCode::Removed).await;
}

#[tokio::test]
async fn unpublish_stops_a_track_and_refuses_bad_sources() {
    let relay = relay().await;
    let (mut alice, _) = relay.join("alice", "r-up").await;
    let (mut bob, _) = relay.join("bob", "r-up").await;
    alice
        .send(&ClientMessage::Publish(Publish {
            source: Source::Camera,
            mid: None,
        }))
        .await;
    bob.recv_until(|m| matches!(m, ServerMessage::TrackPublished(_)))
        .await;
    let path = "/v1/admin/rooms/r-up/participants/alice/unpublish";
    let bad = [
        "",
        "{",
        r#"{"source":"webcam"}"#,
        r#"{"source":7}"#,
        r#"{}"#,
    ];
    refuses_bad_bodies(&relay, "POST", path, &bad).await;
    let microphone = admin_error(&relay, "POST", path, r#"{"source":"microphone"}"#).await;
    assert_eq!(microphone, err(404, "not_published"));
    let response = relay.admin_request("GET", "/v1/admin/rooms/r-up", "").await;
    assert_eq!(
        (response.status, response.json()["tracks"].as_u64()),
        (200, Some(1))
    );

    let body = admin_ok(&relay, "POST", path, r#"{"source":"camera"}"#).await;
    assert_eq!(body["tracks"], 0);
    let t = recv_map(&mut bob, |m| match m {
        ServerMessage::TrackUnpublished(t) => Some(t.clone()),
        _ => None,
    })
    .await;
    assert_eq!(
        (t.participant.as_str(), t.source),
        ("alice", Source::Camera)
    );
    // Alice is still in the room and may publish again.
    alice
        .send(&ClientMessage::Unpublish(Unpublish {
            source: Source::Camera,
        }))
        .await;
    assert_eq!(alice.next_error().await.code, ErrorCode::NotPublished);
}

#[tokio::test]
async fn lock_refuses_newcomers_and_close_removes_everyone() {
    let relay = relay().await;
    let (mut alice, _) = relay.join("alice", "r-lock").await;
    let lock = "/v1/admin/rooms/r-lock/lock";
    let bad = ["", r#"{"locked":"yes"}"#, r#"{"lock":true}"#];
    refuses_bad_bodies(&relay, "POST", lock, &bad).await;
    let unknown = "/v1/admin/rooms/r-none/lock";
    let refusal = admin_error(&relay, "POST", unknown, r#"{"locked":true}"#).await;
    assert_eq!(refusal, err(404, "unknown_room"));

    let body = admin_ok(&relay, "POST", lock, r#"{"locked":true}"#).await;
    assert_eq!(body["locked"].as_bool(), Some(true), "{body}");
    let locked = alice
        .recv_until(|m| matches!(m, ServerMessage::RoomLocked(_)))
        .await;
    assert!(matches!(locked, ServerMessage::RoomLocked(l) if l.locked));
    join_refused(&relay, "dave", "r-lock", ErrorCode::RoomLocked).await;

    // Unlocked, a newcomer gets in again.
    let response = relay
        .admin_request("POST", lock, r#"{"locked":false}"#)
        .await;
    assert_eq!(response.status, 200);
    let (_erin, joined) = relay.join("erin", "r-lock").await;
    assert!(!joined.locked);

    let close = "/v1/admin/rooms/r-lock/close";
    let body = admin_ok(&relay, "POST", close, "").await;
    assert_eq!(
        (body["closed"].as_bool(), body["participants"].as_u64()),
        (Some(true), Some(0))
    );
    assert_eq!(alice.next_error().await.code, ErrorCode::RoomClosed);
    alice.expect_closed().await;
    // A closed room cannot be unlocked or reconfigured, and refuses joins.
    let unlock = admin_error(&relay, "POST", lock, r#"{"locked":false}"#).await;
    assert_eq!(unlock, err(409, "room_closed"));
    let configure = admin_error(&relay, "PUT", "/v1/admin/rooms/r-lock", "{}").await;
    assert_eq!(configure, err(409, "room_closed"));
    join_refused(&relay, "frank", "r-lock", ErrorCode::RoomClosed).await;
    // Closing again is not an error.
    assert_eq!(relay.admin_request("POST", close, "").await.status, 200);
}
