//! Recording in the routing core: who may start and stop it, the recorder as a member on a
//! connection of its own, and every way a recording ends.

use std::time::Duration;

use hush_proto::{
    ClientMessage, ErrorCode, ForceDisconnect, MemberRole, OpaqueBytes, Record, RecordAction,
    RecordingEnd, ServerMessage, Source,
};

use super::*;
use crate::routing::{Audit, ModerationAction, RecorderIdentity, RecordingAction};

fn recording_sim() -> Sim {
    Sim::with_config(RelayConfig {
        recording: true,
        ..RelayConfig::default()
    })
}

fn recorder() -> RecorderIdentity {
    RecorderIdentity {
        participant: pid("rec"),
        identity_key: OpaqueBytes::new([9u8; 32]),
        attestation: Some(OpaqueBytes::new([1u8; 72])),
    }
}

fn recorder_grant() -> Grants {
    Grants {
        record: true,
        ..full()
    }
}

fn record(action: RecordAction) -> ClientMessage {
    ClientMessage::Record(Record { action })
}

/// The recorder's connection, from the output that started it.
fn started(out: &[Output]) -> ConnId {
    out.iter()
        .find_map(|o| match o {
            Output::RecordingStarted { conn, .. } => Some(*conn),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no recording started: {out:?}"))
}

fn stopped(out: &[Output]) -> Option<RecordingEnd> {
    out.iter().find_map(|o| match o {
        Output::RecordingStopped { end, .. } => Some(*end),
        _ => None,
    })
}

fn audits(out: &[Output]) -> Vec<RecordingAction> {
    out.iter()
        .filter_map(|o| match o {
            Output::Audit(Audit::Recording { action, .. }) => Some(*action),
            _ => None,
        })
        .collect()
}

/// A room "r" with a recorder set, alice (record grant, publishing her camera) and bob.
fn recorded_room() -> (Sim, ConnId, ConnId) {
    let mut sim = recording_sim();
    let a = sim.join("alice", "r", recorder_grant());
    let b = sim.join("bob", "r", full());
    sim.send(a, publish(Source::Camera));
    sim.relay
        .set_recorder(sim.now, &rid("r"), recorder())
        .unwrap();
    (sim, a, b)
}

#[test]
fn a_member_with_the_grant_starts_it_and_everyone_sees_the_recorder_join() {
    let (mut sim, a, b) = recorded_room();
    let out = sim.send(a, record(RecordAction::Start));
    let rec = started(&out);
    // The recorder gets its snapshot and the room's track, like a subscriber.
    assert!(
        matches!(to(&out, rec).first(), Some(ServerMessage::Joined(j)) if j.participants.len() == 2)
    );
    assert!(out.iter().any(|o| matches!(o,
        Output::StartForward { subscriber, .. } if *subscriber == rec)));
    for conn in [a, b] {
        let msgs = to(&out, conn);
        assert!(msgs.iter().any(|m| matches!(m,
            ServerMessage::ParticipantJoined(p) if p.participant.role == MemberRole::Recorder)));
        assert!(msgs.iter().any(|m| matches!(m,
            ServerMessage::Recording(r) if r.active && r.by == Some(pid("alice")))));
    }
    assert_eq!(audits(&out), [RecordingAction::Started]);
    // Envelopes to the recorder reach its connection.
    let e2ee = ClientMessage::E2ee(hush_proto::E2eeTo {
        to: pid("rec"),
        payload: OpaqueBytes::new([1, 2, 3]),
    });
    let out = sim.send(a, e2ee);
    assert!(matches!(to(&out, rec).as_slice(), [ServerMessage::E2ee(e)] if e.from == pid("alice")));
    // The recorder is not a participant in the counts.
    assert_eq!(sim.relay.participant_count(&rid("r")), Some(2));
    // A second start is refused; a stop ends it.
    let out = sim.send(b, record(RecordAction::Start));
    assert_refused(&out, b, ErrorCode::RecordNotAllowed);
    let out = sim.send(a, record(RecordAction::Start));
    assert_refused(&out, a, ErrorCode::AlreadyRecording);
    let out = sim.send(a, record(RecordAction::Stop));
    assert_eq!(stopped(&out), Some(RecordingEnd::Stopped));
    assert!(out.iter().any(|o| matches!(o,
        Output::StopForward { subscriber, .. } if *subscriber == rec)));
    for conn in [a, b] {
        assert!(to(&out, conn).iter().any(|m| matches!(m,
            ServerMessage::ParticipantLeft(l) if l.participant == pid("rec"))));
    }
    assert!(!sim.relay.is_recording(&rid("r")));
}

#[test]
fn every_refusal_has_its_code_and_changes_nothing() {
    let mut sim = Sim::new(); // no recording directory
    let a = sim.join("alice", "r", recorder_grant());
    let out = sim.send(a, record(RecordAction::Start));
    assert_refused(&out, a, ErrorCode::RecordingDisabled);
    let mut sim = recording_sim();
    let a = sim.join("alice", "r", recorder_grant());
    let b = sim.join("bob", "r", full());
    let out = sim.send(a, record(RecordAction::Start));
    assert_refused(&out, a, ErrorCode::RecorderNotConfigured);
    sim.relay
        .set_recorder(sim.now, &rid("r"), recorder())
        .unwrap();
    // Who will be sealed the room's epochs is in the audit trail.
    let set = sim.drain();
    assert!(
        set.iter().any(|o| matches!(o,
            Output::Audit(Audit::Moderation {
                moderator: None,
                action: ModerationAction::SetRecorder { recorder, key_fingerprint },
                ..
            }) if *recorder == pid("rec") && key_fingerprint.len() == 16)),
        "{set:?}"
    );
    let out = sim.send(b, record(RecordAction::Start));
    assert_refused(&out, b, ErrorCode::RecordNotAllowed);
    assert_eq!(
        audits(&out),
        [RecordingAction::Refused(ErrorCode::RecordNotAllowed)]
    );
    let out = sim.send(a, record(RecordAction::Stop));
    assert_refused(&out, a, ErrorCode::NotRecording);
    // The app backend cannot record an empty room.
    sim.relay
        .set_recorder(sim.now, &rid("empty"), recorder())
        .unwrap();
    assert_eq!(
        sim.relay.start_recording(sim.now, &rid("empty")),
        Err(ErrorCode::RoomEmpty)
    );
    assert!(
        sim.drain()
            .iter()
            .all(|o| !matches!(o, Output::RecordingStarted { .. }))
    );
}

#[test]
fn nobody_can_join_as_the_recorder_while_it_records() {
    let (mut sim, a, _b) = recorded_room();
    sim.send(a, record(RecordAction::Start));
    let out = sim.join_refused("rec", "r", ErrorCode::AlreadyJoined);
    assert!(stopped(&out).is_none());
    assert!(sim.relay.is_recording(&rid("r")));
}

#[test]
fn the_recording_ends_with_the_last_participant_and_with_the_room() {
    let (mut sim, a, b) = recorded_room();
    sim.send(a, record(RecordAction::Start));
    let out = sim.send(a, ClientMessage::Leave);
    assert!(stopped(&out).is_none(), "bob is still there");
    let out = sim.send(b, ClientMessage::Leave);
    assert_eq!(stopped(&out), Some(RecordingEnd::RoomEmpty));

    let (mut sim, a, _b) = recorded_room();
    sim.send(a, record(RecordAction::Start));
    sim.relay.close_room(sim.now, &rid("r")).unwrap();
    assert_eq!(stopped(&sim.drain()), Some(RecordingEnd::RoomEmpty));
}

/// Longer than the shortest time between two recording starts in a room.
const RESTART: Duration = Duration::from_secs(11);

#[test]
fn a_recording_cannot_be_restarted_in_a_loop() {
    let (mut sim, a, _b) = recorded_room();
    started(&sim.send(a, record(RecordAction::Start)));
    sim.send(a, record(RecordAction::Stop));
    // At once again: refused (each start is a member, a sender index and a fresh epoch).
    let out = sim.send(a, record(RecordAction::Start));
    assert_refused(&out, a, ErrorCode::RateLimited);
    assert!(!sim.relay.is_recording(&rid("r")));
    // Ten seconds on: fine.
    sim.advance(RESTART);
    started(&sim.send(a, record(RecordAction::Start)));
}

#[test]
fn removing_the_recorder_stops_it_and_a_write_failure_is_told_to_everyone() {
    let (mut sim, a, b) = recorded_room();
    let out = sim.send(a, record(RecordAction::Start));
    let rec = started(&out);
    let kick = ClientMessage::ForceDisconnect(ForceDisconnect {
        participant: pid("rec"),
    });
    let m = sim.join("mod", "r", moderator());
    let out = sim.send(m, kick);
    assert_eq!(stopped(&out), Some(RecordingEnd::Removed));

    sim.advance(RESTART);
    sim.send(a, record(RecordAction::Start));
    sim.relay
        .recording_failed(sim.now, rec, RecordingEnd::DiskFull);
    assert!(
        sim.relay.is_recording(&rid("r")),
        "a stale report changes nothing"
    );
    sim.send(a, record(RecordAction::Stop));
    sim.advance(RESTART);
    let out = sim.send(a, record(RecordAction::Start));
    let rec = started(&out);
    sim.advance(Duration::from_millis(10));
    sim.relay
        .recording_failed(sim.now, rec, RecordingEnd::DiskFull);
    let out = sim.drain();
    assert_eq!(stopped(&out), Some(RecordingEnd::DiskFull));
    for conn in [a, b] {
        assert!(to(&out, conn).iter().any(|m| matches!(m,
            ServerMessage::Recording(r) if !r.active && r.reason == Some(RecordingEnd::DiskFull))));
    }
    assert_eq!(
        audits(&out),
        [RecordingAction::Stopped(RecordingEnd::DiskFull)]
    );
}
