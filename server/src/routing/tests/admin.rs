//! The app backend's commands ([`crate::routing::AdminCommand`]), decided in the core.

use std::time::Duration;

use hush_proto::{ErrorCode, LeaveReason, ServerMessage};

use super::*;
use crate::routing::{AdminCommand, Audit, ModerationAction, RoomSettings};

#[test]
fn commands_run_in_the_core_and_changes_are_audited() {
    let mut sim = Sim::new();
    let now = sim.now;
    let room = rid("r");
    let info = sim.relay.admin(now, AdminCommand::Info(room.clone()));
    assert_eq!(info, Err(ErrorCode::UnknownRoom));
    let lock = sim.relay.admin(now, AdminCommand::Lock(room.clone(), true));
    assert_eq!(lock, Err(ErrorCode::UnknownRoom));
    assert!(sim.drain().is_empty(), "a refusal does nothing");

    let settings = RoomSettings {
        max_participants: Some(500),
        empty_timeout: Some(Duration::from_secs(9)),
    };
    let state = sim
        .relay
        .admin(now, AdminCommand::Configure(room.clone(), settings))
        .unwrap();
    // Capped by the server's limit.
    assert_eq!(state.max_participants, 100);
    assert_eq!((state.participants, state.empty_timeout_secs), (0, 9));
    assert_eq!(state.room, room);
    let out = sim.drain();
    assert!(
        matches!(
            out.as_slice(),
            [Output::Audit(Audit::Moderation {
                moderator: None,
                action: ModerationAction::Configure(s),
                ..
            })] if *s == settings
        ),
        "{out:?}"
    );
    let state = sim
        .relay
        .admin(now, AdminCommand::Lock(room.clone(), true))
        .unwrap();
    assert!(state.locked && !state.closed);
    // Nobody named "p" is in the room: remembered as removed all the same.
    let removed = sim.relay.admin(now, AdminCommand::Remove(room, pid("p")));
    assert!(removed.is_ok(), "{removed:?}");
    sim.join_refused("p", "r", ErrorCode::Removed);
}

#[test]
fn a_removal_by_the_backend_is_a_leave_the_others_see() {
    let mut sim = Sim::new();
    let a = sim.join("a", "r", full());
    let b = sim.join("b", "r", full());
    let state = sim
        .relay
        .admin(sim.now, AdminCommand::Remove(rid("r"), pid("b")))
        .unwrap();
    assert_eq!(state.participants, 1);
    let out = sim.drain();
    assert!(closed(&out, b), "{out:?}");
    assert!(
        to(&out, a).iter().any(|m| matches!(
            m,
            ServerMessage::ParticipantLeft(left)
                if left.participant == pid("b") && left.reason == LeaveReason::Removed
        )),
        "{out:?}"
    );
    assert_eq!(sim.relay.room_state(&rid("r")), Some(state));
    assert_alive(&mut sim, a);
}

#[test]
fn a_closed_room_reports_closed_and_refuses_configuration() {
    let mut sim = Sim::new();
    let a = sim.join("a", "r", full());
    let state = sim
        .relay
        .admin(sim.now, AdminCommand::Close(rid("r")))
        .unwrap();
    assert!(state.closed);
    assert_eq!(state.participants, 0);
    assert!(closed(&sim.drain(), a));
    let again = sim.relay.admin(
        sim.now,
        AdminCommand::Configure(rid("r"), RoomSettings::default()),
    );
    assert_eq!(again, Err(ErrorCode::RoomClosed));
}
