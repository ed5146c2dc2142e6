//! Joins, leaves, sender indexes, sequence numbers, room lifetime.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use hush_proto::{ClientMessage, ErrorCode, LeaveReason, SenderIndex, ServerMessage};

use super::*;
use crate::routing::{Audit, RoomSettings};

fn joined(out: &[Output], conn: ConnId) -> hush_proto::Joined {
    match to(out, conn).first() {
        Some(ServerMessage::Joined(j)) => j.clone(),
        other => panic!("no joined: {other:?}"),
    }
}

/// Gives `room` its own participant limit (creating it empty).
fn limit_room(sim: &mut Sim, room: &str, max: u32) {
    let settings = RoomSettings {
        max_participants: Some(max),
        ..Default::default()
    };
    sim.relay
        .configure_room(sim.now, rid(room), settings)
        .unwrap();
}

#[test]
fn first_join_creates_the_room_and_later_joins_see_everyone() {
    let mut sim = Sim::new();
    let (alice, out) = sim.try_join("alice", "standup", full());
    let j = joined(&out, alice);
    assert_eq!((j.you.as_str(), j.room.as_str()), ("alice", "standup"));
    assert_eq!((j.sender_index, j.join_seq), (SenderIndex(0), 1));
    assert!(j.participants.is_empty() && j.tracks.is_empty());
    assert_eq!(sim.relay.room_count(), 1);

    let (bob, out) = sim.try_join("bob", "standup", viewer());
    let j = joined(&out, bob);
    assert_eq!((j.sender_index, j.join_seq), (SenderIndex(1), 2));
    assert_eq!(j.participants.len(), 1);
    assert_eq!(j.participants[0].id, pid("alice"));
    assert_eq!(j.participants[0].identity_key.as_bytes(), &[5u8; 32]);
    // Alice hears of Bob, with his key, index and the room's sequence number.
    match to(&out, alice).as_slice() {
        [ServerMessage::ParticipantJoined(e)] => {
            assert_eq!((e.seq, e.participant.join_seq), (2, 2));
            assert_eq!(e.participant.id, pid("bob"));
            assert_eq!(e.participant.sender_index, SenderIndex(1));
            assert_eq!(e.participant.grants, viewer());
        }
        other => panic!("{other:?}"),
    }
    assert!(out.contains(&Output::Audit(Audit::Joined {
        room: rid("standup"),
        participant: pid("bob"),
        conn: bob
    })));
}

#[test]
fn sender_indexes_are_never_reused_and_sequence_numbers_only_grow() {
    let mut sim = Sim::new();
    let [a, b, _c] = sim.join_all("r", ["a", "b", "c"]);
    let out = sim.send(b, ClientMessage::Leave);
    assert!(closed(&out, b));
    match to(&out, a).as_slice() {
        [ServerMessage::ParticipantLeft(e)] => {
            assert_eq!(
                (e.seq, e.sender_index, e.reason),
                (4, SenderIndex(1), LeaveReason::Left)
            );
        }
        other => panic!("{other:?}"),
    }
    // Bob comes back: a new index, not his old one.
    let (b2, out) = sim.try_join("b", "r", full());
    let j = joined(&out, b2);
    assert_eq!((j.sender_index, j.join_seq), (SenderIndex(3), 5));
    sim.join("d", "r", full());
    let room = &sim.relay.rooms[&rid("r")];
    let indexes: BTreeSet<_> = room.members.iter().map(|m| m.info.sender_index.0).collect();
    assert_eq!(indexes, BTreeSet::from([0, 2, 3, 4]));
    assert_eq!(room.seq(), 6);
}

