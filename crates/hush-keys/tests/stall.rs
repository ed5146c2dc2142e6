//! Fail closed on a stalled epoch (issue "The relay as adversary", item 6): a relay that
//! withholds the envelope a member needs after a removal must not keep that member encrypting
//! under an epoch the removed member holds. The member stops sending within
//! `Config::stall_timeout` and says a key is awaited; the honest members keep their call; when
//! the envelope finally comes, the member resumes on the new epoch.
// Tests: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::{Net, NetConfig};
use hush_keys::{EnvelopeError, Error, Event, Input};

/// Committer, leaver, victim (the relay withholds its key messages), bystander.
const COMMITTER: usize = 0;
const LEAVER: usize = 1;
const VICTIM: usize = 2;
const HONEST: [usize; 2] = [COMMITTER, 3];
/// `Config::new`'s stall timeout and committer timeout.
const STALL_MS: u64 = 2_000;
const COMMITTER_MS: u64 = 10_000;

type Withheld = Rc<RefCell<Option<Vec<Vec<u8>>>>>;

/// A room of four, settled and sending, whose relay withholds every key message to `VICTIM`
/// while the returned cell is `Some` (the withheld bytes collect there).
fn room() -> (Net, Withheld) {
    room_with(NetConfig {
        frame_interval: Some(100),
        dup_per_mille: 0,
        ..NetConfig::default()
    })
}

/// [`room`] with other settings.
fn room_with(cfg: NetConfig) -> (Net, Withheld) {
    let mut net = Net::new(11, cfg);
    net.join_spaced(4, 300);
    net.run_until_settled(10_000).expect("room settles");
    assert!(net.nodes[COMMITTER].session.is_committer());
    let withheld: Withheld = Rc::new(RefCell::new(None));
    let w = withheld.clone();
    net.tamper = Some(Box::new(move |_from, to, bytes| {
        if to == VICTIM
            && let Some(v) = w.borrow_mut().as_mut()
        {
            v.push(bytes);
            return None;
        }
        Some(bytes)
    }));
    (net, withheld)
}

/// Frames `n` sent after `t` on an epoch before `epoch`.
fn frames_before(net: &Net, n: usize, t: u64, epoch: u64) -> usize {
    net.frames
        .iter()
        .filter(|f| f.sender == n && f.sent_at > t && f.epoch < epoch)
        .count()
}

/// Every frame in `frames` (indexes) decrypts for every honest member but its sender, and for
/// neither the leaver nor `not`.
fn honest_only(net: &Net, frames: &[usize], not: &[usize]) {
    assert!(!frames.is_empty());
    for &f in frames {
        for r in HONEST.iter().chain([VICTIM].iter()) {
            if *r == net.frames[f].sender || not.contains(r) {
                continue;
            }
            assert_eq!(net.decryptable_by(*r, &[f]).1, 1, "member {r}, frame {f}");
        }
        for r in not.iter().chain([LEAVER].iter()) {
            assert_eq!(net.decryptable_by(*r, &[f]).1, 0, "node {r} read frame {f}");
        }
    }
}

fn awaited(net: &Net, n: usize) -> Vec<u64> {
    net.nodes[n]
        .events
        .iter()
        .filter_map(|e| match e {
            Event::KeyAwaited { epoch } => Some(*epoch),
            _ => None,
        })
        .collect()
}

/// `LEAVER` leaves (or is removed) while the victim's key messages are withheld; runs past the
/// victim's deadline and checks that it stopped sending under the epoch the leaver holds, and
/// says it awaits the new one. Returns the new epoch.
fn leave_and_stall(net: &mut Net, removed: bool) -> u64 {
    let t0 = net.now;
    net.leave(LEAVER, removed, true);
    let epoch = net.nodes[LEAVER].left_seq.unwrap();
    // Event delivery takes up to 80 ms; the deadline runs from there.
    let deadline = t0 + 80 + STALL_MS;
    net.run_until(deadline + 500);
    assert!(net.nodes[VICTIM].paused, "victim still has a send key");
    assert_eq!(
        frames_before(net, VICTIM, deadline, epoch),
        0,
        "victim kept encrypting under a key the leaver holds"
    );
    assert_eq!(awaited(net, VICTIM), [epoch]);
    epoch
}

