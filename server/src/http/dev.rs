//! Dev mode's stand-in for an app backend, with keys made at start:
//!
//! - `POST /dev/token`: `{"room": "name"}` in, `{"token": "...", "participant": "dev-..."}` out,
//!   a token for a random participant id, signed with a random HS256 key.
//! - `POST /dev/attest`: `{"room", "participant", "identity_key"}` (base64, 32 bytes) in,
//!   `{"attestation": base64}` out: the backend's vouching for that member's identity key
//!   ([`hush_keys::Attestation`], 72 bytes), signed with a random Ed25519 dev backend key.
//! - `GET /dev/backend-key`: `{"backend_key": base64}`, that key's public half, which clients
//!   pass to the key exchange to check every member's attestation.
//! - `POST /dev/recorder`: `{"room"}` in: sets the room's recorder to the dev recorder (an
//!   X25519 key derived from the dev backend key, attested in the recorder role) and answers
//!   `{"participant", "identity_key", "key_file"}`. Dev only, and so the *private* key is
//!   written next to the recordings (`<recording dir>/dev-recorder.key`, mode 0600) for
//!   `hush-record decrypt --key`; a real app keeps it offline and sets the recorder through
//!   the admin API. `POST /dev/token` with `"record": true` adds the `record` grant.
//!
//! Anyone who can reach these endpoints can join any room and vouch for any key, which is why
//! the relay refuses dev mode unless it listens on a loopback address, and why each endpoint
//! answers only requests whose `Host` is a loopback name or address (a web page that points
//! its own DNS name at 127.0.0.1, DNS rebinding, gets 403) and that come from no other
//! origin (a page on another origin, even on this machine, gets 403: `Origin` must be this
//! relay's, when there is one). Both keys live only in
//! this process's memory and are never logged; a restart makes new ones (and so refuses
//! attestations made before it), unless `--dev-key-file` names a file that keeps them across
//! restarts (made on first use, mode 0600), as an app backend keeps its keys.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hush_keys::ed25519_dalek;
use hush_keys::{Attestation, IdentityPublicKey};
use hush_proto::{Grants, ParticipantId, RoomId};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::AppState;
use crate::token::{Issue, KeyError, SigningKey, VerifyingKeys, mint};

/// The key id of the dev-mode key.
pub const DEV_KID: &str = "dev";

/// How long a dev token lives, in seconds (the default policy's maximum).
const DEV_TOKEN_TTL: u64 = 3600;

/// The dev recorder's participant id.
pub const DEV_RECORDER: &str = "dev-recorder";

/// How long the dev recorder's attestation holds, in seconds (a day of recording).
const DEV_RECORDER_TTL: u64 = 24 * 3600;

/// The dev recorder's private key file, in the recording directory.
pub const DEV_RECORDER_KEY_FILE: &str = "dev-recorder.key";

/// Why the dev key could not be made.
#[derive(Debug)]
#[non_exhaustive]
pub enum DevKeyError {
    /// The OS random number generator failed.
    Rng,
    /// The key set refused the key (a key named [`DEV_KID`] is configured already).
    Key(KeyError),
    /// The dev key file could not be read or written, or does not hold 64 bytes.
    File(String),
}

impl std::fmt::Display for DevKeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rng => f.write_str("the OS random number generator failed"),
            Self::Key(err) => write!(f, "dev key: {err}"),
            Self::File(why) => write!(f, "dev key file: {why}"),
        }
    }
}

impl std::error::Error for DevKeyError {}

/// Mints dev-mode tokens and attestations with random keys made at start.
pub struct DevMinter {
    key: SigningKey,
    audience: String,
    /// The dev backend's Ed25519 key for attestations (zeroized on drop).
    backend: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for DevMinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevMinter")
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// Why `/dev/attest` refused a request (the caller's input; the message is safe to return).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AttestRefusal {
    Room,
    Participant,
    IdentityKey,
}

impl AttestRefusal {
    fn message(self) -> &'static str {
        match self {
            Self::Room => "invalid room name",
            Self::Participant => "invalid participant id",
            Self::IdentityKey => "identity_key must be 32 bytes, base64",
        }
    }
}

impl DevMinter {
    /// A fresh random HS256 key under [`DEV_KID`], added to `keys` so the relay accepts what it
    /// mints. Fails only if `keys` already holds a key named [`DEV_KID`], or the OS RNG fails.
    pub fn generate(keys: &mut VerifyingKeys, audience: &str) -> Result<Self, DevKeyError> {
        let mut material = Zeroizing::new([0u8; 64]);
        getrandom::fill(material.as_mut_slice()).map_err(|_| DevKeyError::Rng)?;
        Self::from_material(keys, audience, &material)
    }

