//! The safety code is agreed by commit, then reveal (hush-keys `safety` module docs): no member
//! reveals its nonce before it holds every member's commitment, so nobody can choose its input
//! after seeing another's, and a relay that withholds or alters one message gets a code that
//! stays pending, never a wrong one.
//!
//! Before this change the code was shown as soon as the epoch was installed, with no round at
//! all: `no_member_reveals_before_it_holds_every_commit` and
//! `a_withheld_commit_leaves_the_code_pending` failed there (a code was shown at once).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hush_participant::Event;
use hush_proto::{OpaqueBytes, ServerMessage};
use hush_testkit::sim::{Room, Verdict};

const COMMIT: u8 = 4;
const REVEAL: u8 = 5;

/// The kind byte of a key message the relay carries to someone, if it is one.
fn kind(msg: &ServerMessage) -> Option<u8> {
    match msg {
        ServerMessage::E2ee(e) => e.payload.as_bytes().get(1).copied(),
        _ => None,
    }
}

fn from(msg: &ServerMessage) -> Option<&str> {
    match msg {
        ServerMessage::E2ee(e) => Some(e.from.as_str()),
        _ => None,
    }
}

/// Code-round messages `name` broadcast, by kind byte.
fn sent(r: &Room, name: &str, k: u8) -> usize {
    r.broadcast_by(name)
        .iter()
        .filter(|p| p.get(1) == Some(&k))
        .count()
}

fn pending(r: &Room, name: &str) -> bool {
    matches!(
        r.member(name)
            .events
            .iter()
            .rev()
            .find(|e| matches!(e, Event::SafetyCode(_) | Event::SafetyCodePending(_))),
        Some(Event::SafetyCodePending(_))
    )
}

#[test]
fn every_member_shows_one_25_digit_code_after_one_commit_and_one_reveal_each() {
    let mut r = Room::new(21);
    for n in ["alice", "bob", "carol"] {
        r.join(n);
    }
    r.settle();
    let code = r.safety_code("alice").unwrap();
    assert_eq!(code.len(), 29, "{code}");
    for n in ["alice", "bob", "carol"] {
        assert_eq!(r.safety_code(n).as_deref(), Some(code.as_str()), "{n}");
        // One round per membership change the member saw installed: alice saw 3, carol 1.
        assert_eq!(sent(&r, n, COMMIT), sent(&r, n, REVEAL), "{n}");
    }
    assert_eq!(sent(&r, "carol", COMMIT), 1);
}

#[test]
fn no_member_reveals_before_it_holds_every_commit() {
    let mut r = Room::new(22);
    r.join("alice");
    r.join("bob");
    r.settle();
    let reveals_before = sent(&r, "alice", REVEAL);
    // The relay holds back carol's commit to alice.
    r.hook(|d| {
        if d.to == "alice" && from(&d.msg) == Some("carol") && kind(&d.msg) == Some(COMMIT) {
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    });
    r.join("carol");
    r.settle();
    assert_eq!(
        sent(&r, "alice", REVEAL),
        reveals_before,
        "alice revealed without carol's commit"
    );
    assert!(pending(&r, "alice"));
    assert_eq!(r.safety_code("alice"), None);
    // bob and carol wait for alice's reveal: nobody shows a code for this membership.
    assert_eq!(r.safety_code("bob"), None);
    assert_eq!(r.safety_code("carol"), None);
    // The call itself goes on: keys do not wait for the code.
    assert_eq!(r.frame("alice", "carol"), Ok(()));
}

#[test]
fn a_withheld_commit_leaves_the_code_pending() {
    let mut r = Room::new(23);
    r.hook(|d| {
        if d.to == "bob" && kind(&d.msg) == Some(COMMIT) {
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    });
    r.join("alice");
    r.join("bob");
    r.settle();
    assert!(pending(&r, "bob"));
    assert_eq!(r.safety_code("bob"), None);
    assert_eq!(r.safety_code("alice"), None);
}

#[test]
fn an_altered_commit_or_reveal_is_refused_and_no_code_is_shown() {
    for k in [COMMIT, REVEAL] {
        let mut r = Room::new(24);
        r.join("alice");
        r.settle();
        // The relay flips one byte of the value in bob's commit (or reveal) to alice.
        r.hook(move |d| match &d.msg {
            ServerMessage::E2ee(e)
                if d.to == "alice" && e.from.as_str() == "bob" && kind(&d.msg) == Some(k) =>
            {
                let mut p = e.payload.as_bytes().to_vec();
                p[20] ^= 1;
                let mut e = e.clone();
                e.payload = OpaqueBytes::new(p);
                Verdict::Rewrite(ServerMessage::E2ee(e))
            }
            _ => Verdict::Deliver,
        });
        r.join("bob");
        r.settle();
        let codes: Vec<&str> = r
            .member("alice")
            .refusals
            .iter()
            .map(|x| x.code())
            .collect();
        assert!(codes.contains(&"forged"), "{k}: {codes:?}");
        assert_eq!(r.safety_code("alice"), None, "kind {k}");
    }
}

#[test]
fn the_code_changes_with_membership_and_says_so_first() {
    let mut r = Room::new(25);
    r.join("alice");
    r.join("bob");
    r.settle();
    let before = r.safety_code("alice").unwrap();
    let events_before = r.member("alice").events.len();
    r.join("carol");
    r.settle();
    let after = r.safety_code("alice").unwrap();
    assert_ne!(before, after);
    let new: Vec<&Event> = r.member("alice").events[events_before..]
        .iter()
        .filter(|e| matches!(e, Event::SafetyCode(_) | Event::SafetyCodePending(_)))
        .collect();
    assert!(
        matches!(
            new.as_slice(),
            [Event::SafetyCodePending(_), Event::SafetyCode(_)]
        ),
        "{new:?}"
    );
}