#[test]
fn withheld_envelope_after_removal_stops_sending_until_it_comes() {
    let (mut net, withheld) = room();
    assert!(
        net.nodes[VICTIM].session.safety_code().is_some(),
        "the settled room shows a code"
    );
    *withheld.borrow_mut() = Some(Vec::new());
    let removal = leave_and_stall(&mut net, true);
    // The code shown described the roster with the leaver in it: gone with the removal, not
    // shown until the round of the new roster completes (the relay withholds its epoch), and
    // the app is told (an event, not only the getter).
    assert_eq!(net.nodes[VICTIM].session.safety_code(), None);
    assert!(
        net.nodes[VICTIM]
            .events
            .contains(&Event::SafetyCodePending { epoch: removal }),
        "no pending event for the removal"
    );
    assert_eq!(net.nodes[VICTIM].session.awaited_epoch(), Some(removal));
    let sent = net.nodes[VICTIM].frames_sent;
    net.run_for(3_000);
    assert_eq!(
        net.nodes[VICTIM].frames_sent, sent,
        "no frames while stalled"
    );

    // The honest members moved on and hear each other; the leaver reads none of it.
    for h in HONEST {
        assert_eq!(net.nodes[h].session.sending_epoch(), Some(removal), "{h}");
        assert!(awaited(&net, h).is_empty(), "{h} stalled");
    }
    let honest_frames: Vec<usize> = (0..net.frames.len())
        .filter(|f| net.frames[*f].epoch >= removal)
        .collect();
    honest_only(&net, &honest_frames, &[VICTIM]);

    // The envelope finally comes: the victim resumes on the new epoch at once.
    let late = withheld.borrow_mut().take().unwrap();
    assert!(!late.is_empty());
    let resumed_at = net.now;
    for b in &late {
        net.input(VICTIM, Input::Message(b)).unwrap();
    }
    // A second copy of each is a replay.
    let again: Vec<_> = late
        .iter()
        .filter_map(|b| net.input(VICTIM, Input::Message(b)).err())
        .collect();
    assert_eq!(again.len(), late.len(), "{again:?}");
    assert!(
        again
            .iter()
            .all(|e| *e == Error::Envelope(EnvelopeError::Replayed)),
        "{again:?}"
    );
    assert!(!net.nodes[VICTIM].paused, "victim did not resume");
    assert_eq!(net.nodes[VICTIM].session.sending_epoch(), Some(removal));
    assert_eq!(net.nodes[VICTIM].session.awaited_epoch(), None);
    assert!(
        net.nodes[VICTIM]
            .events
            .contains(&Event::Switched { epoch: removal })
    );
    net.run_for(2_000);
    let resumed: Vec<usize> = (0..net.frames.len())
        .filter(|f| net.frames[*f].sender == VICTIM && net.frames[*f].sent_at > resumed_at)
        .collect();
    assert!(resumed.len() > 10, "victim sends again");
    assert!(resumed.iter().all(|f| net.frames[*f].epoch >= removal));
    honest_only(&net, &resumed, &[]);
    // No sender sent a (KID, counter) twice, nor broke another invariant.
    assert!(net.violations.is_empty(), "{:?}", &net.violations);
}

#[test]
fn the_committers_switch_notice_after_the_victim_resumed_is_late_not_a_replay() {
    // The committer waits longer for acks than the victim waits for its envelope. The victim
    // resumes on the envelope at once; the committer's switch notice (sent once the victim's
    // ack is in) then arrives for an epoch the victim already sends on: the first copy is late
    // (stale), not a replay (was: `Replayed`, which the browser test saw as a CI flake).
    let cfg = NetConfig {
        frame_interval: Some(100),
        dup_per_mille: 0,
        switch_timeout_ms: 3 * STALL_MS,
        ..NetConfig::default()
    };
    let (mut net, withheld) = room_with(cfg);
    *withheld.borrow_mut() = Some(Vec::new());
    let removal = leave_and_stall(&mut net, true);
    assert_ne!(net.nodes[COMMITTER].session.sending_epoch(), Some(removal));
    let late = withheld.borrow_mut().take().unwrap();
    for b in &late {
        net.input(VICTIM, Input::Message(b)).unwrap();
    }
    assert_eq!(net.nodes[VICTIM].session.sending_epoch(), Some(removal));
    net.run_for(1_000);
    assert_eq!(
        net.nodes[COMMITTER].session.sending_epoch(),
        Some(removal),
        "the committer switched on the victim's ack"
    );
    assert_eq!(
        net.nodes[VICTIM].errors.keys().collect::<Vec<_>>(),
        ["Envelope(Stale)"],
        "{:?}",
        net.nodes[VICTIM].errors
    );
    // No sender sent a (KID, counter) twice, nor broke another invariant.
    assert!(net.violations.is_empty(), "{:?}", &net.violations);
}

