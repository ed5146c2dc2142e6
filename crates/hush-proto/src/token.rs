//! Access-token claims and grants.
//!
//! The app's backend mints a JWT (RFC 7519) per participant and per join; the relay verifies it
//! (`hush-relay`'s `token` module) and the participant may then act only inside `room`, only as
//! `sub`, only with `grants`. Times are seconds since the Unix epoch (RFC 7519 `NumericDate`).
//!
//! ```json
//! {
//!   "sub": "p-7f3a", "room": "standup", "aud": "hush", "exp": 1767225900,
//!   "nbf": 1767225600, "iat": 1767225600, "jti": "b5e0c1d2",
//!   "grants": { "publish": true, "subscribe": true, "sources": ["camera", "microphone"] }
//! }
//! ```

use core::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use crate::ids::{ParticipantId, RoomId, Source};

/// The claims of an access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// The participant: an opaque id without personal data.
    pub sub: ParticipantId,
    /// The only room this token opens.
    pub room: RoomId,
    /// Who the token is for: the relay accepts it only if one entry is its configured audience.
    pub aud: Audience,
    /// Expiry (required); the relay also caps how far in the future it may be.
    pub exp: u64,
    /// Not valid before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Token id: the relay accepts each `jti` once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// What the participant may do.
    pub grants: Grants,
}

/// The `aud` claim: one string or an array of strings (RFC 7519 section 4.1.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// One audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

impl Audience {
    /// Whether `name` is one of the audiences.
    pub fn contains(&self, name: &str) -> bool {
        match self {
            Self::One(a) => a == name,
            Self::Many(list) => list.iter().any(|a| a == name),
        }
    }
}

impl From<&str> for Audience {
    fn from(aud: &str) -> Self {
        Self::One(aud.to_owned())
    }
}

/// What a participant may do in its room. Every grant defaults to "no".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Grants {
    /// May publish tracks.
    pub publish: bool,
    /// May receive other participants' tracks.
    pub subscribe: bool,
    /// The sources it may publish; absent means every source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<Source>>,
    /// May run moderator commands (force disconnect, force unpublish, lock, close).
    pub moderator: bool,
    /// May record (the recorder is a visible member of the key exchange).
    pub record: bool,
}

impl Grants {
    /// Whether these grants allow publishing from `source`.
    pub fn may_publish(&self, source: Source) -> bool {
        self.publish
            && self
                .sources
                .as_ref()
                .is_none_or(|list| list.contains(&source))
    }
}

/// An access token as it travels in `join`: never logged (`Debug` prints `***`, there is no
/// `Display`), wiped from memory on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(Zeroizing<String>);

impl AccessToken {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(Zeroizing::new(token.into()))
    }

    /// The token text, for the verifier.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The `room` claim of a JWT, read without verifying anything: for a client, which got its
    /// token from its own backend, to know the room it set out to join and refuse a `joined`
    /// that names another. `None` if the token is not a JWT with a valid `room`.
    pub fn room(&self) -> Option<RoomId> {
        use base64::Engine as _;
        #[derive(Deserialize)]
        struct RoomClaim {
            room: RoomId,
        }
        let payload = self.0.split('.').nth(1)?;
        let json = Zeroizing::new(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .ok()?,
        );
        serde_json::from_slice::<RoomClaim>(&json)
            .ok()
            .map(|c| c.room)
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(***)")
    }
}

impl Serialize for AccessToken {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AccessToken {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::new(String::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_room_claim_is_read_from_a_jwt_and_nothing_else_is_one() {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let jwt = |payload: &str| format!("{}.{}.sig", b64(r#"{"alg":"EdDSA"}"#), b64(payload));
        let t = AccessToken::new(jwt(r#"{"sub":"p","room":"standup","exp":1}"#));
        assert_eq!(
            t.room().map(|r| r.as_str().to_owned()).as_deref(),
            Some("standup")
        );
        for bad in [
            "not a jwt".to_owned(),
            jwt(r#"{"sub":"p"}"#),
            jwt(r#"{"room":""}"#),
            jwt(r#"{"room":7}"#),
            "a.!!!.c".to_owned(),
        ] {
            assert_eq!(AccessToken::new(bad.clone()).room(), None, "{bad}");
        }
    }

    #[test]
    fn grants_default_to_nothing() {
        let g: Grants = serde_json::from_str("{}").unwrap();
        assert_eq!(g, Grants::default());
        assert!(!g.may_publish(Source::Camera));
    }

    #[test]
    fn sources_restrict_publishing() {
        let g: Grants =
            serde_json::from_str(r#"{"publish":true,"sources":["microphone"]}"#).unwrap();
        assert!(g.may_publish(Source::Microphone));
        assert!(!g.may_publish(Source::Camera));
        let all: Grants = serde_json::from_str(r#"{"publish":true}"#).unwrap();
        assert!(Source::ALL.into_iter().all(|s| all.may_publish(s)));
    }

    #[test]
    fn claims_round_trip_with_either_audience_form() {
        let json = r#"{"sub":"p1","room":"r1","aud":["a","hush"],"exp":10,"grants":{}}"#;
        let c: TokenClaims = serde_json::from_str(json).unwrap();
        assert!(c.aud.contains("hush") && !c.aud.contains("other"));
        let back: TokenClaims = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        let one: TokenClaims =
            serde_json::from_str(r#"{"sub":"p1","room":"r1","aud":"hush","exp":10,"grants":{}}"#)
                .unwrap();
        assert_eq!(one.aud, Audience::One("hush".into()));
    }

    #[test]
    fn tokens_are_never_formatted() {
        let t = AccessToken::new("eyJhbGciOi.secret.sig");
        assert_eq!(format!("{t:?}"), "AccessToken(***)");
    }
}