#[test]
fn an_empty_room_keeps_its_indexes_until_it_times_out() {
    let mut sim = Sim::new();
    let a = sim.join("a", "r", full());
    sim.relay.disconnected(sim.now, a);
    assert_eq!(sim.relay.participant_count(&rid("r")), Some(0));
    assert_eq!(
        sim.relay.poll_timeout(),
        Some(sim.now.instant + Duration::from_secs(300))
    );
    sim.advance(Duration::from_secs(299));
    let (b, out) = sim.try_join("b", "r", full());
    assert_eq!(
        joined(&out, b).sender_index,
        SenderIndex(1),
        "same room, next index"
    );
    sim.relay.disconnected(sim.now, b);
    sim.advance(Duration::from_secs(300));
    assert_eq!(
        sim.relay.room_count(),
        0,
        "forgotten after the empty-room timeout"
    );
    assert_eq!(sim.relay.poll_timeout(), None);
    let (c, out) = sim.try_join("c", "r", full());
    assert_eq!(joined(&out, c).sender_index, SenderIndex(0), "a new room");
}

#[test]
fn a_room_created_again_has_a_new_instance_though_its_counters_restart() {
    let mut sim = Sim::new();
    sim.relay.set_room_instance_key([0x42; 32]);
    let (a, out) = sim.try_join("a", "r", full());
    let first = joined(&out, a);
    let (b, out) = sim.try_join("b", "r", full());
    let second = joined(&out, b);
    // One life: every member is told the same instance.
    assert!(first.room_instance.is_some());
    assert_eq!(first.room_instance, second.room_instance);
    // Another room at the same time has its own.
    let (x, out) = sim.try_join("x", "other", full());
    assert_ne!(joined(&out, x).room_instance, first.room_instance);

    sim.relay.disconnected(sim.now, a);
    sim.relay.disconnected(sim.now, b);
    sim.advance(Duration::from_secs(301));
    assert_eq!(sim.relay.participant_count(&rid("r")), None, "forgotten");
    // The same id again: seq and sender indexes start over (what a shared-secret key layer
    // would otherwise repeat), the instance does not.
    let (a2, out) = sim.try_join("a", "r", full());
    let again = joined(&out, a2);
    assert_eq!(
        (again.sender_index, again.join_seq),
        (first.sender_index, first.join_seq)
    );
    assert_ne!(again.room_instance, first.room_instance);

    // The key is the only randomness: another key, other instances; the same key and inputs,
    // the same instances (the core stays deterministic).
    let instance_with = |key: [u8; 32]| {
        let mut sim = Sim::new();
        sim.relay.set_room_instance_key(key);
        let (c, out) = sim.try_join("a", "r", full());
        joined(&out, c).room_instance
    };
    assert_eq!(instance_with([1; 32]), instance_with([1; 32]));
    assert_ne!(instance_with([1; 32]), instance_with([2; 32]));
}

#[test]
fn room_cap_server_wide_and_per_room() {
    let mut sim = Sim::with_config(RelayConfig {
        max_participants_per_room: 2,
        ..Default::default()
    });
    let [a, _b] = sim.join_all("r", ["a", "b"]);
    let out = sim.join_refused("c", "r", ErrorCode::RoomFull);
    assert!(to(&out, a).is_empty(), "nobody hears of c");
    sim.send(a, ClientMessage::Leave);
    sim.join("c", "r", full());

    // A room's own limit, lower than the server's.
    limit_room(&mut sim, "small", 1);
    sim.join("x", "small", full());
    sim.join_refused("y", "small", ErrorCode::RoomFull);
    // A room's limit above the server's cap is capped.
    limit_room(&mut sim, "big", 50);
    sim.join("x", "big", full());
    sim.join("y", "big", full());
    sim.join_refused("z", "big", ErrorCode::RoomFull);
}

#[test]
fn server_room_limit() {
    let mut sim = Sim::with_config(RelayConfig {
        max_rooms: 1,
        ..Default::default()
    });
    sim.join("a", "r1", full());
    sim.join_refused("b", "r2", ErrorCode::ServerFull);
    assert_eq!(
        sim.relay
            .configure_room(sim.now, rid("r3"), RoomSettings::default()),
        Err(ErrorCode::ServerFull)
    );
    sim.join("c", "r1", full());
}

