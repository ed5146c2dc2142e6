//! Members and the relay's ordered membership events.

use crate::attest::Attestation;
use crate::identity::IdentityPublicKey;
use crate::ids::ParticipantId;
use crate::kid::SenderIndex;

/// A room member as the relay announces it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The participant id (the token's `sub`).
    pub participant: ParticipantId,
    /// Relay-assigned sender index, unique and never reused within the room.
    pub sender_index: SenderIndex,
    /// Sequence number of the relay event that made it a member; the lowest one is the
    /// committer.
    pub join_seq: u64,
    /// Its X25519 identity public key.
    pub identity: IdentityPublicKey,
    /// The backend's attestation, when the app uses them.
    pub attestation: Option<Attestation>,
    /// What the member does in the key exchange (a [`Role::Recorder`] only receives).
    pub role: Role,
}

/// A member's part in the key exchange. The backend's attestation binds it
/// ([`crate::Attestation::sign_as`]), so a relay cannot turn a participant into a recorder or
/// back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Role {
    /// A participant: sends and receives, acknowledges epochs, commits when it is the earliest.
    #[default]
    Participant,
    /// The room's recorder (DESIGN.md section 4): an identity whose private key the app keeps
    /// offline. It is sealed every epoch like anyone else, is counted in the safety code, and
    /// never answers: it is never the committer, no switch waits for its acknowledgement, and
    /// no safety-code round waits for its commit or reveal.
    Recorder,
}

impl Role {
    /// True for a member that takes part in acks, commits and code rounds.
    pub fn is_active(self) -> bool {
        self == Role::Participant
    }
}

/// One event of the relay's ordered, per-room event log.
///
/// Sequence numbers are per room and consecutive (1, 2, 3, ...): every member sees every event,
/// in order; the session buffers an event that arrives ahead of a gap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipEvent {
    /// The event's sequence number.
    pub seq: u64,
    /// What happened.
    pub change: Change,
}

/// What a membership event changes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// A participant joined (its `join_seq` equals the event's `seq`).
    Join(Member),
    /// A participant left.
    Leave(ParticipantId),
    /// A participant was removed by a moderator or the backend.
    Remove(ParticipantId),
    /// A rekey point the relay put in the log, because a member asked for one
    /// ([`crate::Output::RequestRekey`]): a timer, or a sender near its usage limit. Always a
    /// fresh epoch (what a relay that does not say who asked sends).
    Rekey,
    /// A rekey point with the participants who asked for it (the relay names them, merged
    /// requests included). A fresh epoch, drawn by the committer and sealed to every member,
    /// when the committer is among them; otherwise a **ratchet** (`E_{n+1} = ratchet(E_n)`, as
    /// on a join): new frame keys and KIDs, so a sender near its usage limit gets fresh
    /// counters, with no envelope at all. So a member asking for rekeys as fast as the relay
    /// sequences them (one per second) costs the committer one switch notice each, never a
    /// fan-out of envelopes; only the committer's own timer (and membership changes) bring
    /// fresh secrets.
    RekeyRequested(alloc::vec::Vec<ParticipantId>),
    /// A join the driver refused before the session could see it (its identity key or sender
    /// index could not even be parsed): it changes nothing but keeps the log consecutive. Every
    /// member refuses the same join, so none of them starts an epoch for it.
    Refused(ParticipantId),
}
