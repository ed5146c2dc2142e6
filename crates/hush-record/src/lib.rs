//! # hush-record: the on-disk container of Hush's encrypted recordings
//!
//! The relay records a room by writing what it already forwards: every media frame still as
//! SFrame ciphertext (RFC 9605), and the signaling messages that the *recorder* member (a
//! participant that holds the room's keys) received. The relay never holds a key that opens
//! them; an offline tool run by the recorder's owner reads the recording back, replays the key
//! exchange from the events and decrypts the frames into playable files.
//!
//! This crate is the format, and this documentation is its specification (format version 1):
//! no crypto, no async and no network, reading and writing with `std::fs`; that is all the
//! relay links (`default-features = false`). The `open` feature (on by default) adds [`open`]
//! and the `hush-record` CLI (`keygen`, `inspect`, `decrypt`): the offline side, which replays
//! the key exchange with the recorder's private key and decrypts into IVF and Ogg Opus.
//! Every reader treats its input as untrusted: a truncated, tampered or foreign file gives a
//! precise error, never a panic, and no length field makes it allocate more than
//! [`records::MAX_RECORD_LEN`] for one record.
//!
//! ## A recording is a directory
//!
//! ```text
//! <recording>/
//!   manifest.json     what was recorded, by whom, when; the list of tracks   (manifest)
//!   events.hrf        the recorder's signaling messages, one record each     (records, kind 0)
//!   track-0.hrf       one track's encrypted frames, one record each          (records, kind 1)
//!   track-1.hrf       ...
//! ```
//!
//! - [`manifest`]: `manifest.json`, its fields, and how it is replaced atomically.
//! - [`records`]: the record files (`.hrf`): header, framing, checksums, and what a reader does
//!   with a truncated or damaged file.
//! - [`RecordingDir`]: opens a directory, reads its manifest and joins its file names safely.
//! - [`media`]: writers for the decrypt tool's plaintext output, IVF (VP8, VP9, AV1) and Ogg
//!   Opus, and the Opus packet duration that Ogg granule positions are computed from.
//!
//! ## Writing order and crashes
//!
//! The relay creates the directory, writes a first manifest (no tracks, no `stopped_at_ms`),
//! creates `events.hrf`, then for each new track creates its `track-<n>.hrf` *before* it
//! rewrites the manifest to list it, so a listed file always exists. It rewrites the manifest
//! once more when the recording stops, with `stopped_at_ms` and a [`StopReason`]. Record files
//! are append-only and every record carries its length and checksum, so a process killed at any
//! byte leaves files whose complete records all read back; a manifest without `stopped_at_ms`
//! is a recording that did not stop cleanly.
//!
//! ```
//! use hush_record::{FrameRecord, Record, RecordKind, RecordReader, RecordWriter};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("track-0.hrf");
//! let mut w = RecordWriter::create(&path, RecordKind::Frames)?;
//! let frame = FrameRecord { at_us: 20_000, rtp_timestamp: 960, keyframe: false, gap: false,
//!     data: b"\x78sframe ciphertext".to_vec() };
//! w.append_frame(&frame)?;
//! w.sync()?;
//!
//! let mut r = RecordReader::open(&path, RecordKind::Frames)?;
//! assert_eq!(r.next().transpose()?, Some(Record::Frame(frame)));
//! assert!(r.next().is_none());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod assemble;
mod dir;
pub mod manifest;
pub mod media;
#[cfg(feature = "open")]
pub mod open;
pub mod records;

pub use dir::RecordingDir;
pub use manifest::{FormatError, Manifest, RecorderInfo, StopReason, TrackInfo, TrackKind};
pub use records::{
    Corruption, EventRecord, FrameRecord, ReadStats, Record, RecordError, RecordKind, RecordReader,
    RecordWriter,
};
