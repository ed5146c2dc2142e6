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
