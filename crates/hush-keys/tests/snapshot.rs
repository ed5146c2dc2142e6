//! A relay's snapshot cannot smuggle in a second "us": an entry with our participant id but
//! another identity key and an earlier join must be refused, not made the committer.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hush_keys::{
    Config, IdentityKeyPair, Input, Instant, Member, ParticipantId, RoomId, SenderIndex, Session,
};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

#[test]
fn a_fake_entry_under_our_own_id_is_refused() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let room = RoomId::new("room-1").unwrap();
    let me = ParticipantId::new("alice").unwrap();
    let mine = IdentityKeyPair::generate(&mut rng);
    let relays = IdentityKeyPair::generate(&mut rng);
    let fake = Member {
        participant: me.clone(),
        sender_index: SenderIndex::new(1).unwrap(),
        join_seq: 1,
        identity: *relays.public(),
        attestation: None,
    };
    let real = Member {
        participant: me.clone(),
        sender_index: SenderIndex::new(2).unwrap(),
        join_seq: 5,
        identity: *mine.public(),
        attestation: None,
    };
    let mut s = Session::new(Config::new(room), mine, me, rng);
    s.handle_input(
        Instant::from_millis(0),
        Input::Joined {
            seq: 5,
            members: vec![fake, real],
        },
    )
    .unwrap();
    assert_eq!(s.members().count(), 1, "only our real entry is a member");
    assert!(
        s.is_committer(),
        "alone for real, so we commit, not the fake"
    );
    assert_eq!(s.sending_epoch(), Some(5));
}

/// Found by `fuzz/fuzz_targets/keys_snapshot.rs`: another entry with our sender index, listed
/// before our own, was admitted, and then our own entry too: two members with one sender index
/// (so one KID for two senders, and receive keys for our own KIDs).
#[test]
fn another_entry_with_our_sender_index_is_refused_wherever_it_is_listed() {
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let room = RoomId::new("room-1").unwrap();
    let me = ParticipantId::new("alice").unwrap();
    let mine = IdentityKeyPair::generate(&mut rng);
    let bobs = IdentityKeyPair::generate(&mut rng);
    let index = SenderIndex::new(0xff_ffff).unwrap();
    let bob = Member {
        participant: ParticipantId::new("bob").unwrap(),
        sender_index: index,
        join_seq: 3,
        identity: *bobs.public(),
        attestation: None,
    };
    let real = Member {
        participant: me.clone(),
        sender_index: index,
        join_seq: 5,
        identity: *mine.public(),
        attestation: None,
    };
    let mut s = Session::new(Config::new(room), mine, me.clone(), rng);
    s.handle_input(
        Instant::from_millis(0),
        Input::Joined {
            seq: 5,
            members: vec![bob, real],
        },
    )
    .unwrap();
    let members: Vec<_> = s.members().map(|m| m.participant.clone()).collect();
    assert_eq!(
        members,
        vec![me],
        "bob reuses our sender index and is refused"
    );
    let refused = core::iter::from_fn(|| s.poll_output()).any(|o| {
        matches!(
            o,
            hush_keys::Output::Event(hush_keys::Event::MemberRefused {
                reason: hush_keys::MembershipError::SenderIndexReused,
                ..
            })
        )
    });
    assert!(refused, "the refusal is reported");
    assert_eq!(s.sending_epoch(), Some(5), "alone, so we commit epoch 5");
}

/// A relay can name any sequence number, u64::MAX included: the session joins, refuses what
/// would have to follow it, and never overflows (found by fuzz/fuzz_targets/participant.rs).
#[test]
fn a_snapshot_at_the_last_sequence_number_does_not_overflow() {
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let room = RoomId::new("room-1").unwrap();
    let me = ParticipantId::new("alice").unwrap();
    let mine = IdentityKeyPair::generate(&mut rng);
    let own = Member {
        participant: me.clone(),
        sender_index: SenderIndex::new(3).unwrap(),
        join_seq: u64::MAX,
        identity: *mine.public(),
        attestation: None,
    };
    let mut s = Session::new(Config::new(room), mine, me, rng);
    let now = Instant::from_millis(0);
    s.handle_input(
        now,
        Input::Joined {
            seq: u64::MAX,
            members: vec![own],
        },
    )
    .unwrap();
    let rekey = hush_keys::MembershipEvent {
        seq: u64::MAX,
        change: hush_keys::Change::Rekey,
    };
    assert!(
        s.handle_input(now, Input::Membership(rekey)).is_err(),
        "stale"
    );
    let _ = s.handle_input(now, Input::Tick);
}
