//! What the driver feeds a [`crate::Session`] and what it hands back.

use alloc::vec::Vec;

use crate::error::MembershipError;
use crate::ids::ParticipantId;
use crate::kid::{Kid, StreamContext};
use crate::member::{Member, MembershipEvent};
use crate::safety::SafetyCode;
use crate::secret::FrameKey;

/// What the driver feeds the session.
#[derive(Debug)]
#[non_exhaustive]
pub enum Input<'a> {
    /// The relay's snapshot when this member joined: the room's members (this one included)
    /// right after its own join event `seq`.
    Joined {
        /// The sequence number of this member's join event.
        seq: u64,
        /// Every member, this one included.
        members: Vec<Member>,
    },
    /// The next event of the relay's ordered room log.
    Membership(MembershipEvent),
    /// An opaque key message (envelope, ack or switch notice) the relay forwarded.
    Message(&'a [u8]),
    /// [`Input::Message`] with the sender the relay names (`e2ee.from`, which members cannot
    /// set). A message whose claimed sender index belongs to another current member is refused
    /// ([`EnvelopeError::Forged`]): a member cannot pass off acks or switch notices (which are
    /// MACed with the epoch secret every member holds) as the committer's or another member's.
    ///
    /// [`EnvelopeError::Forged`]: crate::EnvelopeError::Forged
    MessageFrom {
        /// The sender as the relay names it.
        from: &'a ParticipantId,
        /// The bytes.
        bytes: &'a [u8],
    },
    /// A local encoded transform started sending on `context`.
    LocalStreamStarted(StreamContext),
    /// A local transform stopped.
    LocalStreamStopped(StreamContext),
    /// The frame layer reports that a local stream's key nears its usage limit
    /// (`Encryptor::needs_rotation`): the session asks for a rekey.
    UsageLimitNear(StreamContext),
    /// Time passed (call at [`Session::next_timeout`](crate::Session::next_timeout)).
    Tick,
}

/// Where a [`Transmit`] goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// One member, by participant id.
    Member(ParticipantId),
    /// Every other member of the room (one relay message, fanned out by the relay).
    AllMembers,
}

/// An opaque message for the relay to forward.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Recipient(s).
    pub to: Destination,
    /// The bytes.
    pub payload: Vec<u8>,
}

/// Why a rekey is requested.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RekeyReason {
    /// The committer's rekey timer.
    Timer,
    /// A local stream nears its key's usage limit.
    UsageLimit,
}

/// A change for the frame layer (hush-frame): exactly one key per KID.
#[derive(Debug)]
#[non_exhaustive]
pub enum KeyUpdate {
    /// Add a decryption key (`Decryptor::add_key`).
    InstallReceive {
        /// The KID.
        kid: Kid,
        /// Its base key.
        key: FrameKey,
    },
    /// Remove a decryption key (`Decryptor::remove_key`).
    RetireReceive {
        /// The KID.
        kid: Kid,
    },
    /// Encrypt the local stream `context` with this key from now on (`Encryptor::set_key`).
    SetSend {
        /// The local stream.
        context: StreamContext,
        /// The KID.
        kid: Kid,
        /// Its base key.
        key: FrameKey,
    },
    /// Stop encrypting (this member was removed, or the epoch after a leave is late:
    /// [`Event::KeyAwaited`]): pause the encryptor, so frames are dropped, not sent. Keep its
    /// counter: a stall can end without a new epoch (the departure turned out void), and the
    /// [`KeyUpdate::SetSend`] that follows then names the KID and key sent on before; its
    /// frames must go on from that counter, never from 0 (a nonce used twice).
    StopSend {
        /// The local stream.
        context: StreamContext,
    },
}

/// Something the application may want to show or act on.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Receive keys for epoch `epoch` are installed.
    EpochInstalled {
        /// The epoch number.
        epoch: u64,
    },
    /// Local streams now send on epoch `epoch`.
    Switched {
        /// The epoch number.
        epoch: u64,
    },
    /// A new key arrived from the committer: ask the publishers for a keyframe.
    KeyframeWanted,
    /// Membership changed: the code shown so far no longer holds and the round for the new one
    /// has started (hide the old code; show "pending"). [`Event::SafetyCodeChanged`] ends it.
    SafetyCodePending {
        /// The membership epoch whose code is awaited.
        epoch: u64,
    },
    /// The safety-code round of the latest membership change completed: show this code (it
    /// differs from every earlier one: tell users who compared the old code to compare again).
    SafetyCodeChanged(SafetyCode),
    /// A join (or snapshot entry) was refused; the participant is not treated as a member.
    MemberRefused {
        /// Who.
        participant: ParticipantId,
        /// Why.
        reason: MembershipError,
    },
    /// This member was removed (or left); every key is retired.
    Removed,
    /// Another member left or was removed and the epoch that excludes it has not come within
    /// [`crate::Config::stall_timeout`]: every local stream is stopped
    /// ([`KeyUpdate::StopSend`]) rather than go on under a key the departed member holds. Show
    /// that a key is awaited. It ends with [`Event::Switched`] once the epoch is installed.
    KeyAwaited {
        /// The first epoch that excludes the departed member (a later one does as well).
        epoch: u64,
    },
    /// The committer has not answered within [`crate::Config::committer_timeout`]: this member
    /// still waits for its envelope for `epoch` (and, after a leave, still sends nothing). A
    /// committer that is gone hands over by leaving; one that stays silent, or a relay that
    /// withholds its envelopes, cannot be routed around: the app may show it, rejoin or leave.
    CommitterStalled {
        /// The epoch awaited.
        epoch: u64,
        /// The committer, as this member's log names it.
        committer: ParticipantId,
    },
    /// This member is the committer, its rekey timer asked for a fresh epoch, and none came
    /// within 90 s: the relay withholds the rekey point, or names only others as asking (a
    /// point the committer is not named in is a ratchet, with no fresh secret). Keys still
    /// change at every point and join, but fresh secrets enter only at leaves until this ends
    /// (the next fresh epoch). Reported once per overdue period: the app may show it.
    RekeyOverdue {
        /// The epoch keys are on now (the newest installed).
        epoch: u64,
    },
    /// The committer sealed this member the secret of `epoch` for another member list than
    /// the one the relay showed this member ([`crate::roster`]; authenticated: the committer
    /// really sealed it so). It is not used: the member stays on its epoch, after a departure
    /// stops sending at the stall deadline, and as a newcomer never starts. The relay shows
    /// members different rosters; the app should say so (rejoining gets a fresh snapshot).
    /// Once per epoch.
    RosterMismatch {
        /// The epoch of the envelope.
        epoch: u64,
        /// The committer, as this member's log names it.
        committer: ParticipantId,
    },
}

/// One output of the session.
#[derive(Debug)]
#[non_exhaustive]
pub enum Output {
    /// Send this through the relay.
    Transmit(Transmit),
    /// Ask the relay to put a [`Change::Rekey`](crate::Change::Rekey) event in the room log.
    RequestRekey(RekeyReason),
    /// A frame-layer key change.
    Key(KeyUpdate),
    /// An application event.
    Event(Event),
}
