//! Access tokens: verification against a key set and a policy, and minting.
//!
//! Tokens are JWTs (RFC 7519) in compact JWS form (RFC 7515), signed with HS256 (RFC 7518
//! section 3.2) or EdDSA over Ed25519 (RFC 8037), parsed and verified by the relay's own strict
//! JWS reader (`jws.rs`: no JWT library, so no RSA or ECDSA code in the build). Their claims are
//! [`hush_proto::TokenClaims`]. Each refusal is a [`TokenError`] with its own
//! [`hush_proto::ErrorCode`]; `jti`s are single use through a bounded replay cache. Tokens are
//! never logged or formatted.

mod error;
mod jws;
mod keys;
mod mint;
mod replay;
mod verify;

#[cfg(test)]
mod tests;

pub use error::TokenError;
pub use keys::{
    KeyAlgorithm, KeyError, MAX_KID_BYTES, MIN_HS256_SECRET_BYTES, SigningKey, VerifyingKeys,
};
pub use mint::{Issue, MintError, mint};
pub use verify::{TokenPolicy, TokenVerifier};
