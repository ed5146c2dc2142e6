//! Access tokens for a [`TestRelay`](crate::relay::TestRelay): one HS256 key (secret and kid)
//! that the relay verifies with, and a builder for the claims; and the app backend's Ed25519
//! attestation key, which vouches for members' identity keys ([`Tokens::attest`]).
//!
//! ```
//! use hush_testkit::tokens::Tokens;
//!
//! let tokens = Tokens::default();
//! let a = tokens.mint("standup", "alice").publish().subscribe().string();
//! let b = tokens.mint("standup", "alice").publish().subscribe().string();
//! assert_ne!(a, b, "every token has its own jti");
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hush_proto::{AccessToken, Audience, Grants, TokenClaims};
use hush_relay::token::{SigningKey, VerifyingKeys, mint};

/// The audience every kit token names (the relay's default policy).
pub const AUDIENCE: &str = "hush";

/// How long a token lives unless told otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

/// The app backend's attestation key every kit uses (a fixed seed: reproducible).
const BACKEND_SEED: [u8; 32] = [0xb7; 32];

/// How long an attestation the kit signs lives.
pub const ATTESTATION_TTL: Duration = Duration::from_secs(3600);

/// The current Unix time in seconds, from the same clock the relay reads.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One HS256 signing key shared with the relay that verifies it.
#[derive(Clone)]
pub struct Tokens {
    kid: String,
    secret: [u8; 32],
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Default for Tokens {
    /// Key id `testkit`, a fixed secret: tests are reproducible and need no randomness here.
    fn default() -> Self {
        Self::new("testkit", [42u8; 32])
    }
}

impl Tokens {
    /// A key with this id and secret.
    pub fn new(kid: impl Into<String>, secret: [u8; 32]) -> Self {
        Self {
            kid: kid.into(),
            secret,
        }
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The HS256 secret (for a relay process's key file).
    pub fn secret(&self) -> &[u8; 32] {
        &self.secret
    }

    /// The backend's attestation verification key: what vouching clients are configured with.
    pub fn backend_key(&self) -> hush_keys::ed25519_dalek::VerifyingKey {
        hush_keys::ed25519_dalek::SigningKey::from_bytes(&BACKEND_SEED).verifying_key()
    }

    /// What the app backend does in the two-step join: vouches that `identity_key` is `sub`'s
    /// in `room` for [`ATTESTATION_TTL`] (the wire form of `hush_keys::Attestation`).
    pub fn attest(&self, room: &str, sub: &str, identity_key: &[u8; 32]) -> Vec<u8> {
        let backend = hush_keys::ed25519_dalek::SigningKey::from_bytes(&BACKEND_SEED);
        let key = hush_keys::IdentityPublicKey::from_bytes(*identity_key)
            .expect("an identity key the client made");
        let room = hush_keys::RoomId::new(room).expect("a room id");
        let sub = hush_keys::ParticipantId::new(sub).expect("a participant id");
        let expires = now_unix() + ATTESTATION_TTL.as_secs();
        hush_keys::Attestation::sign(&backend, &room, &sub, &key, expires)
            .to_bytes()
            .to_vec()
    }

    /// The backend's attestation of `identity_key` as `sub`, the room's recorder (the
    /// recorder role: hush-keys `Role::Recorder`).
    pub fn attest_recorder(&self, room: &str, sub: &str, identity_key: &[u8; 32]) -> Vec<u8> {
        let backend = hush_keys::ed25519_dalek::SigningKey::from_bytes(&BACKEND_SEED);
        let key =
            hush_keys::IdentityPublicKey::from_bytes(*identity_key).expect("an X25519 public key");
        let room = hush_keys::RoomId::new(room).expect("a room id");
        let sub = hush_keys::ParticipantId::new(sub).expect("a participant id");
        let expires = now_unix() + ATTESTATION_TTL.as_secs();
        let role = hush_keys::Role::Recorder;
        hush_keys::Attestation::sign_as(&backend, role, &room, &sub, &key, expires)
            .to_bytes()
            .to_vec()
    }

    /// Keys a relay verifies these tokens with.
    pub fn verifying_keys(&self) -> VerifyingKeys {
        let mut keys = VerifyingKeys::new();
        keys.add_hs256(self.kid.clone(), &self.secret)
            .expect("a 32-byte HS256 secret is a valid key");
        keys
    }

    /// A token for `sub` in `room`: no grants, [`DEFAULT_TTL`], a fresh `jti`. Add grants and
    /// change the rest on the builder.
    pub fn mint(&self, room: &str, sub: &str) -> TokenBuilder<'_> {
        TokenBuilder {
            tokens: self,
            room: room.to_owned(),
            sub: sub.to_owned(),
            grants: Grants::default(),
            expires_in: i64::try_from(DEFAULT_TTL.as_secs()).unwrap_or(i64::MAX),
            secret: None,
        }
    }

    /// A token for a member of `room` who may publish and subscribe, as a string.
    pub fn member(&self, room: &str, sub: &str) -> String {
        self.mint(room, sub).publish().subscribe().string()
    }
}

/// The claims of one token, until [`TokenBuilder::string`] or [`TokenBuilder::token`] signs it.
#[derive(Debug)]
#[must_use = "a token builder does nothing until signed"]
pub struct TokenBuilder<'a> {
    tokens: &'a Tokens,
    room: String,
    sub: String,
    grants: Grants,
    expires_in: i64,
    secret: Option<[u8; 32]>,
}

impl TokenBuilder<'_> {
    /// Grants `publish`.
    pub fn publish(mut self) -> Self {
        self.grants.publish = true;
        self
    }

    /// Grants `subscribe`.
    pub fn subscribe(mut self) -> Self {
        self.grants.subscribe = true;
        self
    }

    /// Grants `moderator`.
    pub fn moderator(mut self) -> Self {
        self.grants.moderator = true;
        self
    }

    /// Replaces the grants.
    pub fn grants(mut self, grants: Grants) -> Self {
        self.grants = grants;
        self
    }

    /// Expires `ttl` from now.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.expires_in = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        self
    }

    /// Expires `secs` seconds from now; negative: already expired.
    pub fn expires_in(mut self, secs: i64) -> Self {
        self.expires_in = secs;
        self
    }

    /// Signs with `secret` under the same key id: a forgery the relay refuses with
    /// `token_bad_signature`.
    pub fn signed_with(mut self, secret: [u8; 32]) -> Self {
        self.secret = Some(secret);
        self
    }

    /// The signed token (compact JWS).
    pub fn string(self) -> String {
        static JTI: AtomicU64 = AtomicU64::new(0);
        let now = now_unix();
        let claims = TokenClaims {
            sub: self
                .sub
                .as_str()
                .try_into()
                .expect("a valid participant id"),
            room: self.room.as_str().try_into().expect("a valid room id"),
            aud: Audience::from(AUDIENCE),
            exp: now.saturating_add_signed(self.expires_in),
            nbf: None,
            // Issued a little earlier, well within the relay's leeway.
            iat: Some(now.saturating_sub(60)),
            jti: Some(format!(
                "kit-{}-{}",
                std::process::id(),
                JTI.fetch_add(1, Ordering::Relaxed)
            )),
            grants: self.grants,
        };
        let secret = self.secret.unwrap_or(self.tokens.secret);
        let key = SigningKey::hs256(self.tokens.kid.clone(), &secret)
            .expect("a 32-byte HS256 secret is a valid key");
        mint(&claims, &key).expect("test claims always serialize")
    }

    /// The signed token, wrapped for `join`.
    pub fn token(self) -> AccessToken {
        AccessToken::new(self.string())
    }
}
