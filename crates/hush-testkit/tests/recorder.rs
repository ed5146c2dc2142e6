//! The room's recorder in the key exchange (DESIGN.md section 4, hush-keys `Role::Recorder`):
//! a member the backend vouches for in the recorder role, sealed every epoch like anyone, in
//! every safety code, and never answering: no switch waits for it, it never commits, no code
//! round waits for it. Played here by `Participant::recorder`, as `hush-record decrypt` plays
//! it offline, with its outputs going nowhere. Half of these are a relay that lies about it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hush_participant::{Event, Refusal};
use hush_proto::MemberRole;
use hush_testkit::sim::Room;

fn call(seed: u64) -> Room {
    let mut room = Room::vouched(seed);
    room.join("alice");
    room.join("bob");
    room.settle();
    room
}

#[test]
fn the_recorder_gets_every_epoch_and_nobody_waits_for_it() {
    let mut room = call(1);
    let before = room.safety_code("alice").unwrap();
    room.start_recorder("rec");
    // No clock moved: the senders switched on bob's ack alone (the recorder never acks).
    assert_eq!(room.sending_epoch("alice"), Some(3));
    assert_eq!(room.sending_epoch("bob"), Some(3));
    assert_eq!(room.frame("alice", "rec"), Ok(()));
    assert_eq!(room.frame("bob", "rec"), Ok(()));
    // The code covers the recorder, is the same for all three, and needed nothing from it.
    let with = room.safety_code("alice").unwrap();
    assert_ne!(with, before, "a recorder must change what users compare");
    assert_eq!(room.safety_code("bob").as_deref(), Some(with.as_str()));
    assert_eq!(room.safety_code("rec").as_deref(), Some(with.as_str()));
    assert!(room.member("rec").sent.is_empty());
    // bob leaves: a fresh epoch, sealed to the recorder too.
    room.leave("bob");
    assert_eq!(room.sending_epoch("alice"), Some(4));
    assert_eq!(room.frame("alice", "rec"), Ok(()));
    // The recording stops: the recorder leaves, and the next epoch is not its.
    room.leave("rec");
    assert_eq!(room.sending_epoch("alice"), Some(5));
    assert!(room.frame("alice", "rec").is_err());
    // What the page shows: recorded while the recorder was a member, and only then.
    let shown: Vec<bool> = room
        .member("alice")
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Recording(on) => Some(*on),
            _ => None,
        })
        .collect();
    assert_eq!(shown, [true, false]);
}

#[test]
fn the_recorder_never_commits_even_when_it_joined_first() {
    let mut room = Room::vouched(2);
    room.join("alice");
    room.settle();
    room.start_recorder("rec");
    room.join("bob");
    room.settle();
    assert_eq!(room.frame("bob", "rec"), Ok(()));
    // The committer leaves; the recorder is now the earliest member, yet bob commits.
    room.leave("alice");
    room.settle();
    assert_eq!(room.sending_epoch("bob"), Some(4));
    assert_eq!(room.frame("bob", "rec"), Ok(()));
    assert!(
        !room
            .member("bob")
            .events
            .iter()
            .any(|e| matches!(e, Event::CommitterStalled { .. })),
        "bob waited for the recorder to commit"
    );
}

#[test]
fn a_relay_cannot_pass_a_participant_off_as_the_recorder_or_back() {
    let mut room = call(3);
    // The backend vouched for "rec" as a participant; the relay announces it as the recorder.
    let key = [9u8; 32];
    let as_participant = room.attest("rec", &key);
    room.announce_only_as("rec", key.to_vec(), as_participant, MemberRole::Recorder);
    // The backend vouched for "rec2" as the recorder; the relay announces it as a participant
    // (so that members would wait for its acks and let it commit).
    let key2 = [10u8; 32];
    let as_recorder = room.attest_as(hush_keys::Role::Recorder, "rec2", &key2);
    room.announce_only_as("rec2", key2.to_vec(), as_recorder, MemberRole::Participant);
    room.settle();
    for who in ["alice", "bob"] {
        let refused: Vec<&str> = room
            .member(who)
            .events
            .iter()
            .filter_map(|e| match e {
                Event::MemberRefused {
                    participant,
                    reason: Refusal::Keys(hush_keys::Error::Membership(_)),
                } => Some(participant.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(refused, ["rec", "rec2"], "{who}");
    }
    // Nothing was sealed to either, and nobody shows the call as recorded.
    assert!(
        !room
            .member("alice")
            .events
            .iter()
            .any(|e| matches!(e, Event::Recording(true)))
    );
    assert!(room.sent_to("alice", "rec").is_empty());
    assert!(room.sent_to("alice", "rec2").is_empty());
}

#[test]
fn a_recorder_the_backend_never_vouched_for_gets_nothing() {
    let mut room = call(4);
    room.announce_only_as("rec", vec![11u8; 32], None, MemberRole::Recorder);
    room.settle();
    assert!(room.sent_to("alice", "rec").is_empty());
    assert_eq!(room.frame("alice", "bob"), Ok(()));
}
