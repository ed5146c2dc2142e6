//! Native clients through the real relay while another participant misbehaves: a join with an
//! unusable identity key must not freeze anyone's key log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hush_proto::{ClientMessage, RekeyReason, RekeyRequest, Source};
use hush_testkit::client::{Media, decrypted_from, pump_until_decrypted, refusal_of};
use hush_testkit::relay::TestRelay;

const ROOM: &str = "hostile";

/// Mallory joins with an all-zero identity key (a small-order X25519 point no envelope can be
/// sealed to), then Carol joins honestly. The native clients refuse Mallory, key Carol (she
/// decrypts their frames and they hers) and keep rekeying afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_identity_key() {
    let relay = TestRelay::builder().start().await;
    let alice = relay
        .client(ROOM, "alice")
        .publish(&[Source::Microphone])
        .connect()
        .await;
    let mut bob = relay
        .client(ROOM, "bob")
        .publish(&[Source::Microphone])
        .connect()
        .await;
    pump_until_decrypted(&alice, &[&bob], 20, Media::Audio, 10).await;
    assert!(decrypted_from(&bob, alice.info().sender_index) > 20);

    let mut mallory = relay.signal().await;
    let token = relay.tokens().member(ROOM, "mallory");
    mallory.join_with_key(token, None, vec![0u8; 32]).await;
    mallory.expect_joined().await;

    let carol = relay
        .client(ROOM, "carol")
        .publish(&[Source::Microphone])
        .connect()
        .await;
    let ia = alice.info().sender_index;
    pump_until_decrypted(&alice, &[&bob, &carol], 20, Media::Audio, 10).await;
    assert!(
        decrypted_from(&carol, ia) > 20,
        "carol was keyed after mallory's refused join: {:?}",
        carol.stats().received
    );
    pump_until_decrypted(&carol, &[&alice, &bob], 20, Media::Audio, 10).await;
    let ic = carol.info().sender_index;
    assert!(
        decrypted_from(&alice, ic) > 20,
        "{:?}",
        alice.stats().received
    );
    assert!(decrypted_from(&bob, ic) > 20, "{:?}", bob.stats().received);

    // Bob saw the refusal, with its reason.
    assert_eq!(refusal_of(&mut bob, "mallory"), Some("bad_identity_key"));

    // And the log goes on: a rekey moves everyone to a fresh epoch that all three open.
    let epoch = alice.stats().sending_epoch.unwrap();
    let rekey = ClientMessage::Rekey(RekeyRequest {
        reason: Some(RekeyReason::Timer),
    });
    bob.send_message(rekey).await.unwrap();
    for _ in 0..10 {
        pump_until_decrypted(&alice, &[], 0, Media::Audio, 1).await;
        if alice.stats().sending_epoch.is_some_and(|e| e > epoch) {
            break;
        }
    }
    assert!(
        alice.stats().sending_epoch.unwrap() > epoch,
        "alice rekeyed"
    );
    let (b0, c0) = (decrypted_from(&bob, ia), decrypted_from(&carol, ia));
    pump_until_decrypted(&alice, &[&bob, &carol], c0.max(b0) + 20, Media::Audio, 10).await;
    assert!(decrypted_from(&bob, ia) > b0 + 20);
    assert!(decrypted_from(&carol, ia) > c0 + 20);
    assert_eq!(alice.stats().received[&ic].decrypt.auth_failed, 0);
}

/// A participant the backend never vouched for (what a relay that invents a member looks like
/// to the others) joins with a perfectly good key: the native clients refuse it, say why, and
/// seal it nothing; their own call goes on. Unauthenticated clients (every client before
/// members were vouched for) seal it the epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unvouched_member_gets_no_envelope() {
    for vouched in [true, false] {
        let relay = TestRelay::builder().start().await;
        let room = if vouched { "vouched" } else { "open" };
        let member = |sub: &'static str| {
            let b = relay.client(room, sub).publish(&[Source::Microphone]);
            if vouched { b } else { b.unauthenticated() }
        };
        let alice = member("alice").connect().await;
        let mut bob = member("bob").connect().await;

        let mut ghost = relay.signal().await;
        let token = relay.tokens().member(room, "ghost");
        let mut key = vec![0u8; 32];
        key[0] = 9; // the X25519 base point: valid and full-order
        ghost.join_with_key(token, None, key).await;
        ghost.expect_joined().await;

        pump_until_decrypted(&alice, &[&bob], 40, Media::Audio, 10).await;
        assert!(decrypted_from(&bob, alice.info().sender_index) > 40);
        // Whatever reached the ghost by now: an envelope is an `e2ee` message of key-message
        // kind 1 (broadcast switch notices and safety-code commits and reveals carry no secret
        // and reach every participant of the room).
        let mut envelopes = 0;
        while let Some(msg) = ghost
            .recv_within(std::time::Duration::from_millis(300))
            .await
        {
            if matches!(&msg, hush_proto::ServerMessage::E2ee(e) if e.payload.as_bytes().get(1) == Some(&1))
            {
                envelopes += 1;
            }
        }
        let refused = refusal_of(&mut bob, "ghost");
        if vouched {
            assert_eq!(envelopes, 0, "nothing sealed to the ghost");
            assert_eq!(refused, Some("missing_attestation"));
        } else {
            assert!(envelopes > 0, "unauthenticated, the ghost gets the epoch");
            assert_eq!(refused, None);
        }
    }
}
