//! Bounds on what a member or the relay can make a session keep or compute: early envelopes for
//! far epochs are refused and cannot push out the real one; a shared-secret snapshot with a
//! huge sequence number is refused instead of hanging the client in the ratchet loop.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hush_keys::envelope::{self, EnvelopeHeader};
use hush_keys::rand_core::{Rng, SeedableRng};
use hush_keys::session::{EARLY_EPOCH_WINDOW, MAX_SHARED_SECRET_SEQ};
use hush_keys::{
    Change, Config, Destination, EnvelopeError, EpochSecret, Error, Event, IdentityKeyPair, Input,
    Instant, KeyMode, Member, MembershipError, MembershipEvent, Output, ParticipantId, Reason,
    RoomId, SenderIndex, Session, SharedSecret,
};
use rand_chacha::ChaCha20Rng;

const ROOM: &str = "room-limits";

struct Peer {
    session: Session<ChaCha20Rng>,
    member: Member,
    /// A copy of the identity key pair (the session owns the original), to forge with.
    identity: IdentityKeyPair,
}

impl Peer {
    /// Hands the session a key message the relay says `from` sent.
    fn message_from(&mut self, from: &ParticipantId, bytes: &[u8]) -> Result<(), Error> {
        self.session
            .handle_input(now(), Input::MessageFrom { from, bytes })
    }
}

fn now() -> Instant {
    Instant::from_millis(1_000)
}

fn peer(name: &str, idx: u32, seq: u64, seed: u64, mode: Option<SharedSecret>) -> Peer {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut secret);
    let identity = IdentityKeyPair::from_secret_bytes(secret);
    let member = Member {
        participant: ParticipantId::new(name).unwrap(),
        sender_index: SenderIndex::new(idx).unwrap(),
        join_seq: seq,
        identity: *identity.public(),
        attestation: None,
        role: hush_keys::Role::Participant,
    };
    let mut cfg = Config::new(RoomId::new(ROOM).unwrap());
    if let Some(s) = mode {
        cfg.mode = KeyMode::SharedSecret(s);
    }
    let session = Session::new(
        cfg,
        IdentityKeyPair::from_secret_bytes(secret),
        member.participant.clone(),
        rng,
    );
    Peer {
        session,
        member,
        identity,
    }
}

/// Drains a session: (key messages by recipient, events).
fn drain(s: &mut Session<ChaCha20Rng>) -> (Vec<(Destination, Vec<u8>)>, Vec<Event>) {
    let (mut msgs, mut events) = (Vec::new(), Vec::new());
    for _ in 0..100_000 {
        match s.poll_output() {
            Some(Output::Transmit(t)) => msgs.push((t.to, t.payload)),
            Some(Output::Event(e)) => events.push(e),
            Some(_) => {}
            None => return (msgs, events),
        }
    }
    panic!("session never ran out of outputs");
}

/// Delivers key messages among `peers` until none are left (bounded).
fn settle(peers: &mut [&mut Peer], mut pending: Vec<(usize, Destination, Vec<u8>)>) {
    for _ in 0..1_000 {
        let Some((from, to, bytes)) = pending.pop() else {
            return;
        };
        for (i, p) in peers.iter_mut().enumerate() {
            let hit = match &to {
                Destination::Member(pid) => *pid == p.member.participant,
                Destination::AllMembers => i != from,
            };
            if hit {
                // Acks and switch notices may be refused as stale; only delivery matters here.
                let _ = p.session.handle_input(now(), Input::Message(&bytes));
                let (msgs, _) = drain(&mut p.session);
                pending.extend(msgs.into_iter().map(|(d, b)| (i, d, b)));
            }
        }
    }
    panic!("key messages never settled");
}

fn join_event(m: &Member) -> Input<'static> {
    Input::Membership(MembershipEvent {
        seq: m.join_seq,
        change: Change::Join(m.clone()),
    })
}

