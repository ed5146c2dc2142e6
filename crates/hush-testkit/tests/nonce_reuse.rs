//! The relay cannot make two encryptors share a (key, nonce): every base key takes the
//! sender's own identity key, which the sender drew itself (hush-keys `epoch` module docs).
//!
//! Both attacks run in shared-secret mode, where every other input of a base key is the
//! relay's: the epoch secret is a ratchet of the room secret by relay sequence numbers, the
//! sender index and epoch number are relay-assigned. Before this change both tests failed: the
//! two encryptors got byte-identical base keys under one KID, each with its counter at 0.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hush_proto::{SenderIndex, ServerMessage};
use hush_testkit::sim::{Room, Verdict};

const SECRET: &[u8] = b"a room secret the app handed out, 32+ bytes";
const MIC: u8 = 0;

fn shared_room(seed: u64) -> Room {
    Room::new(seed).with_shared_secret(SECRET)
}

/// (KID, base key) of `name`'s microphone.
fn mic_key(r: &Room, name: &str) -> (u64, Vec<u8>) {
    r.member(name)
        .send
        .get(&MIC)
        .cloned()
        .unwrap_or_else(|| panic!("{name} has no microphone key"))
}

#[test]
fn one_sender_index_for_two_members_still_gives_two_keys() {
    let mut r = shared_room(11);
    r.join("alice");
    // The relay tells bob he has alice's sender index (1), and shows him alice under another.
    r.hook(|d| match (&d.msg, d.to.as_str()) {
        (ServerMessage::Joined(j), "bob") => {
            let mut j = j.clone();
            j.sender_index = SenderIndex(1);
            for p in &mut j.participants {
                if p.id.as_str() == "alice" {
                    p.sender_index = SenderIndex(9);
                }
            }
            Verdict::Rewrite(ServerMessage::Joined(j))
        }
        _ => Verdict::Deliver,
    });
    r.join("bob");
    r.settle();
    let (alice_kid, alice_key) = mic_key(&r, "alice");
    let (bob_kid, bob_key) = mic_key(&r, "bob");
    // Same relay-chosen inputs: one KID, one epoch secret...
    assert_eq!(alice_kid, bob_kid, "the relay's rewrite took effect");
    // ...but two keys, so two counters at 0 never meet under one key.
    assert_ne!(alice_key, bob_key);
}

#[test]
fn a_reloaded_member_sent_its_old_join_again_sends_under_a_new_key() {
    let mut r = shared_room(12);
    r.join("alice");
    r.join("bob");
    r.settle();
    let before = mic_key(&r, "alice");
    // alice's page reloads; the relay replays her stored `joined` and every event after it.
    r.reload_with_replay("alice");
    r.settle();
    let after = mic_key(&r, "alice");
    assert_eq!(before.0, after.0, "the replay gave the same KID");
    assert_ne!(
        before.1, after.1,
        "a reloaded sender must not reuse its old key"
    );
}

#[test]
fn honest_shared_secret_members_still_open_each_other() {
    // The identity key in the base key is the one the relay announced: honest rooms work.
    let mut r = shared_room(13);
    for n in ["alice", "bob", "carol"] {
        r.join(n);
    }
    r.settle();
    for a in ["alice", "bob", "carol"] {
        for b in ["alice", "bob", "carol"].iter().filter(|b| **b != a) {
            assert_eq!(r.frame(a, b), Ok(()), "{a} -> {b}");
        }
    }
}
