//! The relay as adversary, over the participant core (`hush_testkit::sim`): a relay that
//! invents members, swaps identity keys or replays another member's attestation gets no
//! envelope, and the honest members say why and keep their call.
//!
//! Each attack also runs against a room without a backend key (what every client did before
//! members were vouched for): there it succeeds, which is what these tests would have shown on
//! the code before this change.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hush_participant::Event;
use hush_proto::ServerMessage;
use hush_testkit::sim::{Room, Verdict};

const HONEST: [&str; 3] = ["alice", "bob", "carol"];

fn room(vouched: bool) -> Room {
    let mut r = if vouched {
        Room::vouched(3)
    } else {
        Room::new(3)
    };
    for n in HONEST {
        r.join(n);
    }
    r.settle();
    r
}

/// Envelopes anyone sealed to `to` (the relay reads the `to` of every `e2ee`).
fn sealed_to(r: &Room, to: &str) -> usize {
    HONEST.iter().map(|n| r.sent_to(n, to).len()).sum()
}

fn refusals_of(r: &Room, who: &str) -> Vec<String> {
    let mut v: Vec<String> = HONEST
        .iter()
        .flat_map(|n| r.member(n).events.iter())
        .filter_map(|e| match e {
            Event::MemberRefused {
                participant,
                reason,
            } if participant == who => Some(reason.code().to_owned()),
            _ => None,
        })
        .collect();
    v.dedup();
    v
}

/// The honest members still agree on a code and open each other's frames.
fn honest_call_goes_on(r: &Room) {
    let code = r.safety_code("alice").unwrap();
    for a in HONEST {
        assert_eq!(r.safety_code(a).as_deref(), Some(code.as_str()), "{a}");
        for b in HONEST.iter().filter(|b| **b != a) {
            assert_eq!(r.frame(a, b), Ok(()), "{a} -> {b}");
        }
    }
}

/// A key pair the relay made for its ghost (any valid X25519 public key will do).
fn ghost_key() -> Vec<u8> {
    let mut k = vec![0u8; 32];
    k[0] = 9; // the X25519 base point: a valid, full-order key
    k
}

#[test]
fn ghost_member_is_refused() {
    let mut r = room(true);
    let code = r.safety_code("alice").unwrap();
    r.announce_only("ghost", ghost_key(), None);
    r.settle();
    assert_eq!(refusals_of(&r, "ghost"), ["missing_attestation"]);
    assert_eq!(sealed_to(&r, "ghost"), 0, "no envelope for the ghost");
    assert_eq!(
        r.safety_code("alice"),
        Some(code),
        "the ghost is not in the code"
    );
    honest_call_goes_on(&r);

    // Unauthenticated, the same ghost is admitted and sealed to.
    let mut open = room(false);
    open.announce_only("ghost", ghost_key(), None);
    open.settle();
    assert!(refusals_of(&open, "ghost").is_empty());
    assert!(sealed_to(&open, "ghost") > 0, "the ghost gets the epoch");
}

#[test]
fn ghost_with_a_forged_or_borrowed_attestation_is_refused() {
    let mut r = room(true);
    // Signed by a key that is not the backend's.
    let mut forged = r.attest("ghost", &ghost_key()).unwrap();
    forged[20] ^= 1;
    r.announce_only("ghost", ghost_key(), Some(forged));
    // Alice's real key and attestation, under another name.
    let alice_key = r.member("alice").core.identity_key().to_vec();
    let alice_att = r.attest("alice", &alice_key).unwrap();
    r.announce_only("mallet", alice_key.clone(), Some(alice_att.clone()));
    // A wrong length.
    r.announce_only("trent", ghost_key(), Some(vec![1; 10]));
    r.settle();
    for who in ["ghost", "mallet", "trent"] {
        assert_eq!(refusals_of(&r, who), ["bad_attestation"], "{who}");
        assert_eq!(sealed_to(&r, who), 0, "{who}");
    }
    honest_call_goes_on(&r);
}

