//! Error codes: stable strings a client can act on.
//!
//! The relay answers every refusal with an `error` message whose `code` is one of these. Codes
//! never change meaning; new ones may be added, so clients must treat an unknown code as a
//! generic failure (it deserializes as [`ErrorCode::Unknown`]). The human-readable `message`
//! beside a code is for developers and may change; it never carries secrets, tokens or another
//! participant's data.

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $code:literal,)*) => {
        /// Why the relay refused something. The wire form is the stable snake_case string.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
            /// A code this version does not know (sent by a newer relay). Never sent.
            Unknown,
        }

        impl ErrorCode {
            /// Every code this version sends, in table order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The stable wire string.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                    ErrorCode::Unknown => "unknown",
                }
            }
        }

        impl FromStr for ErrorCode {
            type Err = UnknownErrorCode;
            fn from_str(s: &str) -> Result<Self, UnknownErrorCode> {
                match s {
                    $($code => Ok(ErrorCode::$variant),)*
                    _ => Err(UnknownErrorCode),
                }
            }
        }
    };
}

error_codes! {
    // Access token (always fatal: the connection is closed).
    /// The token is longer than [`crate::limits::MAX_TOKEN_BYTES`].
    TokenTooLarge = "token_too_large",
    /// The token is not a compact JWS with a readable header and claims.
    TokenMalformed = "token_malformed",
    /// The header's `alg` is not one the relay accepts (`HS256`, `EdDSA`); `none` included.
    TokenUnsupportedAlgorithm = "token_unsupported_algorithm",
    /// The header's `kid` names no configured key (or is missing while several keys are set).
    TokenUnknownKey = "token_unknown_key",
    /// The header's `alg` is not the algorithm of the key its `kid` names.
    TokenAlgorithmMismatch = "token_algorithm_mismatch",
    /// The signature does not verify.
    TokenBadSignature = "token_bad_signature",
    /// A required claim is missing (the message names it).
    TokenMissingClaim = "token_missing_claim",
    /// A claim has the wrong type or an invalid value (the message names it).
    TokenInvalidClaim = "token_invalid_claim",
    /// `exp` has passed.
    TokenExpired = "token_expired",
    /// `nbf` is in the future.
    TokenNotYetValid = "token_not_yet_valid",
    /// `iat` is in the future.
    TokenIssuedInFuture = "token_issued_in_future",
    /// `exp` is further away than the relay's policy allows.
    TokenLifetimeTooLong = "token_lifetime_too_long",
    /// `aud` does not name this relay.
    TokenWrongAudience = "token_wrong_audience",
    /// The token's `room` is not the room the `join` asked for.
    TokenWrongRoom = "token_wrong_room",
    /// The token's `jti` was already used: tokens are single use.
    TokenReplayed = "token_replayed",

    // Signaling input.
    /// The message is longer than [`crate::limits::MAX_MESSAGE_BYTES`].
    MessageTooLarge = "message_too_large",
    /// The message is not valid JSON or lacks or mistypes a field (the message says which).
    MalformedMessage = "malformed_message",
    /// The `v` field is not a protocol version this relay speaks.
    UnsupportedVersion = "unsupported_version",
    /// The `type` field names no message of this version.
    UnknownMessageType = "unknown_message_type",
    /// A field is over its size limit (see [`crate::limits`]).
    FieldTooLarge = "field_too_large",
    /// The first message was not `join` (fatal).
    NotJoined = "not_joined",
    /// A second `join` on a joined connection.
    AlreadyJoined = "already_joined",
    /// No `join` arrived in time after connecting (fatal).
    JoinTimeout = "join_timeout",
    /// Too many messages: the message was dropped (fatal when it goes on).
    RateLimited = "rate_limited",

    // Grants.
    /// Publishing needs the `publish` grant.
    PublishNotAllowed = "publish_not_allowed",
    /// The token's `sources` grant does not include this source.
    SourceNotAllowed = "source_not_allowed",
    /// Subscribing needs the `subscribe` grant.
    SubscribeNotAllowed = "subscribe_not_allowed",
    /// The request needs a subscription to the track (a keyframe request for a track you do
    /// not receive).
    NotSubscribed = "not_subscribed",
    /// Moderator commands need the `moderator` grant.
    ModeratorRequired = "moderator_required",
    /// Starting or stopping a recording needs the `record` grant.
    RecordNotAllowed = "record_not_allowed",

    // Recording.
    /// The app backend has not set a recorder identity for this room.
    RecorderNotConfigured = "recorder_not_configured",
    /// The room is being recorded already.
    AlreadyRecording = "already_recording",
    /// The room is not being recorded.
    NotRecording = "not_recording",
    /// The relay is not configured to record (no recording directory).
    RecordingDisabled = "recording_disabled",
    /// Nobody is in the room to record.
    RoomEmpty = "room_empty",

    // Rooms and members.
    /// The room has as many participants as it may have.
    RoomFull = "room_full",
    /// The relay has as many rooms as it may have.
    ServerFull = "server_full",
    /// A moderator locked the room: no new participants.
    RoomLocked = "room_locked",
    /// A moderator closed the room (fatal for everyone in it).
    RoomClosed = "room_closed",
    /// A moderator removed you from the room (fatal).
    Removed = "removed",
    /// The same participant joined again on another connection; this one is closed (fatal).
    Replaced = "replaced",
    /// No room with this id (admin API).
    UnknownRoom = "unknown_room",
    /// No participant with this id is in your room.
    UnknownParticipant = "unknown_participant",
    /// No track with this id is in your room.
    UnknownTrack = "unknown_track",
    /// You already publish a track from this source.
    AlreadyPublished = "already_published",
    /// You publish no track from this source.
    NotPublished = "not_published",

    // The relay itself.
    /// The relay is at a capacity limit; try again later.
    ServerBusy = "server_busy",
    /// Something went wrong inside the relay; nothing about it is disclosed.
    InternalError = "internal_error",
    /// The relay is shutting down (a restart, a deploy): the call goes on until the drain time
    /// ends, then the connection closes (1001); rejoin, here when it is back or elsewhere.
    ServerShuttingDown = "server_shutting_down",
}

