//! Messages from a client to the relay.

use std::collections::BTreeMap;

use hush_frame::DropReason;
use serde::{Deserialize, Serialize};

use crate::bytes::OpaqueBytes;
use crate::ids::{ParticipantId, RoomId, Source, TrackId};
use crate::limits::{
    MAX_ATTESTATION_BYTES, MAX_E2EE_PAYLOAD_BYTES, MAX_E2EE_STATS_REASON_BYTES,
    MAX_E2EE_STATS_REASONS, MAX_IDENTITY_KEY_BYTES, MAX_MID_BYTES,
};
use crate::message::{self, DecodeError, FieldTooLarge};
use crate::signal::{Candidate, Sdp};
use crate::token::AccessToken;

/// A message from a client to the relay. See the crate docs for the table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
///
/// Not `#[non_exhaustive]` on purpose: the relay matches it exhaustively, so a message added here
/// does not compile until the relay handles it.
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// The first message on a connection: the access token and this participant's public keys.
    Join(Join),
    /// Leave the room; the relay closes the connection.
    Leave,
    /// An SDP offer for this participant's connection.
    Offer(Sdp),
    /// An SDP answer to the relay's offer.
    Answer(Sdp),
    /// A trickle ICE candidate.
    Candidate(Candidate),
    /// Start publishing a track (needs the `publish` grant and the source in `sources`).
    Publish(Publish),
    /// Stop publishing a track.
    Unpublish(Unpublish),
    /// Receive a track again after `unsubscribe` (needs the `subscribe` grant).
    Subscribe(TrackRef),
    /// Stop receiving a track.
    Unsubscribe(TrackRef),
    /// An opaque key-exchange envelope for one participant of the room.
    E2ee(E2eeTo),
    /// An opaque key-exchange message for every other participant of the room (switch
    /// notices, safety-code commits and reveals): one message and one rate-limit token, fanned
    /// out by the relay as `e2ee` with `from`.
    E2eeBroadcast(E2eeBroadcast),
    /// Ask a track's publisher for a keyframe (needs the `subscribe` grant and a subscription to
    /// that track).
    KeyframeRequest(TrackRef),
    /// The size a received video is shown at (its tile, in device pixels): the relay sends no
    /// simulcast layer much larger than that (needs a subscription to the track).
    VideoSize(VideoSize),
    /// Ask the relay to put a rekey point in the room's ordered membership log (a key-layer
    /// timer or a sender near its key's usage limit). Rate limited per room; requests within the
    /// interval merge into one.
    Rekey(RekeyRequest),
    /// Moderator: remove a participant (a removal is a leave).
    ForceDisconnect(ForceDisconnect),
    /// Moderator: stop a participant's track.
    ForceUnpublish(ForceUnpublish),
    /// Moderator: lock or unlock the room to new participants.
    LockRoom(LockRoom),
    /// Moderator: close the room, removing everyone.
    CloseRoom,
    /// Start or stop the room's encrypted recording (needs the `record` grant; the app backend
    /// must have set the room's recorder identity).
    Record(Record),
    /// Keepalive; the relay answers `pong` with the same `seq`.
    Ping(Ping),
    /// This client's E2EE health since its last report, for the relay's metrics (diagnostics,
    /// not accounting: a client can lie). At most one per 5 s per connection is counted.
    E2eeStats(E2eeStats),
}

