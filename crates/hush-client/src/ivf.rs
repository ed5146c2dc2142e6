//! A minimal IVF container (the 32-byte file header, then a 12-byte header per frame), enough to
//! store and replay VP8 frames. Reading never panics: a short or malformed file is an
//! [`IvfError`].

use std::io::{self, Read, Write};

/// The IVF signature.
const SIGNATURE: &[u8; 4] = b"DKIF";
/// File header length.
const FILE_HEADER_LEN: usize = 32;
/// Largest frame the reader accepts (a guard against corrupt length fields).
pub const MAX_IVF_FRAME: usize = 4 << 20;

/// The fields of an IVF file header that matter here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IvfHeader {
    /// The codec FourCC, `VP80` for VP8.
    pub fourcc: [u8; 4],
    /// Frame width in pixels.
    pub width: u16,
    /// Frame height in pixels.
    pub height: u16,
    /// Timebase denominator (frames per second when the numerator is 1).
    pub timebase_den: u32,
    /// Timebase numerator.
    pub timebase_num: u32,
    /// Number of frames the header announces.
    pub frames: u32,
}

/// Why an IVF file could not be read.
#[derive(Debug)]
#[non_exhaustive]
pub enum IvfError {
    /// The underlying reader failed.
    Io(io::Error),
    /// The file does not start with `DKIF` or has an unsupported header length.
    BadHeader,
    /// A frame header announces a frame over [`MAX_IVF_FRAME`].
    FrameTooLarge,
}

impl std::fmt::Display for IvfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(e) => write!(f, "ivf i/o: {e}"),
            Self::BadHeader => f.write_str("not an IVF file"),
            Self::FrameTooLarge => f.write_str("IVF frame too large"),
        }
    }
}

impl std::error::Error for IvfError {}

impl From<io::Error> for IvfError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Writes frames into an IVF stream.
#[derive(Debug)]
pub struct IvfWriter<W: Write> {
    out: W,
    pts: u64,
}

impl<W: Write> IvfWriter<W> {
    /// Writes the file header and returns the writer.
    pub fn new(mut out: W, header: &IvfHeader) -> io::Result<Self> {
        let mut h = [0u8; FILE_HEADER_LEN];
        h[0..4].copy_from_slice(SIGNATURE);
        h[4..6].copy_from_slice(&0u16.to_le_bytes());
        h[6..8].copy_from_slice(&(FILE_HEADER_LEN as u16).to_le_bytes());
        h[8..12].copy_from_slice(&header.fourcc);
        h[12..14].copy_from_slice(&header.width.to_le_bytes());
        h[14..16].copy_from_slice(&header.height.to_le_bytes());
        h[16..20].copy_from_slice(&header.timebase_den.to_le_bytes());
        h[20..24].copy_from_slice(&header.timebase_num.to_le_bytes());
        h[24..28].copy_from_slice(&header.frames.to_le_bytes());
        out.write_all(&h)?;
        Ok(Self { out, pts: 0 })
    }

    /// Appends one frame with the next timestamp.
    pub fn write_frame(&mut self, frame: &[u8]) -> io::Result<()> {
        let len = u32::try_from(frame.len()).map_err(|_| io::Error::other("frame too large"))?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(&self.pts.to_le_bytes())?;
        self.out.write_all(frame)?;
        self.pts += 1;
        Ok(())
    }

    /// Returns the inner writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Reads frames from an IVF stream.
#[derive(Debug)]
pub struct IvfReader<R: Read> {
    input: R,
    header: IvfHeader,
}

impl<R: Read> IvfReader<R> {
    /// Reads and checks the file header.
    pub fn new(mut input: R) -> Result<Self, IvfError> {
        let mut h = [0u8; FILE_HEADER_LEN];
        input.read_exact(&mut h)?;
        let le16 = |i: usize| u16::from_le_bytes([h[i], h[i + 1]]);
        let le32 = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        if &h[0..4] != SIGNATURE || usize::from(le16(6)) != FILE_HEADER_LEN {
            return Err(IvfError::BadHeader);
        }
        let header = IvfHeader {
            fourcc: [h[8], h[9], h[10], h[11]],
            width: le16(12),
            height: le16(14),
            timebase_den: le32(16),
            timebase_num: le32(20),
            frames: le32(24),
        };
        Ok(Self { input, header })
    }

    /// The file header.
    pub fn header(&self) -> &IvfHeader {
        &self.header
    }

    /// The next frame, `Ok(None)` at a clean end of file.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, IvfError> {
        let mut fh = [0u8; 12];
        match self.input.read_exact(&mut fh) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let len = u32::from_le_bytes([fh[0], fh[1], fh[2], fh[3]]) as usize;
        if len > MAX_IVF_FRAME {
            return Err(IvfError::FrameTooLarge);
        }
        let mut frame = vec![0u8; len];
        self.input.read_exact(&mut frame)?;
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> IvfHeader {
        IvfHeader {
            fourcc: *b"VP80",
            width: 64,
            height: 48,
            timebase_den: 30,
            timebase_num: 1,
            frames: 2,
        }
    }

    #[test]
    fn round_trips_frames() {
        let mut w = IvfWriter::new(Vec::new(), &header()).unwrap();
        w.write_frame(b"first").unwrap();
        w.write_frame(&[7u8; 300]).unwrap();
        let bytes = w.into_inner();
        let mut r = IvfReader::new(&bytes[..]).unwrap();
        assert_eq!(r.header(), &header());
        assert_eq!(r.next_frame().unwrap().unwrap(), b"first");
        assert_eq!(r.next_frame().unwrap().unwrap(), vec![7u8; 300]);
        assert!(r.next_frame().unwrap().is_none());
    }

    #[test]
    fn refuses_garbage_and_huge_frames() {
        assert!(matches!(
            IvfReader::new(&[0u8; 32][..]),
            Err(IvfError::BadHeader)
        ));
        assert!(matches!(IvfReader::new(&b"DKIF"[..]), Err(IvfError::Io(_))));
        let mut bytes = IvfWriter::new(Vec::new(), &header()).unwrap().into_inner();
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend_from_slice(&[0u8; 8]);
        let mut r = IvfReader::new(&bytes[..]).unwrap();
        assert!(matches!(r.next_frame(), Err(IvfError::FrameTooLarge)));
        // A truncated frame body is an error, not a silent end.
        let mut w = IvfWriter::new(Vec::new(), &header()).unwrap();
        w.write_frame(&[1u8; 50]).unwrap();
        let mut bytes = w.into_inner();
        bytes.truncate(bytes.len() - 10);
        let mut r = IvfReader::new(&bytes[..]).unwrap();
        assert!(r.next_frame().is_err());
    }
}
