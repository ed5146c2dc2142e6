//! What the routing core asks its adapters to do.

use hush_proto::{
    Candidate, E2eeDropReason, ErrorCode, LeaveReason, ParticipantId, RecordingEnd, RoomId, Sdp,
    ServerMessage, Source, TrackId,
};

/// The shared token store's answer to [`Output::ClaimToken`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenClaim {
    /// The id was not used before: it is now.
    Fresh,
    /// The id was used before (on this relay before a restart, or on another relay).
    Used,
    /// The store could not answer (down, full, a write failed): the join is refused, since the
    /// token cannot be checked (fail closed).
    Unavailable,
}

/// A client connection (one signaling WebSocket and its media session), numbered by the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub(crate) u64);

impl ConnId {
    /// The number, for the adapter's own tables.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// One thing for an adapter to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// Send a signaling message.
    Send {
        /// To whom.
        conn: ConnId,
        /// What.
        message: ServerMessage,
    },
    /// Close the connection (after sending what was queued before) and its media session. The
    /// core has forgotten it already.
    Close {
        /// Which.
        conn: ConnId,
    },
    /// Hand negotiation from the client to its media session.
    Media {
        /// Whose.
        conn: ConnId,
        /// What.
        signal: MediaSignal,
    },
    /// A track was published: the publisher's media with this `mid` (if given) is `track`.
    Published {
        /// The publisher.
        publisher: ConnId,
        /// The new track.
        track: TrackId,
        /// What it carries.
        source: Source,
        /// The SDP `mid` the client named, if any.
        mid: Option<String>,
    },
    /// A track was unpublished: drop what arrives for it.
    Unpublished {
        /// The publisher.
        publisher: ConnId,
        /// The track.
        track: TrackId,
    },
    /// Start forwarding a track to a subscriber (add it to its connection, renegotiate).
    StartForward {
        /// The publisher.
        publisher: ConnId,
        /// The track.
        track: TrackId,
        /// The subscriber.
        subscriber: ConnId,
    },
    /// Stop forwarding a track to a subscriber.
    StopForward {
        /// The publisher.
        publisher: ConnId,
        /// The track.
        track: TrackId,
        /// The subscriber.
        subscriber: ConnId,
    },
    /// Ask the publisher for a keyframe on this track (a PLI, or the `keyframe_request`
    /// message for clients that generate keyframes from signaling). Already rate limited.
    RequestKeyframe {
        /// The publisher.
        publisher: ConnId,
        /// The track.
        track: TrackId,
    },
    /// A subscriber shows `track` at this size (device pixels): its simulcast layer is capped
    /// to about that. Already checked (subscribed, with the grant).
    VideoSize {
        /// The subscriber.
        subscriber: ConnId,
        /// The track.
        track: TrackId,
        /// Tile width.
        width: u32,
        /// Tile height.
        height: u32,
    },
    /// A recording starts: the recorder's connection `conn` is a writer of the room's
    /// recording, not a socket (messages sent to it and tracks forwarded to it go to disk).
    /// Comes before anything is sent or forwarded to `conn`.
    RecordingStarted {
        /// The room.
        room: RoomId,
        /// The recorder's connection.
        conn: ConnId,
        /// The recorder's participant id.
        recorder: ParticipantId,
        /// The recorder's identity public key (for the recording's manifest).
        identity_key: hush_proto::OpaqueBytes,
    },
    /// The recording on `conn` ended: close it (its forwards were stopped before).
    RecordingStopped {
        /// The recorder's connection.
        conn: ConnId,
        /// Why.
        end: RecordingEnd,
    },
    /// Mark a verified token's `jti` used in the shared store ([`super::RelayConfig::token_store`])
    /// and answer with [`super::Relay::token_claimed`]: the join waits for it. Only a token whose
    /// signature and claims passed comes here, so nobody can use up another's token id.
    ClaimToken {
        /// The joining connection.
        conn: ConnId,
        /// The token id.
        jti: String,
        /// Unix time after which the id may be forgotten (the token has expired by then).
        forget_after: u64,
    },
    /// Something for the audit trail.
    Audit(Audit),
    /// A member's `e2ee_stats` report, checked and bounded, for the metrics only.
    E2eeHealth(E2eeHealth),
}

