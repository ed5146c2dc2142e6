//! Moderator commands over signaling and the admin API.

use std::time::Duration;

use hush_proto::{
    ClientMessage, ErrorCode, ForceDisconnect, ForceUnpublish, LeaveReason, LockRoom,
    ServerMessage, Source, TrackId,
};

use super::*;
use crate::routing::{Audit, ModerationAction};

fn kick(who: &str) -> ClientMessage {
    ClientMessage::ForceDisconnect(ForceDisconnect {
        participant: pid(who),
    })
}

#[test]
fn moderator_commands_need_the_moderator_grant() {
    let (mut sim, [a, b]) = room_of([("a", full()), ("b", full())]);
    sim.send(b, publish(Source::Camera));
    for command in [
        kick("b"),
        ClientMessage::ForceUnpublish(ForceUnpublish {
            participant: pid("b"),
            source: Source::Camera,
        }),
        ClientMessage::LockRoom(LockRoom { locked: true }),
        ClientMessage::CloseRoom,
    ] {
        let name = command.type_name();
        let out = sim.send(a, command);
        assert_refused(&out, a, ErrorCode::ModeratorRequired);
        assert!(to(&out, b).is_empty(), "nothing happened to b");
        // The attempt is in the audit trail.
        assert!(
            out.contains(&Output::Audit(Audit::Moderation {
                room: RoomId::new("r").unwrap(),
                moderator: Some(pid("a")),
                action: ModerationAction::Refused {
                    command: name,
                    code: ErrorCode::ModeratorRequired,
                },
            })),
            "{name}: {out:?}"
        );
    }
    assert_eq!(sim.relay.subscribers(b, TrackId(0)), [a]);
    assert_alive(&mut sim, b);
}