/// Alice (committer, seq 1), Bob (seq 2), Carol (seq 3), all on epoch 3.
fn room_of_three() -> (Peer, Peer, Peer) {
    let mut a = peer("alice", 1, 1, 1, None);
    let mut b = peer("bob", 2, 2, 2, None);
    let mut c = peer("carol", 3, 3, 3, None);
    a.session
        .handle_input(
            now(),
            Input::Joined {
                seq: 1,
                members: vec![a.member.clone()],
            },
        )
        .unwrap();
    a.session
        .handle_input(now(), join_event(&b.member))
        .unwrap();
    a.session
        .handle_input(now(), join_event(&c.member))
        .unwrap();
    b.session
        .handle_input(
            now(),
            Input::Joined {
                seq: 2,
                members: vec![a.member.clone(), b.member.clone()],
            },
        )
        .unwrap();
    b.session
        .handle_input(now(), join_event(&c.member))
        .unwrap();
    c.session
        .handle_input(
            now(),
            Input::Joined {
                seq: 3,
                members: vec![a.member.clone(), b.member.clone(), c.member.clone()],
            },
        )
        .unwrap();
    let mut pending = Vec::new();
    for (i, p) in [&mut a, &mut b, &mut c].into_iter().enumerate() {
        let (msgs, _) = drain(&mut p.session);
        pending.extend(msgs.into_iter().map(|(d, m)| (i, d, m)));
    }
    settle(&mut [&mut a, &mut b, &mut c], pending);
    for p in [&a, &b, &c] {
        assert_eq!(
            p.session.latest_epoch(),
            Some(3),
            "{:?}",
            p.member.participant
        );
    }
    (a, b, c)
}

/// An envelope that `from` makes for `to`: authentic under `from`'s key, but `from` is not the
/// committer, so `to` refuses it when it opens it.
fn junk(from: &Peer, to: &Member, epoch: u64, seed: u64) -> Vec<u8> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let header = EnvelopeHeader {
        epoch,
        sender: from.member.sender_index,
        recipient: to.sender_index,
        reason: Reason::Rekey,
        roster: [0; 32],
    };
    let secret = EpochSecret::random(&mut rng);
    envelope::seal(
        &mut rng,
        ROOM.as_bytes(),
        &header,
        &from.identity,
        &to.identity,
        &secret,
    )
    .unwrap()
}

/// The (first) message in `msgs` for `to`.
fn sent_to<'a>(msgs: &'a [(Destination, Vec<u8>)], to: &Destination) -> &'a [u8] {
    &msgs.iter().find(|(d, _)| d == to).unwrap().1
}

fn envelope_for(msgs: &[(Destination, Vec<u8>)], to: &Member) -> Vec<u8> {
    msgs.iter()
        .find(|(d, b)| {
            *d == Destination::Member(to.participant.clone()) && b.len() == envelope::ENVELOPE_LEN
        })
        .map(|(_, b)| b.clone())
        .expect("an envelope for the member")
}

#[test]
fn far_future_envelopes_are_refused_not_buffered() {
    let (_a, mut b, c) = room_of_three();
    let bound = 3 + EARLY_EPOCH_WINDOW;
    for epoch in [bound + 1, 1 << 40, u64::MAX] {
        let r = b
            .session
            .handle_input(now(), Input::Message(&junk(&c, &b.member, epoch, epoch)));
        assert_eq!(
            r,
            Err(Error::Envelope(EnvelopeError::UnexpectedEpoch)),
            "epoch {epoch}"
        );
    }
    // At the bound it is still kept (the relay may be slower than the committer).
    let r = b
        .session
        .handle_input(now(), Input::Message(&junk(&c, &b.member, bound, 9)));
    assert_eq!(r, Ok(()));
    assert_eq!(b.session.latest_epoch(), Some(3), "nothing installed");
}

