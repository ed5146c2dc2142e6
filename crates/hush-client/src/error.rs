//! Typed errors of the native client.

use core::fmt;

use hush_proto::ErrorCode;

/// Why a client call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// The WebSocket could not be opened or broke.
    Signaling(String),
    /// The relay refused (an `error` message): its code and message. Token errors land here.
    Refused {
        /// The relay's error code.
        code: ErrorCode,
        /// The relay's message (never contains the token).
        message: String,
    },
    /// The relay sent something this client cannot use (malformed, out of order).
    Protocol(&'static str),
    /// A step took longer than its timeout.
    Timeout(&'static str),
    /// webrtc-rs failed.
    Media(String),
    /// The key exchange refused an input.
    Keys(hush_participant::Refusal),
    /// The client is closed.
    Closed,
    /// The source was not published by this client (not in [`crate::ClientOptions::publish`]).
    NotPublished,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Signaling(e) => write!(f, "signaling: {e}"),
            Self::Refused { code, message } => write!(f, "refused: {} ({message})", code.as_str()),
            Self::Protocol(what) => write!(f, "protocol: {what}"),
            Self::Timeout(what) => write!(f, "timed out: {what}"),
            Self::Media(e) => write!(f, "media: {e}"),
            Self::Keys(e) => write!(f, "keys: {e}"),
            Self::Closed => f.write_str("client closed"),
            Self::NotPublished => f.write_str("source not published by this client"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<webrtc::error::Error> for ClientError {
    fn from(e: webrtc::error::Error) -> Self {
        Self::Media(e.to_string())
    }
}

impl From<hush_participant::Refusal> for ClientError {
    fn from(e: hush_participant::Refusal) -> Self {
        Self::Keys(e)
    }
}
