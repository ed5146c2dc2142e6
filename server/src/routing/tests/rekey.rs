//! Rekey points: ordered with joins and leaves, merged per room, members only.

use std::time::Duration;

use hush_proto::{ClientMessage, ErrorCode, RekeyEvent, RekeyReason, RekeyRequest, ServerMessage};

use super::*;

fn rekey() -> ClientMessage {
    ClientMessage::Rekey(RekeyRequest {
        reason: Some(RekeyReason::Timer),
    })
}

/// The `seq` of every membership event `conn` received, in order, tagged by kind.
fn log(out: &[Output], conn: ConnId) -> Vec<(&'static str, u64)> {
    to(out, conn)
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::Joined(j) => Some(("joined", j.join_seq)),
            ServerMessage::ParticipantJoined(e) => Some(("join", e.seq)),
            ServerMessage::ParticipantLeft(e) => Some(("leave", e.seq)),
            ServerMessage::Rekey(e) => Some(("rekey", e.seq)),
            _ => None,
        })
        .collect()
}

fn rekeys(out: &[Output]) -> Vec<(ConnId, u64)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send {
                conn,
                message: ServerMessage::Rekey(RekeyEvent { seq, .. }),
            } => Some((*conn, *seq)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_rekey_is_a_point_in_the_membership_log_sent_to_everyone() {
    let (mut sim, [a, b]) = room_of([("a", full()), ("b", viewer())]);
    let other = sim.join("x", "elsewhere", full());
    let out = sim.send(b, rekey());
    // Everyone in the room, the requester included, with the next sequence number (joins were
    // 1 and 2); nobody in another room, no error.
    assert_eq!(rekeys(&out), [(a, 3), (b, 3)]);
    assert!(out.contains(&Output::Audit(crate::routing::Audit::Rekey {
        room: rid("r"),
        seq: 3
    })));
    assert!(to(&out, other).is_empty());
    assert!(!out.iter().any(|o| matches!(
        o,
        Output::Send {
            message: ServerMessage::Error(_),
            ..
        }
    )));
    // The next join continues the same counter.
    let (c, out) = sim.try_join("c", "r", full());
    assert_eq!(log(&out, a), [("join", 4)]);
    assert_eq!(log(&out, c), [("joined", 4)]);
    // ... and so does a leave.
    let out = sim.send(c, ClientMessage::Leave);
    assert_eq!(log(&out, a), [("leave", 5)]);
    assert_eq!(sim.relay.rooms[&rid("r")].seq(), 5);
    assert_eq!(sim.relay.rooms[&rid("elsewhere")].seq(), 1);
}

#[test]
fn rekeys_are_merged_to_one_per_interval_and_keep_their_place_among_joins() {
    let mut sim = Sim::new();
    let [a, b] = sim.join_all("r", ["a", "b"]);
    assert_eq!(rekeys(&sim.send(a, rekey())), [(a, 3), (b, 3)]);

    // Within the second: merged into one pending point, no error, nothing sent.
    sim.now = sim.now.advance(Duration::from_millis(200));
    for conn in [a, b, a, b, a] {
        let out = sim.send(conn, rekey());
        assert!(out.is_empty(), "{out:?}");
    }
    assert_eq!(
        sim.relay.poll_timeout(),
        Some(sim.now.instant + Duration::from_millis(800))
    );
    // A join while it is pending takes the next number; the pending rekey comes after it.
    let (c, out) = sim.try_join("c", "r", full());
    assert_eq!(log(&out, a), [("join", 4)]);
    assert!(rekeys(&sim.advance(Duration::from_millis(799))).is_empty());
    let out = sim.advance(Duration::from_millis(1));
    assert_eq!(rekeys(&out), [(a, 5), (b, 5), (c, 5)], "one, to all three");
    // It names everyone who asked, once each, in order.
    assert_eq!(requesters(&out), vec![vec![pid("a"), pid("b")]; 3]);
    // Only one: the merged requests do not trickle out later.
    assert!(rekeys(&sim.advance(Duration::from_secs(10))).is_empty());
    // Once the interval has passed, a request is placed at once again, naming only its asker.
    let out = sim.send(c, rekey());
    assert_eq!(rekeys(&out), [(a, 6), (b, 6), (c, 6)]);
    assert_eq!(requesters(&out), vec![vec![pid("c")]; 3]);
}

/// The `by` of every rekey point sent.
fn requesters(out: &[Output]) -> Vec<Vec<ParticipantId>> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send {
                message: ServerMessage::Rekey(r),
                ..
            } => Some(r.by.clone()),
            _ => None,
        })
        .collect()
}

