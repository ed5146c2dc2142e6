//! Fail closed on a stalled epoch, over the participant core: a relay that withholds the key
//! messages one member needs after a removal cannot keep that member encrypting under the
//! epoch the removed member holds. The member drops its send key within the stall deadline
//! (`hush_keys::Config::stall_timeout`, 2 s) and says a key is awaited; the others keep their
//! call; when the envelope finally comes, the member sends again on the new epoch.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hush_participant::Event;
use hush_proto::{LeaveReason, ServerMessage};
use hush_testkit::sim::{Room, Verdict};

/// `hush_keys::Config::new`'s stall deadline.
const STALL_MS: u64 = 2_000;

fn room(hook: Verdict) -> Room {
    let mut r = Room::new(6);
    for n in ["alice", "bob", "carol", "dave"] {
        r.join(n);
    }
    r.settle();
    assert_eq!(r.frame("carol", "alice"), Ok(()));
    // From now on the relay withholds (or holds back) every key message meant for carol.
    r.hook(move |d| match (&d.msg, d.to.as_str()) {
        (ServerMessage::E2ee(_), "carol") => hook.clone(),
        _ => Verdict::Deliver,
    });
    r
}

fn awaited(r: &Room, who: &str) -> Vec<u64> {
    r.member(who)
        .events
        .iter()
        .filter_map(|e| match e {
            Event::KeyAwaited(n) => Some(*n),
            _ => None,
        })
        .collect()
}

/// alice and dave, who got their envelopes, switched to `epoch` and hear each other; bob (the
/// removed member) and carol (no key) read none of it.
fn others_keep_the_call(r: &Room, epoch: u64) {
    for a in ["alice", "dave"] {
        assert_eq!(r.sending_epoch(a), Some(epoch), "{a}");
        assert!(awaited(r, a).is_empty(), "{a} stalled");
    }
    assert_eq!(r.frame("alice", "dave"), Ok(()));
    assert_eq!(r.frame("dave", "alice"), Ok(()));
    for a in ["alice", "dave"] {
        assert!(r.frame(a, "bob").is_err(), "the removed member reads {a}");
    }
}

#[test]
fn removal_with_a_withheld_envelope_stops_the_member_sending() {
    let mut r = room(Verdict::Drop);
    r.depart("bob", LeaveReason::Removed);
    r.advance(STALL_MS - 100);
    // Within the deadline the member may still send (the envelope may be on its way).
    assert!(!r.member("carol").send.is_empty());
    r.advance(200);
    let epoch = r.sending_epoch("alice").unwrap();
    assert!(
        r.member("carol").send.is_empty(),
        "carol still encrypts under a key bob holds: {:?}",
        r.member("carol")
            .send
            .values()
            .map(|(kid, _)| kid)
            .collect::<Vec<_>>()
    );
    assert_eq!(awaited(&r, "carol"), [epoch]);
    assert!(r.frame("carol", "alice").is_err());
    r.settle();
    assert!(r.member("carol").send.is_empty(), "still closed");
    assert!(
        r.member("carol").events.iter().any(
            |e| matches!(e, Event::CommitterStalled { committer, .. } if committer == "alice")
        ),
        "the silent committer is reported"
    );
    others_keep_the_call(&r, epoch);
    assert!(r.frame("alice", "carol").is_err());
}

#[test]
fn a_late_envelope_resumes_the_member_on_the_new_epoch() {
    let mut r = room(Verdict::Delay(5_000));
    r.depart("bob", LeaveReason::Removed);
    r.advance(STALL_MS + 100);
    let epoch = r.sending_epoch("alice").unwrap();
    assert!(r.member("carol").send.is_empty());
    assert_eq!(awaited(&r, "carol"), [epoch]);
    others_keep_the_call(&r, epoch);

    r.advance(5_000);
    assert_eq!(r.sending_epoch("carol"), Some(epoch));
    assert!(!r.member("carol").send.is_empty(), "carol sends again");
    let events = &r.member("carol").events;
    let stalled = events
        .iter()
        .position(|e| *e == Event::KeyAwaited(epoch))
        .unwrap();
    assert!(events[stalled..].contains(&Event::Switched(epoch)));
    for a in ["alice", "dave"] {
        assert_eq!(r.frame("carol", a), Ok(()), "carol -> {a}");
        assert_eq!(r.frame(a, "carol"), Ok(()), "{a} -> carol");
    }
    assert!(
        r.frame("carol", "bob").is_err(),
        "the removed member reads carol"
    );
}