/// The relay announces Dave's join to Alice with a key of its own (a man in the middle of the
/// key exchange), keeping Dave's attestation: the attestation does not cover that key.
#[test]
fn swapped_identity_key_is_refused() {
    for vouched in [true, false] {
        let mut r = room(vouched);
        r.hook(|d| match (&d.msg, d.to.as_str()) {
            (ServerMessage::ParticipantJoined(p), "alice")
                if p.participant.id.as_str() == "dave" =>
            {
                let mut p = p.clone();
                p.participant.identity_key = hush_proto::OpaqueBytes::new(ghost_key());
                Verdict::Rewrite(ServerMessage::ParticipantJoined(p))
            }
            _ => Verdict::Deliver,
        });
        r.join("dave");
        r.settle();
        let refused = r.member("alice").events.iter().any(|e| {
            matches!(e, Event::MemberRefused { participant, reason }
                if participant == "dave" && reason.code() == "bad_attestation")
        });
        // Alice is the committer: vouched, she refuses the swapped key and seals nothing to it;
        // unauthenticated, she seals Dave's epoch to the relay's key.
        assert_eq!(refused, vouched, "vouched = {vouched}");
        let to_dave = r.sent_to("alice", "dave").len();
        assert_eq!(
            to_dave == 0,
            vouched,
            "vouched = {vouched}: {to_dave} envelopes"
        );
        if vouched {
            assert!(
                r.frame("alice", "dave").is_err(),
                "dave got no key via the relay's swap"
            );
        }
    }
}

/// The relay answers Dave's join with another room, "lobby", whose only member is one it plays
/// with a real attestation for that room (any account of the app can get one for a room of its
/// own). Attestations are checked against the room `joined` names, so without the room check
/// Dave admits the relay's member, which as the earliest joiner is the committer that would
/// hand Dave its epochs: Dave's camera under keys the relay chose.
#[test]
fn joined_for_another_room_is_refused() {
    for checked in [true, false] {
        let mut r = Room::vouched(3);
        if !checked {
            r = r.without_room_check();
        }
        for n in HONEST {
            r.join(n);
        }
        r.settle();
        let attestation = r
            .attest_in("lobby", hush_keys::Role::Participant, "ghost", &ghost_key())
            .unwrap();
        r.hook(move |d| match (&d.msg, d.to.as_str()) {
            (ServerMessage::Joined(j), "dave") => {
                let mut j = j.clone();
                j.room = hush_proto::RoomId::new("lobby").unwrap();
                j.participants = vec![hush_proto::ParticipantInfo {
                    id: hush_proto::ParticipantId::new("ghost").unwrap(),
                    sender_index: hush_proto::SenderIndex(90),
                    join_seq: 1,
                    identity_key: hush_proto::OpaqueBytes::new(ghost_key()),
                    attestation: Some(hush_proto::OpaqueBytes::new(attestation.clone())),
                    grants: hush_proto::Grants::default(),
                    role: hush_proto::MemberRole::Participant,
                }];
                Verdict::Rewrite(ServerMessage::Joined(j))
            }
            _ => Verdict::Deliver,
        });
        r.join("dave");
        r.settle();
        let dave = r.member("dave");
        let ghost_admitted = dave
            .core
            .session()
            .is_some_and(|s| s.members().any(|m| m.participant.as_bytes() == b"ghost"));
        if checked {
            assert_eq!(
                dave.refusals.iter().map(|e| e.code()).collect::<Vec<_>>(),
                ["wrong_room"],
                "Dave refuses the joined"
            );
            assert!(
                dave.core.session().is_none(),
                "no session in the relay's room"
            );
            assert!(!ghost_admitted);
            assert_eq!(r.safety_code("dave"), None);
            // The others still hear each other (Dave, who never takes part, shows to them as
            // a member whose key exchange does not finish).
            for a in HONEST {
                for b in HONEST.iter().filter(|b| **b != a) {
                    assert_eq!(r.frame(a, b), Ok(()), "{a} -> {b}");
                }
            }
        } else {
            assert!(ghost_admitted, "unchecked, Dave admits the relay's member");
        }
    }
}

/// The relay spoils only Bob's copy of Yves's join (a broken attestation), so Bob refuses Yves
/// while Alice, the committer, admits him and seals him the join's epoch. Bob installs no epoch
/// for a refused join; at the next join (Zed's) he ratchets from the epoch before. Were the
/// ratchet blind to the epoch number, Bob's new epoch would be the very secret sealed to Yves:
/// Yves, whom Bob's screen shows as refused, would hold Bob's send key. Bound to the epoch
/// number, Bob's epoch is one nobody else holds: he is out of step with the room (which the
/// others see as frames from him that do not open), and Yves reads nothing of his.
#[test]
fn a_member_refused_by_one_but_admitted_by_the_committer_never_gets_that_ones_key() {
    let mut r = room(true);
    spoil_yves_for_bob(&mut r);
    r.join("yves");
    r.settle();
    assert_eq!(
        refusals_of(&r, "yves"),
        ["bad_attestation"],
        "Bob refused Yves"
    );
    assert!(
        !r.sent_to("alice", "yves").is_empty(),
        "the committer sealed to Yves"
    );
    // Every receive key Yves holds now (he could keep them all).
    let held_by_yves: Vec<Vec<u8>> = r.member("yves").recv.values().cloned().collect();
    r.join("zed");
    r.settle();
    let (_, bob_key) = r.member("bob").send[&hush_keys::StreamContext::MICROPHONE.0].clone();
    assert!(
        !held_by_yves.contains(&bob_key),
        "Yves never held a key Bob sends on"
    );
    assert!(
        r.frame("bob", "yves").is_err(),
        "Yves opens nothing of Bob's"
    );
    // The others are unaffected: Alice, Carol, Yves and Zed hear each other.
    for a in ["alice", "carol", "yves", "zed"] {
        for b in ["alice", "carol", "yves", "zed"]
            .iter()
            .filter(|b| **b != a)
        {
            assert_eq!(r.frame(a, b), Ok(()), "{a} -> {b}");
        }
    }
}