#[test]
fn a_flood_of_early_envelopes_cannot_push_out_the_committers() {
    let (mut a, mut b, c) = room_of_three();
    // Carol fills Bob's buffer with envelopes for the next epoch and far ones.
    for i in 0..40 {
        let epoch = if i % 2 == 0 {
            4
        } else {
            3 + EARLY_EPOCH_WINDOW
        };
        let r = b
            .session
            .handle_input(now(), Input::Message(&junk(&c, &b.member, epoch, 100 + i)));
        assert!(
            r == Ok(()) || r == Err(Error::Envelope(EnvelopeError::BufferFull)),
            "{r:?}"
        );
    }
    // The relay sequences a rekey (event 4); Alice answers it before Bob hears of the event.
    let rekey = MembershipEvent {
        seq: 4,
        change: Change::Rekey,
    };
    a.session
        .handle_input(now(), Input::Membership(rekey.clone()))
        .unwrap();
    let (msgs, _) = drain(&mut a.session);
    let real = envelope_for(&msgs, &b.member);
    assert_eq!(b.session.handle_input(now(), Input::Message(&real)), Ok(()));
    // Junk for the very same epoch after it, more than the buffer holds: Carol's only ever
    // displace Carol's (before, the oldest entry of the furthest epoch gave way: the real one).
    for i in 0..40 {
        let _ = b
            .session
            .handle_input(now(), Input::Message(&junk(&c, &b.member, 4, 300 + i)));
    }
    // More junk for far epochs after it: those give way to each other, never to the real one.
    for i in 0..40 {
        let e = 3 + EARLY_EPOCH_WINDOW - (i % 3);
        let _ = b
            .session
            .handle_input(now(), Input::Message(&junk(&c, &b.member, e, 200 + i)));
    }
    b.session
        .handle_input(now(), Input::Membership(rekey))
        .unwrap();
    let (_, events) = drain(&mut b.session);
    assert!(
        events.contains(&Event::EpochInstalled { epoch: 4 }),
        "{events:?}"
    );
    assert_eq!(b.session.latest_epoch(), Some(4));
}

#[test]
fn junk_before_the_snapshot_gives_way_to_the_real_envelope() {
    let (mut a, _b, c) = room_of_three();
    let mut d = peer("dave", 4, 4, 4, None);
    a.session
        .handle_input(now(), join_event(&d.member))
        .unwrap();
    let (msgs, _) = drain(&mut a.session);
    let real = envelope_for(&msgs, &d.member);
    // Before its snapshot Dave knows no bound: 40 envelopes for epoch 2^64-1 arrive first.
    for i in 0..40 {
        let r = d.session.handle_input(
            now(),
            Input::Message(&junk(&c, &d.member, u64::MAX, 300 + i)),
        );
        assert!(
            r == Ok(()) || r == Err(Error::Envelope(EnvelopeError::BufferFull)),
            "{r:?}"
        );
    }
    assert_eq!(d.session.handle_input(now(), Input::Message(&real)), Ok(()));
    let members = vec![
        a.member.clone(),
        _b.member.clone(),
        c.member.clone(),
        d.member.clone(),
    ];
    d.session
        .handle_input(now(), Input::Joined { seq: 4, members })
        .unwrap();
    assert_eq!(
        d.session.latest_epoch(),
        Some(4),
        "the real envelope was kept"
    );
}

#[test]
fn shared_secret_snapshot_with_a_huge_sequence_is_refused_before_any_ratchet() {
    let secret = || SharedSecret::new(&(1u8..=32).collect::<Vec<_>>()).unwrap();
    for seq in [MAX_SHARED_SECRET_SEQ + 1, 1 << 40, u64::MAX] {
        let mut p = peer("erin", 1, seq, 5, Some(secret()));
        // Refused before any ratchet: a loop up to `seq` would not return, so this test's
        // finishing is the check (no timing asserted).
        let r = p.session.handle_input(
            now(),
            Input::Joined {
                seq,
                members: vec![p.member.clone()],
            },
        );
        assert_eq!(
            r,
            Err(Error::Membership(MembershipError::SequenceTooLarge)),
            "seq {seq}"
        );
        assert_eq!(p.session.sender_index(), None, "not joined");
        assert_eq!(p.session.latest_epoch(), None);
    }
    // A sequence at the bound still works and lands on the same epoch as a member that was
    // there all along (both ratchet E_0 the same number of times).
    let seq = 1_000;
    let mut p = peer("erin", 1, seq, 5, Some(secret()));
    p.session
        .handle_input(
            now(),
            Input::Joined {
                seq,
                members: vec![p.member.clone()],
            },
        )
        .unwrap();
    assert_eq!(p.session.latest_epoch(), Some(seq));
}

