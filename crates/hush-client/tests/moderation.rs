#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic
//! Moderation end to end through the real relay (in process, on 127.0.0.1): a moderator, or the
//! app's backend through the admin API, removes a participant; the others move to a new epoch
//! and keep decrypting without a failure, and the removed participant's last keys open none of
//! the new epoch's frames as the relay's forwarding tap recorded them. A participant without
//! the `moderator` grant is refused with its code.

use std::time::Duration;

use hush_client::ClientEvent;
use hush_participant::Event;
use hush_proto::{ClientMessage, ErrorCode, ForceDisconnect, LeaveReason, ParticipantId, Source};
use hush_testkit::client::{
    Media, next_error, opened_by, pump, pump_past_epoch, pump_until_decrypted,
};
use hush_testkit::relay::TestRelay;

const TEST_LIMIT: Duration = Duration::from_secs(90);

/// How the removal is asked for.
#[derive(Clone, Copy, Debug)]
enum By {
    /// `force_disconnect` over signaling from a member with the `moderator` grant.
    Moderator,
    /// `POST /v1/admin/rooms/{room}/participants/{id}/remove`.
    AdminApi,
}

fn force_disconnect(who: &str) -> ClientMessage {
    ClientMessage::ForceDisconnect(ForceDisconnect {
        participant: ParticipantId::new(who).unwrap(),
    })
}

/// Alice (a moderator) publishes audio, Bob and Carol receive it; Carol is removed. (One
/// publisher: with the relay as it is, a forwarded track lands on a new m-line only for a
/// subscriber that publishes nothing.)
async fn removal_moves_the_room_to_a_new_epoch(by: By, room: &str) {
    let relay = TestRelay::builder().admin().tap().start().await;
    let alice = relay.client(room, "alice").moderator();
    let alice = alice.publish(&[Source::Microphone]).connect().await;
    let mut clients = vec![alice];
    for name in ["bob", "carol"] {
        clients.push(relay.client(room, name).connect().await);
    }
    assert!(clients[0].info().grants.moderator);
    assert!(!clients[1].info().grants.moderator);

    // A member without the grant cannot remove anyone: refused with its code, nothing changes.
    clients[1]
        .send_message(force_disconnect("alice"))
        .await
        .unwrap();
    assert_eq!(
        next_error(&mut clients[1]).await,
        Some((ErrorCode::ModeratorRequired, false))
    );

    let ia = clients[0].info().sender_index;
    // Media flows once both subscribers negotiated: pump until they decrypt (bounded).
    let subscribers = [&clients[1], &clients[2]];
    let counts = pump_until_decrypted(&clients[0], &subscribers, 100, Media::Audio, 10).await;
    assert!(
        counts[1] > 50,
        "alice is still in the room after the refused removal: {:?}",
        clients[2].stats()
    );
    let epoch_at_removal = clients[0].stats().sending_epoch.unwrap();
    let bob_before = clients[1].stats().received[&ia];

    match by {
        By::Moderator => clients[0]
            .send_message(force_disconnect("carol"))
            .await
            .unwrap(),
        By::AdminApi => {
            let path = format!("/v1/admin/rooms/{room}/participants/carol/remove");
            let response = relay.admin_request("POST", &path, "").await;
            assert_eq!(response.status, 200, "{}", response.body);
            assert!(
                response.body.contains("\"participants\":2"),
                "{}",
                response.body
            );
        }
    }
    let mut carol = clients.pop().unwrap();
    assert_eq!(
        next_error(&mut carol).await,
        Some((ErrorCode::Removed, true))
    );

    // Alice goes on; the committer draws a fresh epoch for the two who stay.
    let mark = pump_past_epoch(&clients[0], epoch_at_removal, relay.tap())
        .await
        .expect("alice never switched to a new epoch after the removal");
    pump(&clients[0], 1, Media::Audio).await;
    let new_epoch = relay.tap().since(mark);
    assert!(
        new_epoch.len() > 40,
        "only {} new-epoch frames",
        new_epoch.len()
    );

    // Bob saw Carol leave as removed, and still decrypts Alice on the new epoch, with no failure.
    let mut saw_removal = false;
    while let Some(event) = clients[1].try_event() {
        if let ClientEvent::Keys(Event::MemberLeft {
            participant,
            reason,
        }) = event
        {
            saw_removal |= participant.as_str() == "carol" && reason == LeaveReason::Removed;
        }
    }
    assert!(saw_removal, "bob was not told carol was removed");
    let bob = clients[1].stats().received[&ia];
    assert!(
        bob.decrypt.decrypted > bob_before.decrypt.decrypted + 40,
        "{bob:?}"
    );
    assert_eq!(
        bob.decrypt.dropped(),
        bob_before.decrypt.dropped(),
        "{bob:?}"
    );
    assert_eq!(bob.decrypt.auth_failed, 0, "{bob:?}");

    // Carol's decryptor, with every key she had, opens none of the new epoch's frames.
    let opened = opened_by(&carol, &new_epoch);
    assert_eq!(opened, 0, "the removed participant opened new-epoch frames");
    eprintln!(
        "{by:?}: {} new-epoch frames, the removed participant opened none",
        new_epoch.len()
    );

    for c in &mut clients {
        c.leave().await;
    }
}

async fn removal_within_the_limit(by: By, room: &str) {
    tokio::time::timeout(TEST_LIMIT, removal_moves_the_room_to_a_new_epoch(by, room))
        .await
        .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moderator_removes_a_member_who_cannot_open_the_new_epoch() {
    removal_within_the_limit(By::Moderator, "room-mod").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_removes_a_member_who_cannot_open_the_new_epoch() {
    removal_within_the_limit(By::AdminApi, "room-admin").await;
}
