//! A member that asks for rekeys as fast as the relay sequences them (one point per second)
//! cannot make the committer fan out: points only other members asked for are ratchets, with no
//! envelope (hush-keys `Change::RekeyRequested`); only the committer's own asking draws a fresh
//! epoch. Shown at 100 members, the relay's default room limit.
//!
//! Before this change every rekey point was a fresh epoch: the committer sealed 99 envelopes per
//! point, 5,940 in the spammer's minute (about 100 messages a second, twice the relay's refill
//! of 50 a second: its envelopes were dropped and, after 100 strikes, it was disconnected).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hush_testkit::sim::Room;

const MEMBERS: usize = 100;

fn name(i: usize) -> String {
    format!("m{i:02}")
}

/// Envelopes `from` sealed to anyone (key-message kind 1, always addressed to one member).
fn envelopes_by(r: &Room, from: &str) -> usize {
    (0..MEMBERS)
        .map(name)
        .map(|to| {
            r.sent_to(from, &to)
                .iter()
                .filter(|p| p.get(1) == Some(&1))
                .count()
        })
        .sum()
}

#[test]
fn a_member_spamming_rekeys_in_a_room_of_100_costs_the_committer_no_envelopes() {
    let mut r = Room::new(31);
    for i in 0..MEMBERS {
        r.join(&name(i));
    }
    r.settle();
    let committer = name(0);
    let spammer = name(57);
    let code = r
        .safety_code(&committer)
        .expect("a code once everyone joined");
    let envelopes_before = envelopes_by(&r, &committer);
    let broadcasts_before = r.broadcast_by(&committer).len();
    let epoch_before = r.sending_epoch(&committer).unwrap();

    // One rekey point a second for a minute, each asked for by the spammer alone (the relay
    // merges whatever more it sends into these).
    for _ in 0..60 {
        r.rekey_asked_by([spammer.as_str()].into_iter());
        r.advance(1_000);
    }
    r.settle();

    assert_eq!(
        envelopes_by(&r, &committer) - envelopes_before,
        0,
        "no envelope for a point the committer did not ask for"
    );
    // One switch notice per point, nothing else (no code round: membership did not change).
    let broadcasts = r.broadcast_by(&committer).len() - broadcasts_before;
    assert!(broadcasts <= 60, "{broadcasts} broadcasts for 60 points");
    // Every member moved on together, kept the code and still opens the others' frames.
    let epoch = r.sending_epoch(&committer).unwrap();
    assert_eq!(epoch, epoch_before + 60);
    for i in 0..MEMBERS {
        assert_eq!(r.sending_epoch(&name(i)), Some(epoch), "{}", name(i));
        assert_eq!(r.safety_code(&name(i)).as_deref(), Some(code.as_str()));
    }
    for (a, b) in [(0, 99), (57, 3), (42, 0), (99, 57)] {
        assert_eq!(r.frame(&name(a), &name(b)), Ok(()), "{a} -> {b}");
    }
}

#[test]
fn the_committers_own_rekey_is_still_a_fresh_epoch_sealed_to_everyone() {
    let mut r = Room::new(32);
    for i in 0..4 {
        r.join(&name(i));
    }
    r.settle();
    let before = envelopes_by(&r, &name(0));
    r.rekey();
    r.settle();
    assert_eq!(
        envelopes_by(&r, &name(0)) - before,
        3,
        "one per other member"
    );
    // A point the committer and another member both asked for (merged) is fresh too.
    r.rekey_asked_by([name(2).as_str(), name(0).as_str()].into_iter());
    r.settle();
    assert_eq!(envelopes_by(&r, &name(0)) - before, 6);
    for (a, b) in [(0, 3), (3, 1)] {
        assert_eq!(r.frame(&name(a), &name(b)), Ok(()), "{a} -> {b}");
    }
}

/// The relay names only other members as asking at every rekey point (or withholds the points):
/// the committer's timer never gets its fresh epoch. Nothing in the log can prove it to the
/// other members, but the committer knows it asked: 90 s past due it reports `RekeyOverdue`,
/// once, and again only after a fresh epoch came and went overdue again. With the relay honest,
/// the same time brings fresh epochs and no report.
#[test]
fn a_relay_that_keeps_the_committers_rekey_from_happening_is_reported() {
    use hush_participant::Event;
    use hush_proto::ServerMessage;
    use hush_testkit::sim::Verdict;
    let overdue = |r: &Room| {
        r.member(&name(0))
            .events
            .iter()
            .filter(|e| matches!(e, Event::RekeyOverdue(_)))
            .count()
    };
    for lying in [false, true] {
        let mut r = Room::new(33);
        for i in 0..3 {
            r.join(&name(i));
        }
        r.settle();
        if lying {
            r.hook(|d| match &d.msg {
                ServerMessage::Rekey(ev) if !ev.by.is_empty() => {
                    let mut ev = ev.clone();
                    ev.by = vec![hush_proto::ParticipantId::new("m01").unwrap()];
                    Verdict::Rewrite(ServerMessage::Rekey(ev))
                }
                _ => Verdict::Deliver,
            });
        }
        let before = envelopes_by(&r, &name(0));
        // The rekey timer (10 minutes) plus 90 s and some, a second at a time.
        for _ in 0..(600 + 95) {
            r.advance(1_000);
        }
        r.settle();
        if lying {
            assert_eq!(envelopes_by(&r, &name(0)), before, "no fresh epoch");
            assert_eq!(overdue(&r), 1, "reported once");
        } else {
            assert!(envelopes_by(&r, &name(0)) > before, "a fresh epoch");
            assert_eq!(overdue(&r), 0);
        }
        for (a, b) in [(0, 2), (2, 1)] {
            assert_eq!(r.frame(&name(a), &name(b)), Ok(()), "{a} -> {b}");
        }
    }
}
