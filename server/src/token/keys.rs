//! Key sets: the keys that verify tokens (by key id) and the key that mints them.
//!
//! Each key is bound to one algorithm when it is configured; a token's header picks the key by
//! `kid`, and its `alg` must then be that key's algorithm. So an Ed25519 public key can never
//! be used as an HMAC secret (the classic algorithm-confusion attack), and `alg: none` never
//! finds a key. Several keys may be active at once, for rotation; removing one revokes every
//! token it signed.

use core::fmt;
use std::collections::BTreeMap;

use zeroize::Zeroizing;

use super::error::TokenError;

/// The shortest HS256 secret accepted: 256 bits, the HMAC-SHA-256 output size (RFC 7518
/// section 3.2 requires at least that).
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// The longest key id accepted.
pub const MAX_KID_BYTES: usize = 64;

/// A token signing algorithm the relay accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyAlgorithm {
    /// HMAC with SHA-256 and a shared secret: whoever verifies can also mint.
    Hs256,
    /// Ed25519 signatures: the relay holds only the public key and cannot mint.
    EdDsa,
}

impl KeyAlgorithm {
    /// The JOSE `alg` name.
    pub const fn jose_name(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::EdDsa => "EdDSA",
        }
    }

    /// The algorithm a JOSE `alg` names, if accepted. Exact match: `none`, `hs256` and every
    /// other algorithm are refused.
    pub fn from_jose_name(alg: &str) -> Option<Self> {
        match alg {
            "HS256" => Some(Self::Hs256),
            "EdDSA" => Some(Self::EdDsa),
            _ => None,
        }
    }
}

/// Why a key was not accepted into a key set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// Key ids must be 1 to [`MAX_KID_BYTES`] printable ASCII characters.
    BadKid,
    /// A key with this id is already configured.
    DuplicateKid,
    /// HS256 secrets must be at least [`MIN_HS256_SECRET_BYTES`] long.
    ShortSecret(usize),
    /// The bytes are not a valid Ed25519 public key.
    InvalidEd25519Key,
    /// The Ed25519 public key has small order (it would accept forged signatures).
    WeakEd25519Key,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadKid => write!(f, "key ids are 1 to {MAX_KID_BYTES} printable ASCII bytes"),
            Self::DuplicateKid => f.write_str("a key with this id is already configured"),
            Self::ShortSecret(len) => write!(
                f,
                "HS256 secret of {len} bytes is shorter than {MIN_HS256_SECRET_BYTES}"
            ),
            Self::InvalidEd25519Key => f.write_str("not a valid Ed25519 public key"),
            Self::WeakEd25519Key => f.write_str("Ed25519 public key has small order"),
        }
    }
}

impl std::error::Error for KeyError {}

fn check_kid(kid: &str) -> Result<(), KeyError> {
    let ok =
        !kid.is_empty() && kid.len() <= MAX_KID_BYTES && kid.bytes().all(|b| b.is_ascii_graphic());
    if ok { Ok(()) } else { Err(KeyError::BadKid) }
}

fn check_hs256_secret(secret: &[u8]) -> Result<(), KeyError> {
    if secret.len() < MIN_HS256_SECRET_BYTES {
        Err(KeyError::ShortSecret(secret.len()))
    } else {
        Ok(())
    }
}

/// The bytes behind one verification key. No `Debug`: an HMAC secret must never be printed.
pub(crate) enum KeyMaterial {
    /// An HS256 shared secret, wiped on drop.
    Hs256(Zeroizing<Vec<u8>>),
    /// An Ed25519 public key, checked when configured (valid point, not of small order).
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// One verification key, bound to its algorithm.
pub(crate) struct VerifyingKey {
    material: KeyMaterial,
}

impl VerifyingKey {
    pub(crate) fn algorithm(&self) -> KeyAlgorithm {
        match self.material {
            KeyMaterial::Hs256(_) => KeyAlgorithm::Hs256,
            KeyMaterial::Ed25519(_) => KeyAlgorithm::EdDsa,
        }
    }

