//! The envelope every message shares: `{"v": 1, "type": "...", ...}`, and decoding that refuses
//! with a precise [`ErrorCode`].
//!
//! Decoding checks, in order: the size ([`MAX_MESSAGE_BYTES`]), that the text is a JSON object
//! with `v` and `type`, the version, the type, the fields of that type, and the size limits of
//! those fields. Fields a message does not define are ignored, so that a later minor revision
//! can add optional fields without a version bump; anything incompatible gets a new `v`.

use core::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;
use crate::limits::{MAX_ERROR_MESSAGE_BYTES, MAX_MESSAGE_BYTES};

/// The protocol version this crate speaks (the `v` field).
pub const PROTOCOL_VERSION: u64 = 1;

/// Why a message was refused. [`DecodeError::code`] is what goes back to the sender.
///
/// `Display` never includes the input; [`DecodeError::client_message`] may quote parts of it and
/// is meant for the sender only, not for logs.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The message is longer than [`MAX_MESSAGE_BYTES`].
    TooLarge {
        /// Its length in bytes.
        len: usize,
    },
    /// Not JSON, not an object, or a field missing or of the wrong type.
    Malformed {
        /// What serde said (may quote the input).
        detail: String,
    },
    /// `v` is not [`PROTOCOL_VERSION`].
    UnsupportedVersion,
    /// `type` names no message of this version.
    UnknownType,
    /// A field is over its size limit.
    FieldTooLarge(FieldTooLarge),
}

impl DecodeError {
    /// The error code to send back.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::TooLarge { .. } => ErrorCode::MessageTooLarge,
            Self::Malformed { .. } => ErrorCode::MalformedMessage,
            Self::UnsupportedVersion => ErrorCode::UnsupportedVersion,
            Self::UnknownType => ErrorCode::UnknownMessageType,
            Self::FieldTooLarge(_) => ErrorCode::FieldTooLarge,
        }
    }

    /// A message for the sender, at most [`MAX_ERROR_MESSAGE_BYTES`] long.
    pub fn client_message(&self) -> String {
        let mut text = match self {
            Self::Malformed { detail } => format!("malformed message: {detail}"),
            other => other.to_string(),
        };
        truncate_at_char_boundary(&mut text, MAX_ERROR_MESSAGE_BYTES);
        text
    }

    fn malformed(err: &serde_json::Error) -> Self {
        Self::Malformed {
            detail: err.to_string(),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { len } => {
                write!(
                    f,
                    "message of {len} bytes is over the limit of {MAX_MESSAGE_BYTES}"
                )
            }
            Self::Malformed { .. } => f.write_str("malformed message"),
            Self::UnsupportedVersion => {
                write!(
                    f,
                    "unsupported protocol version (this relay speaks {PROTOCOL_VERSION})"
                )
            }
            Self::UnknownType => f.write_str("unknown message type"),
            Self::FieldTooLarge(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for DecodeError {}

/// A field over its size limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldTooLarge {
    /// The field's name on the wire.
    pub field: &'static str,
    /// Its limit in bytes.
    pub limit: usize,
}

impl FieldTooLarge {
    pub(crate) fn check(field: &'static str, len: usize, limit: usize) -> Result<(), Self> {
        if len > limit {
            Err(Self { field, limit })
        } else {
            Ok(())
        }
    }
}

impl fmt::Display for FieldTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "field `{}` is over its limit of {} bytes",
            self.field, self.limit
        )
    }
}

/// Shortens `text` to at most `max` bytes without splitting a character.
pub(crate) fn truncate_at_char_boundary(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// Only the two fields every message has; the rest is ignored here.
#[derive(Deserialize)]
struct Probe {
    v: Option<serde_json::Value>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// Decodes one message of a type whose wire names are `types`.
pub(crate) fn decode<T: DeserializeOwned>(text: &str, types: &[&str]) -> Result<T, DecodeError> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::TooLarge { len: text.len() });
    }
    let probe: Probe = serde_json::from_str(text).map_err(|e| DecodeError::malformed(&e))?;
    match probe.v {
        None => {
            return Err(DecodeError::Malformed {
                detail: "missing field `v`".into(),
            });
        }
        Some(v) if v.as_u64() != Some(PROTOCOL_VERSION) => {
            return Err(DecodeError::UnsupportedVersion);
        }
        Some(_) => {}
    }
    match probe.kind {
        None => {
            return Err(DecodeError::Malformed {
                detail: "missing field `type`".into(),
            });
        }
        Some(kind) if !types.contains(&kind.as_str()) => return Err(DecodeError::UnknownType),
        Some(_) => {}
    }
    serde_json::from_str(text).map_err(|e| DecodeError::malformed(&e))
}

/// `{"v": 1, ...message}`.
#[derive(Serialize)]
struct Versioned<'a, T> {
    v: u64,
    #[serde(flatten)]
    message: &'a T,
}

/// Encodes one message with its version.
pub(crate) fn encode<T: Serialize>(message: &T) -> String {
    let versioned = Versioned {
        v: PROTOCOL_VERSION,
        message,
    };
    // Cannot fail: messages are structs of strings, numbers, booleans and lists, with no maps
    // keyed by non-strings and no fallible `Serialize` impls (see the round-trip tests).
    #[allow(clippy::expect_used)]
    serde_json::to_string(&versioned).expect("signaling messages always serialize")
}
