//! Messages from the relay to a client.

use serde::{Deserialize, Serialize};

use crate::bytes::OpaqueBytes;
use crate::client::{LockRoom, Ping, TrackRef};
use crate::error::ErrorCode;
use crate::ids::{ParticipantId, RoomId, RoomInstance, SenderIndex, Source, TrackId};
use crate::limits::{
    MAX_ATTESTATION_BYTES, MAX_E2EE_PAYLOAD_BYTES, MAX_ERROR_MESSAGE_BYTES, MAX_IDENTITY_KEY_BYTES,
    MAX_MESSAGE_BYTES, MAX_REKEY_REQUESTERS,
};
use crate::message::{
    self, DecodeError, FieldTooLarge, PROTOCOL_VERSION, truncate_at_char_boundary,
};
use crate::signal::{Candidate, Sdp};
use crate::token::Grants;

/// A message from the relay to a client. See the crate docs for the table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
///
/// Not `#[non_exhaustive]` on purpose: clients in this workspace match it exhaustively.
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The answer to a successful `join`: who you are and who is already there.
    Joined(Joined),
    /// Someone joined the room.
    ParticipantJoined(ParticipantJoined),
    /// Someone left the room (or was removed): the key layer starts a new epoch.
    ParticipantLeft(ParticipantLeft),
    /// A rekey point in the room's membership log (after a member's `rekey`): the key layer
    /// starts a fresh epoch numbered `seq`. Sent to every member, the requester included.
    Rekey(RekeyEvent),
    /// A track was published (also sent to its publisher, which learns the track id this way).
    TrackPublished(TrackInfo),
    /// A track was unpublished.
    TrackUnpublished(TrackUnpublished),
    /// An SDP offer from the relay (it adds or removes other participants' tracks).
    Offer(Sdp),
    /// The relay's SDP answer to the client's offer.
    Answer(Sdp),
    /// A trickle ICE candidate of the relay.
    Candidate(Candidate),
    /// An opaque key-exchange envelope from another participant.
    E2ee(E2eeFrom),
    /// A subscriber asked for a keyframe of one of your tracks.
    KeyframeRequest(TrackRef),
    /// A moderator locked or unlocked the room.
    RoomLocked(LockRoom),
    /// The room's recording started or stopped (who asked, why it stopped). The recorder's
    /// membership (`participant_joined` with `role: recorder`) is what the key exchange trusts;
    /// this says who started it and why it ended.
    Recording(RecordingStatus),
    /// The answer to `ping`.
    Pong(Ping),
    /// A refusal. If `fatal`, the relay closes the connection after it.
    Error(ErrorMessage),
}

