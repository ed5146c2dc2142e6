//! Dev mode's `POST /dev/token`: `{"room": "name"}` in, `{"token": "..."}` out, signed with a
//! key made at start. Anyone who can reach the endpoint can join any room, which is why the
//! relay refuses dev mode unless it listens on a loopback address.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hush_proto::{Audience, Grants, ParticipantId, RoomId, TokenClaims};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::AppState;
use crate::token::{KeyError, SigningKey, VerifyingKeys, mint};

/// The key id of the dev-mode key.
pub const DEV_KID: &str = "dev";

/// How long a dev token lives, in seconds (the default policy's maximum).
const DEV_TOKEN_TTL: u64 = 3600;

/// Why the dev key could not be made.
#[derive(Debug)]
#[non_exhaustive]
pub enum DevKeyError {
    /// The OS random number generator failed.
    Rng,
    /// The key set refused the key (a key named [`DEV_KID`] is configured already).
    Key(KeyError),
}

impl std::fmt::Display for DevKeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rng => f.write_str("the OS random number generator failed"),
            Self::Key(err) => write!(f, "dev key: {err}"),
        }
    }
}

impl std::error::Error for DevKeyError {}

/// Mints dev-mode tokens with a random key made at start.
#[derive(Debug)]
pub struct DevMinter {
    key: SigningKey,
    audience: String,
}

impl DevMinter {
    /// A fresh random HS256 key under [`DEV_KID`], added to `keys` so the relay accepts what it
    /// mints. Fails only if `keys` already holds a key named [`DEV_KID`], or the OS RNG fails.
    pub fn generate(keys: &mut VerifyingKeys, audience: &str) -> Result<Self, DevKeyError> {
        let mut secret = Zeroizing::new([0u8; 32]);
        getrandom::fill(secret.as_mut_slice()).map_err(|_| DevKeyError::Rng)?;
        keys.add_hs256(DEV_KID, secret.as_slice())
            .map_err(DevKeyError::Key)?;
        let key = SigningKey::hs256(DEV_KID, secret.as_slice()).map_err(DevKeyError::Key)?;
        Ok(Self {
            key,
            audience: audience.to_owned(),
        })
    }

    /// A token for `room` with a random participant id, publish and subscribe grants, one hour.
    pub fn token(&self, room: RoomId, now_unix: u64) -> Option<String> {
        let claims = TokenClaims {
            sub: ParticipantId::new(format!("dev-{}", random_hex(8)?)).ok()?,
            room,
            aud: Audience::from(self.audience.as_str()),
            exp: now_unix + DEV_TOKEN_TTL,
            nbf: None,
            iat: Some(now_unix),
            jti: Some(random_hex(16)?),
            grants: Grants {
                publish: true,
                subscribe: true,
                ..Grants::default()
            },
        };
        mint(&claims, &self.key).ok()
    }
}

fn random_hex(bytes: usize) -> Option<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).ok()?;
    Some(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[derive(Deserialize)]
pub(crate) struct TokenRequest {
    room: String,
}

fn refusal(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

pub(crate) async fn token(
    State(state): State<AppState>,
    body: Result<Json<TokenRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Some(minter) = state.dev.as_ref() else {
        return refusal(StatusCode::NOT_FOUND, "dev mode is off");
    };
    let Ok(Json(request)) = body else {
        return refusal(
            StatusCode::BAD_REQUEST,
            "expected JSON {\"room\": \"name\"}",
        );
    };
    let Ok(room) = RoomId::new(request.room) else {
        return refusal(StatusCode::BAD_REQUEST, "invalid room name");
    };
    match minter.token(room, crate::driver::now().unix_secs()) {
        Some(token) => Json(serde_json::json!({ "token": token })).into_response(),
        None => refusal(StatusCode::INTERNAL_SERVER_ERROR, "could not mint a token"),
    }
}
