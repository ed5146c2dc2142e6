//! [`RecordWriter`]: appends records to a new record file.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use super::{
    EVENT_FIXED_LEN, EventRecord, FILE_HEADER_LEN, FRAME_FIXED_LEN, FrameRecord, MAX_RECORD_LEN,
    RECORD_HEADER_LEN, RecordKind,
};

/// Buffer between the records and the file: many audio frames per write.
const BUFFER_LEN: usize = 64 << 10;

/// Appends records to a record file it created (see the [module docs](super) for the format
/// and the crash guarantee). Writes go through a buffer; [`RecordWriter::sync`] pushes them to
/// the disk. Dropping the writer flushes the buffer but reports no error: call `sync` first.
#[derive(Debug)]
pub struct RecordWriter {
    out: BufWriter<File>,
    kind: RecordKind,
    written: u64,
    /// Set by the first failed write: every later one is refused with this kind.
    failed: Option<io::ErrorKind>,
}

impl RecordWriter {
    /// Creates the record file at `path` (never over an existing file:
    /// [`io::ErrorKind::AlreadyExists`]) and writes its header, flushed to the file.
    pub fn create(path: impl AsRef<Path>, kind: RecordKind) -> io::Result<Self> {
        let file = OpenOptions::new().write(true).create_new(true).open(path)?;
        let mut out = BufWriter::with_capacity(BUFFER_LEN, file);
        out.write_all(&kind.file_header())?;
        out.flush()?;
        Ok(Self {
            out,
            kind,
            written: FILE_HEADER_LEN as u64,
            failed: None,
        })
    }

    /// What this file holds.
    pub fn kind(&self) -> RecordKind {
        self.kind
    }

    /// The file's size once everything appended is flushed, header included.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Appends one frame record to a frames file and returns the bytes it added. Refused with
    /// [`io::ErrorKind::InvalidInput`] (and nothing written) on an events file, for empty
    /// `data`, or when the body would be over [`MAX_RECORD_LEN`].
    pub fn append_frame(&mut self, frame: &FrameRecord) -> io::Result<u64> {
        self.expect_kind(RecordKind::Frames)?;
        if frame.data.is_empty() {
            return Err(invalid("a frame record needs at least one byte of data"));
        }
        let mut fixed = [0u8; FRAME_FIXED_LEN];
        fixed[..8].copy_from_slice(&frame.at_us.to_be_bytes());
        fixed[8..12].copy_from_slice(&frame.rtp_timestamp.to_be_bytes());
        fixed[12] = frame.flags();
        self.append(&fixed, &frame.data)
    }

    /// Appends one event record to an events file and returns the bytes it added. Refused with
    /// [`io::ErrorKind::InvalidInput`] (and nothing written) on a frames file, for empty
    /// `json`, or when the body would be over [`MAX_RECORD_LEN`].
    pub fn append_event(&mut self, event: &EventRecord) -> io::Result<u64> {
        self.expect_kind(RecordKind::Events)?;
        if event.json.is_empty() {
            return Err(invalid("an event record needs at least one byte of JSON"));
        }
        let fixed: [u8; EVENT_FIXED_LEN] = event.at_us.to_be_bytes();
        self.append(&fixed, event.json.as_bytes())
    }

    /// Flushes the buffer and waits until the file's data is on the disk (`sync_data`).
    pub fn sync(&mut self) -> io::Result<()> {
        self.check_failed()?;
        let result = self
            .out
            .flush()
            .and_then(|()| self.out.get_ref().sync_data());
        self.note(result)
    }

    fn expect_kind(&self, kind: RecordKind) -> io::Result<()> {
        if self.kind == kind {
            Ok(())
        } else {
            Err(invalid("wrong record kind for this file"))
        }
    }

    fn check_failed(&self) -> io::Result<()> {
        match self.failed {
            None => Ok(()),
            Some(kind) => Err(io::Error::new(
                kind,
                "an earlier write to this record file failed; it ends at its last complete record",
            )),
        }
    }

    /// Remembers a failed write, so that nothing is appended after a partial record.
    fn note<T>(&mut self, result: io::Result<T>) -> io::Result<T> {
        if let Err(e) = &result {
            self.failed = Some(e.kind());
        }
        result
    }

    /// Writes `body_len`, the CRC-32 of `fixed` + `rest`, then both.
    fn append(&mut self, fixed: &[u8], rest: &[u8]) -> io::Result<u64> {
        self.check_failed()?;
        let body_len = fixed.len().saturating_add(rest.len());
        let len = match u32::try_from(body_len) {
            Ok(len) if body_len <= MAX_RECORD_LEN => len,
            _ => return Err(invalid("record body over MAX_RECORD_LEN")),
        };
        let mut crc = crc32fast::Hasher::new();
        crc.update(fixed);
        crc.update(rest);
        let mut header = [0u8; RECORD_HEADER_LEN];
        header[..4].copy_from_slice(&len.to_be_bytes());
        header[4..].copy_from_slice(&crc.finalize().to_be_bytes());
        let result = self
            .out
            .write_all(&header)
            .and_then(|()| self.out.write_all(fixed))
            .and_then(|()| self.out.write_all(rest));
        self.note(result)?;
        let added = (RECORD_HEADER_LEN + body_len) as u64;
        self.written += added;
        Ok(added)
    }
}

fn invalid(why: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why)
}
