//! Encrypted recording, decided here (DESIGN.md section 4): the room's recorder is a member of
//! the key exchange like any other, with `role: recorder`, on a connection of its own that no
//! socket is behind. Its `joined`, the membership events and the envelopes sealed to it go to
//! that connection as usual; the adapter ([`Output::RecordingStarted`]) writes them and the
//! tracks it is subscribed to ([`Output::StartForward`]) to disk instead of a WebSocket and a
//! PeerConnection. So the core needs no second path: routing, ordering and the membership log
//! are the ones every member gets, and the recorder's private key never comes near the relay.
//!
//! Who may start and stop: a member with the `record` grant, or the app backend (admin API);
//! both audited and announced (`recording`). A recording ends when asked, when the last
//! participant leaves, when the room closes, when a moderator removes the recorder, or when the
//! adapter cannot write ([`Relay::recording_failed`]): each time the recorder leaves the key
//! exchange, so the next epoch is one it cannot open.

use std::time::Instant;

use hush_proto::{
    ErrorCode, Grants, LeaveReason, MemberRole, OpaqueBytes, ParticipantId, RecordingEnd,
    RecordingStatus, RoomId, ServerMessage,
};

use super::outbox::Refusal;
use super::output::{Audit, ConnId, ModerationAction, Output, RecordingAction};
use super::relay::Relay;
use super::room::Newcomer;
use crate::time::Now;

/// The room's recorder as the app backend set it: an id, the X25519 public key whose private
/// half the app keeps offline, and the backend's attestation of it in the recorder role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecorderIdentity {
    /// The recorder's participant id in the room (opaque, like any `sub`).
    pub participant: ParticipantId,
    /// Its X25519 public key (32 bytes).
    pub identity_key: OpaqueBytes,
    /// The backend's recorder attestation (hush-keys `Attestation::sign_as` with
    /// `Role::Recorder`); members that require attestations refuse a recorder without one.
    pub attestation: Option<OpaqueBytes>,
}

/// A recording in progress.
#[derive(Clone, Debug)]
pub(super) struct ActiveRecording {
    /// The recorder's connection (no socket: the adapter's recording writer).
    pub(super) conn: ConnId,
}

const UNKNOWN_ROOM: Refusal = Refusal::new(ErrorCode::UnknownRoom, "no such room");

/// The shortest time between two recording starts in one room. Each start admits the recorder
/// as a member (a sender index used up, a fresh epoch sealed to everyone): a `record` grant
/// holder looping start and stop would otherwise churn the room's keys and use up its indexes.
pub(super) const RECORDING_RESTART_INTERVAL: std::time::Duration =
    std::time::Duration::from_secs(10);

impl Relay {
    /// Admin API: sets (or replaces) the room's recorder identity, creating the room (empty)
    /// if needed. A recording in progress keeps the identity it started with.
    pub fn set_recorder(
        &mut self,
        now: Now,
        room: &RoomId,
        recorder: RecorderIdentity,
    ) -> Result<(), ErrorCode> {
        if !self.rooms.contains_key(room) {
            self.configure_room(now, room.clone(), Default::default())?;
        }
        let state = self.rooms.get_mut(room).ok_or(ErrorCode::UnknownRoom)?;
        if state.closed_at.is_some() {
            return Err(ErrorCode::RoomClosed);
        }
        let digest = <sha2::Sha256 as sha2::Digest>::digest(recorder.identity_key.as_bytes());
        let key_fingerprint = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        self.out.push(Output::Audit(Audit::Moderation {
            room: room.clone(),
            moderator: None,
            action: ModerationAction::SetRecorder {
                recorder: recorder.participant.clone(),
                key_fingerprint,
            },
        }));
        state.recorder = Some(recorder);
        Ok(())
    }

    /// Admin API: starts the room's recording.
    pub fn start_recording(&mut self, now: Now, room: &RoomId) -> Result<(), ErrorCode> {
        self.start_recording_as(now.instant, room, None)
            .map_err(|r| r.code)
    }

    /// Admin API: stops the room's recording.
    pub fn stop_recording(&mut self, now: Now, room: &RoomId) -> Result<(), ErrorCode> {
        self.stop_recording_as(now.instant, room, None, RecordingEnd::Stopped)
            .map_err(|r| r.code)
    }

    /// The adapter could not go on writing the recording on `conn` (disk full, a write error,
    /// a size limit): the recorder leaves and everyone is told why. A report about a recording
    /// that already ended is ignored.
    pub fn recording_failed(&mut self, now: Now, conn: ConnId, end: RecordingEnd) {
        if let Some(room) = self.recording_room(conn) {
            let _ = self.stop_recording_as(now.instant, &room, None, end);
        }
    }

    /// The room whose recorder is on `conn`, if any.
    pub(super) fn recording_room(&self, conn: ConnId) -> Option<RoomId> {
        self.rooms
            .iter()
            .find(|(_, r)| r.recording.as_ref().is_some_and(|a| a.conn == conn))
            .map(|(id, _)| id.clone())
    }

