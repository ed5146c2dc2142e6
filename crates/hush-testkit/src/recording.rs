//! Encrypted recording in tests: a recorder key pair the test holds offline, set on a room
//! through the admin API with the kit's backend attestation, recordings started and stopped,
//! and the relay's recording directory searched byte for byte.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hush_keys::IdentityKeyPair;
pub use hush_relay::recording::RecordingOptions;

use crate::http::HttpResponse;
use crate::relay::TestRelay;

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
        let attestation = self
            .tokens()
            .attest_recorder(room, &recorder.id, &recorder.public());
        let body = serde_json::json!({
            "participant": recorder.id,
            "identity_key": STANDARD.encode(recorder.public()),
            "attestation": STANDARD.encode(attestation),
        })
        .to_string();
        let path = format!("/v1/admin/rooms/{room}/recorder");
        let r = self.admin_request("PUT", &path, &body).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }

    /// `POST /v1/admin/rooms/{room}/recording` to start (`true`) or stop it.
    pub async fn admin_record(&self, room: &str, on: bool) -> HttpResponse {
        let path = format!("/v1/admin/rooms/{room}/recording");
        let body = serde_json::json!({ "recording": on }).to_string();
        self.admin_request("POST", &path, &body).await
    }
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