impl ClientMessage {
    /// Every `type` a client may send.
    pub const TYPES: &'static [&'static str] = &[
        "join",
        "leave",
        "offer",
        "answer",
        "candidate",
        "publish",
        "unpublish",
        "subscribe",
        "unsubscribe",
        "e2ee",
        "e2ee_broadcast",
        "keyframe_request",
        "video_size",
        "rekey",
        "force_disconnect",
        "force_unpublish",
        "lock_room",
        "close_room",
        "record",
        "ping",
        "e2ee_stats",
    ];

    /// Decodes and checks one message (see [`crate::message`] for the order of checks).
    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        let msg: Self = message::decode(text, Self::TYPES)?;
        msg.check_limits().map_err(DecodeError::FieldTooLarge)?;
        Ok(msg)
    }

    /// Encodes the message as JSON text with `"v": 1`.
    pub fn encode(&self) -> String {
        message::encode(self)
    }

    /// Checks every field against its size limit. [`ClientMessage::decode`] already did; call
    /// this on messages built in code before trusting them as if decoded. The token's size is
    /// left to the token verifier, which refuses it with its own code.
    pub fn check_limits(&self) -> Result<(), FieldTooLarge> {
        match self {
            Self::Join(join) => {
                let key = join.identity_key.len();
                FieldTooLarge::check("identity_key", key, MAX_IDENTITY_KEY_BYTES)?;
                let att = join.attestation.as_ref().map_or(0, OpaqueBytes::len);
                FieldTooLarge::check("attestation", att, MAX_ATTESTATION_BYTES)
            }
            Self::Offer(sdp) | Self::Answer(sdp) => sdp.check(),
            Self::Candidate(c) => c.check(),
            Self::Publish(p) => {
                FieldTooLarge::check("mid", p.mid.as_deref().map_or(0, str::len), MAX_MID_BYTES)
            }
            Self::E2ee(E2eeTo { payload, .. }) | Self::E2eeBroadcast(E2eeBroadcast { payload }) => {
                FieldTooLarge::check("payload", payload.len(), MAX_E2EE_PAYLOAD_BYTES)
            }
            Self::E2eeStats(stats) => stats.check(),
            Self::VideoSize(size) => {
                FieldTooLarge::check("width", size.width as usize, MAX_VIDEO_SIZE)?;
                FieldTooLarge::check("height", size.height as usize, MAX_VIDEO_SIZE)
            }
            Self::Leave
            | Self::Unpublish(_)
            | Self::Subscribe(_)
            | Self::Unsubscribe(_)
            | Self::KeyframeRequest(_)
            | Self::Rekey(_)
            | Self::ForceDisconnect(_)
            | Self::ForceUnpublish(_)
            | Self::LockRoom(_)
            | Self::CloseRoom
            | Self::Record(_)
            | Self::Ping(_) => Ok(()),
        }
    }

    /// The wire `type` of this message.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Join(_) => "join",
            Self::Leave => "leave",
            Self::Offer(_) => "offer",
            Self::Answer(_) => "answer",
            Self::Candidate(_) => "candidate",
            Self::Publish(_) => "publish",
            Self::Unpublish(_) => "unpublish",
            Self::Subscribe(_) => "subscribe",
            Self::Unsubscribe(_) => "unsubscribe",
            Self::E2ee(_) => "e2ee",
            Self::E2eeBroadcast(_) => "e2ee_broadcast",
            Self::KeyframeRequest(_) => "keyframe_request",
            Self::VideoSize(_) => "video_size",
            Self::Rekey(_) => "rekey",
            Self::ForceDisconnect(_) => "force_disconnect",
            Self::ForceUnpublish(_) => "force_unpublish",
            Self::LockRoom(_) => "lock_room",
            Self::CloseRoom => "close_room",
            Self::Record(_) => "record",
            Self::Ping(_) => "ping",
            Self::E2eeStats(_) => "e2ee_stats",
        }
    }
}

/// `join`: the access token and this participant's keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Join {
    /// The access token from the app's backend (never in a URL).
    pub token: AccessToken,
    /// The room the client means to join; if given, a token for another room is refused with
    /// `token_wrong_room`. Without it the token's room is joined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<RoomId>,
    /// This participant's identity public key (X25519 today), shown to the others.
    pub identity_key: OpaqueBytes,
    /// The app backend's signed statement binding the identity key to this participant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<OpaqueBytes>,
    /// Whether this client sends the first SDP offer (it publishes right after `joined`):
    /// `true`, the relay waits for it before offering what it forwards; `false`, the relay
    /// offers at once (a client that publishes nothing). Absent: the relay waits a short
    /// while for an offer, then offers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offers_first: Option<bool>,
}

/// `publish`: start publishing one source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publish {
    /// What the track carries.
    pub source: Source,
    /// The SDP `mid` of the transceiver that sends it, when already negotiated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mid: Option<String>,
}

/// `unpublish`: stop publishing one source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unpublish {
    /// The source to stop.
    pub source: Source,
}

/// A reference to one track of the room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackRef {
    /// The track.
    pub track: TrackId,
}

/// `e2ee` from a client: an envelope for one named participant of the same room.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct E2eeTo {
    /// The recipient.
    pub to: ParticipantId,
    /// Opaque bytes (an HPKE envelope), base64 on the wire.
    pub payload: OpaqueBytes,
}

/// `e2ee_broadcast` from a client: a key-exchange message for every other member of its room.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct E2eeBroadcast {
    /// Opaque bytes, base64 on the wire.
    pub payload: OpaqueBytes,
}

