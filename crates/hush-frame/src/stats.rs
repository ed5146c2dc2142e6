//! Counters of what happened to frames, by outcome. Plain numbers: safe to export anywhere.

use crate::error::DecryptError;

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

/// What a [`crate::Decryptor`] did, with one counter per drop reason.
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
    /// Counts one drop.
    pub(crate) fn count(&mut self, e: DecryptError) {
        let c = match e {
            DecryptError::Unencrypted => &mut self.unencrypted,
            DecryptError::MalformedHeader => &mut self.malformed_header,
            DecryptError::Truncated => &mut self.truncated,
            DecryptError::UnknownKid(_) => &mut self.unknown_kid,
            DecryptError::Replayed => &mut self.replayed,
            DecryptError::AuthFailed => &mut self.auth_failed,
            DecryptError::FrameTooLarge => &mut self.too_large,
        };
        *c += 1;
    }

    /// Frames dropped for any reason.
    pub fn dropped(&self) -> u64 {
        self.unencrypted
            + self.malformed_header
            + self.truncated
            + self.unknown_kid
            + self.replayed
            + self.auth_failed
            + self.too_large
    }
}
