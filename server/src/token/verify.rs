//! Token verification: signature first, then claims against a policy, then the replay cache.
//!
//! The order matters: nothing about a token's claims is looked at (or revealed through an error
//! code) before its signature verifies with the key its `kid` names (see [`super::jws`]), and a
//! token enters the replay cache only when everything else passed. Time is an argument: the
//! verifier reads no clock.

use hush_proto::limits::MAX_JTI_BYTES;
use hush_proto::{Audience, Grants, ParticipantId, RoomId, TokenClaims};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::error::TokenError;
use super::jws;
use super::keys::VerifyingKeys;
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
        let payload = jws::verify(token, &self.keys)?;
        let claims = read_claims(payload, self.policy.require_jti)?;
        self.check_claims(now, &claims, room)?;
        if let Some(jti) = &claims.jti {
            self.replay
                .check_and_record(jti, self.forget_after(&claims), now)?;
        }
        Ok(claims)
    }

    /// Forgets that `jti` was used: its join was refused before admission for a reason that is
    /// not the token's (the shared token store could not answer), so it may try again.
    pub fn release(&mut self, jti: &str) {
        self.replay.release(jti);
    }

    /// The Unix time after which a verified token's `jti` may be forgotten: by then the token
    /// is refused as expired anyway.
    pub fn forget_after(&self, claims: &TokenClaims) -> u64 {
        claims.exp.saturating_add(self.policy.leeway_secs)
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
        // Issued with a longer life than the limit (checked on its whole life, not only on
        // what is left of it): a removal is remembered for that limit, so no token issued
        // before a removal may outlive it (routing/removals.rs).
        if claims.iat.is_some_and(|iat| {
            claims.exp.saturating_sub(iat) > self.policy.max_lifetime_secs.saturating_add(leeway)
        }) {
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