/// `rekey`: ask for a new epoch. The body is optional: `{"v":1,"type":"rekey"}` is a request
/// without a reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RekeyRequest {
    /// Why the client asks (informational; the others never see it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<RekeyReason>,
}

/// Why a client asks for a rekey.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RekeyReason {
    /// The key layer's rotation timer.
    Timer,
    /// A sender nears its key's usage limit (the SFrame counter).
    UsageLimit,
    /// A reason this version does not know (sent by a newer client); accepted, not refused.
    #[serde(other)]
    Other,
}

impl RekeyReason {
    /// The wire name (also the metrics label).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Timer => "timer",
            Self::UsageLimit => "usage_limit",
            Self::Other => "other",
        }
    }
}

/// `force_disconnect`: remove a participant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForceDisconnect {
    /// Who to remove.
    pub participant: ParticipantId,
}

/// The largest width or height `video_size` may give (16K video).
pub const MAX_VIDEO_SIZE: usize = 16_384;

/// `video_size`: a received video's tile size, in device pixels (0 x 0: not shown).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoSize {
    /// The track.
    pub track: TrackId,
    /// Tile width.
    pub width: u32,
    /// Tile height.
    pub height: u32,
}

/// `force_unpublish`: stop a participant's track.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForceUnpublish {
    /// Whose track.
    pub participant: ParticipantId,
    /// Which source.
    pub source: Source,
}

/// `lock_room` (and, from the relay, `room_locked`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRoom {
    /// Locked rooms refuse new participants with `room_locked`.
    pub locked: bool,
}

/// `ping` (and `pong`, with the same `seq`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    /// Chosen by the client; echoed in `pong`.
    pub seq: u64,
}

/// `e2ee_stats`: what this client's E2EE transforms did since its previous report.
///
/// Counts are **deltas** since the previous report on this connection (not totals): they cannot
/// go backwards and the relay keeps no per-connection totals. The relay adds them to its
/// `hush_e2ee_*` metrics, clamping each count to [`MAX_E2EE_STATS_COUNT`] and mapping reasons
/// outside [`E2eeDropReason`] to `other`, so a client cannot grow the label space. The numbers
/// are diagnostics, never accounting: nothing checks that a client tells the truth.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct E2eeStats {
    /// Received frames dropped since the last report, by reason (the wire names of
    /// [`E2eeDropReason`]; unknown names are accepted and counted as `other`). At most
    /// [`MAX_E2EE_STATS_REASONS`] entries.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dropped: BTreeMap<String, u64>,
    /// Received frames decrypted since the last report.
    #[serde(default)]
    pub decrypted: u64,
    /// The epoch this client's key layer is at now (absent without a key exchange). The relay
    /// counts epoch changes from the difference between two reports of one connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    /// The last report of this connection (sent just before `leave`): the relay counts it even
    /// within the 5 s interval, once per connection, and ignores any report after it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub last: bool,
}

/// The largest count of one field of one `e2ee_stats` report that the relay adds to its
/// metrics; larger counts are clamped to it. Far above any honest report: a hundred senders at
/// 60 frames per second give 60,000 frames in the browser's 10 s reporting interval.
pub const MAX_E2EE_STATS_COUNT: u64 = 1_000_000;

impl E2eeStats {
    fn check(&self) -> Result<(), FieldTooLarge> {
        FieldTooLarge::check("dropped", self.dropped.len(), MAX_E2EE_STATS_REASONS)?;
        let longest = self.dropped.keys().map(String::len).max().unwrap_or(0);
        FieldTooLarge::check("dropped", longest, MAX_E2EE_STATS_REASON_BYTES)
    }
}

