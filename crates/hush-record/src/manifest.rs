//! `manifest.json`: what a recording holds, and where.
//!
//! ## Format (version 1)
//!
//! One UTF-8 JSON object, at most [`MAX_MANIFEST_LEN`] bytes, in the file [`MANIFEST_FILE`] at
//! the top of the recording directory:
//!
//! ```json
//! {
//!   "format": "hush-recording",
//!   "version": 1,
//!   "recording_id": "rec-5f2c",
//!   "room": "demo",
//!   "recorder": { "participant": "p-recorder", "identity_key": "<base64 of 32 bytes>" },
//!   "started_at_ms": 1767225600000,
//!   "stopped_at_ms": 1767229200000,
//!   "stop_reason": "stopped",
//!   "events_file": "events.hrf",
//!   "tracks": [
//!     { "file": "track-0.hrf", "track_id": "t1", "participant": "p-alice", "sender_index": 3,
//!       "kind": "audio", "codec": "opus", "clock_rate": 48000, "added_at_ms": 1767225600120 }
//!   ]
//! }
//! ```
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `format` | string | always `"hush-recording"` ([`FORMAT`]); anything else is refused |
//! | `version` | integer | always `1` ([`VERSION`]); anything else is refused |
//! | `recording_id` | string | the relay's id for this recording |
//! | `room` | string | the room recorded |
//! | `recorder` | object | the member whose signaling is in the events file: `participant` (its participant id) and `identity_key` (its X25519 identity public key from hush-keys, standard padded base64 of 32 bytes, 44 characters) |
//! | `started_at_ms` | integer | Unix time in milliseconds when recording started; every record's `at_us` counts from here |
//! | `stopped_at_ms` | integer or `null` | Unix ms when it stopped; `null` (or absent) while recording, or when the relay died before it could say |
//! | `stop_reason` | string or `null` | why it stopped ([`StopReason`], snake_case) |
//! | `events_file` | file name | the events record file, normally [`EVENTS_FILE`] |
//! | `tracks` | array | one entry per track file ([`TrackInfo`]), in the order the tracks appeared |
//!
//! A track entry: `file` (its record file, normally [`track_file_name`]`(n)`), `track_id` (the
//! relay's track id), `participant` (the sender's participant id), `sender_index` (the
//! sender's index in the key exchange, which names its SFrame keys), `kind` (`"audio"` or
//! `"video"`), `codec` (as the sender announced it: `"opus"`, `"vp8"`, `"vp9"`, `"av1"`,
//! `"h264"`, ...), `clock_rate` (the RTP clock rate of `rtp_timestamp` in its frames, in Hz),
//! `added_at_ms` (Unix ms when the track was first recorded).
//!
//! Readers ignore fields they do not know, so a later version-1 writer may add some. A change
//! that a version-1 reader would misread gets a new `version`.
//!
//! **File names.** `events_file` and every `file` must be a plain name in the recording
//! directory ([`is_safe_file_name`]): 1 to [`MAX_FILE_NAME_LEN`] bytes of `[A-Za-z0-9._-]`, not
//! starting with `.`, without `..`, and no two the same. So a tampered manifest cannot name a
//! file outside its directory (`../../etc/passwd`, `/etc/passwd`), or make one file two tracks.
//!
//! **Replacing it.** The relay rewrites the manifest as tracks appear and when recording stops,
//! with [`Manifest::write_atomic`]: the new text goes to `manifest.json.tmp`, which is synced
//! to disk and then renamed over `manifest.json`, and the directory is synced. A crash leaves
//! either the old manifest or the new one, never a mix.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The manifest's file name in a recording directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Where [`Manifest::write_atomic`] writes before it renames.
pub const MANIFEST_TMP_FILE: &str = "manifest.json.tmp";
/// The events record file's usual name.
pub const EVENTS_FILE: &str = "events.hrf";
/// The value of the manifest's `format` field.
pub const FORMAT: &str = "hush-recording";
/// The format version this crate reads and writes.
pub const VERSION: u32 = 1;
/// Largest manifest accepted: 1 MiB, thousands of tracks.
pub const MAX_MANIFEST_LEN: usize = 1 << 20;
/// Most tracks a recording's writer lists: a recording that would take one more stops (as at
/// its size limit). Opening one holds two files per track (its records, its output), under
/// the usual limit of 1,024 open files, and the manifest stays far under
/// [`MAX_MANIFEST_LEN`] with the longest ids.
pub const MAX_TRACKS: usize = 400;
/// Longest file name a manifest may hold, in bytes.
pub const MAX_FILE_NAME_LEN: usize = 64;

