//! Minting tokens, for the `hush-relay token` CLI, dev mode and tests. Production tokens come
//! from the app's backend, which can use any JWT library with the same claims.

use core::fmt;

use hush_proto::TokenClaims;
use hush_proto::limits::MAX_TOKEN_BYTES;
use jsonwebtoken::{Header, encode};

use super::keys::SigningKey;

/// Why a token could not be minted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MintError {
    /// The signer failed (a key that jsonwebtoken could not use).
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

/// Signs `claims` with `key` into a compact JWS whose header names the key's `kid` and `alg`.
pub fn mint(claims: &TokenClaims, key: &SigningKey) -> Result<String, MintError> {
    let mut header = Header::new(key.algorithm().jsonwebtoken());
    header.kid = Some(key.kid().to_owned());
    let token = encode(&header, claims, key.encoding_key()).map_err(|_| MintError::Signing)?;
    if token.len() > MAX_TOKEN_BYTES {
        return Err(MintError::TooLarge);
    }
    Ok(token)
}
