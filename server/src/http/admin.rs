//! The admin API for the app's backend: moderation and room settings over HTTP, JSON in and
//! out, behind a bearer token (`admin_token_file`; without one these routes do not exist).
//!
//! | Method and path | Body | Does |
//! |---|---|---|
//! | `GET /v1/admin/rooms/{room}` | | the room's state |
//! | `PUT /v1/admin/rooms/{room}` | `{"max_participants":N,"empty_timeout_secs":S}` | sets its limits (creates it empty if needed) |
//! | `POST /v1/admin/rooms/{room}/lock` | `{"locked":true}` | locks or unlocks it to newcomers |
//! | `POST /v1/admin/rooms/{room}/close` | | removes everyone; refuses joins until forgotten, then tokens issued before; a room not held is held closed |
//! | `POST /v1/admin/rooms/{room}/participants/{id}/remove` | | removes a participant (a leave: new epoch); one not in the room is remembered as removed |
//! | `POST /v1/admin/rooms/{room}/participants/{id}/unpublish` | `{"source":"camera"}` | stops one of its tracks |
//! | `PUT /v1/admin/rooms/{room}/recorder` | `{"participant":id,"identity_key":b64,"attestation":b64}` | sets the room's recorder: an X25519 public key whose private half the app keeps offline, and the backend's recorder attestation of it (creates the room empty if needed) |
//! | `POST /v1/admin/rooms/{room}/recording` | `{"recording":true}` | starts (or, with `false`, stops) the room's encrypted recording |
//!
//! Every success answers `200` with the room's state, which holds no personal data:
//! `{"room", "participants", "tracks", "locked", "closed", "max_participants",
//! "empty_timeout_secs", "recorder_set", "recording"}`. Every refusal answers `{"error": code, "message": text}`: `401
//! unauthorized` (no or wrong token), `429 auth_backoff` with `Retry-After` (too many wrong
//! tokens from this address, counted by the same per-IP limiter as refused access tokens), `400
//! bad_request` (invalid id, JSON, source or value), `404 unknown_room` / `unknown_participant`
//! / `not_published` (the core's codes), `409 room_closed` / `recorder_not_configured` /
//! `already_recording` / `not_recording` / `room_empty` / `recording_disabled`, `503 server_full` /
//! `server_busy`. Each change is written to the audit trail by the core, as `by: "admin_api"`.
//!
//! This layer only parses the request, authorizes it and serializes the answer: the routing
//! core decides ([`crate::routing::Relay::admin`]), through the driver. The token
//! ([`AdminToken`]) is compared in constant time (SHA-256 of both, then every byte); its digest
//! is all the relay keeps, wiped on drop.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use hush_proto::{ErrorCode, ID_RULE, OpaqueBytes, ParticipantId, RoomId, Source};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::{AppState, PeerAddr};
use crate::ops::limits::LimitRefusal;
use crate::routing::{AdminCommand, RecorderIdentity, RoomSettings, RoomState};

pub use crate::ops::admin_token::{AdminToken, AdminTokenError, MIN_ADMIN_TOKEN_BYTES};

/// The longest `empty_timeout_secs` a room may be given (a week).
pub const MAX_EMPTY_TIMEOUT_SECS: u64 = 7 * 24 * 3600;
/// The largest request body accepted.
const MAX_BODY_BYTES: usize = 4096;
/// How long a request waits for the driver before answering `server_busy`.
const DRIVER_WAIT: Duration = Duration::from_secs(5);

/// A room's state as JSON (the core's [`RoomState`]).
#[derive(Debug, serde::Serialize)]
struct RoomJson {
    room: String,
    participants: usize,
    tracks: usize,
    locked: bool,
    closed: bool,
    max_participants: u32,
    empty_timeout_secs: u64,
    recorder_set: bool,
    recording: bool,
}

impl From<RoomState> for RoomJson {
    fn from(state: RoomState) -> Self {
        Self {
            room: state.room.as_str().to_owned(),
            participants: state.participants,
            tracks: state.tracks,
            locked: state.locked,
            closed: state.closed,
            max_participants: state.max_participants,
            empty_timeout_secs: state.empty_timeout_secs,
            recorder_set: state.recorder_set,
            recording: state.recording,
        }
    }
}