#[test]
fn a_member_cannot_pass_off_the_committers_switch_or_anothers_ack() {
    let (mut a, mut b, mut c) = room_of_three();
    let rekey = MembershipEvent {
        seq: 4,
        change: Change::Rekey,
    };
    for p in [&mut a, &mut b, &mut c] {
        p.session
            .handle_input(now(), Input::Membership(rekey.clone()))
            .unwrap();
    }
    let (msgs, _) = drain(&mut a.session);
    let alice = a.member.participant.clone();
    let bob = b.member.participant.clone();
    let carol = c.member.participant.clone();
    for p in [&mut b, &mut c] {
        let env = envelope_for(&msgs, &p.member);
        p.message_from(&alice, &env).unwrap();
    }
    let (b_msgs, _) = drain(&mut b.session);
    let (c_msgs, _) = drain(&mut c.session);
    let to_alice = Destination::Member(alice.clone());
    let b_ack = sent_to(&b_msgs, &to_alice);
    let c_ack = sent_to(&c_msgs, &to_alice);
    // Carol hands in Bob's ack as hers: refused, Alice still waits for Bob.
    let r = a.message_from(&carol, b_ack);
    assert_eq!(r, Err(Error::Envelope(EnvelopeError::Forged)));
    a.message_from(&carol, c_ack).unwrap();
    assert_eq!(a.session.sending_epoch(), Some(3), "Bob has not acked yet");
    a.message_from(&bob, b_ack).unwrap();
    assert_eq!(a.session.sending_epoch(), Some(4), "every ack in: switched");
    let (a_msgs, _) = drain(&mut a.session);
    let switch = sent_to(&a_msgs, &Destination::AllMembers);
    // Carol forwards the committer's switch notice as her own: refused, Bob does not switch.
    let r = b.message_from(&carol, switch);
    assert_eq!(r, Err(Error::Envelope(EnvelopeError::Forged)));
    assert_eq!(b.session.sending_epoch(), Some(3));
    b.message_from(&alice, switch).unwrap();
    assert_eq!(b.session.sending_epoch(), Some(4));
}

#[test]
fn a_refused_join_keeps_the_log_moving() {
    let (_a, mut b, _c) = room_of_three();
    let ghost = ParticipantId::new("ghost").unwrap();
    b.session
        .handle_input(
            now(),
            Input::Membership(MembershipEvent {
                seq: 4,
                change: Change::Refused(ghost),
            }),
        )
        .unwrap();
    assert_eq!(b.session.applied_seq(), 4);
    assert_eq!(
        b.session.latest_epoch(),
        Some(3),
        "no epoch for a refused join"
    );
    assert_eq!(b.session.members().count(), 3);
}

/// A relay parks large events behind a gap it never fills (sequence 4 never comes): rekey
/// points each naming 1,024 long ids. They are held to about a megabyte, not to the 4,096
/// events the count allows (about 300 MB of them), and what is refused is said.
#[test]
fn events_held_behind_a_gap_are_bounded_in_bytes() {
    let (_, mut b, _) = room_of_three();
    let long = |i: u64| ParticipantId::new(format!("{i:0>255}")).unwrap();
    let mut held = 0;
    let mut refused = 0;
    for seq in 5..5 + 64u64 {
        let by = (0..1024).map(|i| long(seq * 10_000 + i)).collect();
        let ev = MembershipEvent {
            seq,
            change: Change::RekeyRequested(by),
        };
        match b.session.handle_input(now(), Input::Membership(ev)) {
            Ok(()) => held += 1,
            Err(Error::Membership(MembershipError::EventBufferFull)) => refused += 1,
            Err(e) => panic!("{e:?}"),
        }
    }
    // Each is about 285 KB: three fit in a megabyte.
    assert_eq!(held, 3, "refused {refused}");
    assert_eq!(refused, 61);
    // Small events still queue beside them until the megabyte is spent.
    let small = MembershipEvent {
        seq: 100,
        change: Change::Rekey,
    };
    assert_eq!(
        b.session.handle_input(now(), Input::Membership(small)),
        Ok(())
    );
}
