//! Identifiers: rooms, participants, tracks, sender indexes, media sources.
//!
//! Room and participant ids are opaque strings chosen by the app's backend (in the token's `room`
//! and `sub` claims): 1 to [`MAX_ID_BYTES`] printable ASCII characters without spaces. They
//! are personal data, so their `Debug` and `Display` print `***` (see [`crate::redact`]).

use core::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::limits::MAX_ID_BYTES;
use crate::redact::REDACTED;

/// A random value that names one life of a room: a room forgotten after its empty timeout and
/// created again under the same id gets a new one, although its sequence numbers and sender
/// indexes start again from the beginning. Key layers that derive keys from the room id alone
/// (shared-secret mode) must bind this too, or the second life would reuse the first one's keys
/// and nonces. 16 bytes, standard base64 on the wire (24 characters).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RoomInstance(pub [u8; 16]);

impl RoomInstance {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Debug for RoomInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RoomInstance(")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "..)")
    }
}

impl Serialize for RoomInstance {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine as _;
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(self.0))
    }
}

impl<'de> Deserialize<'de> for RoomInstance {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use base64::Engine as _;
        let text = String::deserialize(d)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|_| serde::de::Error::custom("room_instance is not base64"))?;
        let bytes: [u8; 16] = bytes
            .try_into()
            .map_err(|_| serde::de::Error::custom("room_instance is not 16 bytes"))?;
        Ok(Self(bytes))
    }
}

/// The rule room and participant ids follow, in words, for refusals that state it.
pub const ID_RULE: &str = "1 to 128 bytes of printable ASCII (`!` to `~`: no spaces)";

/// Why a string is not a valid room or participant id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdError {
    /// The id is empty.
    Empty,
    /// The id is longer than [`MAX_ID_BYTES`].
    TooLong,
    /// The id holds a character outside printable ASCII (`!` to `~`).
    InvalidChar,
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "id is empty",
            Self::TooLong => "id is too long",
            Self::InvalidChar => "id holds a character outside printable ASCII",
        })
    }
}

impl std::error::Error for IdError {}

fn check_id(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        Err(IdError::Empty)
    } else if s.len() > MAX_ID_BYTES {
        Err(IdError::TooLong)
    } else if !s.bytes().all(|b| b.is_ascii_graphic()) {
        Err(IdError::InvalidChar)
    } else {
        Ok(())
    }
}

macro_rules! opaque_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Checks and wraps an id.
            pub fn new(id: impl Into<String>) -> Result<Self, IdError> {
                let id = id.into();
                check_id(&id)?;
                Ok(Self(id))
            }

            /// The id itself (personal data: not for logs).
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), REDACTED)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(REDACTED)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(id: String) -> Result<Self, IdError> {
                Self::new(id)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;
            fn try_from(id: &str) -> Result<Self, IdError> {
                Self::new(id)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let id = String::deserialize(d)?;
                // The error names the rule, never the value.
                Self::new(id).map_err(serde::de::Error::custom)
            }
        }
    };
}

opaque_id!(
    /// A room: opaque, unique, chosen by the app's backend (the token's `room` claim).
    RoomId
);

opaque_id!(
    /// A participant: opaque, chosen by the app's backend (the token's `sub` claim). It should
    /// carry no personal data, but is treated as personal data anyway.
    ParticipantId
);

/// A participant's sender index in a room, assigned by the relay at join and never reused within
/// the room; the key layer packs it into SFrame KIDs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SenderIndex(pub u32);

/// A published track in a room, assigned by the relay and never reused within the room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TrackId(pub u64);

/// What a published track carries. A participant publishes at most one track per source, and
/// each source has its own encoded transform (and so its own SFrame counter) on the sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Source {
    /// Camera video.
    Camera,
    /// Microphone audio.
    Microphone,
    /// Screen share video.
    Screen,
}

impl Source {
    /// Every source, in wire order.
    pub const ALL: [Source; 3] = [Source::Camera, Source::Microphone, Source::Screen];

    /// The wire name (`camera`, `microphone`, `screen`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Camera => "camera",
            Self::Microphone => "microphone",
            Self::Screen => "screen",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        assert!(RoomId::new("team-standup_2026").is_ok());
        assert_eq!(RoomId::new(""), Err(IdError::Empty));
        assert_eq!(RoomId::new("a b"), Err(IdError::InvalidChar));
        assert_eq!(RoomId::new("caf\u{e9}"), Err(IdError::InvalidChar));
        assert_eq!(RoomId::new("line\nbreak"), Err(IdError::InvalidChar));
        assert_eq!(
            ParticipantId::new("x".repeat(MAX_ID_BYTES + 1)),
            Err(IdError::TooLong)
        );
        assert!(ParticipantId::new("x".repeat(MAX_ID_BYTES)).is_ok());
    }

    /// What [`ID_RULE`] says is what is checked: every printable ASCII character, `@` and `/`
    /// included, and nothing else (the rule once read `[A-Za-z0-9._~-]`, which refusals
    /// stated while `a@b` passed).
    #[test]
    fn the_stated_rule_is_the_checked_one() {
        assert!(ID_RULE.starts_with("1 to 128 bytes of printable ASCII"));
        assert_eq!(MAX_ID_BYTES, 128);
        for b in 0u8..=255 {
            let id = format!("a{}", b as char);
            let printable = (b'!'..=b'~').contains(&b);
            assert_eq!(RoomId::new(id.as_str()).is_ok(), printable, "byte {b}");
        }
    }

    #[test]
    fn ids_are_redacted_in_logs() {
        let p = ParticipantId::new("alice@example.com").unwrap();
        assert_eq!(format!("{p} {p:?}"), "*** ParticipantId(***)");
        assert_eq!(p.as_str(), "alice@example.com");
    }

    #[test]
    fn id_errors_do_not_echo_the_value() {
        let err = serde_json::from_str::<RoomId>("\"secret room\"").unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn sources_have_stable_names() {
        for s in Source::ALL {
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
    }
}
