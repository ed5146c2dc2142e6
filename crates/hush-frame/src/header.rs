//! The SFrame header, RFC 9605 section 4.3.
//!
//! ```text
//!  0 1 2 3 4 5 6 7
//! +-+-+-+-+-+-+-+-+---------------------------+---------------------------+
//! |X|  K  |Y|  C  |   KID (length=K+1 if X)   |   CTR (length=C+1 if Y)   |
//! +-+-+-+-+-+-+-+-+---------------------------+---------------------------+
//! ```
//!
//! Values below 8 sit in the config byte; larger ones follow it, big-endian, in the minimum
//! number of bytes. Decoding is strict: a non-minimal encoding is refused, so each header has
//! exactly one encoding.

use crate::error::HeaderError;

/// The longest possible header: config byte, 8-byte KID, 8-byte CTR.
pub const MAX_HEADER_LEN: usize = 17;

/// A decoded SFrame header: key identifier and counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    /// Key identifier (KID).
    pub kid: u64,
    /// Frame counter (CTR).
    pub ctr: u64,
}

/// Number of big-endian bytes needed to carry `v` (`v >= 8`).
const fn min_len(v: u64) -> usize {
    // v >= 8 so at least one byte; leading_zeros <= 60.
    8 - (v.leading_zeros() as usize / 8)
}

impl Header {
    /// A header for `kid` and `ctr`.
    pub const fn new(kid: u64, ctr: u64) -> Self {
        Header { kid, ctr }
    }

    /// Length of this header's encoding, in bytes.
    pub const fn encoded_len(&self) -> usize {
        let k = if self.kid < 8 { 0 } else { min_len(self.kid) };
        let c = if self.ctr < 8 { 0 } else { min_len(self.ctr) };
        1 + k + c
    }

    /// Writes the header into `out` and returns its length. `out` must hold
    /// [`Header::encoded_len`] bytes ([`MAX_HEADER_LEN`] always suffices).
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, HeaderError> {
        let len = self.encoded_len();
        if out.len() < len {
            return Err(HeaderError::BufferTooSmall);
        }
        let mut config = 0u8;
        let mut at = 1;
        if self.kid < 8 {
            config |= (self.kid as u8) << 4;
        } else {
            let n = min_len(self.kid);
            config |= 0x80 | (((n - 1) as u8) << 4);
            out[at..at + n].copy_from_slice(&self.kid.to_be_bytes()[8 - n..]);
            at += n;
        }
        if self.ctr < 8 {
            config |= self.ctr as u8;
        } else {
            let n = min_len(self.ctr);
            config |= 0x08 | ((n - 1) as u8);
            out[at..at + n].copy_from_slice(&self.ctr.to_be_bytes()[8 - n..]);
        }
        out[0] = config;
        Ok(len)
    }

    /// Encodes into a fixed array; returns the array and the used length.
    pub fn to_bytes(&self) -> ([u8; MAX_HEADER_LEN], usize) {
        let mut out = [0u8; MAX_HEADER_LEN];
        // MAX_HEADER_LEN always suffices, so this cannot fail.
        let len = self.encode(&mut out).unwrap_or(0);
        (out, len)
    }

    /// Decodes a header from the start of `bytes`; returns it and its length.
    pub fn decode(bytes: &[u8]) -> Result<(Header, usize), HeaderError> {
        let config = *bytes.first().ok_or(HeaderError::Truncated)?;
        let mut at = 1;
        let kid = if config & 0x80 == 0 {
            u64::from((config >> 4) & 0x07)
        } else {
            let n = usize::from((config >> 4) & 0x07) + 1;
            let v = read_be(bytes, at, n)?;
            at += n;
            v
        };
        let ctr = if config & 0x08 == 0 {
            u64::from(config & 0x07)
        } else {
            let n = usize::from(config & 0x07) + 1;
            let v = read_be(bytes, at, n)?;
            at += n;
            v
        };
        Ok((Header { kid, ctr }, at))
    }
}

/// Reads an `n`-byte big-endian value at `at`, refusing non-minimal encodings.
fn read_be(bytes: &[u8], at: usize, n: usize) -> Result<u64, HeaderError> {
    let field = bytes.get(at..at + n).ok_or(HeaderError::Truncated)?;
    let v = field.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    if v < 8 || min_len(v) != n {
        return Err(HeaderError::NonMinimal);
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_fit_in_the_config_byte() {
        let (b, n) = Header::new(7, 7).to_bytes();
        assert_eq!(&b[..n], &[0x77]);
    }

    #[test]
    fn non_minimal_and_truncated_encodings_are_refused() {
        // KID 5 encoded in an extra byte.
        assert_eq!(Header::decode(&[0x80, 0x05]), Err(HeaderError::NonMinimal));
        // CTR 0x0100 encoded in three bytes.
        assert_eq!(
            Header::decode(&[0x0a, 0x00, 0x01, 0x00]),
            Err(HeaderError::NonMinimal)
        );
        assert_eq!(Header::decode(&[]), Err(HeaderError::Truncated));
        assert_eq!(
            Header::decode(&[0x8f, 0x10, 2]),
            Err(HeaderError::Truncated)
        );
    }

    #[test]
    fn extremes_round_trip() {
        for (kid, ctr) in [(0, 0), (u64::MAX, u64::MAX), (8, 8), (255, 256)] {
            let h = Header::new(kid, ctr);
            let (b, n) = h.to_bytes();
            assert_eq!(n, h.encoded_len());
            assert_eq!(Header::decode(&b[..n]), Ok((h, n)));
        }
    }
}
