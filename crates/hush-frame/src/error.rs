//! Errors, layered by whose fault they are: the peer's input ([`DecryptError`]), the caller's
//! use of the API ([`EncryptError`], [`KeyError`]) or the header codec ([`HeaderError`]).
//!
//! A failed authentication carries no detail at all, so that nothing can serve as an oracle.

use core::fmt;

use crate::codec::Layout;

/// Why a header could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderError {
    /// The input ended inside the header.
    Truncated,
    /// A KID or CTR was encoded in more bytes than needed (RFC 9605 section 4.3 says minimum).
    NonMinimal,
    /// The output buffer cannot hold the header.
    BufferTooSmall,
}

/// Why a key could not be set up: always the caller's input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// A base key must be 16 to 64 bytes.
    BadBaseKeyLength(usize),
    /// A raw AEAD key does not have the suite's `Nk` length.
    BadAeadKeyLength {
        /// What the suite needs.
        expected: usize,
        /// What was given.
        got: usize,
    },
    /// No cipher suite has this registry identifier.
    UnknownSuite(u16),
    /// The replay window must be 1 to 65536 counters.
    BadReplayWindow(u32),
}

/// Why a frame was not encrypted. The frame must then be dropped, never sent in the clear.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncryptError {
    /// The key reached its usage limit (RFC 9605 section 9): rotate to a new key (a new epoch)
    /// before sending again. Counters are never reused.
    RotateKey,
    /// The frame is shorter than its codec's clear prefix, so it is not a valid frame of that
    /// codec (an empty audio packet, a VP8 key frame under 10 bytes).
    FrameTooShort(Layout),
    /// The frame is larger than [`crate::MAX_FRAME_LEN`].
    FrameTooLarge,
    /// The AEAD refused the input (only possible through the host-AEAD seam with bad lengths).
    Seal,
}

/// Why an incoming frame was dropped. Each has a counter in [`crate::DecryptStats`] and a stable
/// name, its [`DropReason`] ([`DecryptError::reason`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecryptError {
    /// The frame is empty or ends inside its codec's clear prefix: what a sender without E2EE
    /// (or a stripped frame) looks like.
    Unencrypted,
    /// The SFrame header cannot be decoded.
    MalformedHeader,
    /// Header decoded, but fewer bytes than the suite's tag follow it.
    Truncated,
    /// No key is installed for the frame's KID.
    UnknownKid(u64),
    /// The counter was already accepted, or is older than the replay window.
    Replayed,
    /// Authentication failed: wrong key, tampered frame, forged frame. No further detail.
    AuthFailed,
    /// The frame is larger than [`crate::MAX_FRAME_LEN`].
    FrameTooLarge,
}

/// Why the frame layer dropped a received frame, by a stable name: the one vocabulary of drop
/// reasons. hush-wasm's `lastError` codes, hush-client's counters, the browser API's
/// `DropReason` (web/src/protocol.ts), the relay's `e2ee_stats` reasons and its
/// `hush_e2ee_dropped_frames` metric labels all take these names from here; hush-proto's
/// `E2eeDropReason` adds the reasons of the transforms around this crate (and `other`) and maps
/// these in its one `From` impl.
///
/// One reason per [`DecryptError`] variant, without its detail (the KID of
/// [`DecryptError::UnknownKid`]): the name is safe to export anywhere.
///
/// Deliberately not `#[non_exhaustive]`: every consumer matches it exhaustively, so a reason added
/// here fails to compile until each of them has a name and a counter for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropReason {
    /// [`DecryptError::Unencrypted`]: `unencrypted`.
    Unencrypted,
    /// [`DecryptError::MalformedHeader`]: `malformed_header`.
    MalformedHeader,
    /// [`DecryptError::Truncated`]: `truncated`.
    Truncated,
    /// [`DecryptError::UnknownKid`]: `unknown_kid`.
    UnknownKid,
    /// [`DecryptError::Replayed`]: `replayed`.
    Replayed,
    /// [`DecryptError::AuthFailed`]: `auth_failed`.
    AuthFailed,
    /// [`DecryptError::FrameTooLarge`]: `too_large`.
    TooLarge,
}

impl DropReason {
    /// Every reason, in the order of [`crate::DecryptStats::drops`].
    pub const ALL: [Self; 7] = [
        Self::Unencrypted,
        Self::MalformedHeader,
        Self::Truncated,
        Self::UnknownKid,
        Self::Replayed,
        Self::AuthFailed,
        Self::TooLarge,
    ];

    /// The stable name: `lastError` code, `e2ee_stats` key and metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unencrypted => "unencrypted",
            Self::MalformedHeader => "malformed_header",
            Self::Truncated => "truncated",
            Self::UnknownKid => "unknown_kid",
            Self::Replayed => "replayed",
            Self::AuthFailed => "auth_failed",
            Self::TooLarge => "too_large",
        }
    }
}

impl DecryptError {
    /// The stable name of this drop, without detail.
    pub const fn reason(self) -> DropReason {
        match self {
            DecryptError::Unencrypted => DropReason::Unencrypted,
            DecryptError::MalformedHeader => DropReason::MalformedHeader,
            DecryptError::Truncated => DropReason::Truncated,
            DecryptError::UnknownKid(_) => DropReason::UnknownKid,
            DecryptError::Replayed => DropReason::Replayed,
            DecryptError::AuthFailed => DropReason::AuthFailed,
            DecryptError::FrameTooLarge => DropReason::TooLarge,
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HeaderError::Truncated => "SFrame header truncated",
            HeaderError::NonMinimal => "SFrame header field not minimally encoded",
            HeaderError::BufferTooSmall => "buffer too small for SFrame header",
        })
    }
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::BadBaseKeyLength(n) => write!(f, "base key must be 16..=64 bytes, got {n}"),
            KeyError::BadAeadKeyLength { expected, got } => {
                write!(f, "AEAD key must be {expected} bytes, got {got}")
            }
            KeyError::UnknownSuite(id) => write!(f, "unknown SFrame cipher suite 0x{id:04x}"),
            KeyError::BadReplayWindow(n) => {
                write!(f, "replay window must be 1..=65536 counters, got {n}")
            }
        }
    }
}

impl fmt::Display for EncryptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncryptError::RotateKey => f.write_str("key usage limit reached: rotate the key"),
            EncryptError::FrameTooShort(c) => {
                write!(f, "frame does not fit the {c:?} clear-prefix rule")
            }
            EncryptError::FrameTooLarge => f.write_str("frame too large"),
            EncryptError::Seal => f.write_str("AEAD seal failed"),
        }
    }
}

impl fmt::Display for DecryptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecryptError::Unencrypted => f.write_str("frame is not encrypted"),
            DecryptError::MalformedHeader => f.write_str("malformed SFrame header"),
            DecryptError::Truncated => f.write_str("frame truncated"),
            DecryptError::UnknownKid(kid) => write!(f, "no key for KID {kid}"),
            DecryptError::Replayed => f.write_str("replayed or too old frame"),
            DecryptError::AuthFailed => f.write_str("authentication failed"),
            DecryptError::FrameTooLarge => f.write_str("frame too large"),
        }
    }
}

impl std::error::Error for HeaderError {}
impl std::error::Error for KeyError {}
impl std::error::Error for EncryptError {}
impl std::error::Error for DecryptError {}
