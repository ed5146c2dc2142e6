//! The one vocabulary of refusals: why a relay message, a member or a local call was refused.
//!
//! Every adapter reports these codes as they are (the Worker's `keyEvent` errors and
//! `memberRefused` reasons, the native client's events and counters); nothing else maps
//! hush-keys errors to strings.

use core::fmt;

use hush_keys::{EnvelopeError, Error, InputError, MembershipError, UsageError};

/// Why something was refused. [`Refusal::code`] is its stable snake_case name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The relay message did not decode, broke hush-proto's limits or has another version.
    MalformedEvent,
    /// The relay message is not about keys (`offer`, `pong`, ...): nothing to do here.
    NotAKeyEvent,
    /// A relay-named participant or room id is not usable as a key-exchange id.
    BadId,
    /// A relay-assigned sender index is out of the KID layout's range.
    SenderIndexOutOfRange,
    /// A second `joined`.
    AlreadyJoined,
    /// `joined` names another room than the one this participant set out to join
    /// ([`crate::Participant::expect_room`]): a relay moving it into a room of its choosing,
    /// where another room's attestations would pass.
    WrongRoom,
    /// Something that needs `joined` came first.
    NotJoined,
    /// The key session refused it.
    Keys(Error),
}

impl Refusal {
    /// The stable code (snake_case; never secret material).
    pub fn code(self) -> &'static str {
        match self {
            Refusal::MalformedEvent => "malformed_event",
            Refusal::NotAKeyEvent => "not_a_key_event",
            Refusal::BadId => "bad_id",
            Refusal::SenderIndexOutOfRange => "sender_index_out_of_range",
            Refusal::AlreadyJoined => "already_joined",
            Refusal::WrongRoom => "wrong_room",
            Refusal::NotJoined => "not_joined",
            Refusal::Keys(e) => keys_code(e),
        }
    }
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Refusal::Keys(e)
    }
}

impl From<MembershipError> for Refusal {
    fn from(e: MembershipError) -> Self {
        Refusal::Keys(Error::Membership(e))
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl std::error::Error for Refusal {}

fn keys_code(e: Error) -> &'static str {
    match e {
        Error::Envelope(e) => match e {
            EnvelopeError::Malformed => "malformed",
            EnvelopeError::UnsupportedVersion => "unsupported_version",
            EnvelopeError::Misaddressed => "misaddressed",
            EnvelopeError::UnknownSender => "unknown_sender",
            EnvelopeError::NotCommitter => "not_committer",
            EnvelopeError::Stale => "stale",
            EnvelopeError::Replayed => "replayed",
            EnvelopeError::UnexpectedEpoch => "unexpected_epoch",
            EnvelopeError::Forged => "forged",
            EnvelopeError::BufferFull => "buffer_full",
            EnvelopeError::BadRecipientKey => "bad_recipient_key",
            EnvelopeError::CommitmentMismatch => "commitment_mismatch",
            EnvelopeError::RosterMismatch => "roster_mismatch",
            _ => "envelope_refused",
        },
        Error::Membership(e) => match e {
            MembershipError::StaleEvent => "stale_event",
            MembershipError::EventBufferFull => "event_buffer_full",
            MembershipError::DuplicateParticipant => "duplicate_participant",
            MembershipError::SenderIndexReused => "sender_index_reused",
            MembershipError::SenderIndexOutOfRange => "sender_index_out_of_range",
            MembershipError::BadJoinSequence => "bad_join_sequence",
            MembershipError::BadIdentityKey => "bad_identity_key",
            MembershipError::MissingAttestation => "missing_attestation",
            MembershipError::BadAttestation => "bad_attestation",
            MembershipError::NotInSnapshot => "not_in_snapshot",
            MembershipError::SequenceTooLarge => "sequence_too_large",
            _ => "membership_refused",
        },
        Error::Usage(e) => match e {
            UsageError::NotJoined => "not_joined",
            UsageError::AlreadyJoined => "already_joined",
            UsageError::Removed => "removed",
            _ => "usage",
        },
        Error::Input(e) => match e {
            InputError::BadId => "bad_id",
            InputError::BadIdentityKey => "bad_identity_key",
            InputError::SharedSecretTooShort => "shared_secret_too_short",
            _ => "bad_input",
        },
        _ => "refused",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_snake_case_and_distinct_per_cause() {
        let all = [
            Refusal::MalformedEvent,
            Refusal::NotAKeyEvent,
            Refusal::BadId,
            Refusal::AlreadyJoined,
            Refusal::WrongRoom,
            Refusal::NotJoined,
            Refusal::Keys(Error::Envelope(EnvelopeError::Forged)),
            Refusal::Keys(Error::Membership(MembershipError::BadIdentityKey)),
            Refusal::Keys(Error::Usage(UsageError::Removed)),
        ];
        let codes: std::collections::BTreeSet<_> = all.iter().map(|r| r.code()).collect();
        assert_eq!(codes.len(), all.len());
        for c in codes {
            assert!(
                c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{c}"
            );
        }
    }
}