/// The admin routes (their state is added by the caller).
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/rooms/{room}", get(info).put(configure))
        .route("/v1/admin/rooms/{room}/lock", post(lock))
        .route("/v1/admin/rooms/{room}/close", post(close))
        .route(
            "/v1/admin/rooms/{room}/participants/{id}/remove",
            post(remove),
        )
        .route(
            "/v1/admin/rooms/{room}/participants/{id}/unpublish",
            post(unpublish),
        )
        .route("/v1/admin/rooms/{room}/recorder", put(set_recorder))
        .route("/v1/admin/rooms/{room}/recording", post(record))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// A refusal: status, code, message, and how long to wait for `429`.
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.code, "message": self.message });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

fn error(status: StatusCode, code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        code,
        message: message.into(),
        retry_after: None,
    }
}

fn bad_request(message: impl Into<String>) -> Refusal {
    error(StatusCode::BAD_REQUEST, "bad_request", message)
}

/// Lets the request through if it carries the admin token and its address is not backing off.
fn authorize(
    state: &AppState,
    peer: Option<ConnectInfo<PeerAddr>>,
    headers: &HeaderMap,
) -> Result<(), Refusal> {
    let Some(token) = state.admin.as_deref() else {
        return Err(error(StatusCode::NOT_FOUND, "not_found", "no admin API"));
    };
    // Without connect info everyone shares one address (see `ws::upgrade`).
    let ip = state.client_ip(
        peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.0.0.ip()),
        headers,
    );
    let now = Instant::now();
    let mut limiter = state.limiter.lock().unwrap_or_else(PoisonError::into_inner);
    match limiter.try_authenticate(now, ip) {
        Ok(()) => {}
        Err(LimitRefusal::AuthBackoff { retry_after }) => {
            // Rounded up: a client that waits this long is let in.
            let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            let mut refusal = error(
                StatusCode::TOO_MANY_REQUESTS,
                "auth_backoff",
                "too many wrong admin tokens from this address",
            );
            refusal.retry_after = Some(secs);
            return Err(refusal);
        }
        Err(refusal) => {
            return Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                refusal.as_str(),
                "the per-IP table is full",
            ));
        }
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    if presented.is_some_and(|p| token.matches(p)) {
        return Ok(());
    }
    if let Some(backoff) = limiter.auth_failed(now, ip) {
        tracing::info!(
            backoff_s = backoff.as_secs(),
            "repeated wrong admin tokens: backing off this address"
        );
    }
    Err(error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "the admin API needs `Authorization: Bearer <admin token>`",
    ))
}

fn room_id(room: String) -> Result<RoomId, Refusal> {
    RoomId::new(room).map_err(|_| bad_request(format!("the room id must be {ID_RULE}")))
}

fn participant_id(id: String) -> Result<ParticipantId, Refusal> {
    ParticipantId::new(id).map_err(|_| bad_request(format!("the participant id must be {ID_RULE}")))
}

fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, Refusal> {
    serde_json::from_slice(bytes).map_err(|e| {
        // serde's message names the field and position, never echoes the input.
        bad_request(format!("invalid JSON body: {e}"))
    })
}

/// Runs `command` in the core and answers with the room's state or the core's error code.
async fn run(state: &AppState, command: AdminCommand) -> Response {
    match tokio::time::timeout(DRIVER_WAIT, state.driver.admin(command)).await {
        Ok(Some(Ok(room))) => (StatusCode::OK, Json(RoomJson::from(room))).into_response(),
        Ok(Some(Err(code))) => {
            let status = match code {
                ErrorCode::UnknownRoom
                | ErrorCode::UnknownParticipant
                | ErrorCode::NotPublished => StatusCode::NOT_FOUND,
                ErrorCode::RoomClosed
                | ErrorCode::RecorderNotConfigured
                | ErrorCode::AlreadyRecording
                | ErrorCode::NotRecording
                | ErrorCode::RoomEmpty
                | ErrorCode::RecordingDisabled => StatusCode::CONFLICT,
                ErrorCode::ServerFull => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error(status, code.as_str(), message(code)).into_response()
        }
        Ok(None) | Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ServerBusy.as_str(),
            "the relay did not answer in time",
        )
        .into_response(),
    }
}

fn message(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::UnknownRoom => "no such room",
        ErrorCode::UnknownParticipant => "no such participant in this room",
        ErrorCode::NotPublished => "the participant publishes no track from this source",
        ErrorCode::RoomClosed => "the room was closed",
        ErrorCode::ServerFull => "the relay has as many rooms as it may have",
        ErrorCode::RecorderNotConfigured => "the room has no recorder: PUT its recorder first",
        ErrorCode::AlreadyRecording => "the room is being recorded",
        ErrorCode::NotRecording => "the room is not being recorded",
        ErrorCode::RoomEmpty => "nobody is in the room to record",
        ErrorCode::RecordingDisabled => "this relay has no recording directory configured",
        _ => "the relay could not do this",
    }
}

