//! Compact JWS (RFC 7515 section 7.1) as the relay accepts it: exactly three base64url parts
//! without padding, a strict JOSE header, HS256 (RFC 7518 section 3.2) or EdDSA over Ed25519
//! (RFC 8037), and JSON without duplicate member names.
//!
//! Written directly on RustCrypto (`hmac`, `sha2`, `ed25519-dalek`) rather than through a JWT
//! library: the relay needs two algorithms, and a general library brings every other one (RSA,
//! ECDSA) into the build. The checks, in order:
//!
//! 1. size ([`MAX_TOKEN_BYTES`]) before anything else is looked at;
//! 2. three parts separated by exactly two dots, none empty but the signature; every part only
//!    base64url characters, no padding, no whitespace; header and signature canonical (the
//!    unused low bits of the last character are zero, so one signature has one spelling; the
//!    payload's spelling is covered by the signature);
//! 3. the header: a JSON object of `alg` (required), `kid` and `typ` only; `typ`, if present, is
//!    `JWT` (exactly; RFC 7519 section 5.1 recommends that spelling); `kid` and `typ` are
//!    strings, not `null`; any other member (`crit`, `jku`, `jwk`, `x5u`, `x5c`, ... ) or a duplicate refuses
//!    the token, since the relay understands no header extension and never fetches keys;
//! 4. the key: `kid` selects it (without `kid`, only a set of exactly one key answers), and `alg`
//!    must be that key's algorithm;
//! 5. the signature over the ASCII `header.payload`: HS256 tags are compared in constant time
//!    (`Mac::verify_slice`), Ed25519 signatures are checked with `verify_strict` (no
//!    small-order keys or non-canonical `R`/`s`, RFC 8032 section 5.1.7);
//! 6. only then the payload: a JSON object without duplicate member names at any depth.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use core::fmt;
use hmac::{Hmac, KeyInit, Mac};
use hush_proto::limits::MAX_TOKEN_BYTES;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Sha256;

use super::error::TokenError;
use super::keys::{KeyAlgorithm, KeyMaterial, VerifyingKeys};

/// The length of an HS256 tag.
pub(crate) const HS256_TAG_BYTES: usize = 32;
/// The length of an Ed25519 signature.
pub(crate) const ED25519_SIGNATURE_BYTES: usize = 64;

/// The JOSE header, strictly: only these members, each at most once.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    alg: String,
    #[serde(default, deserialize_with = "present_string")]
    kid: Option<String>,
    #[serde(default, deserialize_with = "present_string")]
    typ: Option<String>,
}

/// An optional header member that, when present, is a string (`null` is refused).
fn present_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(Some)
}

/// Whether `part` holds only base64url characters (no padding, no whitespace).
fn is_base64url(part: &str) -> bool {
    part.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The header the relay writes when minting.
#[derive(Serialize)]
pub(crate) struct MintHeader<'a> {
    pub(crate) alg: &'static str,
    pub(crate) typ: &'static str,
    pub(crate) kid: &'a str,
}

/// Decodes one base64url part: no padding, no whitespace, canonical trailing bits.
fn decode_part(part: &str) -> Result<Vec<u8>, TokenError> {
    // The engine refuses padding, whitespace, non-alphabet bytes and non-zero trailing bits.
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed)
}

/// Verifies a compact JWS against `keys` and returns its payload, parsed. Nothing of the
/// payload is decoded before the signature verified.
pub(crate) fn verify(token: &str, keys: &VerifyingKeys) -> Result<Map<String, Value>, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLarge);
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    if header_b64.is_empty() || payload_b64.is_empty() {
        return Err(TokenError::Malformed);
    }
    // The alphabet of all three parts first, so that a stray space or `=` in the payload is
    // malformed rather than a bad signature (the payload itself is decoded only after).
    if ![header_b64, payload_b64, signature_b64]
        .into_iter()
        .all(is_base64url)
    {
        return Err(TokenError::Malformed);
    }

    let header_bytes = decode_part(header_b64)?;
    let header: Header =
        serde_json::from_slice(&header_bytes).map_err(|_| TokenError::Malformed)?;
    if header.typ.as_deref().is_some_and(|typ| typ != "JWT") {
        return Err(TokenError::Malformed);
    }
    let algorithm =
        KeyAlgorithm::from_jose_name(&header.alg).ok_or(TokenError::UnsupportedAlgorithm)?;
    let key = keys.select(header.kid.as_deref())?;
    if key.algorithm() != algorithm {
        return Err(TokenError::AlgorithmMismatch);
    }

    let signature = decode_part(signature_b64)?;
    // `header.payload`: the header part, its dot, and the payload part, as sent.
    let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
    match key.material() {
        KeyMaterial::Hs256(secret) => {
            if signature.len() != HS256_TAG_BYTES {
                return Err(TokenError::BadSignature);
            }
            let mut mac =
                Hmac::<Sha256>::new_from_slice(secret).map_err(|_| TokenError::Internal)?;
            mac.update(signing_input.as_bytes());
            mac.verify_slice(&signature)
                .map_err(|_| TokenError::BadSignature)?;
        }
        KeyMaterial::Ed25519(public) => {
            let bytes: [u8; ED25519_SIGNATURE_BYTES] = signature
                .as_slice()
                .try_into()
                .map_err(|_| TokenError::BadSignature)?;
            let signature = ed25519_dalek::Signature::from_bytes(&bytes);
            public
                .verify_strict(signing_input.as_bytes(), &signature)
                .map_err(|_| TokenError::BadSignature)?;
        }
    }

    let payload = decode_part(payload_b64)?;
    let StrictValue(value) = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(TokenError::Malformed),
    }
}

/// A JSON value read with one extra rule: an object must not name a member twice (RFC 8259
/// leaves that to the parser; most keep the last one, some the first, so a token's issuer and
/// the relay could read different claims from one signed text).
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value without duplicate object members")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        // serde_json gives finite floats only (`1e400` is already a parse error).
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let StrictValue(value) = map.next_value()?;
            if object.insert(key, value).is_some() {
                return Err(de::Error::custom("duplicate object member"));
            }
        }
        Ok(Value::Object(object))
    }
}
