//! Token verification: signature first, then claims against a policy, then the replay cache.
//!
//! The order matters: nothing about a token's claims is looked at (or revealed through an error
//! code) before its signature verifies with the key its `kid` names, and a token enters the
//! replay cache only when everything else passed. Time is an argument: the verifier reads no
//! clock (jsonwebtoken's own time checks are switched off for that reason).

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hush_proto::limits::{MAX_JTI_BYTES, MAX_TOKEN_BYTES};
use hush_proto::{Audience, Grants, ParticipantId, RoomId, TokenClaims};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Validation, decode};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::error::TokenError;
use super::keys::{KeyAlgorithm, VerifyingKeys};
use super::replay::ReplayCache;

/// What the relay accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenPolicy {
    /// Accepted `aud` values: a token must name at least one.
    pub audiences: Vec<String>,
    /// How far in the future `exp` may be, in seconds.
    pub max_lifetime_secs: u64,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
    pub leeway_secs: u64,
    /// Whether tokens must carry a `jti` (they are single use only if they do).
    pub require_jti: bool,
    /// How many unexpired token ids the replay cache holds; when full, new tokens are refused.
    pub replay_capacity: usize,
}

impl TokenPolicy {
    /// The defaults for one audience: tokens live at most one hour, 30 s of clock skew, `jti`
    /// required, room for 65 536 unexpired token ids.
    pub fn new(audience: impl Into<String>) -> Self {
        Self {
            audiences: vec![audience.into()],
            max_lifetime_secs: 3600,
            leeway_secs: 30,
            require_jti: true,
            replay_capacity: 65_536,
        }
    }
}

/// Verifies access tokens: keys, policy and the replay cache.
#[derive(Debug)]
pub struct TokenVerifier {
    keys: VerifyingKeys,
    policy: TokenPolicy,
    replay: ReplayCache,
}

impl TokenVerifier {
    /// A verifier with these keys and this policy.
    pub fn new(keys: VerifyingKeys, policy: TokenPolicy) -> Self {
        let replay = ReplayCache::new(policy.replay_capacity);
        Self {
            keys,
            policy,
            replay,
        }
    }

    /// The keys, to add or revoke one while running.
    pub fn keys_mut(&mut self) -> &mut VerifyingKeys {
        &mut self.keys
    }

    /// The policy.
    pub fn policy(&self) -> &TokenPolicy {
        &self.policy
    }

    /// Verifies `token` at `now` (Unix seconds) for a join of `room` (or of the token's room
    /// when `None`). On success the token's `jti` is used up.
    pub fn verify(
        &mut self,
        now: u64,
        token: &str,
        room: Option<&RoomId>,
    ) -> Result<TokenClaims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge);
        }
        let header = read_header(token)?;
        let algorithm =
            KeyAlgorithm::from_jose_name(&header.alg).ok_or(TokenError::UnsupportedAlgorithm)?;
        let key = self.keys.select(header.kid.as_deref())?;
        if key.algorithm != algorithm {
            return Err(TokenError::AlgorithmMismatch);
        }

        let mut validation = Validation::new(algorithm.jsonwebtoken());
        // Signature only: the claims are checked below, against `now` rather than the OS clock.
        validation.required_spec_claims = HashSet::new();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let data =
            decode::<Map<String, Value>>(token, &key.key, &validation).map_err(|e| {
                match e.kind() {
                    ErrorKind::InvalidSignature => TokenError::BadSignature,
                    ErrorKind::InvalidAlgorithm => TokenError::AlgorithmMismatch,
                    ErrorKind::InvalidToken
                    | ErrorKind::Base64(_)
                    | ErrorKind::Json(_)
                    | ErrorKind::Utf8(_) => TokenError::Malformed,
                    _ => TokenError::Internal,
                }
            })?;

        let claims = read_claims(data.claims, self.policy.require_jti)?;
        self.check_claims(now, &claims, room)?;
        if let Some(jti) = &claims.jti {
            let forget_after = claims.exp.saturating_add(self.policy.leeway_secs);
            self.replay.check_and_record(jti, forget_after, now)?;
        }
        Ok(claims)
    }

    fn check_claims(
        &self,
        now: u64,
        claims: &TokenClaims,
        room: Option<&RoomId>,
    ) -> Result<(), TokenError> {
        let leeway = self.policy.leeway_secs;
        if claims.exp.saturating_add(leeway) <= now {
            return Err(TokenError::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(leeway))
        {
            return Err(TokenError::NotYetValid);
        }
        if claims
            .iat
            .is_some_and(|iat| iat > now.saturating_add(leeway))
        {
            return Err(TokenError::IssuedInFuture);
        }
        let latest_exp = now
            .saturating_add(self.policy.max_lifetime_secs)
            .saturating_add(leeway);
        if claims.exp > latest_exp {
            return Err(TokenError::LifetimeTooLong);
        }
        if !self.policy.audiences.iter().any(|a| claims.aud.contains(a)) {
            return Err(TokenError::WrongAudience);
        }
        if room.is_some_and(|room| *room != claims.room) {
            return Err(TokenError::WrongRoom);
        }
        Ok(())
    }
}

/// The header fields the relay reads itself, before jsonwebtoken does: it must refuse `none`
/// and unknown algorithms with their own code (jsonwebtoken fails to parse them as JSON).
struct Header {
    alg: String,
    kid: Option<String>,
}

fn read_header(token: &str) -> Result<Header, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_claims), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| TokenError::Malformed)?;
    let mut map: Map<String, Value> =
        serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
    // No header extension is understood, so a critical one must be refused (RFC 7515 4.1.11).
    if map.contains_key("crit") {
        return Err(TokenError::Malformed);
    }
    let Some(Value::String(alg)) = map.remove("alg") else {
        return Err(TokenError::Malformed);
    };
    let kid = match map.remove("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid),
        Some(_) => return Err(TokenError::Malformed),
    };
    Ok(Header { alg, kid })
}

/// Takes an optional claim; present but of the wrong type is an invalid claim.
fn take<T: DeserializeOwned>(
    map: &mut Map<String, Value>,
    name: &'static str,
) -> Result<Option<T>, TokenError> {
    match map.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => serde_json::from_value(value)
            .map(Some)
            .map_err(|_| TokenError::InvalidClaim(name)),
    }
}

fn require<T: DeserializeOwned>(
    map: &mut Map<String, Value>,
    name: &'static str,
) -> Result<T, TokenError> {
    take(map, name)?.ok_or(TokenError::MissingClaim(name))
}

fn read_claims(mut map: Map<String, Value>, require_jti: bool) -> Result<TokenClaims, TokenError> {
    let sub: ParticipantId = require(&mut map, "sub")?;
    let room: RoomId = require(&mut map, "room")?;
    let aud: Audience = require(&mut map, "aud")?;
    let exp: u64 = require(&mut map, "exp")?;
    let nbf: Option<u64> = take(&mut map, "nbf")?;
    let iat: Option<u64> = take(&mut map, "iat")?;
    let grants: Grants = require(&mut map, "grants")?;
    let jti: Option<String> = take(&mut map, "jti")?;
    match &jti {
        None if require_jti => return Err(TokenError::MissingClaim("jti")),
        Some(jti) if jti.is_empty() || jti.len() > MAX_JTI_BYTES => {
            return Err(TokenError::InvalidClaim("jti"));
        }
        _ => {}
    }
    Ok(TokenClaims {
        sub,
        room,
        aud,
        exp,
        nbf,
        iat,
        jti,
        grants,
    })
}