impl ServerMessage {
    /// Every `type` the relay may send.
    pub const TYPES: &'static [&'static str] = &[
        "joined",
        "participant_joined",
        "participant_left",
        "rekey",
        "track_published",
        "track_unpublished",
        "offer",
        "answer",
        "candidate",
        "e2ee",
        "keyframe_request",
        "room_locked",
        "recording",
        "pong",
        "error",
    ];

    /// Decodes and checks one message (for clients).
    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        let msg: Self = message::decode(text, Self::TYPES)?;
        msg.check_limits().map_err(DecodeError::FieldTooLarge)?;
        Ok(msg)
    }

    /// Decodes and checks one of the five messages the key exchange reads (`joined`,
    /// `participant_joined`, `participant_left`, `rekey`, `e2ee`); any other type is
    /// [`DecodeError::UnknownType`]. The same checks as [`ServerMessage::decode`], without
    /// instantiating every variant's deserializer: the browser's Worker decodes with this, and
    /// deserializing the whole internally tagged enum costs tens of KB of wasm.
    pub fn decode_key_event(text: &str) -> Result<Self, DecodeError> {
        #[derive(Deserialize)]
        struct Head<'a> {
            v: u64,
            #[serde(rename = "type", borrow)]
            kind: std::borrow::Cow<'a, str>,
        }
        fn body<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, DecodeError> {
            serde_json::from_str(text).map_err(|e| DecodeError::Malformed {
                detail: e.to_string(),
            })
        }
        if text.len() > MAX_MESSAGE_BYTES {
            return Err(DecodeError::TooLarge { len: text.len() });
        }
        let head: Head<'_> = serde_json::from_str(text).map_err(|e| DecodeError::Malformed {
            detail: e.to_string(),
        })?;
        if head.v != PROTOCOL_VERSION {
            return Err(DecodeError::UnsupportedVersion);
        }
        let msg = match &*head.kind {
            "joined" => Self::Joined(body(text)?),
            "participant_joined" => Self::ParticipantJoined(body(text)?),
            "participant_left" => Self::ParticipantLeft(body(text)?),
            "rekey" => Self::Rekey(body(text)?),
            "e2ee" => Self::E2ee(body(text)?),
            _ => return Err(DecodeError::UnknownType),
        };
        msg.check_limits().map_err(DecodeError::FieldTooLarge)?;
        Ok(msg)
    }

    /// Encodes the message as JSON text with `"v": 1`.
    pub fn encode(&self) -> String {
        message::encode(self)
    }

    /// An `error` message; `message` is cut to [`MAX_ERROR_MESSAGE_BYTES`].
    pub fn error(code: ErrorCode, message: impl Into<String>, fatal: bool) -> Self {
        let mut message = message.into();
        truncate_at_char_boundary(&mut message, MAX_ERROR_MESSAGE_BYTES);
        Self::Error(ErrorMessage {
            code,
            message,
            fatal,
        })
    }

    /// Checks every field against its size limit.
    pub fn check_limits(&self) -> Result<(), FieldTooLarge> {
        match self {
            Self::Joined(j) => j.participants.iter().try_for_each(ParticipantInfo::check),
            Self::ParticipantJoined(p) => p.participant.check(),
            Self::Offer(sdp) | Self::Answer(sdp) => sdp.check(),
            Self::Candidate(c) => c.check(),
            Self::E2ee(e) => {
                FieldTooLarge::check("payload", e.payload.len(), MAX_E2EE_PAYLOAD_BYTES)
            }
            Self::Error(e) => {
                FieldTooLarge::check("message", e.message.len(), MAX_ERROR_MESSAGE_BYTES)
            }
            Self::Rekey(r) => FieldTooLarge::check("by", r.by.len(), MAX_REKEY_REQUESTERS),
            Self::ParticipantLeft(_)
            | Self::TrackPublished(_)
            | Self::TrackUnpublished(_)
            | Self::KeyframeRequest(_)
            | Self::RoomLocked(_)
            | Self::Recording(_)
            | Self::Pong(_) => Ok(()),
        }
    }

    /// The wire `type` of this message.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Joined(_) => "joined",
            Self::ParticipantJoined(_) => "participant_joined",
            Self::ParticipantLeft(_) => "participant_left",
            Self::Rekey(_) => "rekey",
            Self::TrackPublished(_) => "track_published",
            Self::TrackUnpublished(_) => "track_unpublished",
            Self::Offer(_) => "offer",
            Self::Answer(_) => "answer",
            Self::Candidate(_) => "candidate",
            Self::E2ee(_) => "e2ee",
            Self::KeyframeRequest(_) => "keyframe_request",
            Self::RoomLocked(_) => "room_locked",
            Self::Recording(_) => "recording",
            Self::Pong(_) => "pong",
            Self::Error(_) => "error",
        }
    }
}

/// `joined`: the answer to a successful `join`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Joined {
    /// Your participant id (the token's `sub`).
    pub you: ParticipantId,
    /// Your sender index in this room.
    pub sender_index: SenderIndex,
    /// The membership sequence number of your join: members with a smaller `join_seq` have been
    /// in the room longer. Events after this one have larger `seq`s.
    pub join_seq: u64,
    /// The room.
    pub room: RoomId,
    /// This life of the room (see [`RoomInstance`]): equal for every member of one life,
    /// different after the room was forgotten and created again. Optional on the wire for
    /// relays that predate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_instance: Option<RoomInstance>,
    /// Whether the room is locked.
    pub locked: bool,
    /// Your grants, as the token gave them.
    pub grants: Grants,
    /// Everyone else in the room, oldest first.
    pub participants: Vec<ParticipantInfo>,
    /// Every track published in the room.
    pub tracks: Vec<TrackInfo>,
    /// STUN/TURN servers for the client's PeerConnection (the relay's TURN configuration,
    /// with short-lived credentials minted for this participant). Empty: none configured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ice_servers: Vec<IceServer>,
}

/// One ICE server as a browser's `RTCIceServer` takes it. The credential is a secret (an HMAC
/// good until the time in the username): `Debug` leaves it out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// `turn:host:port?transport=tcp`, `turns:...`, `stun:...`.
    pub urls: Vec<String>,
    /// The TURN username (`expiry:participant` in the coturn REST convention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The TURN password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

impl std::fmt::Debug for IceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceServer")
            .field("urls", &self.urls)
            .field("username", &self.username.as_ref().map(|_| "…"))
            .field("credential", &self.credential.as_ref().map(|_| "…"))
            .finish()
    }
}

