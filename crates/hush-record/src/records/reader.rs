//! [`RecordReader`]: reads a record file back, record by record, trusting nothing in it.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::iter::FusedIterator;
use std::path::Path;

use super::{
    Corruption, EventRecord, FILE_HEADER_LEN, FLAG_GAP, FLAG_KEYFRAME, FrameRecord, MAGIC,
    MAX_RECORD_LEN, RECORD_HEADER_LEN, Record, RecordError, RecordKind,
};

/// A body's buffer grows by at most this much before the bytes to fill it have been read, so a
/// lying length on a short file costs this much memory, not [`MAX_RECORD_LEN`].
const GROW_STEP: usize = 64 << 10;

/// Counts of what a [`RecordReader`] met so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Records read back whole.
    pub records: u64,
    /// Records skipped for a bad checksum ([`RecordError::Checksum`]).
    pub checksum_errors: u64,
    /// [`RecordError::Corrupt`] records (skipped, or the one that ended the reading).
    pub corrupt: u64,
    /// The file ended inside a record ([`RecordError::Truncated`]).
    pub truncated: bool,
}

/// Reads the records of one record file: an iterator of `Result<Record, RecordError>` that
/// ends at the end of the file or after an error that leaves no next record to find (see the
/// [module docs](super) for which). Wrap a raw reader in a [`BufReader`]: it reads 8 bytes at
/// a time.
#[derive(Debug)]
pub struct RecordReader<R: Read> {
    input: R,
    kind: RecordKind,
    /// Offset of the next record.
    offset: u64,
    done: bool,
    stats: ReadStats,
}

impl RecordReader<BufReader<File>> {
    /// Opens the record file at `path` and checks its header, as [`RecordReader::new`].
    pub fn open(path: impl AsRef<Path>, expected: RecordKind) -> Result<Self, RecordError> {
        Self::new(BufReader::new(File::open(path)?), expected)
    }
}

impl<R: Read> RecordReader<R> {
    /// Reads and checks the file header: [`RecordError::NotARecording`] without the magic,
    /// [`RecordError::UnsupportedVersion`] for another version,
    /// [`RecordError::WrongKind`] for another kind than `expected`, and
    /// [`RecordError::Truncated`] (offset 0) for a file that ends inside a valid header's
    /// beginning (an empty file included).
    pub fn new(mut input: R, expected: RecordKind) -> Result<Self, RecordError> {
        let mut header = [0u8; FILE_HEADER_LEN];
        let n = read_full(&mut input, &mut header)?;
        let got = header.get(..n).unwrap_or_default();
        // Everything read of the first 7 bytes must be the magic's "HUSHREC".
        let checked = n.min(MAGIC.len() - 1);
        if got.get(..checked) != MAGIC.get(..checked) {
            return Err(RecordError::NotARecording);
        }
        if let Some(&version) = got.get(MAGIC.len() - 1)
            && MAGIC.last() != Some(&version)
        {
            return Err(RecordError::UnsupportedVersion { version });
        }
        if n < FILE_HEADER_LEN {
            return Err(RecordError::Truncated { offset: 0 });
        }
        let found = header[MAGIC.len()];
        if found != expected.byte() {
            return Err(RecordError::WrongKind { expected, found });
        }
        // The 3 reserved bytes are ignored.
        Ok(Self {
            input,
            kind: expected,
            offset: FILE_HEADER_LEN as u64,
            done: false,
            stats: ReadStats::default(),
        })
    }

    /// What this file holds.
    pub fn kind(&self) -> RecordKind {
        self.kind
    }

    /// Byte offset of the next record: after the last one read (or skipped).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// What was met so far.
    pub fn stats(&self) -> ReadStats {
        self.stats
    }

    /// Ends the reading with `err`.
    fn stop(&mut self, err: RecordError) -> Option<Result<Record, RecordError>> {
        self.done = true;
        match err {
            RecordError::Truncated { .. } => self.stats.truncated = true,
            RecordError::Corrupt { .. } => self.stats.corrupt += 1,
            _ => {}
        }
        Some(Err(err))
    }

