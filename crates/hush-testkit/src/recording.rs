//! Encrypted recording in tests: a recorder key pair the test holds offline, set on a room
//! through the admin API with the kit's backend attestation, recordings started and stopped,
//! and the relay's recording directory searched byte for byte.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hush_keys::IdentityKeyPair;
pub use hush_relay::recording::RecordingOptions;

use std::net::SocketAddr;

use crate::http::{self, HttpResponse};
use crate::relay::TestRelay;
use crate::tokens::Tokens;

/// The room's recorder, as the app holds it: an id and the private key kept offline.
#[derive(Clone, Debug)]
pub struct TestRecorder {
    /// Its participant id in the room.
    pub id: String,
    secret: [u8; 32],
}

impl TestRecorder {
    /// A recorder named `id` whose key derives from `seed` (tests only).
    pub fn new(id: &str, seed: u8) -> Self {
        Self {
            id: id.to_owned(),
            secret: [seed; 32],
        }
    }

    /// Its key pair (what `hush-record decrypt --key` reads).
    pub fn key_pair(&self) -> IdentityKeyPair {
        IdentityKeyPair::from_secret_bytes(self.secret)
    }

    /// Its public key.
    pub fn public(&self) -> [u8; 32] {
        *self.key_pair().public().as_bytes()
    }

    /// The private key file `hush-record keygen` writes: base64, one line.
    pub fn key_file(&self, dir: &Path) -> PathBuf {
        let path = dir.join(format!("{}.key", self.id));
        std::fs::write(&path, format!("{}\n", STANDARD.encode(self.secret)))
            .expect("write the recorder key file");
        path
    }
}

impl TestRelay {
    /// `PUT /v1/admin/rooms/{room}/recorder` with `recorder`'s public key and the backend's
    /// recorder attestation; panics unless `200`.
    pub async fn set_recorder(&self, room: &str, recorder: &TestRecorder) {
        let admin = self.admin_token().expect("the relay has no admin API");
        set_recorder_at(self.addr(), admin, self.tokens(), room, recorder).await;
    }

    /// `POST /v1/admin/rooms/{room}/recording` to start (`true`) or stop it.
    pub async fn admin_record(&self, room: &str, on: bool) -> HttpResponse {
        let admin = self.admin_token().expect("the relay has no admin API");
        admin_record_at(self.addr(), admin, room, on).await
    }
}

/// [`TestRelay::set_recorder`] for the relay at `addr` with admin token `admin` (a relay
/// process, say).
pub async fn set_recorder_at(
    addr: SocketAddr,
    admin: &str,
    tokens: &Tokens,
    room: &str,
    recorder: &TestRecorder,
) {
    let attestation = tokens.attest_recorder(room, &recorder.id, &recorder.public());
    let body = serde_json::json!({
        "participant": recorder.id,
        "identity_key": STANDARD.encode(recorder.public()),
        "attestation": STANDARD.encode(attestation),
    })
    .to_string();
    let path = format!("/v1/admin/rooms/{room}/recorder");
    let r = http::request(addr, "PUT", &path, Some(admin), &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// [`TestRelay::admin_record`] for the relay at `addr` with admin token `admin`.
pub async fn admin_record_at(addr: SocketAddr, admin: &str, room: &str, on: bool) -> HttpResponse {
    let path = format!("/v1/admin/rooms/{room}/recording");
    let body = serde_json::json!({ "recording": on }).to_string();
    http::request(addr, "POST", &path, Some(admin), &body).await
}

/// Writes what a relay process needs to accept `tokens` and serve the admin API with
/// [`crate::relay::ADMIN_TOKEN`] into `dir`: the HS256 secret, the admin token file and a
/// config file naming both; the config's path (for `--config`).
pub fn process_config(dir: &Path, tokens: &Tokens) -> PathBuf {
    let secret = dir.join("hs256.key");
    std::fs::write(&secret, tokens.secret()).expect("write the token secret");
    let admin = dir.join("admin.token");
    std::fs::write(&admin, crate::relay::ADMIN_TOKEN).expect("write the admin token");
    let config = dir.join("relay.toml");
    let text = format!(
        "admin_token_file = {:?}\n\n[[keys]]\nkid = {:?}\nalg = \"HS256\"\nsecret_file = {:?}\n",
        admin.display().to_string(),
        tokens.kid(),
        secret.display().to_string()
    );
    std::fs::write(&config, text).expect("write the relay config");
    config
}

/// The recordings (directories) under `dir`, oldest name first.
pub fn recordings_in(dir: &Path) -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    all.sort();
    all
}

/// Every file under `dir` (two levels) that contains `needle`.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
            {
                found.push(p);
            }
        }
    }
    found
}