    /// The keys kept in `path` (64 bytes: the HS256 secret, then the Ed25519 seed), or, when
    /// there is no such file, fresh ones written there (created with mode 0600, never
    /// overwritten), so a restarted dev relay keeps its backend key and tokens.
    pub fn load_or_generate(
        path: &std::path::Path,
        keys: &mut VerifyingKeys,
        audience: &str,
    ) -> Result<Self, DevKeyError> {
        let file = |e: std::io::Error| DevKeyError::File(format!("{}: {e}", path.display()));
        let mut material = Zeroizing::new([0u8; 64]);
        match std::fs::read(path) {
            Ok(bytes) => {
                let bytes = Zeroizing::new(bytes);
                if bytes.len() != material.len() {
                    return Err(DevKeyError::File(format!(
                        "{}: {} bytes, expected 64",
                        path.display(),
                        bytes.len()
                    )));
                }
                material.copy_from_slice(&bytes);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                getrandom::fill(material.as_mut_slice()).map_err(|_| DevKeyError::Rng)?;
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut out = options.open(path).map_err(file)?;
                std::io::Write::write_all(&mut out, material.as_slice()).map_err(file)?;
                out.sync_all().map_err(file)?;
            }
            Err(e) => return Err(file(e)),
        }
        Self::from_material(keys, audience, &material)
    }

    fn from_material(
        keys: &mut VerifyingKeys,
        audience: &str,
        material: &[u8; 64],
    ) -> Result<Self, DevKeyError> {
        let (secret, seed) = material.split_at(32);
        keys.add_hs256(DEV_KID, secret).map_err(DevKeyError::Key)?;
        let key = SigningKey::hs256(DEV_KID, secret).map_err(DevKeyError::Key)?;
        let mut seed_bytes = Zeroizing::new([0u8; 32]);
        seed_bytes.copy_from_slice(seed);
        Ok(Self {
            key,
            audience: audience.to_owned(),
            backend: ed25519_dalek::SigningKey::from_bytes(&seed_bytes),
        })
    }

    /// The dev backend's Ed25519 public key, which checks [`DevMinter::attest`]'s attestations.
    pub fn backend_key(&self) -> [u8; 32] {
        self.backend.verifying_key().to_bytes()
    }

    /// The dev backend's attestation (wire form, 72 bytes) that `identity_key` (base64) is
    /// `participant`'s in `room`, valid as long as a dev token.
    pub(crate) fn attest(
        &self,
        room: &str,
        participant: &str,
        identity_key: &str,
        now_unix: u64,
    ) -> Result<[u8; hush_keys::ATTESTATION_LEN], AttestRefusal> {
        // hush-proto's id rules, then hush-keys' (the same lengths), as the members check them.
        RoomId::new(room).map_err(|_| AttestRefusal::Room)?;
        ParticipantId::new(participant).map_err(|_| AttestRefusal::Participant)?;
        let room = hush_keys::RoomId::new(room).map_err(|_| AttestRefusal::Room)?;
        let who =
            hush_keys::ParticipantId::new(participant).map_err(|_| AttestRefusal::Participant)?;
        // 32 bytes are 44 base64 characters: refuse longer text before decoding it.
        if identity_key.len() != 44 {
            return Err(AttestRefusal::IdentityKey);
        }
        let key = B64
            .decode(identity_key)
            .ok()
            .and_then(|b| IdentityPublicKey::from_slice(&b).ok())
            .ok_or(AttestRefusal::IdentityKey)?;
        let expires = now_unix + DEV_TOKEN_TTL;
        Ok(Attestation::sign(&self.backend, &room, &who, &key, expires).to_bytes())
    }

    /// A token for `room` with a random participant id (returned with it), publish and
    /// subscribe grants, one hour.
    pub fn token(&self, room: RoomId, now_unix: u64) -> Option<(String, ParticipantId)> {
        self.token_with(room, now_unix, false)
    }