impl ErrorCode {
    /// Whether this code is about the access token.
    pub fn is_token_error(self) -> bool {
        self.as_str().starts_with("token_")
    }
}

/// The string is not an error code of this version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownErrorCode;

impl fmt::Display for UnknownErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown error code")
    }
}

impl std::error::Error for UnknownErrorCode {}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(s.parse().unwrap_or(ErrorCode::Unknown))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_round_trip() {
        let mut seen = HashSet::new();
        for &code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "duplicate {s}");
            assert!(
                s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{s}"
            );
            assert_eq!(s.parse::<ErrorCode>(), Ok(code));
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        }
    }

    #[test]
    fn codes_keep_their_strings() {
        // These strings are a public contract: changing one breaks deployed clients.
        assert_eq!(ErrorCode::TokenExpired.as_str(), "token_expired");
        assert_eq!(ErrorCode::TokenNotYetValid.as_str(), "token_not_yet_valid");
        assert_eq!(ErrorCode::TokenWrongRoom.as_str(), "token_wrong_room");
        assert_eq!(ErrorCode::RoomFull.as_str(), "room_full");
    }

    #[test]
    fn a_newer_code_reads_as_unknown() {
        let code: ErrorCode = serde_json::from_str("\"flux_capacitor_empty\"").unwrap();
        assert_eq!(code, ErrorCode::Unknown);
        assert!(!ErrorCode::ALL.contains(&ErrorCode::Unknown));
    }

    #[test]
    fn every_code_is_in_the_crate_docs() {
        let docs = include_str!("lib.rs");
        for &code in ErrorCode::ALL {
            assert!(
                docs.contains(&format!("| `{code}` |")),
                "{code} missing from the table"
            );
        }
    }
}
