//! Counters of what happened to frames, by outcome. Plain numbers: safe to export anywhere.

use crate::error::{DecryptError, DropReason};

/// What an [`crate::Encryptor`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EncryptStats {
    /// Frames sealed.
    pub encrypted: u64,
    /// Frames refused because the key reached its usage limit.
    pub refused_rotate: u64,
    /// Frames refused because they do not fit their codec's prefix rule or are too large.
    pub refused_frame: u64,
}

/// What a [`crate::Decryptor`] did, with one counter per [`DropReason`] (read them by reason with
/// [`DecryptStats::dropped_for`] or [`DecryptStats::drops`] rather than field by field).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecryptStats {
    /// Frames that authenticated and were handed on.
    pub decrypted: u64,
    /// Dropped: empty or shorter than the codec's clear prefix.
    pub unencrypted: u64,
    /// Dropped: the SFrame header did not decode.
    pub malformed_header: u64,
    /// Dropped: shorter than the suite's tag after the header.
    pub truncated: u64,
    /// Dropped: no key for the KID.
    pub unknown_kid: u64,
    /// Dropped: counter already seen or older than the replay window.
    pub replayed: u64,
    /// Dropped: authentication failed.
    pub auth_failed: u64,
    /// Dropped: larger than [`crate::MAX_FRAME_LEN`].
    pub too_large: u64,
}

impl DecryptStats {
    /// Counts one drop. The [`crate::Decryptor`] counts its own; a host that keeps counters of
    /// its own (per sender, say) counts the errors it was handed the same way.
    pub fn count(&mut self, e: DecryptError) {
        *self.counter(e.reason()) += 1;
    }

    /// Frames dropped for `reason`.
    pub fn dropped_for(&self, reason: DropReason) -> u64 {
        let mut copy = *self; // plain numbers: one match serves reads and writes
        *copy.counter(reason)
    }

    /// Frames dropped, by reason, in [`DropReason::ALL`] order (zero counts included).
    pub fn drops(&self) -> impl Iterator<Item = (DropReason, u64)> + use<> {
        DropReason::ALL
            .map(|r| (r, self.dropped_for(r)))
            .into_iter()
    }

    /// Frames dropped for any reason.
    pub fn dropped(&self) -> u64 {
        self.drops().map(|(_, n)| n).sum()
    }

    /// Adds `other`'s counters to these (saturating): the totals of several decryptors or
    /// senders.
    pub fn add(&mut self, other: &Self) {
        self.decrypted = self.decrypted.saturating_add(other.decrypted);
        for (reason, n) in other.drops() {
            let c = self.counter(reason);
            *c = c.saturating_add(n);
        }
    }

    /// The one place a reason meets its field.
    fn counter(&mut self, reason: DropReason) -> &mut u64 {
        match reason {
            DropReason::Unencrypted => &mut self.unencrypted,
            DropReason::MalformedHeader => &mut self.malformed_header,
            DropReason::Truncated => &mut self.truncated,
            DropReason::UnknownKid => &mut self.unknown_kid,
            DropReason::Replayed => &mut self.replayed,
            DropReason::AuthFailed => &mut self.auth_failed,
            DropReason::TooLarge => &mut self.too_large,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_counter() {
        let mut s = DecryptStats::default();
        for (i, r) in DropReason::ALL.into_iter().enumerate() {
            for _ in 0..=i {
                *s.counter(r) += 1;
            }
        }
        let counts: Vec<_> = s.drops().collect();
        let expected: Vec<_> = DropReason::ALL.into_iter().zip(1..).collect();
        assert_eq!(counts, expected);
        assert_eq!(s.dropped(), (1..=7).sum::<u64>());
        let mut twice = s;
        twice.add(&s);
        assert_eq!(twice.dropped(), 2 * s.dropped());
    }

    #[test]
    fn every_error_counts_under_its_reason() {
        let errors = [
            DecryptError::Unencrypted,
            DecryptError::MalformedHeader,
            DecryptError::Truncated,
            DecryptError::UnknownKid(7),
            DecryptError::Replayed,
            DecryptError::AuthFailed,
            DecryptError::FrameTooLarge,
        ];
        let reasons: Vec<_> = errors.iter().map(|e| e.reason()).collect();
        assert_eq!(reasons, DropReason::ALL, "one reason per error, in order");
        for e in errors {
            let mut s = DecryptStats::default();
            s.count(e);
            assert_eq!(s.dropped_for(e.reason()), 1);
            assert_eq!(s.dropped(), 1);
        }
        let names: std::collections::BTreeSet<_> =
            DropReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), DropReason::ALL.len(), "names are distinct");
    }
}