    /// As [`DevMinter::token`], with the `record` grant if `record`.
    pub fn token_with(
        &self,
        room: RoomId,
        now_unix: u64,
        record: bool,
    ) -> Option<(String, ParticipantId)> {
        let sub = ParticipantId::new(format!("dev-{}", random_hex(8)?)).ok()?;
        let mut jti = [0u8; 16];
        getrandom::fill(&mut jti).ok()?;
        let claims = Issue {
            sub: sub.clone(),
            room,
            audience: self.audience.clone(),
            now_unix,
            ttl_secs: DEV_TOKEN_TTL,
            grants: Grants {
                publish: true,
                subscribe: true,
                record,
                ..Grants::default()
            },
        }
        .claims(&jti);
        Some((mint(&claims, &self.key).ok()?, sub))
    }

    /// The dev recorder's private key: derived from the dev backend key, so a dev key file
    /// keeps it too.
    fn recorder_secret(&self) -> Zeroizing<[u8; 32]> {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update(b"hush dev recorder key");
        h.update(self.backend.to_bytes());
        Zeroizing::new(h.finalize().into())
    }

    /// The dev recorder of `room`, attested in the recorder role, and its private key.
    pub(crate) fn recorder(
        &self,
        room: &RoomId,
        now_unix: u64,
    ) -> Option<(crate::routing::RecorderIdentity, Zeroizing<[u8; 32]>)> {
        let secret = self.recorder_secret();
        let pair = hush_keys::IdentityKeyPair::from_secret_bytes(*secret);
        let id = ParticipantId::new(DEV_RECORDER).ok()?;
        let who = hush_keys::ParticipantId::new(DEV_RECORDER).ok()?;
        let room = hush_keys::RoomId::new(room.as_str()).ok()?;
        let role = hush_keys::Role::Recorder;
        let expires = now_unix + DEV_RECORDER_TTL;
        let a = Attestation::sign_as(&self.backend, role, &room, &who, pair.public(), expires);
        let identity = crate::routing::RecorderIdentity {
            participant: id,
            identity_key: hush_proto::OpaqueBytes::new(pair.public().as_bytes().to_vec()),
            attestation: Some(hush_proto::OpaqueBytes::new(a.to_bytes().to_vec())),
        };
        Some((identity, secret))
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
    /// Adds the `record` grant.
    #[serde(default)]
    record: bool,
}

fn refusal(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// Whether a dev request may be answered, from its `Host` and `Origin` headers (see the
/// module docs); the refusal's message otherwise.
pub(crate) fn dev_request_allowed(
    host: Option<&str>,
    origin: Option<&str>,
) -> Result<(), &'static str> {
    let host = host.ok_or("dev endpoints need a Host header")?;
    // `name:port`, `[v6]:port`, or without the port.
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or(rest, |(v6, _)| v6),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    let loopback = name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Err("dev endpoints answer only to a loopback Host (DNS rebinding)");
    }
    if let Some(origin) = origin {
        let same = ["http://", "https://"]
            .iter()
            .any(|scheme| origin.strip_prefix(scheme) == Some(host));
        if !same {
            return Err("dev endpoints refuse cross-origin requests");
        }
    }
    Ok(())
}

/// Headers a proxy adds to what it forwards (one that adds none of them is not detected).
const PROXY_HEADERS: [&str; 6] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "via",
];

/// [`dev_request_allowed`] for `headers`, and no request that came through a proxy (one on
/// the relay's host makes a loopback listener public, with the `Host` it was configured with,
/// whether or not it is among `trusted_proxies`): a 403 response when refused.
fn check_headers(headers: &axum::http::HeaderMap) -> Option<Response> {
    if PROXY_HEADERS.iter().any(|h| headers.contains_key(*h)) {
        let why = "dev endpoints refuse requests that came through a proxy";
        return Some(refusal(StatusCode::FORBIDDEN, why));
    }
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    dev_request_allowed(
        text(axum::http::header::HOST),
        text(axum::http::header::ORIGIN),
    )
    .err()
    .map(|why| refusal(StatusCode::FORBIDDEN, why))
}

pub(crate) async fn token(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    body: Result<Json<TokenRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Some(minter) = state.dev.as_ref() else {
        return refusal(StatusCode::NOT_FOUND, "dev mode is off");
    };
    if let Some(refused) = check_headers(&headers) {
        return refused;
    }
    let Ok(Json(request)) = body else {
        return refusal(
            StatusCode::BAD_REQUEST,
            "expected JSON {\"room\": \"name\"}",
        );
    };
    let Ok(room) = RoomId::new(request.room) else {
        return refusal(StatusCode::BAD_REQUEST, "invalid room name");
    };
    match minter.token_with(room, crate::driver::now().unix_secs(), request.record) {
        Some((token, participant)) => Json(serde_json::json!({
            "token": token,
            "participant": participant.as_str(),
        }))
        .into_response(),
        None => refusal(StatusCode::INTERNAL_SERVER_ERROR, "could not mint a token"),
    }
}

