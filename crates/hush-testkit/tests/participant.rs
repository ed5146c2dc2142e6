//! The participant core in simulated rooms (`hush_testkit::sim`): honest rooms agree and keep
//! leavers out, and what one member or a misbehaving relay sends cannot freeze or fool the
//! others.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hush_participant::{Event, Input, Instant, Refusal, StreamContext};
use hush_proto::{LeaveReason, ServerMessage};
use hush_testkit::sim::{Room, Verdict};

fn room(names: &[&str]) -> Room {
    let mut r = Room::new(11);
    for n in names {
        r.join(n);
    }
    r.settle();
    r
}

fn refused_as(r: &Room, who: &str, code: &str) -> usize {
    r.member(who)
        .refusals
        .iter()
        .filter(|x| x.code() == code)
        .count()
}

#[test]
fn members_agree_and_decrypt_each_other() {
    let r = room(&["alice", "bob", "carol"]);
    let code = r.safety_code("alice").unwrap();
    // 25 digits in five groups of five.
    let groups: Vec<&str> = code.split(' ').collect();
    assert!(
        groups.len() == 5
            && groups
                .iter()
                .all(|g| g.len() == 5 && g.bytes().all(|b| b.is_ascii_digit())),
        "{code}"
    );
    for n in ["alice", "bob", "carol"] {
        assert!(
            r.member(n).refusals.is_empty(),
            "{n}: {:?}",
            r.member(n).refusals
        );
        assert_eq!(r.safety_code(n).as_deref(), Some(code.as_str()), "{n}");
        assert_eq!(r.sending_epoch(n), Some(3), "{n}");
    }
    for (a, b) in [("alice", "bob"), ("bob", "carol"), ("carol", "alice")] {
        assert_eq!(r.frame(a, b), Ok(()), "{a} -> {b}");
    }
}

#[test]
fn after_a_leave_or_removal_the_leaver_cannot_decrypt() {
    for reason in [LeaveReason::Left, LeaveReason::Removed] {
        let mut r = room(&["alice", "bob", "carol"]);
        let before = r.safety_code("alice").unwrap();
        r.depart("carol", reason);
        r.settle();
        for n in ["alice", "bob"] {
            assert_eq!(r.sending_epoch(n), Some(4), "{n} ({reason:?})");
        }
        let after = r.safety_code("alice").unwrap();
        assert_eq!(r.safety_code("bob").as_deref(), Some(after.as_str()));
        assert_ne!(before, after, "membership changed, so does the code");
        assert_eq!(r.frame("alice", "bob"), Ok(()));
        let e = r.frame("alice", "carol").unwrap_err();
        assert!(e.contains("UnknownKid") || e.contains("AuthFailed"), "{e}");
    }
}

#[test]
fn a_usage_limit_brings_a_relay_rekey_that_keeps_the_code() {
    let mut r = room(&["alice", "bob"]);
    let code = r.safety_code("bob").unwrap();
    let now = Instant::from_millis(r.now());
    let bob = r.member_mut("bob");
    bob.core
        .handle_input(now, Input::UsageLimitNear(StreamContext::MICROPHONE))
        .unwrap();
    r.pump();
    r.settle();
    for n in ["alice", "bob"] {
        assert_eq!(
            r.sending_epoch(n),
            Some(3),
            "{n}: rekey event 3 is a fresh epoch"
        );
    }
    assert_eq!(r.safety_code("alice").as_deref(), Some(code.as_str()));
    assert_eq!(r.frame("bob", "alice"), Ok(()));
}

/// A member replays the committer's switch notice to another member as its own message: the
/// relay names the real sender, so the message claims an index that is not the sender's.
#[test]
fn forged_sender_is_refused() {
    let mut r = room(&["alice", "bob", "carol"]);
    r.rekey();
    r.settle();
    // A switch notice is key message kind 3 (byte 1).
    let switch = r
        .broadcast_by("alice")
        .into_iter()
        .find(|p| p.get(1) == Some(&3))
        .expect("alice broadcast a switch notice");
    r.inject("bob", Room::e2ee("carol", switch));
    assert_eq!(refused_as(&r, "bob", "forged"), 1);
}

/// A participant with an unusable identity key joins: every member refuses it (and says so),
/// then admits the next honest joiner and keeps rekeying.
#[test]
fn unusable_identity_key_is_refused_and_the_log_goes_on() {
    let mut r = room(&["alice", "bob"]);
    for (name, key) in [("mallory", vec![7u8; 5]), ("trudy", vec![0u8; 32])] {
        r.announce_only(name, key, None);
    }
    r.settle();
    for n in ["alice", "bob"] {
        for bad in ["mallory", "trudy"] {
            let refused = r.member(n).events.iter().any(|e| {
                *e == Event::MemberRefused {
                    participant: bad.into(),
                    reason: Refusal::Keys(hush_keys::Error::Membership(
                        hush_keys::MembershipError::BadIdentityKey,
                    )),
                }
            });
            assert!(refused, "{n} refused {bad}: {:?}", r.member(n).events);
        }
    }
    r.join("carol");
    r.settle();
    for n in ["alice", "bob", "carol"] {
        assert_eq!(
            r.sending_epoch(n),
            Some(5),
            "{n}: the refused joins changed nothing"
        );
    }
    assert_eq!(r.frame("carol", "alice"), Ok(()));
    r.rekey();
    r.settle();
    for n in ["alice", "bob", "carol"] {
        assert_eq!(r.sending_epoch(n), Some(6), "{n} keeps rekeying");
    }
    assert_eq!(r.frame("alice", "carol"), Ok(()));
}

#[test]
fn a_withheld_key_message_leaves_the_member_out_and_nothing_else() {
    let mut r = room(&["alice", "bob", "carol"]);
    r.hook(|d| match (&d.msg, d.to.as_str()) {
        (ServerMessage::E2ee(_), "carol") => Verdict::Drop,
        _ => Verdict::Deliver,
    });
    r.leave("bob");
    r.settle();
    assert_eq!(r.sending_epoch("alice"), Some(4));
    assert!(r.frame("alice", "carol").is_err());
    r.clear_hooks();
    r.join("dave");
    r.settle();
    assert_eq!(r.frame("alice", "dave"), Ok(()));
}

/// A relay that delays, duplicates and reorders (an envelope can overtake the `joined` it
/// belongs to): the room still converges, and the leaver is still out.
#[test]
fn delayed_duplicated_and_reordered_deliveries_converge() {
    let mut r = Room::new(5);
    let mut n = 0u64;
    r.hook(move |_| {
        n += 1;
        match n % 5 {
            0 => Verdict::Duplicate,
            1 => Verdict::Delay(40 + n % 7 * 13),
            _ => Verdict::Deliver,
        }
    });
    for name in ["a", "b", "c", "d", "e"] {
        r.join(name);
        r.advance(200);
    }
    r.leave("c");
    r.settle();
    let code = r.safety_code("a").unwrap();
    for name in ["a", "b", "d", "e"] {
        assert_eq!(
            r.safety_code(name).as_deref(),
            Some(code.as_str()),
            "{name}"
        );
        for to in ["a", "b", "d", "e"].into_iter().filter(|t| *t != name) {
            assert_eq!(r.frame(name, to), Ok(()), "{name} -> {to}");
        }
        assert!(r.frame(name, "c").is_err(), "c left");
    }
}