/// Why a client's E2EE transform dropped a frame: the fixed label set of the relay's
/// `hush_e2ee_dropped_frames` metric and the keys of [`E2eeStats::dropped`].
///
/// Three layers, each reason defined once:
/// - the frame layer's reasons are hush-frame's [`DropReason`] (hush-wasm's `lastError` codes):
///   the `From<DropReason>` impl is the one place they are mapped, and
///   [`E2eeDropReason::as_str`] takes their names from hush-frame;
/// - the transforms around hush-frame add [`Duplicate`](Self::Duplicate),
///   [`EncryptFailed`](Self::EncryptFailed), [`NoKey`](Self::NoKey),
///   [`WrongSender`](Self::WrongSender) and [`BeforeJoin`](Self::BeforeJoin);
/// - the wire adds [`Other`](Self::Other).
///
/// web/src/protocol.ts `DropReason` lists the same names; a test in this crate fails when a name
/// exists on one side only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum E2eeDropReason {
    /// [`DropReason::Unencrypted`]: not an SFrame frame.
    Unencrypted,
    /// [`DropReason::MalformedHeader`]: unreadable SFrame header.
    MalformedHeader,
    /// [`DropReason::Truncated`]: shorter than header and tag.
    Truncated,
    /// [`DropReason::UnknownKid`]: no key for the frame's KID.
    UnknownKid,
    /// [`DropReason::Replayed`]: a counter already seen.
    Replayed,
    /// The browser's receive transform (web/src/hybrid.ts): a frame hush-frame refused as
    /// `replayed` that is a byte-identical copy of one already decrypted (browsers re-deliver
    /// some; harmless).
    Duplicate,
    /// [`DropReason::AuthFailed`]: authentication failed.
    AuthFailed,
    /// [`DropReason::TooLarge`]: over the size limit.
    TooLarge,
    /// A send transform: hush-frame's encryptor refused the frame (`EncryptError`) or could not
    /// be set up.
    EncryptFailed,
    /// A send transform: no send key yet (the frame is dropped, never sent in the clear).
    NoKey,
    /// Anything else, including names this version does not know.
    Other,
    /// A receive transform bound to one participant (web/src/receivers.ts): the frame's KID is
    /// another sender's key, so the relay put it on a track that is not its sender's.
    WrongSender,
    /// A receive transform: the frame was sealed before this member joined, under an epoch it
    /// never holds (hush-keys `Session::predates_join`). A newcomer's first frames can be: the
    /// others seal under the old epoch until it has the new one. Expected, so no failure event;
    /// told apart only for the grace period after the join.
    BeforeJoin,
}

impl E2eeDropReason {
    /// Every reason, in label order (new reasons are appended).
    pub const ALL: [Self; 13] = [
        Self::Unencrypted,
        Self::MalformedHeader,
        Self::Truncated,
        Self::UnknownKid,
        Self::Replayed,
        Self::Duplicate,
        Self::AuthFailed,
        Self::TooLarge,
        Self::EncryptFailed,
        Self::NoKey,
        Self::Other,
        Self::WrongSender,
        Self::BeforeJoin,
    ];

    /// The wire name (also the metrics label); hush-frame's own for the frame layer's reasons.
    pub fn as_str(self) -> &'static str {
        match self.frame() {
            Some(reason) => reason.as_str(),
            None => match self {
                Self::Duplicate => "duplicate",
                Self::EncryptFailed => "encrypt_failed",
                Self::NoKey => "no_key",
                Self::WrongSender => "wrong_sender",
                Self::BeforeJoin => "before_join",
                // `Other`; the frame layer's reasons all have a `frame()` (tested).
                _ => "other",
            },
        }
    }

    /// The frame-layer reason this is, if it is one (the inverse of the `From` impl).
    pub fn frame(self) -> Option<DropReason> {
        DropReason::ALL.into_iter().find(|&r| Self::from(r) == self)
    }

    /// The reason a wire name stands for; any name not in [`E2eeDropReason::ALL`] is `Other`.
    pub fn from_wire(name: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == name)
            .unwrap_or(Self::Other)
    }
}

impl From<DropReason> for E2eeDropReason {
    /// The one mapping from hush-frame's reasons (exhaustive: a reason added there fails to
    /// compile here until it has a wire name).
    fn from(reason: DropReason) -> Self {
        match reason {
            DropReason::Unencrypted => Self::Unencrypted,
            DropReason::MalformedHeader => Self::MalformedHeader,
            DropReason::Truncated => Self::Truncated,
            DropReason::UnknownKid => Self::UnknownKid,
            DropReason::Replayed => Self::Replayed,
            DropReason::AuthFailed => Self::AuthFailed,
            DropReason::TooLarge => Self::TooLarge,
        }
    }
}

/// `record`: start or stop the room's encrypted recording.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// What to do.
    pub action: RecordAction,
}

/// What `record` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordAction {
    /// Start: the room's recorder joins the key exchange and the relay writes the media.
    Start,
    /// Stop: the recorder leaves (a new epoch it cannot open) and the recording is closed.
    Stop,
}
