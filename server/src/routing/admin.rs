//! The app backend's commands (the admin API), decided here: the HTTP layer (`http::admin`)
//! only parses, authorizes and serializes. Each change goes to the audit trail as
//! the backend's (`moderator: None`), like the moderation methods it builds on
//! ([`Relay::remove_participant`], [`Relay::force_unpublish`], [`Relay::set_locked`],
//! [`Relay::close_room`]).

use hush_proto::{ErrorCode, ParticipantId, RoomId, Source};

use super::config::RoomSettings;
use super::output::{Audit, ModerationAction, Output};
use super::recording::RecorderIdentity;
use super::relay::Relay;
use crate::time::Now;

/// A command from the app's backend about one room.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdminCommand {
    /// Only report the room's state.
    Info(RoomId),
    /// Set the room's own limits, creating it (empty) if needed.
    Configure(RoomId, RoomSettings),
    /// Lock (`true`) or unlock the room to newcomers.
    Lock(RoomId, bool),
    /// Remove everyone; refuse joins until the room is forgotten.
    Close(RoomId),
    /// Remove a participant (a leave: the others move to a new epoch).
    Remove(RoomId, ParticipantId),
    /// Stop one of a participant's tracks.
    Unpublish(RoomId, ParticipantId, Source),
    /// Set the room's recorder identity (creating the room, empty, if needed).
    SetRecorder(RoomId, RecorderIdentity),
    /// Start (`true`) or stop the room's encrypted recording.
    Record(RoomId, bool),
}

/// A room's state as the backend sees it: counts and flags, no personal data.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoomState {
    /// The room.
    pub room: RoomId,
    /// Participants in it now.
    pub participants: usize,
    /// Tracks published in it now.
    pub tracks: usize,
    /// Whether newcomers are refused.
    pub locked: bool,
    /// Whether it was closed (everyone is refused until it is forgotten).
    pub closed: bool,
    /// The room's effective limit (its own, capped by the server's).
    pub max_participants: u32,
    /// How long it lives empty, in seconds (its own timeout, else the server's).
    pub empty_timeout_secs: u64,
    /// Whether the app set a recorder identity for it.
    pub recorder_set: bool,
    /// Whether it is being recorded now.
    pub recording: bool,
}

/// The core's answer to an [`AdminCommand`]: the room's state afterwards, or why not.
pub type AdminResult = Result<RoomState, ErrorCode>;

impl Relay {
    /// Runs a command from the app's backend. Outputs (closes, broadcasts, audit records) wait
    /// in [`Relay::poll_output`] as usual. A refusal changes nothing.
    pub fn admin(&mut self, now: Now, command: AdminCommand) -> AdminResult {
        let room = match command {
            AdminCommand::Info(room) => room,
            AdminCommand::Configure(room, settings) => {
                self.configure_room(now, room.clone(), settings)?;
                let audit = Audit::Moderation {
                    room: room.clone(),
                    moderator: None,
                    action: ModerationAction::Configure(settings),
                };
                self.out.push(Output::Audit(audit));
                room
            }
            AdminCommand::Lock(room, locked) => {
                self.set_locked(&room, locked)?;
                room
            }
            AdminCommand::Close(room) => {
                self.close_room(now, &room)?;
                room
            }
            AdminCommand::Remove(room, participant) => {
                self.remove_participant(now, &room, &participant)?;
                // Remembered even where the relay holds no such room now: it has nobody.
                return Ok(self
                    .room_state(&room)
                    .unwrap_or_else(|| self.absent_room_state(room)));
            }
            AdminCommand::Unpublish(room, participant, source) => {
                self.force_unpublish(&room, &participant, source)?;
                room
            }
            AdminCommand::SetRecorder(room, recorder) => {
                self.set_recorder(now, &room, recorder)?;
                room
            }
            AdminCommand::Record(room, true) => {
                self.start_recording(now, &room)?;
                room
            }
            AdminCommand::Record(room, false) => {
                self.stop_recording(now, &room)?;
                room
            }
        };
        self.room_state(&room).ok_or(ErrorCode::UnknownRoom)
    }

    /// The state of a room the relay does not hold: nobody, nothing, the server's defaults.
    fn absent_room_state(&self, room: RoomId) -> RoomState {
        let config = self.config();
        RoomState {
            room,
            participants: 0,
            tracks: 0,
            locked: false,
            closed: false,
            max_participants: config.max_participants_per_room,
            empty_timeout_secs: config.empty_room_timeout.as_secs(),
            recorder_set: false,
            recording: false,
        }
    }

    /// `room`'s state, if the relay holds it.
    pub fn room_state(&self, room: &RoomId) -> Option<RoomState> {
        let config = self.config();
        let state = self.rooms.get(room)?;
        Some(RoomState {
            room: room.clone(),
            participants: state.participants().count(),
            tracks: state.publications.len(),
            locked: state.locked,
            closed: state.closed_at.is_some(),
            max_participants: state.capacity(config),
            empty_timeout_secs: state
                .settings
                .empty_timeout
                .unwrap_or(config.empty_room_timeout)
                .as_secs(),
            recorder_set: state.recorder.is_some(),
            recording: state.recording.is_some(),
        })
    }
}
