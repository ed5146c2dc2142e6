#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic
//! Moderation end to end through the real relay (in process, on 127.0.0.1): a moderator, or the
//! app's backend through the admin API, removes a participant; the others move to a new epoch
//! and keep decrypting without a failure, and the removed participant's last keys open none of
//! the new epoch's frames as the relay's forwarding tap recorded them. A participant without
//! the `moderator` grant is refused with its code.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hush_client::synth::opus_frame;
use hush_client::{Client, ClientEvent, ClientOptions};
use hush_frame::Layout;
use hush_proto::{
    AccessToken, Audience, ClientMessage, ErrorCode, ForceDisconnect, Grants, LeaveReason,
    ParticipantId, Source, TokenClaims, TrackId,
};
use hush_relay::http::admin::AdminToken;
use hush_relay::http::{RelayOptions, serve};
use hush_relay::token::{SigningKey, VerifyingKeys, mint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: [u8; 32] = [0x6b; 32];
const KID: &str = "test-mod";
const ADMIN: &str = "moderation-test-admin-token-0123456789";
const TEST_LIMIT: Duration = Duration::from_secs(90);
const TAP_CAP: usize = 200_000;
/// How long one wait for an event may take.
const STEP: Duration = Duration::from_secs(10);

/// The forwarded payloads the relay's tap saw (bounded).
#[derive(Default)]
struct Tap {
    payloads: Mutex<Vec<(TrackId, Vec<u8>)>>,
}

async fn start_relay(tap: Arc<Tap>) -> SocketAddr {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut keys = VerifyingKeys::new();
    keys.add_hs256(KID, &SECRET).unwrap();
    let mut options = RelayOptions::new(keys);
    options.admin_token = Some(AdminToken::new(ADMIN.as_bytes()).unwrap());
    options.media.forward_tap = Some(Arc::new(move |track: TrackId, payload: &[u8]| {
        let mut p = tap.payloads.lock().unwrap();
        if p.len() < TAP_CAP {
            p.push((track, payload.to_vec()));
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = serve(listener, options).await;
    });
    addr
}

fn token(sub: &str, room: &str, grants: Grants) -> AccessToken {
    static JTI: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = TokenClaims {
        sub: sub.try_into().unwrap(),
        room: room.try_into().unwrap(),
        aud: Audience::from("hush"),
        exp: now + 300,
        nbf: None,
        iat: Some(now),
        jti: Some(format!("mod-jti-{}", JTI.fetch_add(1, Ordering::Relaxed))),
        grants,
    };
    AccessToken::new(mint(&claims, &SigningKey::hs256(KID, &SECRET).unwrap()).unwrap())
}

fn grants(moderator: bool) -> Grants {
    Grants {
        publish: true,
        subscribe: true,
        moderator,
        ..Grants::default()
    }
}

/// Sends audio at 50 frames per second for `secs`.
async fn pump(client: &Client, secs: u64) {
    let start = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut n: u32 = 0;
    while start.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        let f = opus_frame(n, 60 + (n as usize % 100));
        let _ = client
            .send_frame(Source::Microphone, &f, Duration::from_millis(20))
            .await;
        n += 1;
    }
}

/// The next `error` event (skipping others), or `None` if the session closed first.
async fn next_error(client: &mut Client) -> Option<(ErrorCode, bool)> {
    for _ in 0..1000 {
        let event = tokio::time::timeout(STEP, client.next_event())
            .await
            .expect("no event in time");
        match event {
            Some(ClientEvent::Error { code, fatal, .. }) => return Some((code, fatal)),
            Some(ClientEvent::Closed) | None => return None,
            Some(_) => {}
        }
    }
    panic!("no error in 1000 events");
}

/// `POST path` on the admin API: the status and body.
async fn admin_post(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
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

/// How the removal is asked for.
#[derive(Clone, Copy, Debug)]
enum By {
    /// `force_disconnect` over signaling from a member with the `moderator` grant.
    Moderator,
    /// `POST /v1/admin/rooms/{room}/participants/{id}/remove`.
    AdminApi,
}

/// Alice (a moderator) publishes audio, Bob and Carol receive it; Carol is removed. (One
/// publisher: with the relay as it is, a forwarded track lands on a new m-line only for a
/// subscriber that publishes nothing.)
async fn removal_moves_the_room_to_a_new_epoch(by: By, room: &str) {
    let tap = Arc::new(Tap::default());
    let addr = start_relay(tap.clone()).await;
    let url = format!("ws://{addr}/v1/rtc");
    let mut clients = Vec::new();
    for (name, publisher) in [("alice", true), ("bob", false), ("carol", false)] {
        let opts = ClientOptions {
            publish: if publisher {
                vec![Source::Microphone]
            } else {
                vec![]
            },
            ..ClientOptions::default()
        };
        let c = Client::connect(&url, token(name, room, grants(publisher)), opts)
            .await
            .unwrap();
        clients.push(c);
    }
    assert!(clients[0].info().grants.moderator);
    assert!(!clients[1].info().grants.moderator);

    // A member without the grant cannot remove anyone: refused with its code, nothing changes.
    let alice_id = ParticipantId::new("alice").unwrap();
    clients[1]
        .send_message(ClientMessage::ForceDisconnect(ForceDisconnect {
            participant: alice_id,
        }))
        .await
        .unwrap();
    assert_eq!(
        next_error(&mut clients[1]).await,
        Some((ErrorCode::ModeratorRequired, false))
    );

    let ia = clients[0].info().sender_index;
    // Media flows once both subscribers negotiated: pump until they decrypt (bounded).
    for _ in 0..10 {
        pump(&clients[0], 1).await;
        let got = |c: &Client| c.stats().received.get(&ia).map_or(0, |r| r.decrypted);
        if got(&clients[1]) > 100 && got(&clients[2]) > 100 {
            break;
        }
    }
    let carol_before = clients[2].stats();
    assert!(
        carol_before.received[&ia].decrypted > 50,
        "alice is still in the room after the refused removal: {carol_before:?}"
    );
    let epoch_at_removal = clients[0].stats().sending_epoch.unwrap();
    let bob_before = clients[1].stats().received[&ia];

    match by {
        By::Moderator => clients[0]
            .send_message(ClientMessage::ForceDisconnect(ForceDisconnect {
                participant: ParticipantId::new("carol").unwrap(),
            }))
            .await
            .unwrap(),
        By::AdminApi => {
            let path = format!("/v1/admin/rooms/{room}/participants/carol/remove");
            let (status, body) = admin_post(addr, &path).await;
            assert_eq!(status, 200, "{body}");
            assert!(body.contains("\"participants\":2"), "{body}");
        }
    }
    let mut carol = clients.pop().unwrap();
    assert_eq!(
        next_error(&mut carol).await,
        Some((ErrorCode::Removed, true))
    );

    // Alice goes on; the committer draws a fresh epoch for the two who stay.
    let mut mark = None;
    for _ in 0..8 {
        pump(&clients[0], 1).await;
        let switched = clients[0].stats().sending_epoch.unwrap() > epoch_at_removal;
        if mark.is_none() && switched {
            // Frames in flight at the switch may still be on the old epoch: skip a moment.
            pump(&clients[0], 1).await;
            mark = Some(tap.payloads.lock().unwrap().len());
        } else if mark.is_some() {
            break;
        }
    }
    let mark = mark.expect("alice never switched to a new epoch after the removal");
    pump(&clients[0], 1).await;
    let new_epoch: Vec<Vec<u8>> = tap.payloads.lock().unwrap()[mark..]
        .iter()
        .map(|(_, p)| p.clone())
        .collect();
    assert!(
        new_epoch.len() > 40,
        "only {} new-epoch frames",
        new_epoch.len()
    );

    // Bob saw Carol leave as removed, and still decrypts Alice on the new epoch, with no failure.
    let mut saw_removal = false;
    while let Some(event) = clients[1].try_event() {
        if let ClientEvent::ParticipantLeft {
            participant,
            reason,
        } = event
        {
            saw_removal |= participant.as_str() == "carol" && reason == LeaveReason::Removed;
        }
    }
    assert!(saw_removal, "bob was not told carol was removed");
    let bob = clients[1].stats().received[&ia];
    assert!(bob.decrypted > bob_before.decrypted + 40, "{bob:?}");
    assert_eq!(bob.dropped.total(), bob_before.dropped.total(), "{bob:?}");
    assert_eq!(bob.dropped.auth_failed, 0, "{bob:?}");

    // Carol's decryptor, with every key she had, opens none of the new epoch's frames.
    let layout = Layout::Media(hush_frame::Codec::Opus);
    let opened = carol.with_decryptor(|d| {
        new_epoch
            .iter()
            .filter(|p| d.decrypt(layout, &mut p.to_vec()).is_ok())
            .count()
    });
    assert_eq!(opened, 0, "the removed participant opened new-epoch frames");
    eprintln!(
        "{by:?}: {} new-epoch frames, the removed participant opened none",
        new_epoch.len()
    );

    for c in &mut clients {
        c.leave().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moderator_removes_a_member_who_cannot_open_the_new_epoch() {
    tokio::time::timeout(
        TEST_LIMIT,
        removal_moves_the_room_to_a_new_epoch(By::Moderator, "room-mod"),
    )
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_removes_a_member_who_cannot_open_the_new_epoch() {
    tokio::time::timeout(
        TEST_LIMIT,
        removal_moves_the_room_to_a_new_epoch(By::AdminApi, "room-admin"),
    )
    .await
    .expect("test timed out");
}