#[test]
fn a_leave_queued_behind_a_withheld_rekey_stalls_too() {
    // The relay withholds the victim's rekey envelope, so the victim never applies the leave
    // that follows (events apply in order): it must still stop sending on the old epoch.
    let (mut net, withheld) = room();
    *withheld.borrow_mut() = Some(Vec::new());
    net.rekey();
    net.run_for(300);
    let leave = leave_and_stall(&mut net, false);

    // Both envelopes arrive: the rekey epoch (which the leaver holds) is never sent on.
    let late = withheld.borrow_mut().take().unwrap();
    let from = net.now;
    for b in &late {
        let _ = net.input(VICTIM, Input::Message(b));
    }
    net.run_for(2_000);
    assert_eq!(net.nodes[VICTIM].session.sending_epoch(), Some(leave));
    assert_eq!(frames_before(&net, VICTIM, from, leave), 0);
    assert!(net.nodes[VICTIM].frames_sent > 0);
    // No sender sent a (KID, counter) twice, nor broke another invariant.
    assert!(net.violations.is_empty(), "{:?}", &net.violations);
}

#[test]
fn a_silent_committer_is_reported_and_the_member_stays_closed() {
    let (mut net, withheld) = room();
    *withheld.borrow_mut() = Some(Vec::new());
    let t0 = net.now;
    net.leave(LEAVER, true, true);
    let removal = net.nodes[LEAVER].left_seq.unwrap();
    net.run_until(t0 + COMMITTER_MS - 200);
    assert!(
        !net.nodes[VICTIM]
            .events
            .iter()
            .any(|e| matches!(e, Event::CommitterStalled { .. })),
        "reported too early"
    );
    net.run_until(t0 + 80 + COMMITTER_MS + 100);
    let stalled: Vec<_> = net.nodes[VICTIM]
        .events
        .iter()
        .filter(|e| matches!(e, Event::CommitterStalled { .. }))
        .cloned()
        .collect();
    assert_eq!(
        stalled,
        [Event::CommitterStalled {
            epoch: removal,
            committer: net.nodes[COMMITTER].pid.clone(),
        }]
    );
    assert!(net.nodes[VICTIM].paused);
    net.run_for(20_000);
    assert!(net.nodes[VICTIM].paused, "still closed");
    assert_eq!(frames_before(&net, VICTIM, t0 + 80 + STALL_MS, removal), 0);
    // No sender sent a (KID, counter) twice, nor broke another invariant.
    assert!(net.violations.is_empty(), "{:?}", &net.violations);
}

#[test]
fn honest_churn_never_stalls() {
    // Honest relay with its usual delays (10..200 ms key messages, duplicates): leaves,
    // removals and a committer handover every 400 ms never trip the deadline.
    let cfg = NetConfig {
        frame_interval: Some(100),
        ..NetConfig::default()
    };
    let mut net = Net::new(5, cfg);
    net.join_spaced(12, 100);
    net.run_until_settled(10_000).expect("room settles");
    for step in 0..8 {
        let present = net.present();
        let victim = if step == 4 {
            present[0]
        } else {
            present[1 + net.rand_below(present.len() as u64 - 1) as usize]
        };
        net.leave(victim, step % 2 == 0, false);
        net.run_for(400);
    }
    net.run_until_settled(10_000).expect("room settles");
    for n in net.present() {
        assert!(
            awaited(&net, n).is_empty(),
            "node {n}: {:?}",
            awaited(&net, n)
        );
        assert!(!net.nodes[n].paused);
    }
    assert!(net.violations.is_empty(), "{:?}", &net.violations);
}

#[test]
fn a_refused_ghost_leaving_stalls_nobody() {
    // A departure that changes nothing (the members never admitted it) starts no epoch, so
    // nothing is awaited.
    let cfg = NetConfig {
        attestation: Some([0x42; 32]),
        frame_interval: Some(100),
        ..NetConfig::default()
    };
    let mut net = Net::new(3, cfg);
    net.join_spaced(3, 300);
    let ghost = net.join_custom(true, |_| {}, |_| {});
    net.excluded.insert(ghost);
    net.run_for(1_000);
    let honest = net.members_now();
    let epoch = net.nodes[honest[0]].session.sending_epoch();
    net.leave(ghost, true, false);
    net.run_for(3 * STALL_MS);
    for n in honest {
        assert!(awaited(&net, n).is_empty(), "node {n} stalled");
        assert_eq!(net.nodes[n].session.sending_epoch(), epoch);
        assert!(!net.nodes[n].paused);
    }
    // No sender sent a (KID, counter) twice, nor broke another invariant.
    assert!(net.violations.is_empty(), "{:?}", &net.violations);
}
