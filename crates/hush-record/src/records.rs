//! Record files (`.hrf`): the events file and one file per track, append-only.
//!
//! ## Format (version 1)
//!
//! All integers are big-endian. A file is a 12-byte header, then records back to back:
//!
//! ```text
//! header:  magic "HUSHREC1" (8 bytes) | kind (1 byte: 0 events, 1 frames) | 3 reserved bytes, 0
//! record:  body_len (u32) | crc32 (u32) | body (body_len bytes)
//! ```
//!
//! - `crc32` is the CRC-32 of the body alone: the IEEE 802.3 CRC of zlib, gzip and PNG
//!   (polynomial 0x04C11DB7, reflected), as `crc32fast` computes it.
//! - `body_len` is at most [`MAX_RECORD_LEN`] (4 MiB), and at least the body's fixed fields plus
//!   one byte.
//! - The last byte of the magic is the format version: `HUSHREC` followed by another byte is a
//!   record file of a version this crate does not read. Reserved bytes are written as zero
//!   and ignored on read.
//!
//! A **frame** body (kind 1, one encrypted media frame as the relay received it):
//!
//! ```text
//! at_us (u64) | rtp_timestamp (u32) | flags (u8) | frame (1 or more bytes, the rest of the body)
//! ```
//!
//! `at_us` is when the relay received the frame, in microseconds since the manifest's
//! `started_at_ms`; `rtp_timestamp` is the frame's RTP timestamp, at the track's `clock_rate`;
//! `flags` bit 0 ([`FLAG_KEYFRAME`]) says the relay saw a keyframe start, bit 1 ([`FLAG_GAP`])
//! that packets were lost before this frame. Other bits are written as zero and ignored on
//! read. The frame is the SFrame ciphertext, as the sender's encoded transform produced it.
//!
//! An **events** body (kind 0, one signaling message the recorder member received):
//!
//! ```text
//! at_us (u64) | json (1 or more bytes: UTF-8 text of one signaling message, the rest of the body)
//! ```
//!
//! ## Reading damaged files
//!
//! A reader ([`RecordReader`]) gives every record it can vouch for and says precisely where it
//! stopped trusting the file. Offsets are the byte offset of the record's first byte (its
//! `body_len`) in the file.
//!
//! | what the reader finds | it yields | then |
//! |---|---|---|
//! | end of file exactly between records | nothing more | ends |
//! | end of file inside a record's 8-byte header or its body (a crash mid-write) | [`RecordError::Truncated`] | ends |
//! | `body_len` over [`MAX_RECORD_LEN`] or under the fixed fields + 1 | [`RecordError::Corrupt`] | ends: nothing says where the next record starts |
//! | a body whose CRC-32 does not match | [`RecordError::Checksum`] | goes on with the next record (the length was plausible) |
//! | an events body whose JSON is not UTF-8 (CRC-32 matching) | [`RecordError::Corrupt`] | goes on with the next record |
//! | a read error from the OS | [`RecordError::Io`] | ends |
//!
//! A length field cannot make the reader allocate ahead of the bytes actually in the file: it
//! refuses lengths over [`MAX_RECORD_LEN`] before reading, and grows a body's buffer only as its
//! bytes arrive.
//!
//! ## Writing so that a crash loses only the last record
//!
//! A [`RecordWriter`] only appends, and writes each record's length and checksum before its
//! body. Whatever prefix of the byte stream reached the disk when a process was killed, every
//! complete record in it reads back and at most one [`RecordError::Truncated`] follows. After
//! a failed write the writer refuses every later one, so a partly written record is never
//! followed by more records (which would read as damage rather than as the end).
//! [`RecordWriter::sync`] is the durability point: what was appended before it survives a
//! power loss, too.

mod reader;
mod writer;

use std::fmt;
use std::io;

pub use reader::{ReadStats, RecordReader};
pub use writer::RecordWriter;

/// The 8-byte magic that starts every record file; its last byte is the format version.
pub const MAGIC: [u8; 8] = *b"HUSHREC1";
/// Length of a record file's header: magic, kind, 3 reserved bytes.
pub const FILE_HEADER_LEN: usize = 12;
/// Length of a record's header: `body_len` and `crc32`.
pub const RECORD_HEADER_LEN: usize = 8;
/// Largest record body: 4 MiB.
pub const MAX_RECORD_LEN: usize = 4 << 20;
/// Fixed fields of a frame body: `at_us`, `rtp_timestamp`, `flags`.
pub const FRAME_FIXED_LEN: usize = 13;
/// Fixed fields of an events body: `at_us`.
pub const EVENT_FIXED_LEN: usize = 8;
/// Frame flag, bit 0: the relay saw a keyframe start in this frame.
pub const FLAG_KEYFRAME: u8 = 0x01;
/// Frame flag, bit 1: packets were lost before this frame.
pub const FLAG_GAP: u8 = 0x02;

/// What a record file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// Signaling messages (kind byte 0), in the events file.
    Events,
    /// Encrypted media frames of one track (kind byte 1).
    Frames,
}