#[derive(Deserialize)]
pub(crate) struct AttestRequest {
    room: String,
    participant: String,
    identity_key: String,
}

pub(crate) async fn attest(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    body: Result<Json<AttestRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Some(minter) = state.dev.as_ref() else {
        return refusal(StatusCode::NOT_FOUND, "dev mode is off");
    };
    if let Some(refused) = check_headers(&headers) {
        return refused;
    }
    let Ok(Json(r)) = body else {
        return refusal(
            StatusCode::BAD_REQUEST,
            "expected JSON {\"room\", \"participant\", \"identity_key\": base64}",
        );
    };
    let now = crate::driver::now().unix_secs();
    match minter.attest(&r.room, &r.participant, &r.identity_key, now) {
        Ok(a) => Json(serde_json::json!({ "attestation": B64.encode(a) })).into_response(),
        Err(e) => refusal(StatusCode::BAD_REQUEST, e.message()),
    }
}

pub(crate) async fn backend_key(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Response {
    let Some(minter) = state.dev.as_ref() else {
        return refusal(StatusCode::NOT_FOUND, "dev mode is off");
    };
    if let Some(refused) = check_headers(&headers) {
        return refused;
    }
    Json(serde_json::json!({ "backend_key": B64.encode(minter.backend_key()) })).into_response()
}

#[derive(Deserialize)]
pub(crate) struct RecorderRequest {
    room: String,
}

pub(crate) async fn recorder(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    body: Result<Json<RecorderRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Some(minter) = state.dev.as_ref() else {
        return refusal(StatusCode::NOT_FOUND, "dev mode is off");
    };
    if let Some(refused) = check_headers(&headers) {
        return refused;
    }
    let Some(dir) = state.recording_dir.as_ref() else {
        return refusal(
            StatusCode::CONFLICT,
            "recording is off: start the relay with --recording-dir",
        );
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
    let now = crate::driver::now().unix_secs();
    let Some((identity, secret)) = minter.recorder(&room, now) else {
        return refusal(StatusCode::INTERNAL_SERVER_ERROR, "no dev recorder");
    };
    let key_file = dir.join(DEV_RECORDER_KEY_FILE);
    if let Err(e) = write_key_file(&key_file, &secret) {
        tracing::warn!(error = %e, "dev recorder key file not written");
        return refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot write the dev recorder key",
        );
    }
    let identity_key = B64.encode(identity.identity_key.as_bytes());
    let command = crate::routing::AdminCommand::SetRecorder(room, identity);
    match state.driver.admin(command).await {
        Some(Ok(_)) => Json(serde_json::json!({
            "participant": DEV_RECORDER,
            "identity_key": identity_key,
            "key_file": key_file.display().to_string(),
        }))
        .into_response(),
        Some(Err(code)) => refusal(StatusCode::CONFLICT, code.as_str()),
        None => refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "the relay is shutting down",
        ),
    }
}

