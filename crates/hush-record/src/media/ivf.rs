//! IVF, the container of libvpx's and libaom's tools: a 32-byte file header, then each frame
//! after a 12-byte header. All integers little-endian.
//!
//! ```text
//! file header:  "DKIF" | version u16 = 0 | header length u16 = 32 | fourcc [4] | width u16
//!               | height u16 | timebase denominator u32 | timebase numerator u32
//!               | frame count u32 | unused u32
//! frame header: frame length u32 | pts u64 (in timebase units: numerator / denominator s)
//! ```
//!
//! The same layout as `hush-client`'s `ivf` module, which reads these files back.

use std::io::{self, Seek, SeekFrom, Write};

/// Length of the IVF file header.
pub const IVF_FILE_HEADER_LEN: usize = 32;
/// Length of an IVF frame header.
pub const IVF_FRAME_HEADER_LEN: usize = 12;
/// Offset of the frame count in the file header.
const FRAME_COUNT_AT: u64 = 24;

/// Writes frames into an IVF file, then patches the frame count into its header
/// ([`IvfWriter::finish`]). Without `finish` the header says 0 frames, which players accept.
#[derive(Debug)]
pub struct IvfWriter<W: Write + Seek> {
    out: W,
    /// Where the file header starts in `out`.
    start: u64,
    frames: u32,
}

impl<W: Write + Seek> IvfWriter<W> {
    /// Writes the file header at `out`'s position: `fourcc` names the codec (`b"VP80"`,
    /// `b"VP90"`, `b"AV01"`), `width` and `height` are in pixels, and pts count in units of
    /// `timebase_num / timebase_den` seconds (90 kHz RTP timestamps: `90000`, `1`).
    pub fn new(
        mut out: W,
        fourcc: [u8; 4],
        width: u16,
        height: u16,
        timebase_den: u32,
        timebase_num: u32,
    ) -> io::Result<Self> {
        let start = out.stream_position()?;
        let mut h = [0u8; IVF_FILE_HEADER_LEN];
        h[0..4].copy_from_slice(b"DKIF");
        h[4..6].copy_from_slice(&0u16.to_le_bytes());
        h[6..8].copy_from_slice(&(IVF_FILE_HEADER_LEN as u16).to_le_bytes());
        h[8..12].copy_from_slice(&fourcc);
        h[12..14].copy_from_slice(&width.to_le_bytes());
        h[14..16].copy_from_slice(&height.to_le_bytes());
        h[16..20].copy_from_slice(&timebase_den.to_le_bytes());
        h[20..24].copy_from_slice(&timebase_num.to_le_bytes());
        // 24..28: the frame count, patched by `finish`; 28..32 unused.
        out.write_all(&h)?;
        Ok(Self {
            out,
            start,
            frames: 0,
        })
    }

    /// Appends one frame with its presentation timestamp, in timebase units. Refused with
    /// [`io::ErrorKind::InvalidInput`] for a frame of 4 GiB or more, or past `u32::MAX` frames.
    pub fn write_frame(&mut self, pts: u64, data: &[u8]) -> io::Result<()> {
        let len = u32::try_from(data.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "IVF frame over 4 GiB"))?;
        let frames = self.frames.checked_add(1).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "IVF holds at most u32::MAX frames",
            )
        })?;
        let mut h = [0u8; IVF_FRAME_HEADER_LEN];
        h[..4].copy_from_slice(&len.to_le_bytes());
        h[4..].copy_from_slice(&pts.to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(data)?;
        self.frames = frames;
        Ok(())
    }

    /// Frames written so far.
    pub fn frames(&self) -> u32 {
        self.frames
    }

    /// Writes the frame count into the file header, returns to the end, flushes, and returns
    /// the writer.
    pub fn finish(mut self) -> io::Result<W> {
        let end = self.out.stream_position()?;
        self.out
            .seek(SeekFrom::Start(self.start + FRAME_COUNT_AT))?;
        self.out.write_all(&self.frames.to_le_bytes())?;
        self.out.seek(SeekFrom::Start(end))?;
        self.out.flush()?;
        Ok(self.out)
    }
}
