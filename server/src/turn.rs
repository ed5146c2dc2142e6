//! TURN for clients behind firewalls: the relay hands each participant, in its `joined`, the
//! configured TURN servers with a credential minted for it, in the convention coturn calls the
//! "TURN REST API" (`use-auth-secret`, draft-uberti-behave-turn-rest): the username is
//! `expiry:participant` (Unix seconds), the password `base64(HMAC-SHA1(secret, username))`. The
//! TURN server shares only the secret with the relay and checks each credential itself, so
//! nothing per user is stored, and a credential is good until its expiry only.
//!
//! The relay itself needs no TURN: it is the public end of every connection. TURN carries
//! what it relays as it is, and media is SFrame-encrypted end to end, so a TURN server sees no
//! more than the relay does.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use hush_proto::{IceServer, ParticipantId};
use sha1::Sha1;
use zeroize::Zeroizing;

/// The default lifetime of a TURN credential: a TURN allocation refreshes with the credential
/// it was made with, so a call on TURN lasts at most this long without a rejoin.
pub const DEFAULT_TTL: Duration = Duration::from_secs(12 * 3600);

/// Why a TURN configuration was refused.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TurnConfigError {
    /// No URL.
    NoUrls,
    /// A URL that is not `turn:`, `turns:` or `stun:`.
    BadUrl(String),
    /// An empty shared secret.
    EmptySecret,
    /// A zero lifetime.
    ZeroTtl,
}

impl std::fmt::Display for TurnConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoUrls => f.write_str("TURN needs at least one URL"),
            Self::BadUrl(url) => write!(f, "not a turn:, turns: or stun: URL: {url}"),
            Self::EmptySecret => f.write_str("the TURN shared secret is empty"),
            Self::ZeroTtl => f.write_str("the TURN credential lifetime is zero"),
        }
    }
}

impl std::error::Error for TurnConfigError {}

/// The TURN servers to hand out and the secret shared with them.
#[derive(Clone)]
pub struct TurnConfig {
    urls: Vec<String>,
    secret: Zeroizing<Vec<u8>>,
    ttl: Duration,
}

impl std::fmt::Debug for TurnConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnConfig")
            .field("urls", &self.urls)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl TurnConfig {
    /// `urls` handed to clients as they are; `secret`: coturn's `static-auth-secret`; `ttl`:
    /// how long each credential is good for.
    pub fn new(
        urls: Vec<String>,
        secret: Zeroizing<Vec<u8>>,
        ttl: Duration,
    ) -> Result<Self, TurnConfigError> {
        if urls.is_empty() {
            return Err(TurnConfigError::NoUrls);
        }
        if let Some(bad) = urls.iter().find(|u| {
            !["turn:", "turns:", "stun:"]
                .iter()
                .any(|p| u.starts_with(p))
        }) {
            return Err(TurnConfigError::BadUrl(bad.clone()));
        }
        if secret.is_empty() {
            return Err(TurnConfigError::EmptySecret);
        }
        if ttl.is_zero() {
            return Err(TurnConfigError::ZeroTtl);
        }
        Ok(Self { urls, secret, ttl })
    }

    /// The ICE server entry for `participant` at `now_unix` (seconds): a credential good for
    /// the configured lifetime.
    pub fn ice_server(&self, now_unix: u64, participant: &ParticipantId) -> IceServer {
        let expiry = now_unix.saturating_add(self.ttl.as_secs());
        let username = format!("{expiry}:{}", participant.as_str());
        IceServer {
            urls: self.urls.clone(),
            credential: Some(credential(&self.secret, &username)),
            username: Some(username),
        }
    }
}

/// `base64(HMAC-SHA1(secret, username))`, the password coturn expects for `username`.
fn credential(secret: &[u8], username: &str) -> String {
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(username.as_bytes());
    B64.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TurnConfig {
        TurnConfig::new(
            vec!["turn:198.18.1.1:3478?transport=tcp".into()],
            Zeroizing::new(b"north".to_vec()),
            Duration::from_secs(600),
        )
        .unwrap()
    }

    #[test]
    fn credentials_follow_the_coturn_rest_convention() {
        // python3: base64(hmac.new(b'north', b'1700000000:alice', sha1).digest())
        assert_eq!(
            credential(b"north", "1700000000:alice"),
            "Cd/49soE35ICqcJF/bCTn8Z4OyE="
        );
        let server = config().ice_server(1_699_999_400, &ParticipantId::new("alice").unwrap());
        assert_eq!(server.username.as_deref(), Some("1700000000:alice"));
        assert_eq!(
            server.credential.as_deref(),
            Some("Cd/49soE35ICqcJF/bCTn8Z4OyE=")
        );
        assert_eq!(server.urls, ["turn:198.18.1.1:3478?transport=tcp"]);
    }

    #[test]
    fn bad_configurations_are_refused_and_debug_hides_the_secret() {
        let secret = || Zeroizing::new(b"north".to_vec());
        let ttl = Duration::from_secs(60);
        assert_eq!(
            TurnConfig::new(Vec::new(), secret(), ttl).unwrap_err(),
            TurnConfigError::NoUrls
        );
        assert_eq!(
            TurnConfig::new(vec!["http://x".into()], secret(), ttl).unwrap_err(),
            TurnConfigError::BadUrl("http://x".into())
        );
        assert_eq!(
            TurnConfig::new(vec!["turn:x".into()], Zeroizing::new(Vec::new()), ttl).unwrap_err(),
            TurnConfigError::EmptySecret
        );
        assert_eq!(
            TurnConfig::new(vec!["turn:x".into()], secret(), Duration::ZERO).unwrap_err(),
            TurnConfigError::ZeroTtl
        );
        assert!(!format!("{:?}", config()).contains("north"));
    }
}