#[test]
fn force_disconnect_is_a_removal_and_a_leave() {
    let (mut sim, [m, b, c]) = room_of([("mod", moderator()), ("b", full()), ("c", full())]);
    sim.send(b, publish(Source::Camera));
    let out = sim.send(m, kick("b"));
    assert_refused_fatally(&out, b, ErrorCode::Removed);
    for conn in [m, c] {
        match to(&out, conn).as_slice() {
            [
                ServerMessage::TrackUnpublished(_),
                ServerMessage::ParticipantLeft(e),
            ] => {
                assert_eq!(
                    (e.participant.as_str(), e.reason, e.seq),
                    ("b", LeaveReason::Removed, 4)
                );
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(out.contains(&Output::Audit(Audit::Moderation {
        room: rid("r"),
        moderator: Some(pid("mod")),
        action: ModerationAction::Remove(pid("b")),
    })));
    assert_eq!(sim.relay.participant_count(&rid("r")), Some(2));

    // Someone in another room cannot be reached.
    let x = sim.join("x", "elsewhere", full());
    let out = sim.send(m, kick("x"));
    assert_refused(&out, m, ErrorCode::UnknownParticipant);
    assert!(to(&out, x).is_empty());
}

/// A removal outlives the connection: the removed participant cannot come back with a token
/// issued before it (one it already held, or one without `iat`), only with one the backend
/// issues after it; and the memory ends once no earlier token can still be valid.
#[test]
fn a_removed_participant_needs_a_token_issued_after_the_removal() {
    let (mut sim, [m, b]) = room_of([("mod", moderator()), ("b", full())]);
    let held = sim.token("b", "r", full());
    sim.advance(Duration::from_secs(5));
    let out = sim.send(m, kick("b"));
    assert_refused_fatally(&out, b, ErrorCode::Removed);
    // The token b held from before; the audit trail says who tried (it named nobody).
    let (conn, out) = sim.try_join_with(held, "r");
    assert_refused_fatally(&out, conn, ErrorCode::Removed);
    assert!(out.contains(&Output::Audit(Audit::JoinRefused {
        conn,
        code: ErrorCode::Removed,
        who: Some((rid("r"), pid("b"))),
    })));
    // One issued in the second of the removal is no proof either; nor one without `iat`.
    sim.join_refused("b", "r", ErrorCode::Removed);
    let (conn, out) = join_without_iat(&mut sim, "b");
    assert_refused_fatally(&out, conn, ErrorCode::Removed);
    assert_eq!(sim.relay.participant_count(&rid("r")), Some(1));
    // Others, and b in another room, are not concerned.
    sim.join("c", "r", full());
    sim.join("b", "elsewhere", full());
    // A token issued within the clock leeway (30 s) of the removal could have been minted
    // before it by a backend clock running ahead: refused too.
    sim.advance(Duration::from_secs(30));
    sim.join_refused("b", "r", ErrorCode::Removed);
    // The backend issues b a new token past that: b is back. Tokens from before stay refused
    // (one without `iat` here), so b cannot swap to grants it held before.
    sim.advance(Duration::from_secs(1));
    let b2 = sim.join("b", "r", full());
    let (conn, out) = join_without_iat(&mut sim, "b");
    assert_refused_fatally(&out, conn, ErrorCode::Removed);
    assert_alive(&mut sim, b2);
}

/// The admin API's removal is remembered the same way, until no token issued before it can
/// still be valid (the lifetime cap, 3600 s, plus 30 s of leeway at each end).
#[test]
fn an_admin_removal_is_remembered_until_earlier_tokens_expire() {
    let (mut sim, [_m, b]) = room_of([("mod", moderator()), ("b", full())]);
    sim.relay
        .remove_participant(sim.now, &rid("r"), &pid("b"))
        .unwrap();
    let out = sim.drain();
    assert_refused_fatally(&out, b, ErrorCode::Removed);
    sim.advance(Duration::from_secs(3659));
    let (conn, out) = join_without_iat(&mut sim, "b");
    assert_refused_fatally(&out, conn, ErrorCode::Removed);
    sim.advance(Duration::from_secs(1));
    assert_joined(&mut sim, "b");
}

/// The backend removes a participant whose connection dropped a moment before: the removal is
/// remembered all the same (it was refused, `unknown_participant`, and nothing remembered), so
/// the token it held from before does not bring it back. A moderator in the call still
/// removes only members.
#[test]
fn the_backend_removes_a_participant_who_is_away_for_a_moment() {
    let (mut sim, [m, b]) = room_of([("mod", moderator()), ("b", full())]);
    let held = sim.token("b", "r", full());
    sim.send(b, ClientMessage::Leave);
    sim.advance(Duration::from_secs(5));
    let out = sim.send(m, kick("b"));
    assert_refused(&out, m, ErrorCode::UnknownParticipant);
    assert_eq!(
        sim.relay.remove_participant(sim.now, &rid("r"), &pid("b")),
        Ok(())
    );
    assert!(sim.drain().contains(&Output::Audit(Audit::Moderation {
        room: rid("r"),
        moderator: None,
        action: ModerationAction::Remove(pid("b")),
    })));
    let (conn, out) = sim.try_join_with(held, "r");
    assert_refused_fatally(&out, conn, ErrorCode::Removed);
    sim.advance(Duration::from_secs(31));
    sim.join("b", "r", full());
}

/// A closed room is forgotten after 10 minutes, while a token issued before the close can be
/// valid for an hour: such a token opened the room again (it was admitted). It is refused
/// (`room_closed`) until a token issued after the close, past the clock leeway.
#[test]
fn a_closed_room_does_not_reopen_with_a_token_issued_before_the_close() {
    let (mut sim, [a]) = room_of([("a", full())]);
    let held = sim.token("b", "r", full());
    sim.advance(Duration::from_secs(5));
    assert_eq!(sim.relay.close_room(sim.now, &rid("r")), Ok(()));
    assert_refused_fatally(&sim.drain(), a, ErrorCode::RoomClosed);
    sim.advance(Duration::from_secs(601));
    assert_eq!(sim.relay.room_count(), 0, "forgotten");
    let (conn, out) = sim.try_join_with(held, "r");
    assert_refused_fatally(&out, conn, ErrorCode::RoomClosed);
    let (conn, out) = join_without_iat(&mut sim, "c");
    assert_refused_fatally(&out, conn, ErrorCode::RoomClosed);
    // Other rooms are not concerned; a token issued after the close opens it.
    sim.join("b", "elsewhere", full());
    sim.join("b", "r", full());
}

/// The backend closes a room the relay does not hold (empty and forgotten, or never opened),
/// and removes someone from one: both are kept (they answered `unknown_room` and remembered
/// nothing, so the tokens held from before opened the room again).
#[test]
fn the_backend_closes_and_removes_in_a_room_the_relay_does_not_hold() {
    let mut sim = Sim::new();
    let held = sim.token("b", "gone", full());
    let held_c = sim.token("c", "away", full());
    sim.advance(Duration::from_secs(5));
    assert_eq!(sim.relay.close_room(sim.now, &rid("gone")), Ok(()));
    let state = sim.relay.room_state(&rid("gone")).expect("held, closed");
    assert!(state.closed && state.participants == 0);
    let (conn, out) = sim.try_join_with(held, "gone");
    assert_refused_fatally(&out, conn, ErrorCode::RoomClosed);
    assert_eq!(
        sim.relay
            .remove_participant(sim.now, &rid("away"), &pid("c")),
        Ok(())
    );
    let (conn, out) = sim.try_join_with(held_c, "away");
    assert_refused_fatally(&out, conn, ErrorCode::Removed);
}

/// `who` joins room "r" with a token that has no `iat`.
fn join_without_iat(sim: &mut Sim, who: &str) -> (ConnId, Vec<Output>) {
    let token = sim.token_without_iat(who, "r");
    sim.try_join_with(token, "r")
}

fn assert_joined(sim: &mut Sim, who: &str) {
    let (conn, out) = join_without_iat(sim, who);
    assert!(
        matches!(to(&out, conn).first(), Some(ServerMessage::Joined(_))),
        "{out:?}"
    );
}

#[test]
fn force_unpublish() {
    let (mut sim, [m, b]) = room_of([("mod", moderator()), ("b", full())]);
    sim.send(b, publish(Source::Screen));
    let command = ClientMessage::ForceUnpublish(ForceUnpublish {
        participant: pid("b"),
        source: Source::Screen,
    });
    let out = sim.send(m, command.clone());
    assert!(out.contains(&Output::StopForward {
        publisher: b,
        track: TrackId(0),
        subscriber: m
    }));
    assert!(matches!(
        to(&out, b).as_slice(),
        [ServerMessage::TrackUnpublished(_)]
    ));
    let out = sim.send(m, command);
    assert_refused(&out, m, ErrorCode::NotPublished);
    assert_alive(&mut sim, b);
    // Sticky: b cannot just publish its screen again on this connection; its camera it can.
    let out = sim.send(b, publish(Source::Screen));
    assert_refused(&out, b, ErrorCode::SourceNotAllowed);
    let out = sim.send(b, publish(Source::Camera));
    assert!(
        to(&out, b)
            .iter()
            .all(|m| !matches!(m, ServerMessage::Error(_))),
        "{out:?}"
    );
}

#[test]
fn a_locked_room_refuses_newcomers_but_not_its_members() {
    let (mut sim, [m, b]) = room_of([("mod", moderator()), ("b", full())]);
    let out = sim.send(m, ClientMessage::LockRoom(LockRoom { locked: true }));
    assert_eq!(
        to(&out, b),
        [&ServerMessage::RoomLocked(LockRoom { locked: true })]
    );

    let out = sim.join_refused("newcomer", "r", ErrorCode::RoomLocked);
    assert!(to(&out, b).is_empty());
    // A member reconnecting is no newcomer.
    sim.join("b", "r", full());

    sim.send(m, ClientMessage::LockRoom(LockRoom { locked: false }));
    sim.join("newcomer", "r", full());
}

#[test]
fn closing_a_room_removes_everyone_and_refuses_joins_until_forgotten() {
    let (mut sim, [m, b]) = room_of([("mod", moderator()), ("b", full())]);
    sim.send(b, publish(Source::Camera));
    let out = sim.send(m, ClientMessage::CloseRoom);
    for conn in [m, b] {
        assert_refused_fatally(&out, conn, ErrorCode::RoomClosed);
    }
    assert!(out.contains(&Output::Unpublished {
        publisher: b,
        track: TrackId(0)
    }));
    assert_eq!(sim.relay.participant_count(&rid("r")), Some(0));

    sim.join_refused("late", "r", ErrorCode::RoomClosed);
    sim.advance(Duration::from_secs(600));
    assert_eq!(sim.relay.room_count(), 0);
    sim.join("late", "r", full());
}

#[test]
fn the_admin_api_acts_without_a_moderator() {
    let (mut sim, [a, b]) = room_of([("a", full()), ("b", full())]);
    assert_eq!(sim.relay.set_locked(&rid("r"), true), Ok(()));
    assert_eq!(
        sim.relay.remove_participant(sim.now, &rid("r"), &pid("b")),
        Ok(())
    );
    let out = sim.drain();
    assert_refused_fatally(&out, b, ErrorCode::Removed);
    assert!(out.contains(&Output::Audit(Audit::Moderation {
        room: rid("r"),
        moderator: None,
        action: ModerationAction::Remove(pid("b")),
    })));
    // b is gone: removing it again is remembered again, not refused (see below).
    assert_eq!(
        sim.relay.remove_participant(sim.now, &rid("r"), &pid("b")),
        Ok(())
    );
    // A room the relay does not hold: remembered all the same (see below).
    assert_eq!(
        sim.relay
            .remove_participant(sim.now, &rid("nope"), &pid("b")),
        Ok(())
    );
    assert_eq!(
        sim.relay.set_locked(&rid("nope"), true),
        Err(ErrorCode::UnknownRoom)
    );
    assert_eq!(
        sim.relay
            .force_unpublish(&rid("r"), &pid("a"), Source::Camera),
        Err(ErrorCode::NotPublished)
    );
    assert_eq!(sim.relay.close_room(sim.now, &rid("r")), Ok(()));
    assert_refused_fatally(&sim.drain(), a, ErrorCode::RoomClosed);
}
