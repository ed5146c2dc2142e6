//! Minting tokens, for the `hush-relay token` CLI, dev mode and tests. Production tokens come
//! from the app's backend, which can use any JWT library with the same claims.

use core::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signer as _;
use hmac::{Hmac, KeyInit, Mac};
use hush_proto::TokenClaims;
use hush_proto::limits::MAX_TOKEN_BYTES;
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