/// Spoils Bob's copy of Yves's join (a broken attestation), so that Bob refuses Yves while
/// Alice, the committer, admits him.
fn spoil_yves_for_bob(r: &mut Room) {
    r.hook(|d| match (&d.msg, d.to.as_str()) {
        (ServerMessage::ParticipantJoined(p), "bob") if p.participant.id.as_str() == "yves" => {
            let mut p = p.clone();
            let mut att = p
                .participant
                .attestation
                .clone()
                .unwrap()
                .as_bytes()
                .to_vec();
            att[20] ^= 1;
            p.participant.attestation = Some(hush_proto::OpaqueBytes::new(att));
            Verdict::Rewrite(ServerMessage::ParticipantJoined(p))
        }
        _ => Verdict::Deliver,
    });
}

fn refusal_codes(r: &Room, who: &str) -> Vec<&'static str> {
    r.member(who).refusals.iter().map(|e| e.code()).collect()
}

/// The committers `who` reported a roster mismatch for, one per report.
fn roster_mismatches(r: &Room, who: &str) -> Vec<String> {
    r.member(who)
        .events
        .iter()
        .filter_map(|e| match e {
            Event::RosterMismatch { committer, .. } => Some(committer.clone()),
            _ => None,
        })
        .collect()
}

/// As above, then Carol leaves: Alice seals a fresh epoch to Bob and to Yves. Bob's roster
/// lacks Yves, so the envelope (sealed for Alice's roster, which has him) is not Bob's to open:
/// he refuses it (`roster_mismatch`), stops sending at the stall deadline and says a key is
/// awaited. Before envelopes carried the committer's roster, Bob opened it and sent on a
/// secret Yves, whom his screen shows as refused, holds.
#[test]
fn a_fresh_epoch_sealed_for_a_roster_with_a_member_bob_refused_is_not_opened_by_bob() {
    let mut r = room(true);
    spoil_yves_for_bob(&mut r);
    r.join("yves");
    r.settle();
    assert_eq!(refusals_of(&r, "yves"), ["bad_attestation"]);
    r.leave("carol");
    r.settle();
    assert!(
        refusal_codes(&r, "bob").contains(&"roster_mismatch"),
        "{:?}",
        refusal_codes(&r, "bob")
    );
    assert_eq!(
        roster_mismatches(&r, "bob"),
        ["alice"],
        "reported once, naming the committer"
    );
    assert!(
        r.member("bob")
            .events
            .iter()
            .any(|e| matches!(e, Event::KeyAwaited(_))),
        "Bob says a key is awaited"
    );
    assert!(
        r.frame("bob", "yves").is_err(),
        "Yves opens nothing of Bob's"
    );
    assert!(r.member("bob").send.is_empty(), "Bob has no send key");
    // Alice and Yves, on the same roster, go on.
    assert_eq!(r.frame("alice", "yves"), Ok(()));
    assert_eq!(r.frame("yves", "alice"), Ok(()));
}