#[test]
fn sender_indexes_run_out() {
    let mut sim = Sim::with_config(RelayConfig {
        max_sender_indexes: 2,
        ..Default::default()
    });
    let a = sim.join("a", "r", full());
    sim.send(a, ClientMessage::Leave);
    sim.join("b", "r", full());
    sim.join_refused("c", "r", ErrorCode::RoomFull);
}

/// A participant rejoining in a loop (each time with a fresh token from the app) used up the
/// room's sender indexes: a newcomer then got `room_full`. Past its admissions a minute it is
/// refused (`rate_limited`) and the room keeps room for others; later it may rejoin.
#[test]
fn a_participant_rejoining_in_a_loop_is_rate_limited_and_others_still_get_in() {
    let mut sim = Sim::with_config(RelayConfig {
        max_sender_indexes: 16,
        ..Default::default()
    });
    let a = sim.join("a", "r", full());
    let mut refused = 0;
    for _ in 0..20 {
        let (conn, out) = sim.try_join("eve", "r", full());
        if closed(&out, conn) {
            assert_refused_fatally(&out, conn, ErrorCode::RateLimited);
            refused += 1;
        }
        sim.now = sim.now.advance(Duration::from_millis(500));
    }
    assert_eq!(
        refused, 9,
        "10 at once, then one every 6 s: 11 in 10 s, 9 refused"
    );
    sim.join("bob", "r", full());
    assert_alive(&mut sim, a);
    sim.now = sim.now.advance(Duration::from_secs(60));
    sim.join("eve", "r", full());
}

