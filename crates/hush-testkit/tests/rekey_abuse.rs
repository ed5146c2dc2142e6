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