impl RecordKind {
    /// The kind byte in the file header.
    pub const fn byte(self) -> u8 {
        match self {
            Self::Events => 0,
            Self::Frames => 1,
        }
    }

    /// The kind a header byte names, if any.
    pub const fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(Self::Events),
            1 => Some(Self::Frames),
            _ => None,
        }
    }

    /// The smallest valid body of this kind: its fixed fields and one byte.
    pub const fn min_body_len(self) -> usize {
        match self {
            Self::Events => EVENT_FIXED_LEN + 1,
            Self::Frames => FRAME_FIXED_LEN + 1,
        }
    }

    /// The file header of a record file of this kind.
    pub const fn file_header(self) -> [u8; FILE_HEADER_LEN] {
        let m = MAGIC;
        [
            m[0],
            m[1],
            m[2],
            m[3],
            m[4],
            m[5],
            m[6],
            m[7],
            self.byte(),
            0,
            0,
            0,
        ]
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Events => "events",
            Self::Frames => "frames",
        })
    }
}

/// One encrypted media frame as the relay received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameRecord {
    /// When the relay received it, in microseconds since the manifest's `started_at_ms`.
    pub at_us: u64,
    /// Its RTP timestamp, at the track's clock rate.
    pub rtp_timestamp: u32,
    /// The relay saw a keyframe start ([`FLAG_KEYFRAME`]).
    pub keyframe: bool,
    /// Packets were lost before this frame ([`FLAG_GAP`]).
    pub gap: bool,
    /// The SFrame ciphertext, at least one byte.
    pub data: Vec<u8>,
}

impl FrameRecord {
    /// The `flags` byte.
    pub fn flags(&self) -> u8 {
        (if self.keyframe { FLAG_KEYFRAME } else { 0 }) | (if self.gap { FLAG_GAP } else { 0 })
    }
}

/// One signaling message the recorder member received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    /// When the relay sent it, in microseconds since the manifest's `started_at_ms`.
    pub at_us: u64,
    /// The message's JSON text, at least one byte.
    pub json: String,
}

/// One record read back from a record file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// From a frames file.
    Frame(FrameRecord),
    /// From an events file.
    Event(EventRecord),
}

/// Why a record (or a whole file) could not be read. Every variant but [`RecordError::Io`] is
/// the file's fault; see the [module docs](self) for which ones end the reading.
#[derive(Debug)]
#[non_exhaustive]
pub enum RecordError {
    /// The OS failed to read (or open) the file.
    Io(io::Error),
    /// The file does not start with the record-file magic `HUSHREC`.
    NotARecording,
    /// A record file of another format version: the magic's last byte.
    UnsupportedVersion {
        /// The version byte found (`b'1'` is the one supported).
        version: u8,
    },
    /// A record file of another kind than the caller expected.
    WrongKind {
        /// What the caller asked for.
        expected: RecordKind,
        /// The kind byte found (0 events, 1 frames, anything else unknown).
        found: u8,
    },
    /// The file ends inside its header (offset 0) or inside the record at `offset`.
    Truncated {
        /// Byte offset of the record (0: the file header).
        offset: u64,
    },
    /// The record at `offset` cannot be what the format allows.
    Corrupt {
        /// Byte offset of the record.
        offset: u64,
        /// What is wrong with it.
        why: Corruption,
    },
    /// The body of the record at `offset` does not match its CRC-32.
    Checksum {
        /// Byte offset of the record.
        offset: u64,
    },
}

/// What is wrong with a [`RecordError::Corrupt`] record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Corruption {
    /// `body_len` over [`MAX_RECORD_LEN`].
    TooLong {
        /// The length field.
        len: u32,
    },
    /// `body_len` too short for the body's fixed fields and one byte.
    TooShort {
        /// The length field.
        len: u32,
    },
    /// An events body's JSON text is not UTF-8.
    NotUtf8,
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong { len } => write!(f, "length {len} over the limit {MAX_RECORD_LEN}"),
            Self::TooShort { len } => write!(f, "length {len} too short for its fields"),
            Self::NotUtf8 => f.write_str("event text is not UTF-8"),
        }
    }
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "cannot read the record file: {e}"),
            Self::NotARecording => f.write_str("not a Hush record file"),
            Self::UnsupportedVersion { version } => write!(
                f,
                "record file version {} is not supported (only 1)",
                char::from(*version).escape_default()
            ),
            Self::WrongKind { expected, found } => match RecordKind::from_byte(*found) {
                Some(kind) => write!(f, "expected a {expected} record file, found {kind}"),
                None => write!(f, "expected a {expected} record file, found kind {found}"),
            },
            Self::Truncated { offset: 0 } => f.write_str("record file truncated in its header"),
            Self::Truncated { offset } => write!(f, "record at byte {offset} is truncated"),
            Self::Corrupt { offset, why } => write!(f, "record at byte {offset} is corrupt: {why}"),
            Self::Checksum { offset } => write!(f, "record at byte {offset} fails its checksum"),
        }
    }
}

impl std::error::Error for RecordError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for RecordError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}