/// A member of a room as the others see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    /// The participant.
    pub id: ParticipantId,
    /// Its sender index.
    pub sender_index: SenderIndex,
    /// The membership sequence number of its join.
    pub join_seq: u64,
    /// Its identity public key, as given in its `join`.
    pub identity_key: OpaqueBytes,
    /// Its attestation, as given in its `join`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<OpaqueBytes>,
    /// Its grants (so members can see who moderates and who records).
    pub grants: Grants,
    /// `recorder` for the room's recorder (a member that only receives epochs; the backend's
    /// attestation binds the role). Absent for a participant.
    #[serde(default, skip_serializing_if = "MemberRole::is_participant")]
    pub role: MemberRole,
}

/// A member's role in the key exchange, as the relay announces it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberRole {
    /// A participant.
    #[default]
    Participant,
    /// The room's recorder: an identity whose private key the app keeps offline; while it is a
    /// member, the call is being recorded.
    Recorder,
}

impl MemberRole {
    /// True for [`MemberRole::Participant`] (the field is then left out).
    pub fn is_participant(&self) -> bool {
        *self == MemberRole::Participant
    }
}

impl ParticipantInfo {
    fn check(&self) -> Result<(), FieldTooLarge> {
        let key = self.identity_key.len();
        FieldTooLarge::check("identity_key", key, MAX_IDENTITY_KEY_BYTES)?;
        let att = self.attestation.as_ref().map_or(0, OpaqueBytes::len);
        FieldTooLarge::check("attestation", att, MAX_ATTESTATION_BYTES)
    }
}

/// `participant_joined`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantJoined {
    /// The room's membership sequence number of this event (equal to the newcomer's `join_seq`).
    pub seq: u64,
    /// The newcomer.
    pub participant: ParticipantInfo,
}

/// `participant_left`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantLeft {
    /// The room's membership sequence number of this event.
    pub seq: u64,
    /// Who left.
    pub participant: ParticipantId,
    /// Its sender index (never given to anyone else in this room).
    pub sender_index: SenderIndex,
    /// Why.
    pub reason: LeaveReason,
}

/// `rekey` from the relay: a rekey point in the membership log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RekeyEvent {
    /// The room's membership sequence number of this event (the same counter as joins and
    /// leaves; the new epoch's number).
    pub seq: u64,
    /// Who asked for it (the requests merged into this point, each named once, in order). The
    /// key layer draws a fresh epoch only when the committer asked; a point only other members
    /// asked for is a ratchet, which costs no envelopes (hush-keys `Change::RekeyRequested`).
    /// At most [`MAX_REKEY_REQUESTERS`] entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by: Vec<ParticipantId>,
}

/// Why a participant left.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LeaveReason {
    /// It sent `leave`.
    Left,
    /// Its connection closed or was closed (timeout, abuse).
    Disconnected,
    /// A moderator removed it.
    Removed,
    /// It joined again on another connection (it will appear again as a new member).
    Replaced,
}

/// `track_published`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackInfo {
    /// The track.
    pub track: TrackId,
    /// Its publisher.
    pub participant: ParticipantId,
    /// The publisher's sender index.
    pub sender_index: SenderIndex,
    /// What it carries.
    pub source: Source,
}

/// `track_unpublished`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackUnpublished {
    /// The track.
    pub track: TrackId,
    /// Its publisher.
    pub participant: ParticipantId,
    /// What it carried.
    pub source: Source,
}

/// `e2ee` from the relay: an envelope another participant addressed to you.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct E2eeFrom {
    /// The sender (set by the relay, not by the sender).
    pub from: ParticipantId,
    /// The opaque bytes, unchanged.
    pub payload: OpaqueBytes,
}

/// `error`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorMessage {
    /// The stable code.
    pub code: ErrorCode,
    /// For developers; never secrets or other participants' data.
    pub message: String,
    /// Whether the relay closes the connection after this message.
    pub fatal: bool,
}

/// `recording`: the room's recording state changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingStatus {
    /// Whether the room is being recorded now.
    pub active: bool,
    /// Who started or stopped it (absent: the app backend, or the relay itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<ParticipantId>,
    /// Why it stopped, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<RecordingEnd>,
}

/// Why a recording ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RecordingEnd {
    /// A participant with the `record` grant or the app backend stopped it.
    Stopped,
    /// The relay's disk is full.
    DiskFull,
    /// Writing failed for another reason.
    WriteError,
    /// The room's or the relay's recording size limit was reached.
    SizeLimit,
    /// The last participant left, or the room was closed.
    RoomEmpty,
    /// The relay is shutting down.
    Shutdown,
    /// A moderator removed the recorder.
    Removed,
}

impl RecordingEnd {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stopped => "stopped",
            Self::DiskFull => "disk_full",
            Self::WriteError => "write_error",
            Self::SizeLimit => "size_limit",
            Self::RoomEmpty => "room_empty",
            Self::Shutdown => "shutdown",
            Self::Removed => "removed",
        }
    }
}
