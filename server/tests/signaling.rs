//! Signaling over real WebSockets on 127.0.0.1: joins, precise refusals, isolation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

mod common;

use common::{Client, join_message, keys, start, token};
use futures_util::SinkExt;
use hush_proto::{ClientMessage, ErrorCode, MAX_MESSAGE_BYTES, Ping, Sdp, ServerMessage};
use hush_relay::http::{DevMinter, RelayOptions};
use tokio_tungstenite::tungstenite::Message;

fn error_code(message: Option<ServerMessage>) -> (ErrorCode, bool) {
    match message {
        Some(ServerMessage::Error(e)) => (e.code, e.fatal),
        other => panic!("expected an error, got {other:?}"),
    }
}

async fn ping(client: &mut Client, seq: u64) {
    client.send(&ClientMessage::Ping(Ping { seq })).await;
    let pong = client
        .recv_until(|m| matches!(m, ServerMessage::Pong(_)))
        .await;
    assert_eq!(pong, ServerMessage::Pong(Ping { seq }));
}

#[tokio::test]
async fn a_good_token_joins_and_the_second_member_is_announced() {
    let addr = start(RelayOptions::new(keys())).await;
    let (mut alice, joined) = Client::join(addr, "alice", "standup").await;
    assert_eq!(joined.room.as_str(), "standup");
    assert!(joined.participants.is_empty());
    let (_bob, joined_bob) = Client::join(addr, "bob", "standup").await;
    assert_eq!(joined_bob.participants.len(), 1);
    assert_ne!(joined.sender_index, joined_bob.sender_index);
    let event = alice
        .recv_until(|m| matches!(m, ServerMessage::ParticipantJoined(_)))
        .await;
    let ServerMessage::ParticipantJoined(p) = event else {
        unreachable!()
    };
    assert_eq!(p.participant.id.as_str(), "bob");
    ping(&mut alice, 7).await;
}

#[tokio::test]
async fn bad_input_gets_precise_codes_and_others_keep_being_served() {
    let addr = start(RelayOptions::new(keys())).await;
    let (mut bystander, _) = Client::join(addr, "bystander", "room1").await;
    let (mut c, _) = Client::join(addr, "mallory", "room1").await;

    c.send_text("{not json".into()).await;
    assert_eq!(
        error_code(c.recv().await),
        (ErrorCode::MalformedMessage, false)
    );

    c.send_text(r#"{"v":2,"type":"ping","seq":1}"#.into()).await;
    assert_eq!(
        error_code(c.recv().await),
        (ErrorCode::UnsupportedVersion, false)
    );

    c.send_text(r#"{"v":1,"type":"teleport"}"#.into()).await;
    assert_eq!(
        error_code(c.recv().await),
        (ErrorCode::UnknownMessageType, false)
    );

    let big = format!(
        r#"{{"v":1,"type":"ping","seq":1,"pad":"{}"}}"#,
        "x".repeat(MAX_MESSAGE_BYTES)
    );
    c.send_text(big).await;
    assert_eq!(
        error_code(c.recv().await),
        (ErrorCode::MessageTooLarge, false)
    );

    c.ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(
        error_code(c.recv().await),
        (ErrorCode::MalformedMessage, false)
    );

    let garbage = ClientMessage::Offer(Sdp {
        sdp: "v=0\r\nthis is not sdp".into(),
    });
    c.send(&garbage).await;
    let (code, fatal) = error_code(Some(
        c.recv_until(|m| matches!(m, ServerMessage::Error(_))).await,
    ));
    assert_eq!((code, fatal), (ErrorCode::MalformedMessage, false));

    // The offender is still served, and so is everyone else.
    ping(&mut c, 1).await;
    ping(&mut bystander, 2).await;
    let (_late, joined) = Client::join(addr, "late", "room1").await;
    assert_eq!(joined.participants.len(), 2);
}

#[tokio::test]
async fn frames_beyond_the_websocket_limit_close_only_that_socket() {
    let addr = start(RelayOptions::new(keys())).await;
    let (mut bystander, _) = Client::join(addr, "bystander", "room2").await;
    let (mut c, _) = Client::join(addr, "flooder", "room2").await;
    let huge = "x".repeat(5 * MAX_MESSAGE_BYTES);
    let _ = c.ws.send(Message::text(huge)).await;
    c.expect_closed().await;
    let left = bystander
        .recv_until(|m| matches!(m, ServerMessage::ParticipantLeft(_)))
        .await;
    assert!(matches!(left, ServerMessage::ParticipantLeft(_)));
    ping(&mut bystander, 3).await;
}

#[tokio::test]
async fn expired_and_wrong_room_tokens_are_refused_and_closed() {
    let addr = start(RelayOptions::new(keys())).await;

    let mut c = Client::connect(addr).await;
    c.send(&join_message(token("eve", "room3", -300), None))
        .await;
    assert_eq!(error_code(c.recv().await), (ErrorCode::TokenExpired, true));
    c.expect_closed().await;

    let mut c = Client::connect(addr).await;
    c.send(&join_message(
        token("eve", "room3", 300),
        Some("other-room"),
    ))
    .await;
    assert_eq!(
        error_code(c.recv().await),
        (ErrorCode::TokenWrongRoom, true)
    );
    c.expect_closed().await;

    // Anything before join is fatal too.
    let mut c = Client::connect(addr).await;
    c.send(&ClientMessage::Ping(Ping { seq: 1 })).await;
    assert_eq!(error_code(c.recv().await), (ErrorCode::NotJoined, true));
    c.expect_closed().await;

    // The relay still serves good tokens.
    let (_ok, joined) = Client::join(addr, "eve", "room3").await;
    assert_eq!(joined.room.as_str(), "room3");
}

async fn post_token(addr: std::net::SocketAddr, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST /dev/token HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(common::STEP, stream.read_to_string(&mut response))
        .await
        .unwrap()
        .unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

#[tokio::test]
async fn dev_tokens_only_in_dev_mode() {
    let addr = start(RelayOptions::new(keys())).await;
    let (status, body) = post_token(addr, r#"{"room":"x"}"#).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("dev mode is off"));

    let mut keys = keys();
    let mut options = RelayOptions::new(hush_relay::token::VerifyingKeys::new());
    options.dev = Some(DevMinter::generate(&mut keys, "hush").unwrap());
    options.keys = keys;
    let addr = start(options).await;
    let (status, body) = post_token(addr, r#"{"room":"devroom"}"#).await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
    let token = json["token"].as_str().unwrap().to_owned();
    let mut c = Client::connect(addr).await;
    c.send(&join_message(token, None)).await;
    assert!(
        matches!(c.recv().await, Some(ServerMessage::Joined(j)) if j.room.as_str() == "devroom")
    );

    let (status, _) = post_token(addr, r#"{"room":"no spaces"}"#).await;
    assert_eq!(status, 400);
    let (status, _) = post_token(addr, "not json").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn dev_mode_is_refused_off_loopback() {
    let mut keys = keys();
    let mut options = RelayOptions::new(hush_relay::token::VerifyingKeys::new());
    options.dev = Some(DevMinter::generate(&mut keys, "hush").unwrap());
    options.keys = keys;
    let Ok(listener) = tokio::net::TcpListener::bind("0.0.0.0:0").await else {
        return;
    };
    let result = hush_relay::http::serve(listener, options).await;
    assert!(matches!(
        result,
        Err(hush_relay::http::ServeError::DevNotLoopback)
    ));
}
