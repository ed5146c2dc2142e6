//! What a [`crate::Participant`] hands back: messages for the relay, frame-key updates for the
//! frame layer, and [`Event`]s for the application, in one vocabulary for every client.

use hush_keys::{KeyUpdate, SafetyCode};
use hush_proto::{ClientMessage, LeaveReason, ParticipantId};

use crate::refusal::Refusal;

/// One output, in the order it must be carried out.
#[derive(Debug)]
pub enum Output {
    /// Send this to the relay as is.
    Send(ClientMessage),
    /// A change for the frame layer (install or retire a receive key, set or stop a send key).
    Key(KeyUpdate),
    /// Something for the application to show or act on.
    Event(Event),
}

/// Something for the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The relay admitted us: our id and sender index in the room.
    Joined {
        /// Our participant id.
        you: ParticipantId,
        /// Our sender index.
        sender_index: u32,
    },
    /// The relay announced a participant (key-exchange member or refused: see
    /// [`Event::MemberRefused`]).
    MemberJoined {
        /// Who.
        participant: ParticipantId,
        /// Its sender index.
        sender_index: u32,
    },
    /// The relay announced a participant's departure.
    MemberLeft {
        /// Who.
        participant: ParticipantId,
        /// Why, as the relay says.
        reason: LeaveReason,
    },
    /// A participant was not admitted to the key exchange: it gets no key and its frames
    /// do not decrypt.
    MemberRefused {
        /// Who (as the relay named it; lossy UTF-8 where it is not).
        participant: String,
        /// Why.
        reason: Refusal,
    },
    /// Receive keys for this epoch are installed.
    EpochInstalled(u64),
    /// Local streams now send on this epoch.
    Switched(u64),
    /// Membership changed: hide the code shown so far; the new one is being agreed
    /// (commit-then-reveal, see `hush_keys::safety`) for this membership epoch.
    SafetyCodePending(u64),
    /// The new safety code, once every member revealed its nonce: show it, and tell users who
    /// compared the old one that it changed.
    SafetyCode(SafetyCode),
    /// A new key arrived: ask publishers for a keyframe so receivers recover at once.
    KeyframeWanted,
    /// We were removed (or left): every key is retired.
    Removed,
    /// Another member left or was removed and the epoch that excludes it is late: local
    /// streams are stopped (their send keys dropped) until it comes; show that a key is
    /// awaited. [`Event::Switched`] ends it.
    KeyAwaited(u64),
    /// The committer has not answered this member within the committer deadline: it still
    /// waits for the committer's key for this epoch.
    CommitterStalled {
        /// The epoch awaited.
        epoch: u64,
        /// The committer (lossy UTF-8 where it is not).
        committer: String,
    },
    /// This participant is the committer and no fresh epoch came for 90 s past its rekey
    /// timer: the relay withholds or rewrites rekey points (keys still ratchet; fresh secrets
    /// enter only at leaves). The epoch keys are on now. Show it.
    RekeyOverdue(u64),
    /// The committer sealed this participant an epoch for another member list than the one the
    /// relay showed it: not used (this participant stays on its epoch). The relay shows
    /// members different rosters. Show it; rejoining gets a fresh snapshot.
    RosterMismatch {
        /// The epoch of the envelope.
        epoch: u64,
        /// The committer (lossy UTF-8 where it is not).
        committer: String,
    },
    /// The room's recorder became a member of the key exchange (`true`: the call is being
    /// recorded, for whoever holds the recorder's offline key) or left it (`false`). Only a
    /// recorder admitted to the key exchange counts (vouched for by the app's backend in the
    /// recorder role, where members are vouched for): what the relay merely says does not.
    Recording(bool),
}

impl Event {
    /// The event's stable name (`memberRefused`, `safetyCode`, ...), as the Worker's page
    /// protocol spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Joined { .. } => "joined",
            Event::MemberJoined { .. } => "memberJoined",
            Event::MemberLeft { .. } => "memberLeft",
            Event::MemberRefused { .. } => "memberRefused",
            Event::EpochInstalled(_) => "epoch",
            Event::Switched(_) => "switched",
            Event::SafetyCodePending(_) => "safetyCodePending",
            Event::SafetyCode(_) => "safetyCode",
            Event::KeyframeWanted => "keyframeWanted",
            Event::Removed => "removed",
            Event::KeyAwaited(_) => "keyAwaited",
            Event::CommitterStalled { .. } => "committerStalled",
            Event::RekeyOverdue(_) => "rekeyOverdue",
            Event::RosterMismatch { .. } => "rosterMismatch",
            Event::Recording(_) => "recording",
        }
    }
}