/// What a member's `e2ee_stats` report adds to the `hush_e2ee_*` metrics. Client-reported:
/// diagnostics, not accounting. Carries no participant id (metrics have no per-member labels).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum E2eeHealth {
    /// A report within the interval: dropped without a reply, only counted.
    RateLimited,
    /// An accepted report, each count clamped to [`hush_proto::MAX_E2EE_STATS_COUNT`].
    Report {
        /// Frames dropped, by reason (unknown reasons summed into `other`); no zero counts.
        dropped: Vec<(E2eeDropReason, u64)>,
        /// Frames decrypted.
        decrypted: u64,
        /// Epoch changes since this connection's previous report that named an epoch.
        epoch_changes: u64,
    },
}

/// Negotiation from a client, for its media session.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaSignal {
    /// The client's offer.
    Offer(Sdp),
    /// The client's answer to the relay's offer.
    Answer(Sdp),
    /// A client's trickle ICE candidate.
    Candidate(Candidate),
}

/// An audit event. Ids are redacted when formatted; the audit writer decides what to keep.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Audit {
    /// A participant joined.
    Joined {
        /// The room.
        room: RoomId,
        /// Who.
        participant: ParticipantId,
        /// On which connection.
        conn: ConnId,
    },
    /// A participant left.
    Left {
        /// The room.
        room: RoomId,
        /// Who.
        participant: ParticipantId,
        /// Why.
        reason: LeaveReason,
    },
    /// A join was refused: a token refusal, or the room said no.
    JoinRefused {
        /// The connection.
        conn: ConnId,
        /// Why.
        code: ErrorCode,
        /// The room and the participant its token named, once the token was verified (`None`
        /// for a token refused, or no join at all), so a refused comeback is tied to someone.
        who: Option<(RoomId, ParticipantId)>,
    },
    /// A moderator acted.
    Moderation {
        /// The room.
        room: RoomId,
        /// The moderator (`None` for the admin API).
        moderator: Option<ParticipantId>,
        /// What was done.
        action: ModerationAction,
    },
    /// A rekey point was placed in a room's log (a fresh epoch for everyone in it).
    Rekey {
        /// The room.
        room: RoomId,
        /// The point's membership sequence number.
        seq: u64,
    },
    /// A recording started, stopped or was refused.
    Recording {
        /// The room.
        room: RoomId,
        /// Who asked (`None`: the app backend, or the relay itself for an end it decided).
        by: Option<ParticipantId>,
        /// What happened.
        action: RecordingAction,
    },
    /// A connection was closed for abuse (rate limit).
    Abuse {
        /// The connection.
        conn: ConnId,
        /// Why.
        code: ErrorCode,
    },
}

/// A moderation action, for the audit trail.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModerationAction {
    /// A participant was removed.
    Remove(ParticipantId),
    /// A participant's track was unpublished.
    Unpublish(ParticipantId, Source),
    /// The room was locked or unlocked.
    Lock(bool),
    /// The room was closed.
    Close,
    /// The room's own limits were set (admin API).
    Configure(super::RoomSettings),
    /// The room's recorder was set (admin API): who will be sealed the room's epochs while it
    /// records, and a fingerprint of its identity key.
    SetRecorder {
        /// The recorder's id.
        recorder: ParticipantId,
        /// The first 8 bytes of SHA-256 over its identity key, hex.
        key_fingerprint: String,
    },
    /// A moderator command from a member without the grant was refused.
    Refused {
        /// The command (`force_disconnect`, `force_unpublish`, `lock_room`, `close_room`).
        command: &'static str,
        /// Why.
        code: ErrorCode,
    },
}

/// What happened to a recording, for the audit trail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordingAction {
    /// It started.
    Started,
    /// It stopped, and why.
    Stopped(RecordingEnd),
    /// A start or stop was refused, and why.
    Refused(ErrorCode),
}