    pub(crate) fn material(&self) -> &KeyMaterial {
        &self.material
    }
}

/// The keys that verify tokens, by key id.
#[derive(Default)]
pub struct VerifyingKeys {
    keys: BTreeMap<String, VerifyingKey>,
}

impl VerifyingKeys {
    /// An empty set (which refuses every token).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an HS256 shared secret under `kid`.
    pub fn add_hs256(&mut self, kid: impl Into<String>, secret: &[u8]) -> Result<(), KeyError> {
        check_hs256_secret(secret)?;
        let material = KeyMaterial::Hs256(Zeroizing::new(secret.to_vec()));
        self.insert(kid.into(), material)
    }

    /// Adds an Ed25519 public key (32 bytes, RFC 8032) under `kid`.
    pub fn add_ed25519(
        &mut self,
        kid: impl Into<String>,
        public_key: &[u8; 32],
    ) -> Result<(), KeyError> {
        let point = ed25519_dalek::VerifyingKey::from_bytes(public_key)
            .map_err(|_| KeyError::InvalidEd25519Key)?;
        if point.is_weak() {
            return Err(KeyError::WeakEd25519Key);
        }
        self.insert(kid.into(), KeyMaterial::Ed25519(point))
    }

    /// Removes a key, revoking every token it signed. Returns whether it was there.
    pub fn remove(&mut self, kid: &str) -> bool {
        self.keys.remove(kid).is_some()
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn insert(&mut self, kid: String, material: KeyMaterial) -> Result<(), KeyError> {
        check_kid(&kid)?;
        if self.keys.contains_key(&kid) {
            return Err(KeyError::DuplicateKid);
        }
        self.keys.insert(kid, VerifyingKey { material });
        Ok(())
    }

    /// The key a token header names. Without `kid`, only a set of exactly one key answers.
    pub(crate) fn select(&self, kid: Option<&str>) -> Result<&VerifyingKey, TokenError> {
        match kid {
            Some(kid) => self.keys.get(kid).ok_or(TokenError::UnknownKey),
            None if self.keys.len() == 1 => self.keys.values().next().ok_or(TokenError::UnknownKey),
            None => Err(TokenError::UnknownKey),
        }
    }
}

impl fmt::Debug for VerifyingKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.keys.iter().map(|(kid, k)| (kid, k.algorithm())))
            .finish()
    }
}

/// The secret half of a [`SigningKey`]. Both variants wipe themselves on drop
/// (`ed25519-dalek`'s `zeroize` feature).
pub(crate) enum SigningMaterial {
    /// An HS256 shared secret.
    Hs256(Zeroizing<Vec<u8>>),
    /// An Ed25519 private key.
    Ed25519(ed25519_dalek::SigningKey),
}

/// A key that mints tokens: the app's backend holds it; the relay holds one only in dev mode
/// and for the `hush-relay token` CLI. `Debug` shows the key id and algorithm only.
pub struct SigningKey {
    kid: String,
    material: SigningMaterial,
}

impl SigningKey {
    /// An HS256 key; the relay verifies with the same secret under the same `kid`.
    pub fn hs256(kid: impl Into<String>, secret: &[u8]) -> Result<Self, KeyError> {
        let kid = kid.into();
        check_kid(&kid)?;
        check_hs256_secret(secret)?;
        Ok(Self {
            kid,
            material: SigningMaterial::Hs256(Zeroizing::new(secret.to_vec())),
        })
    }

    /// An Ed25519 key from its 32-byte seed (RFC 8032 private key).
    pub fn ed25519(kid: impl Into<String>, seed: &[u8; 32]) -> Result<Self, KeyError> {
        let kid = kid.into();
        check_kid(&kid)?;
        Ok(Self {
            kid,
            material: SigningMaterial::Ed25519(ed25519_dalek::SigningKey::from_bytes(seed)),
        })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        match self.material {
            SigningMaterial::Hs256(_) => KeyAlgorithm::Hs256,
            SigningMaterial::Ed25519(_) => KeyAlgorithm::EdDsa,
        }
    }

    /// For Ed25519 keys, the public key to configure in the relay.
    pub fn ed25519_public_key(&self) -> Option<[u8; 32]> {
        match &self.material {
            SigningMaterial::Hs256(_) => None,
            SigningMaterial::Ed25519(key) => Some(key.verifying_key().to_bytes()),
        }
    }

    pub(crate) fn material(&self) -> &SigningMaterial {
        &self.material
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}