/// Longest part of an unknown `format` value kept in [`FormatError::UnknownFormat`].
const MAX_ECHO: usize = 64;

/// The usual name of the `n`-th track's record file: `track-<n>.hrf`.
pub fn track_file_name(n: u32) -> String {
    format!("track-{n}.hrf")
}

/// Whether `name` may name a file of a recording: 1 to [`MAX_FILE_NAME_LEN`] bytes, only ASCII
/// letters, digits, `.`, `_` and `-`, not starting with `.` and without `..`.
pub fn is_safe_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_FILE_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !name.starts_with('.')
        && !name.contains("..")
}

/// Everything a recording directory's `manifest.json` says (see the [module docs](self) for
/// the JSON). `format` and `version` are not fields: they are [`FORMAT`] and [`VERSION`],
/// written by [`Manifest::to_json`] and checked by [`Manifest::from_json`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The relay's id for this recording.
    pub recording_id: String,
    /// The room recorded.
    pub room: String,
    /// The member whose signaling messages the events file holds.
    pub recorder: RecorderInfo,
    /// Unix time in milliseconds when recording started; records' `at_us` count from here.
    pub started_at_ms: u64,
    /// Unix time in milliseconds when recording stopped, `None` while it runs (or if the relay
    /// died first).
    #[serde(default)]
    pub stopped_at_ms: Option<u64>,
    /// Why recording stopped, `None` while it runs.
    #[serde(default)]
    pub stop_reason: Option<StopReason>,
    /// The events record file's name in the directory.
    pub events_file: String,
    /// The tracks, in the order they appeared.
    pub tracks: Vec<TrackInfo>,
}

/// The recorder member: whose view of the room's signaling was recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecorderInfo {
    /// Its participant id.
    pub participant: String,
    /// Its X25519 identity public key: standard padded base64 of 32 bytes.
    pub identity_key: String,
}

/// One recorded track: a sender's audio or video stream, in its own record file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackInfo {
    /// Its record file's name in the directory.
    pub file: String,
    /// The relay's track id.
    pub track_id: String,
    /// The sender's participant id.
    pub participant: String,
    /// The sender's index in the key exchange (it names the sender's SFrame keys).
    pub sender_index: u32,
    /// Audio or video.
    pub kind: TrackKind,
    /// The codec as the sender announced it: `opus`, `vp8`, `vp9`, `av1`, `h264`, ...
    pub codec: String,
    /// The RTP clock rate of its frames' `rtp_timestamp`, in Hz.
    pub clock_rate: u32,
    /// Unix time in milliseconds when the track was first recorded.
    pub added_at_ms: u64,
}

/// Whether a track is audio or video.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackKind {
    /// `"audio"`.
    Audio,
    /// `"video"`.
    Video,
}

/// Why a recording stopped (`stop_reason`, snake_case in JSON).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// `"stopped"`: someone asked for it to stop.
    Stopped,
    /// `"disk_full"`: the relay ran out of disk space.
    DiskFull,
    /// `"write_error"`: another write error.
    WriteError,
    /// `"size_limit"`: the recording reached its configured size limit.
    SizeLimit,
    /// `"room_closed"`: the room ended.
    RoomClosed,
    /// `"shutdown"`: the relay shut down.
    Shutdown,
    /// `"recorder_removed"`: the recorder member left or was removed.
    RecorderRemoved,
}

/// The fields read first, so that a manifest of another format or version is refused as such
/// and not as a shape error.
#[derive(Deserialize)]
struct Probe {
    format: Option<serde_json::Value>,
    version: Option<serde_json::Value>,
}

/// What [`Manifest::to_json`] writes: the manifest's fields after `format` and `version`.
#[derive(Serialize)]
struct Wire<'a> {
    format: &'static str,
    version: u32,
    #[serde(flatten)]
    manifest: &'a Manifest,
}

