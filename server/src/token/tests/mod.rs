//! Every refusal, each with its own code, and honest tokens still accepted beside them.

mod claims;
mod jws;
mod keys;
mod replay;
mod signature;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hush_proto::limits::MAX_TOKEN_BYTES;
use hush_proto::{Audience, ErrorCode, Grants, RoomId, Source, TokenClaims};
use serde_json::{Value, json};

use super::*;

const NOW: u64 = 1_800_000_000;
const HS_SECRET: &[u8; 32] = b"0123456789abcdef0123456789abcdef";
const HS_SECRET_2: &[u8; 32] = b"fedcba9876543210fedcba9876543210";
const ED_SEED: [u8; 32] = [7; 32];

fn room(name: &str) -> RoomId {
    RoomId::new(name).unwrap()
}

fn claims(jti: &str) -> TokenClaims {
    TokenClaims {
        sub: "p1".try_into().unwrap(),
        room: room("standup"),
        aud: Audience::from("hush"),
        exp: NOW + 600,
        nbf: Some(NOW - 10),
        iat: Some(NOW - 10),
        jti: Some(jti.to_owned()),
        grants: Grants {
            publish: true,
            subscribe: true,
            sources: Some(vec![Source::Camera]),
            ..Grants::default()
        },
    }
}

fn hs_key() -> SigningKey {
    SigningKey::hs256("hs-1", HS_SECRET).unwrap()
}

fn ed_key() -> SigningKey {
    SigningKey::ed25519("ed-1", &ED_SEED).unwrap()
}

fn verifier() -> TokenVerifier {
    let mut keys = VerifyingKeys::new();
    keys.add_hs256("hs-1", HS_SECRET).unwrap();
    keys.add_hs256("hs-2", HS_SECRET_2).unwrap();
    keys.add_ed25519("ed-1", &ed_key().ed25519_public_key().unwrap())
        .unwrap();
    TokenVerifier::new(keys, TokenPolicy::new("hush"))
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// A token assembled by hand: the header and claims as given, any signature.
fn forge(header: Value, claims: Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(&header),
        b64(&claims),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

/// Mints claims given as JSON (so that claims can be left out or mistyped).
fn mint_json(claims: Value, key: &SigningKey) -> String {
    super::mint::sign(&claims, key).unwrap()
}

fn refusal(token: &str) -> (TokenError, ErrorCode) {
    let err = verifier()
        .verify(NOW, token, Some(&room("standup")))
        .unwrap_err();
    (err, err.code())
}

/// The refusal of `claims` signed with `key`.
fn refusal_of(claims: &TokenClaims, key: &SigningKey) -> (TokenError, ErrorCode) {
    refusal(&mint(claims, key).unwrap())
}