/// The relay leaves Carol out of Dave's snapshot: Dave would not know she is there. Alice
/// seals Dave the join's epoch for the roster with Carol in it, which Carol ratchets to as well;
/// Dave's roster differs, so he refuses it (`roster_mismatch`) and sends nothing that Carol,
/// hidden from him, could read. Before the roster digest, Dave's camera was open to her.
#[test]
fn a_member_hidden_from_a_newcomers_snapshot_gets_nothing_of_the_newcomers() {
    let mut r = room(true);
    r.hook(|d| match (&d.msg, d.to.as_str()) {
        (ServerMessage::Joined(j), "dave") => {
            let mut j = j.clone();
            j.participants.retain(|p| p.id.as_str() != "carol");
            Verdict::Rewrite(ServerMessage::Joined(j))
        }
        _ => Verdict::Deliver,
    });
    r.join("dave");
    r.settle();
    assert!(
        refusal_codes(&r, "dave").contains(&"roster_mismatch"),
        "{:?}",
        refusal_codes(&r, "dave")
    );
    assert_eq!(roster_mismatches(&r, "dave"), ["alice"]);
    assert!(
        r.member("dave")
            .events
            .iter()
            .any(|e| matches!(e, Event::CommitterStalled { .. })),
        "Dave reports that no usable key came"
    );
    assert!(r.member("dave").send.is_empty(), "Dave has no send key");
    assert!(r.frame("dave", "carol").is_err());
    // The others hear each other; their new safety code waits for Dave, who never commits to
    // the round, so no code shows: the room sees that the join did not complete.
    for a in HONEST {
        assert_eq!(r.safety_code(a), None, "{a}");
        for b in HONEST.iter().filter(|b| **b != a) {
            assert_eq!(r.frame(a, b), Ok(()), "{a} -> {b}");
        }
    }
}

/// The relay announces Yves's join to everyone but Bob, to whom it sends a rekey point at the
/// same sequence number instead, one Carol asked for: a ratchet. Alice, the committer, ratchets
/// for the join and seals that secret to Yves. Were the ratchet blind to the member list, Bob's
/// secret would be the very one Yves holds, and Bob, whose screen never showed Yves, would
/// send to him. Bound to the list, Bob's secret is his alone: his ack fails at Alice
/// (`forged`), he is out of step with the room, and Yves reads nothing of his.
#[test]
fn a_join_shown_to_one_member_as_a_rekey_point_gives_that_member_no_shared_secret() {
    let mut r = room(true);
    r.hook(|d| match (&d.msg, d.to.as_str()) {
        (ServerMessage::ParticipantJoined(p), "bob") if p.participant.id.as_str() == "yves" => {
            Verdict::Rewrite(ServerMessage::Rekey(hush_proto::RekeyEvent {
                seq: p.seq,
                by: vec![hush_proto::ParticipantId::new("carol").unwrap()],
            }))
        }
        _ => Verdict::Deliver,
    });
    r.join("yves");
    r.settle();
    assert!(
        !r.sent_to("alice", "yves").is_empty(),
        "the committer sealed the join's epoch to Yves"
    );
    let yves_epoch = r.sending_epoch("yves");
    assert_eq!(
        r.sending_epoch("bob"),
        yves_epoch,
        "Bob moved to that epoch number"
    );
    assert!(
        r.frame("bob", "yves").is_err(),
        "Yves opens nothing of Bob's"
    );
    assert!(
        refusal_codes(&r, "alice").contains(&"forged"),
        "Bob's ack does not verify at Alice: {:?}",
        refusal_codes(&r, "alice")
    );
    // Alice, Carol and Yves hear each other.
    for a in ["alice", "carol", "yves"] {
        for b in ["alice", "carol", "yves"].iter().filter(|b| **b != a) {
            assert_eq!(r.frame(a, b), Ok(()), "{a} -> {b}");
        }
    }
}

/// Honest conditions: the members' attestations hold for 60 s and the call goes on past that.
/// A newcomer checks the expiry of the joins it sees happen, not of the members already there
/// (their attestations were checked when they joined, and the others keep them): so it holds
/// the committer's member list, opens the join's envelope and hears everyone. Before, it
/// refused them all as `bad_attestation` and, with the roster bound to its envelope, got no
/// key at all.
#[test]
fn a_newcomer_after_the_members_attestations_expired_holds_the_same_list() {
    let mut r = Room::vouched(3).with_attestation_ttl(60);
    for n in HONEST {
        r.join(n);
    }
    r.settle();
    r.advance(61_000);
    r.join("dave");
    r.settle();
    assert!(
        r.member("dave").refusals.is_empty(),
        "{:?}",
        refusal_codes(&r, "dave")
    );
    assert!(refusals_of(&r, "alice").is_empty());
    for a in ["alice", "bob", "carol", "dave"] {
        for b in ["alice", "bob", "carol", "dave"]
            .iter()
            .filter(|b| **b != a)
        {
            assert_eq!(r.frame(a, b), Ok(()), "{a} -> {b}");
        }
    }
    let code = r.safety_code("alice");
    assert!(code.is_some());
    assert_eq!(r.safety_code("dave"), code);
}