#[test]
fn the_first_message_must_be_join() {
    let mut sim = Sim::new();
    let conn = sim.connect();
    let out = sim.send(conn, ClientMessage::Ping(hush_proto::Ping { seq: 1 }));
    assert_refused_fatally(&out, conn, ErrorCode::NotJoined);
    // Input after the close is ignored.
    assert!(sim.send(conn, ClientMessage::Leave).is_empty());

    for (text, code) in [
        ("{not json", ErrorCode::MalformedMessage),
        (r#"{"v":9,"type":"join"}"#, ErrorCode::UnsupportedVersion),
        (
            r#"{"v":1,"type":"teleport"}"#,
            ErrorCode::UnknownMessageType,
        ),
        (
            r#"{"v":1,"type":"join","identity_key":"AA=="}"#,
            ErrorCode::MalformedMessage,
        ),
    ] {
        let conn = sim.connect();
        let out = sim.send_text(conn, text);
        assert_refused_fatally(&out, conn, code);
    }
    let conn = sim.connect();
    let out = sim.send_text(conn, &"x".repeat(hush_proto::MAX_MESSAGE_BYTES + 1));
    assert_refused_fatally(&out, conn, ErrorCode::MessageTooLarge);
}

#[test]
fn a_silent_connection_times_out() {
    let mut sim = Sim::new();
    let conn = sim.connect();
    assert_eq!(
        sim.relay.poll_timeout(),
        Some(sim.now.instant + Duration::from_secs(10))
    );
    assert!(sim.advance(Duration::from_secs(9)).is_empty());
    let out = sim.advance(Duration::from_secs(1));
    assert_refused_fatally(&out, conn, ErrorCode::JoinTimeout);
    assert_eq!(sim.relay.poll_timeout(), None);
}

#[test]
fn token_refusals_close_the_connection_and_nobody_hears_of_it() {
    let mut sim = Sim::new();
    let a = sim.join("a", "standup", full());

    // A token for another room, presented for this one.
    let token = sim.token("mallory", "other", full());
    let conn = sim.connect();
    let out = sim.send(conn, Sim::join_message(token, Some("standup")));
    assert_refused_fatally(&out, conn, ErrorCode::TokenWrongRoom);
    assert!(to(&out, a).is_empty());
    assert!(out.contains(&Output::Audit(Audit::JoinRefused {
        conn,
        code: ErrorCode::TokenWrongRoom,
        who: None,
    })));

    // An expired one.
    let token = sim.token("mallory", "standup", full());
    sim.now = sim.now.advance(Duration::from_secs(700));
    let conn = sim.connect();
    let out = sim.send(conn, Sim::join_message(token, None));
    assert_refused_fatally(&out, conn, ErrorCode::TokenExpired);
    assert!(to(&out, a).is_empty());

    // A replayed one.
    let token = sim.token("b", "standup", full());
    let first = sim.connect();
    sim.send(first, Sim::join_message(token.clone(), None));
    let conn = sim.connect();
    let out = sim.send(conn, Sim::join_message(token, None));
    assert_refused_fatally(&out, conn, ErrorCode::TokenReplayed);
    assert_eq!(sim.relay.participant_count(&rid("standup")), Some(2));
    assert_alive(&mut sim, a);
}

#[test]
fn joining_again_replaces_the_old_connection() {
    let mut sim = Sim::new();
    let [a, b_old] = sim.join_all("r", ["a", "b"]);
    let (b_new, out) = sim.try_join("b", "r", full());
    assert_refused_fatally(&out, b_old, ErrorCode::Replaced);
    match to(&out, a).as_slice() {
        [
            ServerMessage::ParticipantLeft(left),
            ServerMessage::ParticipantJoined(joined),
        ] => {
            assert_eq!(
                (left.reason, left.sender_index, left.seq),
                (LeaveReason::Replaced, SenderIndex(1), 3)
            );
            assert_eq!(
                (joined.participant.sender_index, joined.seq),
                (SenderIndex(2), 4)
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        joined(&out, b_new).participants.len(),
        1,
        "only a: the old b is gone"
    );
    assert_eq!(sim.relay.participant_count(&rid("r")), Some(2));
}

#[test]
fn a_dropped_connection_is_a_leave() {
    let mut sim = Sim::new();
    let [a, b] = sim.join_all("r", ["a", "b"]);
    sim.relay.disconnected(sim.now, b);
    let out = sim.drain();
    match to(&out, a).as_slice() {
        [ServerMessage::ParticipantLeft(e)] => assert_eq!(e.reason, LeaveReason::Disconnected),
        other => panic!("{other:?}"),
    }
    assert!(!closed(&out, b), "the adapter closed it already");
}

#[test]
fn bad_input_after_join_drops_only_that_message() {
    let mut sim = Sim::new();
    let [a, b] = sim.join_all("r", ["a", "b"]);
    for (text, code) in [
        ("]]", ErrorCode::MalformedMessage),
        (
            r#"{"v":2,"type":"ping","seq":1}"#,
            ErrorCode::UnsupportedVersion,
        ),
        (r#"{"v":1,"type":"warp"}"#, ErrorCode::UnknownMessageType),
        (r#"{"v":1,"type":"offer"}"#, ErrorCode::MalformedMessage),
    ] {
        let out = sim.send_text(a, text);
        assert_refused(&out, a, code);
        assert!(to(&out, b).is_empty());
    }
    let sdp = "x".repeat(hush_proto::limits::MAX_SDP_BYTES + 1);
    let out = sim.send(a, ClientMessage::Offer(hush_proto::Sdp { sdp }));
    assert_refused(&out, a, ErrorCode::FieldTooLarge);
    let out = sim.send(a, Sim::join_message("x".into(), None));
    assert_refused(&out, a, ErrorCode::AlreadyJoined);
    assert_alive(&mut sim, a);
    assert_alive(&mut sim, b);
}

/// What one client believes the room is, built only from the events it received.
#[derive(Default)]
struct View {
    last_seq: u64,
    members: BTreeMap<String, u32>,
}

impl View {
    fn apply(&mut self, message: &ServerMessage) {
        match message {
            ServerMessage::Joined(j) => {
                self.last_seq = j.join_seq;
                for p in &j.participants {
                    self.members
                        .insert(p.id.as_str().to_owned(), p.sender_index.0);
                }
                self.members
                    .insert(j.you.as_str().to_owned(), j.sender_index.0);
            }
            ServerMessage::ParticipantJoined(e) => {
                assert_eq!(e.seq, self.last_seq + 1, "no gap, no reordering");
                self.last_seq = e.seq;
                self.members.insert(
                    e.participant.id.as_str().to_owned(),
                    e.participant.sender_index.0,
                );
            }
            ServerMessage::ParticipantLeft(e) => {
                assert_eq!(e.seq, self.last_seq + 1, "no gap, no reordering");
                self.last_seq = e.seq;
                assert_eq!(
                    self.members.remove(e.participant.as_str()),
                    Some(e.sender_index.0)
                );
            }
            ServerMessage::Rekey(e) => {
                assert_eq!(e.seq, self.last_seq + 1, "no gap, no reordering");
                self.last_seq = e.seq;
            }
            _ => {}
        }
    }
}

#[test]
fn fifty_members_with_churn_all_agree_on_the_membership() {
    let mut sim = Sim::new();
    let mut views: BTreeMap<ConnId, View> = BTreeMap::new();
    let mut conns: Vec<(String, ConnId)> = Vec::new();
    let mut seen_indexes = BTreeSet::new();
    let feed = |views: &mut BTreeMap<ConnId, View>, out: &[Output]| {
        for o in out {
            if let Output::Send { conn, message } = o {
                views.entry(*conn).or_default().apply(message);
            }
        }
    };
    for round in 0..3 {
        for i in 0..50 {
            let name = format!("p{round}-{i}");
            if conns.len() >= 50 {
                break;
            }
            let (conn, out) = sim.try_join(&name, "big", full());
            feed(&mut views, &out);
            if let Some(ServerMessage::Joined(j)) = to(&out, conn).first() {
                assert!(seen_indexes.insert(j.sender_index.0), "index reused");
            }
            conns.push((name, conn));
        }
        // Every third member leaves, one way or another.
        let mut i = 0;
        conns.retain(|(_, conn)| {
            i += 1;
            if i % 3 != 0 {
                return true;
            }
            match i % 2 {
                0 => sim.relay.disconnected(sim.now, *conn),
                _ => sim
                    .relay
                    .handle_message(sim.now, *conn, ClientMessage::Leave),
            }
            let out: Vec<Output> = std::iter::from_fn(|| sim.relay.poll_output()).collect();
            feed(&mut views, &out);
            views.remove(conn);
            false
        });
        // Two members ask for a rekey at once, the relay places one now and the merged one a
        // second later: every view sees both in the same order as the joins and leaves.
        for (_, conn) in conns.iter().take(2) {
            let out = sim.send(*conn, ClientMessage::Rekey(Default::default()));
            feed(&mut views, &out);
        }
        let out = sim.advance(Duration::from_secs(1));
        assert!(out.iter().any(|o| matches!(
            o,
            Output::Send {
                message: ServerMessage::Rekey(_),
                ..
            }
        )));
        feed(&mut views, &out);
    }
    let truth: BTreeMap<String, u32> = sim.relay.rooms[&rid("big")]
        .members
        .iter()
        .map(|m| (m.info.id.as_str().to_owned(), m.info.sender_index.0))
        .collect();
    assert_eq!(truth.len(), conns.len());
    for (_, conn) in &conns {
        assert_eq!(views[conn].members, truth, "{conn:?} disagrees");
    }
}

#[test]
fn the_same_inputs_give_the_same_outputs() {
    let run = || {
        let mut sim = Sim::new();
        let a = sim.join("a", "r", moderator());
        let b = sim.join("b", "r", full());
        let mut out = sim.send(a, publish(hush_proto::Source::Camera));
        out.extend(sim.send(
            b,
            ClientMessage::KeyframeRequest(hush_proto::TrackRef {
                track: hush_proto::TrackId(0),
            }),
        ));
        out.extend(sim.send(
            a,
            ClientMessage::ForceDisconnect(hush_proto::ForceDisconnect {
                participant: pid("b"),
            }),
        ));
        out
    };
    assert_eq!(run(), run());
}
