//! Minting tokens, for the `hush-relay token` CLI, dev mode and tests. Production tokens come
//! from the app's backend, which can use any JWT library with the same claims.

use core::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signer as _;
use hmac::{Hmac, KeyInit, Mac};
use hush_proto::limits::MAX_TOKEN_BYTES;
use hush_proto::{Audience, Grants, ParticipantId, RoomId, TokenClaims};
use serde::Serialize;
use sha2::Sha256;

use super::jws::MintHeader;
use super::keys::{SigningKey, SigningMaterial};

/// Why a token could not be minted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MintError {
    /// The claims could not be encoded or the key could not sign.
    Signing,
    /// The token would be longer than [`MAX_TOKEN_BYTES`], which the relay refuses.
    TooLarge,
}

impl fmt::Display for MintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Signing => f.write_str("could not sign the token"),
            Self::TooLarge => write!(f, "token would exceed {MAX_TOKEN_BYTES} bytes"),
        }
    }
}

impl std::error::Error for MintError {}

/// Signs `claims` with `key` into a compact JWS whose header names the key's `kid` and `alg`
/// (and `typ: JWT`).
pub fn mint(claims: &TokenClaims, key: &SigningKey) -> Result<String, MintError> {
    let token = sign(claims, key)?;
    if token.len() > MAX_TOKEN_BYTES {
        return Err(MintError::TooLarge);
    }
    Ok(token)
}

/// What a participant's token is issued for: who, which room, for which relay audience, when.
#[derive(Clone, Debug)]
pub struct Issue {
    /// The participant.
    pub sub: ParticipantId,
    /// The room.
    pub room: RoomId,
    /// The relay's audience.
    pub audience: String,
    /// Issued at, Unix seconds.
    pub now_unix: u64,
    /// Lifetime, seconds.
    pub ttl_secs: u64,
    /// What the participant may do.
    pub grants: Grants,
}

impl Issue {
    /// The claims, with `jti` (random bytes the caller drew: this module has no randomness of
    /// its own) as the single-use token id, in hex.
    pub fn claims(self, jti: &[u8; 16]) -> TokenClaims {
        TokenClaims {
            sub: self.sub,
            room: self.room,
            aud: Audience::from(self.audience.as_str()),
            exp: self.now_unix.saturating_add(self.ttl_secs),
            nbf: None,
            iat: Some(self.now_unix),
            jti: Some(jti.iter().map(|b| format!("{b:02x}")).collect()),
            grants: self.grants,
        }
    }
}

/// Signs any JSON payload, with no size check (tests build oversized and odd tokens with it).
pub(crate) fn sign<T: Serialize + ?Sized>(
    payload: &T,
    key: &SigningKey,
) -> Result<String, MintError> {
    let header = MintHeader {
        alg: key.algorithm().jose_name(),
        typ: "JWT",
        kid: key.kid(),
    };
    let header = serde_json::to_vec(&header).map_err(|_| MintError::Signing)?;
    let payload = serde_json::to_vec(payload).map_err(|_| MintError::Signing)?;
    let mut token = URL_SAFE_NO_PAD.encode(header);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut token);
    let signature = match key.material() {
        SigningMaterial::Hs256(secret) => {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| MintError::Signing)?;
            mac.update(token.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        SigningMaterial::Ed25519(signing) => signing.sign(token.as_bytes()).to_bytes().to_vec(),
    };
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut token);
    Ok(token)
}