impl Manifest {
    /// Reads and checks `manifest.json` in the recording directory `dir`.
    pub fn read(dir: &Path) -> Result<Manifest, FormatError> {
        let file = File::open(dir.join(MANIFEST_FILE))?;
        let mut json = Vec::new();
        // One byte over the limit is enough to know it is too large.
        file.take(MAX_MANIFEST_LEN as u64 + 1)
            .read_to_end(&mut json)?;
        Self::from_json(&json)
    }

    /// Parses and checks a manifest's JSON: the `format` and `version`, then the fields, then
    /// [`Manifest::validate`]. Unknown fields are ignored.
    pub fn from_json(json: &[u8]) -> Result<Manifest, FormatError> {
        if json.len() > MAX_MANIFEST_LEN {
            return Err(FormatError::TooLarge);
        }
        // serde would also take a struct from an array: a manifest is an object.
        let first = json
            .iter()
            .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
        if first.is_some_and(|&b| b != b'{') {
            return Err(FormatError::Json(serde::de::Error::custom(
                "a manifest is one JSON object",
            )));
        }
        let probe: Probe = serde_json::from_slice(json)?;
        match probe.format {
            Some(serde_json::Value::String(f)) if f == FORMAT => {}
            Some(serde_json::Value::String(f)) => {
                return Err(FormatError::UnknownFormat {
                    found: Some(truncated(f, MAX_ECHO)),
                });
            }
            _ => return Err(FormatError::UnknownFormat { found: None }),
        }
        let version = probe.version.as_ref().and_then(serde_json::Value::as_u64);
        if version != Some(u64::from(VERSION)) {
            return Err(FormatError::UnsupportedVersion { found: version });
        }
        let manifest: Manifest = serde_json::from_slice(json)?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Checks what the JSON's shape cannot: every file name is [safe](is_safe_file_name) and
    /// names one file only, and the recorder's identity key is base64 of 32 bytes.
    pub fn validate(&self) -> Result<(), FormatError> {
        if !is_base64_32(&self.recorder.identity_key) {
            return Err(FormatError::BadIdentityKey);
        }
        let names = std::iter::once(("events_file", &self.events_file))
            .chain(self.tracks.iter().map(|t| ("tracks[].file", &t.file)));
        let mut seen: Vec<&str> = Vec::with_capacity(self.tracks.len() + 1);
        for (field, name) in names {
            if !is_safe_file_name(name) {
                return Err(FormatError::BadFileName {
                    field,
                    name: truncated(name.clone(), MAX_ECHO),
                });
            }
            if seen.contains(&name.as_str()) {
                return Err(FormatError::DuplicateFile { name: name.clone() });
            }
            seen.push(name);
        }
        Ok(())
    }

    /// The manifest's JSON (pretty-printed, with a final newline), after
    /// [`Manifest::validate`]: what [`Manifest::from_json`] reads back, so one over
    /// [`MAX_MANIFEST_LEN`] is refused ([`FormatError::TooLarge`]) rather than written unreadable.
    pub fn to_json(&self) -> Result<Vec<u8>, FormatError> {
        self.validate()?;
        let wire = Wire {
            format: FORMAT,
            version: VERSION,
            manifest: self,
        };
        let mut json = serde_json::to_vec_pretty(&wire)?;
        json.push(b'\n');
        if json.len() > MAX_MANIFEST_LEN {
            return Err(FormatError::TooLarge);
        }
        Ok(json)
    }

    /// Replaces `manifest.json` in `dir` so that a crash leaves the old or the new one: writes
    /// [`MANIFEST_TMP_FILE`], syncs it, renames it over [`MANIFEST_FILE`], then syncs the
    /// directory (on Unix). A manifest that fails [`Manifest::validate`] is refused with
    /// [`io::ErrorKind::InvalidInput`] and nothing is written.
    pub fn write_atomic(&self, dir: &Path) -> io::Result<()> {
        let json = self
            .to_json()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let tmp = dir.join(MANIFEST_TMP_FILE);
        let mut file = File::create(&tmp)?;
        file.write_all(&json)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, dir.join(MANIFEST_FILE))?;
        sync_dir(dir)
    }
}

