//! Opaque identifiers the relay assigns: rooms and participants.

use alloc::boxed::Box;
use core::fmt;

use crate::error::InputError;

/// The longest room or participant id accepted, in bytes.
pub const MAX_ID_LEN: usize = 255;

/// A room id: opaque bytes (at most [`MAX_ID_LEN`]) bound into every envelope and the safety
/// code.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoomId(Box<[u8]>);

impl RoomId {
    /// A room id from its bytes; refuses empty or over-long ids.
    pub fn new(id: impl AsRef<[u8]>) -> Result<Self, InputError> {
        check_len(id.as_ref()).map(|b| Self(b.into()))
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RoomId({} bytes)", self.0.len())
    }
}

/// A participant id (the token's `sub`): opaque bytes, at most [`MAX_ID_LEN`].
///
/// `Debug` redacts it (STYLE.md: participant ids stay out of logs); use
/// [`ParticipantId::as_bytes`] where the value is really needed.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ParticipantId(Box<[u8]>);

impl ParticipantId {
    /// A participant id from its bytes; refuses empty or over-long ids.
    pub fn new(id: impl AsRef<[u8]>) -> Result<Self, InputError> {
        check_len(id.as_ref()).map(|b| Self(b.into()))
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ParticipantId(***)")
    }
}

fn check_len(b: &[u8]) -> Result<&[u8], InputError> {
    if b.is_empty() || b.len() > MAX_ID_LEN {
        Err(InputError::BadId)
    } else {
        Ok(b)
    }
}