    /// Whether `room` is being recorded now.
    pub fn is_recording(&self, room: &RoomId) -> bool {
        self.rooms.get(room).is_some_and(|r| r.recording.is_some())
    }

    pub(super) fn start_recording_as(
        &mut self,
        now: Instant,
        room_id: &RoomId,
        by: Option<ParticipantId>,
    ) -> Result<(), Refusal> {
        let refused = |relay: &mut Relay, refusal: Refusal| {
            relay.audit_recording(room_id, by.clone(), RecordingAction::Refused(refusal.code));
            Err(refusal)
        };
        if !self.config.recording {
            let r = Refusal::new(
                ErrorCode::RecordingDisabled,
                "this relay is not configured to record",
            );
            return refused(self, r);
        }
        let room = self.rooms.get(room_id).ok_or(UNKNOWN_ROOM)?;
        if room.closed_at.is_some() {
            return refused(
                self,
                Refusal::new(ErrorCode::RoomClosed, "the room was closed"),
            );
        }
        if room.recording.is_some() {
            let r = Refusal::new(ErrorCode::AlreadyRecording, "the room is being recorded");
            return refused(self, r);
        }
        let Some(recorder) = room.recorder.clone() else {
            let r = Refusal::new(
                ErrorCode::RecorderNotConfigured,
                "the app has set no recorder for this room",
            );
            return refused(self, r);
        };
        if room.participants().next().is_none() {
            let r = Refusal::new(ErrorCode::RoomEmpty, "nobody in the room to record");
            return refused(self, r);
        }
        if room
            .recording_started_at
            .is_some_and(|t| now < t + RECORDING_RESTART_INTERVAL)
        {
            let r = Refusal::new(
                ErrorCode::RateLimited,
                "a recording started here less than 10 s ago",
            );
            return refused(self, r);
        }
        if room.next_sender_index >= self.config.max_sender_indexes {
            let r = Refusal::new(
                ErrorCode::RoomFull,
                "the room has used all its sender indexes",
            );
            return refused(self, r);
        }
        if room.member(&recorder.participant).is_some() {
            let r = Refusal::new(
                ErrorCode::AlreadyRecording,
                "the recorder's id is in use in the room",
            );
            return refused(self, r);
        }
        let conn = self.fresh_conn();
        // First, so the adapter has its writer before the recorder's `joined` is sent to it.
        self.out.push(Output::RecordingStarted {
            room: room_id.clone(),
            conn,
            recorder: recorder.participant.clone(),
            identity_key: recorder.identity_key.clone(),
        });
        let Some(room) = self.rooms.get_mut(room_id) else {
            return Err(UNKNOWN_ROOM);
        };
        let newcomer = Newcomer {
            id: recorder.participant,
            conn,
            identity_key: recorder.identity_key,
            attestation: recorder.attestation,
            grants: Grants {
                subscribe: true,
                ..Grants::default()
            },
            role: MemberRole::Recorder,
        };
        room.admit(newcomer, &mut self.out);
        room.recording = Some(ActiveRecording { conn });
        room.recording_started_at = Some(now);
        let status = ServerMessage::Recording(RecordingStatus {
            active: true,
            by: by.clone(),
            reason: None,
        });
        room.broadcast(&mut self.out, Some(conn), &status);
        self.audit_recording(room_id, by, RecordingAction::Started);
        Ok(())
    }

    pub(super) fn stop_recording_as(
        &mut self,
        now: Instant,
        room_id: &RoomId,
        by: Option<ParticipantId>,
        end: RecordingEnd,
    ) -> Result<(), Refusal> {
        let room = self.rooms.get_mut(room_id).ok_or(UNKNOWN_ROOM)?;
        let Some(active) = room.recording.take() else {
            let r = Refusal::new(ErrorCode::NotRecording, "the room is not being recorded");
            self.audit_recording(room_id, by, RecordingAction::Refused(r.code));
            return Err(r);
        };
        room.remove_member(now, active.conn, LeaveReason::Left, true, &mut self.out);
        self.out.push(Output::RecordingStopped {
            conn: active.conn,
            end,
        });
        let status = ServerMessage::Recording(RecordingStatus {
            active: false,
            by: by.clone(),
            reason: Some(end),
        });
        room.broadcast(&mut self.out, None, &status);
        self.audit_recording(room_id, by, RecordingAction::Stopped(end));
        Ok(())
    }

    /// After a participant left `room_id`: a recording with nobody left to record ends.
    pub(super) fn stop_recording_if_empty(&mut self, now: Instant, room_id: &RoomId) {
        let empty = self
            .rooms
            .get(room_id)
            .is_some_and(|r| r.recording.is_some() && r.participants().next().is_none());
        if empty {
            let _ = self.stop_recording_as(now, room_id, None, RecordingEnd::RoomEmpty);
        }
    }

    fn audit_recording(
        &mut self,
        room: &RoomId,
        by: Option<ParticipantId>,
        action: RecordingAction,
    ) {
        self.out.push(Output::Audit(Audit::Recording {
            room: room.clone(),
            by,
            action,
        }));
    }
}
