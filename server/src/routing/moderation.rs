//! Moderation: by a member with the `moderator` grant (over signaling) or by the app's backend
//! (the admin API, through the public methods here). A removal is a leave: the others get
//! `participant_left` with reason `removed` and move to a new epoch.

use hush_proto::{
    ErrorCode, LeaveReason, LockRoom, ParticipantId, RecordingEnd, RoomId, ServerMessage, Source,
};

use super::outbox::Refusal;
use super::output::{Audit, ModerationAction, Output};
use super::relay::Relay;
use crate::time::Now;

const UNKNOWN_ROOM: Refusal = Refusal::new(ErrorCode::UnknownRoom, "no such room");
const UNKNOWN_PARTICIPANT: Refusal = Refusal::new(
    ErrorCode::UnknownParticipant,
    "no such participant in your room",
);

impl Relay {
    /// Admin API: removes a participant from a room; one not in it now is remembered as
    /// removed all the same (no coming back with a token issued before).
    pub fn remove_participant(
        &mut self,
        now: Now,
        room: &RoomId,
        participant: &ParticipantId,
    ) -> Result<(), ErrorCode> {
        self.remove_participant_as(now, room, participant, None)
            .map_err(|r| r.code)
    }

    /// Admin API: unpublishes a participant's track.
    pub fn force_unpublish(
        &mut self,
        room: &RoomId,
        participant: &ParticipantId,
        source: Source,
    ) -> Result<(), ErrorCode> {
        self.unpublish_as(room, participant, source, None)
            .map_err(|r| r.code)
    }

    /// Admin API: locks or unlocks a room.
    pub fn set_locked(&mut self, room: &RoomId, locked: bool) -> Result<(), ErrorCode> {
        self.set_locked_as(room, locked, None).map_err(|r| r.code)
    }

    /// Admin API: closes a room, removing everyone; it refuses joins until it is forgotten,
    /// and after that every token issued before the close.
    pub fn close_room(&mut self, now: Now, room: &RoomId) -> Result<(), ErrorCode> {
        self.close_room_as(now, room, None).map_err(|r| r.code)
    }

    fn audit(&mut self, room: &RoomId, moderator: Option<ParticipantId>, action: ModerationAction) {
        let audit = Audit::Moderation {
            room: room.clone(),
            moderator,
            action,
        };
        self.out.push(Output::Audit(audit));
    }

    pub(super) fn remove_participant_as(
        &mut self,
        clock: Now,
        room_id: &RoomId,
        target: &ParticipantId,
        by: Option<ParticipantId>,
    ) -> Result<(), Refusal> {
        let member = match self.rooms.get(room_id) {
            Some(room) => room.member(target).map(|m| {
                let recorder = room.recording.as_ref().is_some_and(|r| r.conn == m.conn);
                (m.conn, recorder)
            }),
            None if by.is_some() => return Err(UNKNOWN_ROOM),
            None => None,
        };
        let Some((conn, recorder)) = member else {
            // The backend's word holds for someone not in the room now (its connection
            // dropped a moment ago, say, or the room, empty, was forgotten): remembered, so it
            // cannot come back with a token issued before this. A moderator in the call
            // removes only members.
            if by.is_some() {
                return Err(UNKNOWN_PARTICIPANT);
            }
            let horizon = self.removal_horizon();
            self.removals
                .remember(clock.unix_secs(), horizon, room_id, target);
            self.audit(room_id, None, ModerationAction::Remove(target.clone()));
            return Ok(());
        };
        let now = clock.instant;
        self.audit(
            room_id,
            by.clone(),
            ModerationAction::Remove(target.clone()),
        );
        if recorder {
            // The recorder has no socket to close: removing it ends the recording.
            return self.stop_recording_as(now, room_id, by, RecordingEnd::Removed);
        }
        // Remembered past the connection: no coming back with a token issued before now.
        let horizon = self.removal_horizon();
        self.removals
            .remember(clock.unix_secs(), horizon, room_id, target);
        let message = "a moderator removed you from the room";
        self.close_with_error(now, conn, ErrorCode::Removed, message, LeaveReason::Removed);
        Ok(())
    }