/// Writes the dev recorder's private key (base64, mode 0600) unless the file already holds it.
fn write_key_file(path: &std::path::Path, secret: &[u8; 32]) -> std::io::Result<()> {
    let text = Zeroizing::new(format!("{}\n", B64.encode(secret)));
    if std::fs::read(path).is_ok_and(|b| b == text.as_bytes()) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension("key.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut out = options.open(&tmp)?;
    std::io::Write::write_all(&mut out, text.as_bytes())?;
    out.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hush_keys::Instant;
    use hush_keys::ed25519_dalek::VerifyingKey;

    fn minter() -> DevMinter {
        DevMinter::generate(&mut VerifyingKeys::default(), "hush").unwrap()
    }

    const KEY: [u8; 32] = [9; 32];

    #[test]
    fn attestations_verify_with_the_published_backend_key() {
        let m = minter();
        let bytes = m
            .attest("room-a", "dev-1", &B64.encode(KEY), 1_000)
            .unwrap();
        let a = Attestation::from_bytes(&bytes).unwrap();
        assert_eq!(a.expires_at, 1_000 + DEV_TOKEN_TTL);
        let vk = VerifyingKey::from_bytes(&m.backend_key()).unwrap();
        let room = hush_keys::RoomId::new("room-a").unwrap();
        let who = hush_keys::ParticipantId::new("dev-1").unwrap();
        let key = IdentityPublicKey::from_bytes(KEY).unwrap();
        a.verify(&vk, &room, &who, &key, Instant::from_millis(1_000_000))
            .unwrap();
        // Another relay start, another backend key.
        assert_ne!(minter().backend_key(), m.backend_key());
    }

    #[test]
    fn a_dev_key_file_keeps_the_keys_across_restarts() {
        let dir = std::env::temp_dir().join(format!("hush-dev-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dev.key");
        let _ = std::fs::remove_file(&path);
        let first =
            DevMinter::load_or_generate(&path, &mut VerifyingKeys::default(), "hush").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "only the owner reads it");
        }
        let mut keys = VerifyingKeys::default();
        let again = DevMinter::load_or_generate(&path, &mut keys, "hush").unwrap();
        assert_eq!(first.backend_key(), again.backend_key(), "same backend key");
        assert!(!keys.is_empty(), "the token key is configured");
        // Not 64 bytes: refused, the file is left alone.
        std::fs::write(&path, [1u8; 10]).unwrap();
        let err =
            DevMinter::load_or_generate(&path, &mut VerifyingKeys::default(), "hush").unwrap_err();
        assert!(err.to_string().contains("10 bytes, expected 64"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), [1u8; 10]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_loopback_hosts_and_the_relays_own_origin_are_answered() {
        let ok = |h, o| dev_request_allowed(Some(h), o).is_ok();
        assert!(ok("127.0.0.1:8080", None));
        assert!(ok("localhost:8080", Some("http://localhost:8080")));
        assert!(ok("[::1]:8080", Some("http://[::1]:8080")));
        assert!(ok("127.0.0.1", None));
        // DNS rebinding: a page's own name pointed at 127.0.0.1.
        assert!(!ok("evil.example:8080", None));
        assert!(!ok("10.0.0.5:8080", None));
        assert!(!ok("127.0.0.1.evil.example", None));
        // Another origin, even on this machine, or an opaque one.
        assert!(!ok("127.0.0.1:8080", Some("http://127.0.0.1:3000")));
        assert!(!ok("127.0.0.1:8080", Some("https://evil.example")));
        assert!(!ok("127.0.0.1:8080", Some("null")));
        assert!(dev_request_allowed(None, None).is_err());
    }

    /// A proxy on the relay's host that is not among `trusted_proxies` (dev mode refuses to
    /// start with any): what it forwards carries its headers, and is refused.
    #[test]
    fn requests_through_a_proxy_are_refused() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(axum::http::header::HOST, "127.0.0.1:8080".parse().unwrap());
        assert!(check_headers(&headers).is_none());
        for h in PROXY_HEADERS {
            let mut proxied = headers.clone();
            proxied.insert(h, "203.0.113.7".parse().unwrap());
            let refused = check_headers(&proxied).expect("refused");
            assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{h}");
        }
    }

    #[test]
    fn bad_input_is_refused() {
        let m = minter();
        let key = B64.encode(KEY);
        let cases: &[(&str, &str, &str, AttestRefusal)] = &[
            ("no spaces", "dev-1", &key, AttestRefusal::Room),
            ("", "dev-1", &key, AttestRefusal::Room),
            (&"r".repeat(300), "dev-1", &key, AttestRefusal::Room),
            ("room", "", &key, AttestRefusal::Participant),
            ("room", &"p".repeat(300), &key, AttestRefusal::Participant),
            ("room", "dev-1", "", AttestRefusal::IdentityKey),
            (
                "room",
                "dev-1",
                "not base64 at all, not even 44 chars long!!",
                AttestRefusal::IdentityKey,
            ),
            (
                "room",
                "dev-1",
                &B64.encode([9u8; 31]),
                AttestRefusal::IdentityKey,
            ),
            (
                "room",
                "dev-1",
                &B64.encode([9u8; 33]),
                AttestRefusal::IdentityKey,
            ),
            (
                "room",
                "dev-1",
                &B64.encode([0u8; 32]),
                AttestRefusal::IdentityKey,
            ),
            (
                "room",
                "dev-1",
                &"A".repeat(100_000),
                AttestRefusal::IdentityKey,
            ),
        ];
        for (room, who, key, want) in cases {
            assert_eq!(
                m.attest(room, who, key, 0).err(),
                Some(*want),
                "{room} {who} {key}"
            );
        }
    }

    #[test]
    fn debug_never_shows_keys() {
        let m = minter();
        let shown = format!("{m:?}");
        assert!(!shown.contains(&format!("{:?}", m.backend.to_bytes())));
        assert!(!shown.contains("backend"));
    }
}
