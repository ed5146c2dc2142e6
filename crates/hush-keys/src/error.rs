//! Errors, layered by whose fault they are (STYLE.md): the peer or relay ([`EnvelopeError`],
//! [`MembershipError`]), the caller ([`UsageError`]) or bad input values ([`InputError`]).
//! None of them carries secret material or cryptographic detail.

use core::fmt;

/// A value handed to a constructor was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InputError {
    /// A room or participant id is empty or longer than [`crate::MAX_ID_LEN`] bytes.
    BadId,
    /// An identity public key is not a usable X25519 key (wrong length, zero, low order).
    BadIdentityKey,
    /// A shared secret is shorter than [`crate::MIN_SHARED_SECRET_LEN`] bytes or obviously not
    /// random.
    SharedSecretTooShort,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InputError::BadId => "room or participant id is empty or too long",
            InputError::BadIdentityKey => "identity key is not a usable X25519 public key",
            InputError::SharedSecretTooShort => "shared secret is too short or not random",
        })
    }
}

impl core::error::Error for InputError {}

/// An envelope, ack or switch notice from the relay was refused. The session is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Wrong length, unknown kind or out-of-range field.
    Malformed,
    /// A wire version this crate does not speak.
    UnsupportedVersion,
    /// Addressed to another member (the recipient index is not ours).
    Misaddressed,
    /// The sender index names no current member.
    UnknownSender,
    /// The sender is a member but not the committer for the event the message answers: only the
    /// committer may move the room to a new epoch (or announce the switch).
    NotCommitter,
    /// For an epoch this member has already moved past (an old event, or one it skipped).
    Stale,
    /// The same message (or another envelope for an epoch already accepted) again.
    Replayed,
    /// For an epoch that does not follow from the relay events seen so far: not the epoch of the
    /// event this member waits for, or an envelope for a join that is not its own.
    UnexpectedEpoch,
    /// Authentication failed: not made by the claimed sender's identity key for this room, this
    /// recipient and this header (or tampered with). No further detail, on purpose.
    Forged,
    /// Too many messages for future events are already buffered.
    BufferFull,
    /// An envelope could not be sealed to a recipient whose key is unusable.
    BadRecipientKey,
    /// A safety-code reveal does not match the commitment its sender sent, or a second commit
    /// differs from the first: the round's code is not shown ([`crate::safety`]).
    CommitmentMismatch,
    /// An envelope sealed for another member list than this member's at that epoch (the relay
    /// showed the committer and this member different rosters; [`crate::roster`]): not opened.
    RosterMismatch,
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EnvelopeError::Malformed => "malformed key message",
            EnvelopeError::UnsupportedVersion => "unsupported key message version",
            EnvelopeError::Misaddressed => "key message addressed to another member",
            EnvelopeError::UnknownSender => "key message from a non-member",
            EnvelopeError::NotCommitter => "epoch change from a member that is not the committer",
            EnvelopeError::Stale => "key message for an old epoch",
            EnvelopeError::Replayed => "key message replayed",
            EnvelopeError::UnexpectedEpoch => "key message for an unexpected epoch",
            EnvelopeError::Forged => "key message failed authentication",
            EnvelopeError::BufferFull => "too many early key messages",
            EnvelopeError::BadRecipientKey => "recipient identity key unusable",
            EnvelopeError::CommitmentMismatch => "safety-code reveal does not match its commitment",
            EnvelopeError::RosterMismatch => "epoch envelope sealed for another member list",
        })
    }
}

impl core::error::Error for EnvelopeError {}

/// A relay membership event or snapshot was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MembershipError {
    /// The event's sequence number is not after the last one applied (a duplicate).
    StaleEvent,
    /// Too many events arrived ahead of a missing one.
    EventBufferFull,
    /// A join for a participant id that is already a member.
    DuplicateParticipant,
    /// A join with a sender index that this room has used before.
    SenderIndexReused,
    /// A join with a sender index above [`crate::SenderIndex::MAX`].
    SenderIndexOutOfRange,
    /// A member's join sequence does not match the event (or is in the future).
    BadJoinSequence,
    /// The member's identity key is not a usable X25519 key.
    BadIdentityKey,
    /// Attestations are required and this member has none.
    MissingAttestation,
    /// The member's attestation does not verify, names another room, participant or key, or has
    /// expired.
    BadAttestation,
    /// The snapshot does not contain this session's own participant id and identity key.
    NotInSnapshot,
    /// Shared-secret mode: the join sequence is over [`crate::session::MAX_SHARED_SECRET_SEQ`]
    /// (the ratchet from `E_0` would take that many steps).
    SequenceTooLarge,
}

impl fmt::Display for MembershipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MembershipError::StaleEvent => "membership event already applied",
            MembershipError::EventBufferFull => "too many membership events ahead of a gap",
            MembershipError::DuplicateParticipant => "participant is already a member",
            MembershipError::SenderIndexReused => "sender index reused",
            MembershipError::SenderIndexOutOfRange => "sender index out of range",
            MembershipError::BadJoinSequence => "join sequence inconsistent with the event",
            MembershipError::BadIdentityKey => "member identity key unusable",
            MembershipError::MissingAttestation => "member attestation missing",
            MembershipError::BadAttestation => "member attestation invalid",
            MembershipError::NotInSnapshot => "own participant missing from the snapshot",
            MembershipError::SequenceTooLarge => "join sequence too large for shared-secret mode",
        })
    }
}

impl core::error::Error for MembershipError {}

/// The caller used the API in a way it does not allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UsageError {
    /// An input that needs the snapshot ([`crate::Input::Joined`]) came before it.
    NotJoined,
    /// [`crate::Input::Joined`] came twice.
    AlreadyJoined,
    /// This member was removed from the room; the session is over.
    Removed,
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UsageError::NotJoined => "session has not joined yet",
            UsageError::AlreadyJoined => "session already joined",
            UsageError::Removed => "session was removed from the room",
        })
    }
}

impl core::error::Error for UsageError {}

/// Any error [`crate::Session::handle_input`] returns. The session stays usable after each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A key message from the relay was refused.
    Envelope(EnvelopeError),
    /// A membership event was refused.
    Membership(MembershipError),
    /// API misuse.
    Usage(UsageError),
    /// A bad input value.
    Input(InputError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Envelope(e) => e.fmt(f),
            Error::Membership(e) => e.fmt(f),
            Error::Usage(e) => e.fmt(f),
            Error::Input(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for Error {}

impl From<EnvelopeError> for Error {
    fn from(e: EnvelopeError) -> Self {
        Error::Envelope(e)
    }
}
impl From<MembershipError> for Error {
    fn from(e: MembershipError) -> Self {
        Error::Membership(e)
    }
}
impl From<UsageError> for Error {
    fn from(e: UsageError) -> Self {
        Error::Usage(e)
    }
}
impl From<InputError> for Error {
    fn from(e: InputError) -> Self {
        Error::Input(e)
    }
}