    /// How long a removal is remembered (seconds): as long as a token issued before it can
    /// still be valid, the token lifetime limit plus the clock leeway at both ends.
    pub(super) fn removal_horizon(&self) -> u64 {
        let policy = self.tokens.policy();
        policy
            .max_lifetime_secs
            .saturating_add(policy.leeway_secs.saturating_mul(2))
    }

    pub(super) fn unpublish_as(
        &mut self,
        room_id: &RoomId,
        target: &ParticipantId,
        source: Source,
        by: Option<ParticipantId>,
    ) -> Result<(), Refusal> {
        let room = self.rooms.get_mut(room_id).ok_or(UNKNOWN_ROOM)?;
        let conn = room.member(target).ok_or(UNKNOWN_PARTICIPANT)?.conn;
        room.unpublish(conn, source, true, &mut self.out)?;
        // Sticky for this connection: the source leaves the member's grants, so it cannot
        // simply publish again (`source_not_allowed`); a new token from the app backend, at
        // its next join, decides afresh.
        if let Some(m) = room.members.iter_mut().find(|m| m.conn == conn) {
            let grants = &mut m.info.grants;
            let left: Vec<Source> = Source::ALL
                .into_iter()
                .filter(|s| *s != source && grants.may_publish(*s))
                .collect();
            grants.sources = Some(left);
        }
        self.audit(
            room_id,
            by,
            ModerationAction::Unpublish(target.clone(), source),
        );
        Ok(())
    }

    pub(super) fn set_locked_as(
        &mut self,
        room_id: &RoomId,
        locked: bool,
        by: Option<ParticipantId>,
    ) -> Result<(), Refusal> {
        let room = self.rooms.get_mut(room_id).ok_or(UNKNOWN_ROOM)?;
        if room.closed_at.is_some() {
            return Err(Refusal::new(ErrorCode::RoomClosed, "the room was closed"));
        }
        room.locked = locked;
        room.broadcast(
            &mut self.out,
            None,
            &ServerMessage::RoomLocked(LockRoom { locked }),
        );
        self.audit(room_id, by, ModerationAction::Lock(locked));
        Ok(())
    }

    pub(super) fn close_room_as(
        &mut self,
        clock: Now,
        room_id: &RoomId,
        by: Option<ParticipantId>,
    ) -> Result<(), Refusal> {
        let now = clock.instant;
        if !self.rooms.contains_key(room_id) {
            // The backend closes a room the relay does not hold now (never opened, or empty
            // and forgotten): held closed all the same, and its close remembered after.
            if by.is_some() {
                return Err(UNKNOWN_ROOM);
            }
            if let Err(full) = self.ensure_room(room_id, now) {
                // Remembered even when the relay has no room to hold it closed.
                let horizon = self.removal_horizon();
                self.removals
                    .remember_close(clock.unix_secs(), horizon, room_id);
                return Err(full);
            }
        }
        let recording = self
            .rooms
            .get(room_id)
            .ok_or(UNKNOWN_ROOM)?
            .recording
            .is_some();
        if recording {
            self.stop_recording_as(now, room_id, by.clone(), RecordingEnd::RoomEmpty)?;
        }
        let room = self.rooms.get_mut(room_id).ok_or(UNKNOWN_ROOM)?;
        if room.closed_at.is_some() {
            return Ok(());
        }
        room.closed_at = Some(now);
        room.locked = true;
        // Remembered past the room: no reopening it with a token issued before the close.
        let horizon = self.removal_horizon();
        self.removals
            .remember_close(clock.unix_secs(), horizon, room_id);
        let Some(room) = self.rooms.get_mut(room_id) else {
            return Err(UNKNOWN_ROOM);
        };
        let conns: Vec<_> = room.members.iter().map(|m| m.conn).collect();
        let mut left = Vec::with_capacity(conns.len());
        for conn in conns {
            // Nobody stays to be told who left: each one is told the room closed.
            if let Some(member) =
                room.remove_member(now, conn, LeaveReason::Removed, false, &mut self.out)
            {
                left.push(member.info.id);
            }
            self.out
                .error(conn, ErrorCode::RoomClosed, "the room was closed", true);
            self.conns.remove(&conn);
        }
        self.audit(room_id, by, ModerationAction::Close);
        for participant in left {
            let audit = Audit::Left {
                room: room_id.clone(),
                participant,
                reason: LeaveReason::Removed,
            };
            self.out.push(Output::Audit(audit));
        }
        Ok(())
    }
}