/// An authorized admin request (see [`authorize`]): taken from the request head before its
/// path and body are looked at.
struct Admin(AppState);

impl FromRequestParts<AppState> for Admin {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Refusal> {
        let peer = parts.extensions.get::<ConnectInfo<PeerAddr>>().copied();
        authorize(state, peer, &parts.headers)?;
        Ok(Self(state.clone()))
    }
}

impl Admin {
    /// Builds the command, then runs it.
    async fn run(self, command: impl FnOnce() -> Result<AdminCommand, Refusal>) -> Response {
        match command() {
            Ok(command) => run(&self.0, command).await,
            Err(refusal) => refusal.into_response(),
        }
    }
}

async fn info(admin: Admin, Path(room): Path<String>) -> Response {
    admin.run(|| Ok(AdminCommand::Info(room_id(room)?))).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigureBody {
    max_participants: Option<u32>,
    empty_timeout_secs: Option<u64>,
}

async fn configure(admin: Admin, Path(room): Path<String>, bytes: Bytes) -> Response {
    admin
        .run(|| {
            let room = room_id(room)?;
            let body: ConfigureBody = body(&bytes)?;
            if body.max_participants == Some(0) {
                return Err(bad_request("max_participants must be at least 1"));
            }
            if body
                .empty_timeout_secs
                .is_some_and(|s| s > MAX_EMPTY_TIMEOUT_SECS)
            {
                return Err(bad_request(
                    "empty_timeout_secs must be at most 604800 (a week)",
                ));
            }
            let settings = RoomSettings {
                max_participants: body.max_participants,
                empty_timeout: body.empty_timeout_secs.map(Duration::from_secs),
            };
            Ok(AdminCommand::Configure(room, settings))
        })
        .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LockBody {
    locked: bool,
}

async fn lock(admin: Admin, Path(room): Path<String>, bytes: Bytes) -> Response {
    admin
        .run(|| {
            let room = room_id(room)?;
            let body: LockBody = body(&bytes)?;
            Ok(AdminCommand::Lock(room, body.locked))
        })
        .await
}

async fn close(admin: Admin, Path(room): Path<String>) -> Response {
    admin.run(|| Ok(AdminCommand::Close(room_id(room)?))).await
}

async fn remove(admin: Admin, Path((room, id)): Path<(String, String)>) -> Response {
    admin
        .run(|| Ok(AdminCommand::Remove(room_id(room)?, participant_id(id)?)))
        .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnpublishBody {
    source: String,
}

async fn unpublish(
    admin: Admin,
    Path((room, id)): Path<(String, String)>,
    bytes: Bytes,
) -> Response {
    admin
        .run(|| {
            let room = room_id(room)?;
            let id = participant_id(id)?;
            let body: UnpublishBody = body(&bytes)?;
            let Some(&source) = Source::ALL.iter().find(|s| s.as_str() == body.source) else {
                return Err(bad_request("source must be camera, microphone or screen"));
            };
            Ok(AdminCommand::Unpublish(room, id, source))
        })
        .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecorderBody {
    participant: String,
    identity_key: OpaqueBytes,
    attestation: Option<OpaqueBytes>,
}

async fn set_recorder(admin: Admin, Path(room): Path<String>, bytes: Bytes) -> Response {
    admin
        .run(|| {
            let room = room_id(room)?;
            let body: RecorderBody = body(&bytes)?;
            let participant = participant_id(body.participant)?;
            if body.identity_key.len() != 32 {
                return Err(bad_request(
                    "identity_key must be 32 bytes (X25519), base64",
                ));
            }
            if body
                .attestation
                .as_ref()
                .is_some_and(|a| a.len() != hush_keys::ATTESTATION_LEN)
            {
                return Err(bad_request("attestation must be 72 bytes, base64"));
            }
            let recorder = RecorderIdentity {
                participant,
                identity_key: body.identity_key,
                attestation: body.attestation,
            };
            Ok(AdminCommand::SetRecorder(room, recorder))
        })
        .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordBody {
    recording: bool,
}

async fn record(admin: Admin, Path(room): Path<String>, bytes: Bytes) -> Response {
    admin
        .run(|| {
            let room = room_id(room)?;
            let body: RecordBody = body(&bytes)?;
            Ok(AdminCommand::Record(room, body.recording))
        })
        .await
}