    fn read_record(&mut self) -> Option<Result<Record, RecordError>> {
        let offset = self.offset;
        let mut header = [0u8; RECORD_HEADER_LEN];
        match read_full(&mut self.input, &mut header) {
            Err(e) => return self.stop(e.into()),
            Ok(0) => {
                self.done = true;
                return None;
            }
            Ok(RECORD_HEADER_LEN) => {}
            Ok(_) => return self.stop(RecordError::Truncated { offset }),
        }
        let [l0, l1, l2, l3, c0, c1, c2, c3] = header;
        let len = u32::from_be_bytes([l0, l1, l2, l3]);
        let crc = u32::from_be_bytes([c0, c1, c2, c3]);
        let body_len = usize::try_from(len).unwrap_or(usize::MAX);
        if body_len > MAX_RECORD_LEN {
            let why = Corruption::TooLong { len };
            return self.stop(RecordError::Corrupt { offset, why });
        }
        if body_len < self.kind.min_body_len() {
            let why = Corruption::TooShort { len };
            return self.stop(RecordError::Corrupt { offset, why });
        }
        let body = match read_body(&mut self.input, body_len) {
            Ok(body) if body.len() == body_len => body,
            Ok(_) => return self.stop(RecordError::Truncated { offset }),
            Err(e) => return self.stop(e.into()),
        };
        self.offset = offset + (RECORD_HEADER_LEN + body_len) as u64;
        if crc32fast::hash(&body) != crc {
            self.stats.checksum_errors += 1;
            return Some(Err(RecordError::Checksum { offset }));
        }
        match parse(self.kind, body) {
            Ok(record) => {
                self.stats.records += 1;
                Some(Ok(record))
            }
            Err(why) => {
                self.stats.corrupt += 1;
                Some(Err(RecordError::Corrupt { offset, why }))
            }
        }
    }
}

impl<R: Read> Iterator for RecordReader<R> {
    type Item = Result<Record, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        self.read_record()
    }
}

impl<R: Read> FusedIterator for RecordReader<R> {}

/// The record in a checked body (at least `kind.min_body_len()` bytes, CRC-32 matching).
fn parse(kind: RecordKind, mut body: Vec<u8>) -> Result<Record, Corruption> {
    let too_short = Corruption::TooShort {
        len: u32::try_from(body.len()).unwrap_or(u32::MAX),
    };
    let Some((&at_us, rest)) = body.split_first_chunk::<8>() else {
        return Err(too_short);
    };
    let at_us = u64::from_be_bytes(at_us);
    match kind {
        RecordKind::Frames => {
            let Some((&[t0, t1, t2, t3, flags], _)) = rest.split_first_chunk::<5>() else {
                return Err(too_short);
            };
            let rtp_timestamp = u32::from_be_bytes([t0, t1, t2, t3]);
            body.drain(..super::FRAME_FIXED_LEN);
            Ok(Record::Frame(FrameRecord {
                at_us,
                rtp_timestamp,
                keyframe: flags & FLAG_KEYFRAME != 0,
                gap: flags & FLAG_GAP != 0,
                data: body,
            }))
        }
        RecordKind::Events => {
            body.drain(..super::EVENT_FIXED_LEN);
            let json = String::from_utf8(body).map_err(|_| Corruption::NotUtf8)?;
            Ok(Record::Event(EventRecord { at_us, json }))
        }
    }
}

/// Reads up to `len` bytes, fewer only at the end of the input, growing the buffer by at
/// most [`GROW_STEP`] (or by what it already holds, if more) ahead of the bytes read.
fn read_body(input: &mut impl Read, len: usize) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    while body.len() < len {
        let filled = body.len();
        let step = (len - filled).min(filled.max(GROW_STEP));
        body.reserve_exact(step);
        body.resize(filled + step, 0);
        let n = read_full(input, body.get_mut(filled..).unwrap_or_default())?;
        body.truncate(filled + n);
        if n < step {
            break;
        }
    }
    Ok(body)
}

/// Fills `buf` from `input`, fewer bytes only at the end of the input; returns how many.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while let Some(rest) = buf.get_mut(n..).filter(|r| !r.is_empty()) {
        match input.read(rest) {
            Ok(0) => break,
            Ok(k) => n += k.min(rest.len()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