/// A committer of a full room fans out an envelope per member, a switch notice, a commit and a
/// reveal at once, while a member spams other messages: key messages have their own bucket, so
/// neither starves the other and the committer is never closed for its fan-out.
#[test]
fn key_messages_have_their_own_budget_sized_by_the_room() {
    let config = RelayConfig::default();
    let room = config.max_participants_per_room as usize;
    let mut sim = Sim::with_config(config.clone());
    let [a, b] = sim.join_all("r", ["a", "b"]);
    let members: Vec<(String, ConnId)> = std::iter::once(("b".to_owned(), b))
        .chain((2..room).map(|i| {
            let id = format!("m{i}");
            let conn = sim.join(&id, "r", full());
            (id, conn)
        }))
        .collect();
    let envelope_to = |id: &str| {
        ClientMessage::E2ee(hush_proto::E2eeTo {
            to: pid(id),
            payload: hush_proto::OpaqueBytes::new(vec![1; 99]),
        })
    };
    let broadcast = || {
        ClientMessage::E2eeBroadcast(hush_proto::E2eeBroadcast {
            payload: hush_proto::OpaqueBytes::new(vec![3; 99]),
        })
    };
    // Two membership changes of a full room at once (each: an envelope per member, then a
    // switch notice, a commit and a reveal to all), more than the general bucket holds: all
    // delivered.
    for change in 0..2 {
        for (id, conn) in &members {
            let out = sim.send(a, envelope_to(id));
            assert_eq!(
                to(&out, *conn).len(),
                1,
                "change {change}: envelope to {id}"
            );
        }
        for i in 0..3 {
            let out = sim.send(a, broadcast());
            let reached = members
                .iter()
                .filter(|(_, c)| to(&out, *c).len() == 1)
                .count();
            assert_eq!(reached, room - 1, "change {change}: broadcast {i}");
        }
    }
    let envelope = || envelope_to("b");
    // The general budget is untouched by them: pings are answered.
    let out = sim.send(a, ClientMessage::Ping(hush_proto::Ping { seq: 1 }));
    assert_eq!(to(&out, a).len(), 1);
    // And spending the general budget does not stop key messages.
    let mut limited = false;
    for _ in 0..=config.message_rate.burst {
        let out = sim.send(b, ClientMessage::Ping(hush_proto::Ping { seq: 2 }));
        limited |= matches!(to(&out, b).as_slice(),
            [ServerMessage::Error(e)] if e.code == ErrorCode::RateLimited);
    }
    assert!(limited, "b spent its general budget");
    let out = sim.send(
        b,
        ClientMessage::E2ee(hush_proto::E2eeTo {
            to: pid("a"),
            payload: hush_proto::OpaqueBytes::new(vec![2; 30]),
        }),
    );
    assert_eq!(to(&out, a).len(), 1, "b's ack still goes through");
    // The key bucket is bounded too: a flood of key messages is limited like any other.
    let burst = config.key_message_rate().burst as usize;
    let mut delivered = 0;
    for _ in 0..burst * 2 {
        delivered += to(&sim.send(a, envelope()), b).len();
    }
    assert!(delivered < burst * 2, "{delivered}");
}

#[test]
fn a_pending_rekey_of_a_room_that_emptied_is_dropped() {
    let mut sim = Sim::new();
    let a = sim.join("a", "r", full());
    sim.send(a, rekey());
    sim.now = sim.now.advance(Duration::from_millis(100));
    assert!(sim.send(a, rekey()).is_empty());
    sim.send(a, ClientMessage::Leave);
    let out = sim.advance(Duration::from_secs(1));
    assert!(rekeys(&out).is_empty(), "{out:?}");
    // The room's counter did not move for it: the next join is the next event.
    let (b, out) = sim.try_join("b", "r", full());
    assert_eq!(log(&out, b), [("joined", 4)]);
}

#[test]
fn only_members_can_ask_for_a_rekey() {
    let mut sim = Sim::new();
    let a = sim.join("a", "r", full());
    // Before join: the first message must be join, and the connection is closed.
    let stranger = sim.connect();
    let out = sim.send(stranger, rekey());
    assert_refused_fatally(&out, stranger, ErrorCode::NotJoined);
    assert!(to(&out, a).is_empty(), "the room hears nothing");
    assert_eq!(sim.relay.rooms[&rid("r")].seq(), 1);
    // A rekey request that is not JSON for the type is refused like any malformed message.
    let out = sim.send_text(a, r#"{"v":1,"type":"rekey","reason":5}"#);
    assert_refused(&out, a, ErrorCode::MalformedMessage);
    assert_eq!(sim.relay.rooms[&rid("r")].seq(), 1);
    assert_alive(&mut sim, a);
}

#[test]
fn a_rekey_flood_costs_the_room_one_point_per_interval() {
    let mut sim = Sim::new();
    let [a, b] = sim.join_all("r", ["a", "b"]);
    let mut placed = 0;
    // 10 s of one request every 20 ms from each member (under the message rate limit).
    for _ in 0..500 {
        for conn in [a, b] {
            placed += rekeys(&sim.send(conn, rekey())).len();
        }
        placed += rekeys(&sim.advance(Duration::from_millis(20))).len();
    }
    // Two members receive each point; at most one point per second.
    assert!(placed / 2 <= 11 && placed / 2 >= 9, "{placed}");
    assert_alive(&mut sim, a);
}
