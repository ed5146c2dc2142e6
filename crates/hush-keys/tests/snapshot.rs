//! A relay's snapshot cannot smuggle in a second "us": an entry with our participant id but
//! another identity key and an earlier join must be refused, not made the committer.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hush_keys::{
    Config, IdentityKeyPair, Input, Instant, Member, ParticipantId, RoomId, SenderIndex, Session,
};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

fn alice() -> ParticipantId {
    ParticipantId::new("alice").unwrap()
}

/// A snapshot entry.
fn entry(participant: &ParticipantId, index: u32, join_seq: u64, key: &IdentityKeyPair) -> Member {
    Member {
        participant: participant.clone(),
        sender_index: SenderIndex::new(index).unwrap(),
        join_seq,
        identity: *key.public(),
        attestation: None,
        role: hush_keys::Role::Participant,
    }
}

/// Alice (key pair `mine`) joins at `seq` from a relay's snapshot of `members`.
fn joined(
    mine: IdentityKeyPair,
    rng: ChaCha20Rng,
    seq: u64,
    members: Vec<Member>,
) -> Session<ChaCha20Rng> {
    let room = RoomId::new("room-1").unwrap();
    let mut s = Session::new(Config::new(room), mine, alice(), rng);
    s.handle_input(Instant::from_millis(0), Input::Joined { seq, members })
        .unwrap();
    s
}

#[test]
fn a_fake_entry_under_our_own_id_is_refused() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let mine = IdentityKeyPair::generate(&mut rng);
    let relays = IdentityKeyPair::generate(&mut rng);
    let fake = entry(&alice(), 1, 1, &relays);
    let real = entry(&alice(), 2, 5, &mine);
    let s = joined(mine, rng, 5, vec![fake, real]);
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
    let mine = IdentityKeyPair::generate(&mut rng);
    let bobs = IdentityKeyPair::generate(&mut rng);
    let bob = entry(&ParticipantId::new("bob").unwrap(), 0xff_ffff, 3, &bobs);
    let real = entry(&alice(), 0xff_ffff, 5, &mine);
    let mut s = joined(mine, rng, 5, vec![bob, real]);
    let members: Vec<_> = s.members().map(|m| m.participant.clone()).collect();
    assert_eq!(
        members,
        vec![alice()],
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
    let mine = IdentityKeyPair::generate(&mut rng);
    let own = entry(&alice(), 3, u64::MAX, &mine);
    let mut s = joined(mine, rng, u64::MAX, vec![own]);
    let now = Instant::from_millis(0);
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