/// Makes a rename in `dir` durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Makes a rename in `dir` durable: a no-op where a directory cannot be opened as a file.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// Whether `s` is standard padded base64 (RFC 4648 section 4) of exactly 32 bytes, in its one
/// canonical spelling: 43 alphabet characters, the last with its two low bits zero, then `=`.
fn is_base64_32(s: &str) -> bool {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let Some((&b'=', chars)) = b.split_last() else {
        return false;
    };
    let value = |c: &u8| ALPHABET.iter().position(|a| a == c);
    chars.len() == 43
        && chars.iter().all(|c| value(c).is_some())
        && chars.last().and_then(value).is_some_and(|v| v & 0b11 == 0)
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn truncated(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// Why a manifest was refused. Every variant but [`FormatError::Io`] is the file's fault.
#[derive(Debug)]
#[non_exhaustive]
pub enum FormatError {
    /// Reading the file failed (missing, unreadable).
    Io(io::Error),
    /// Over [`MAX_MANIFEST_LEN`] bytes.
    TooLarge,
    /// Not JSON, or a field missing or of the wrong type.
    Json(serde_json::Error),
    /// `format` is not `"hush-recording"`: the string found (cut to 64 bytes), or `None` when
    /// it is missing or not a string.
    UnknownFormat {
        /// The `format` string found.
        found: Option<String>,
    },
    /// `version` is not 1: the number found, or `None` when it is missing or not an unsigned
    /// integer.
    UnsupportedVersion {
        /// The `version` found.
        found: Option<u64>,
    },
    /// A file name that could reach outside the directory or is not a plain name.
    BadFileName {
        /// `"events_file"` or `"tracks[].file"`.
        field: &'static str,
        /// The name (cut to 64 bytes).
        name: String,
    },
    /// Two entries name the same file.
    DuplicateFile {
        /// The name (a safe one, at most 64 bytes).
        name: String,
    },
    /// `recorder.identity_key` is not standard base64 of 32 bytes.
    BadIdentityKey,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "cannot read the manifest: {e}"),
            Self::TooLarge => write!(f, "manifest over {MAX_MANIFEST_LEN} bytes"),
            Self::Json(e) => write!(f, "manifest is not valid: {e}"),
            Self::UnknownFormat { found: Some(s) } => {
                write!(f, "not a Hush recording manifest (format {s:?})")
            }
            Self::UnknownFormat { found: None } => {
                write!(f, "not a Hush recording manifest (no format string)")
            }
            Self::UnsupportedVersion { found: Some(v) } => {
                write!(
                    f,
                    "recording format version {v} is not supported (only {VERSION})"
                )
            }
            Self::UnsupportedVersion { found: None } => {
                write!(
                    f,
                    "manifest has no integer version (only {VERSION} is supported)"
                )
            }
            Self::BadFileName { field, name } => {
                write!(f, "manifest {field} {name:?} is not a plain file name")
            }
            Self::DuplicateFile { name } => write!(f, "manifest names {name:?} twice"),
            Self::BadIdentityKey => {
                f.write_str("manifest recorder.identity_key is not base64 of 32 bytes")
            }
        }
    }
}

impl std::error::Error for FormatError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            Self::Json(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for FormatError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<serde_json::Error> for FormatError {
    fn from(e: serde_json::Error) -> Self {
        Self::Json(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_32_only_canonical() {
        let good = "q83vq83vq83vq83vq83vq83vq83vq83vq83vq83vq80=";
        assert!(is_base64_32(good));
        // Last character with non-zero low bits: decodes, but not canonically.
        assert!(!is_base64_32(
            "q83vq83vq83vq83vq83vq83vq83vq83vq83vq83vq81="
        ));
        assert!(!is_base64_32(&good[..43]));
        assert!(!is_base64_32(
            "q83vq83vq83vq83vq83vq83vq83vq83vq83vq83vq8-="
        ));
        assert!(!is_base64_32(""));
        assert!(!is_base64_32("é"));
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncated("ééé".into(), 3), "é");
        assert_eq!(truncated("abc".into(), 5), "abc");
    }
}
