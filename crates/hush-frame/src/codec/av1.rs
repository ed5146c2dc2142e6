//! AV1 media mode: clear OBUs, the carrier OBU, and the canonical metadata.
//!
//! An AV1 frame is a sequence of OBUs (AV1 spec section 5.3): a 1-byte header (forbidden bit,
//! 4-bit type, extension flag, `obu_has_size_field`, reserved bit), an extension byte when the
//! flag is set (temporal and spatial layer ids), a `leb128()` size when `obu_has_size_field`
//! is set, then the payload; an OBU without a size runs to the end of the frame.
//!
//! RTP packetizers parse that stream by the size fields, and the receiving depacketizer writes
//! it out again (AV1 RTP payload format, `aomediacodec.github.io/av1-rtp-spec`): Chromium
//! drops temporal delimiters, tile lists and padding, and writes every size field anew (each
//! OBU gets one, minimally encoded). So the wire frame must stay a valid OBU stream, and the
//! metadata both sides authenticate must not depend on what a depacketizer rewrites.
//!
//! **Sending.** The frame is walked from the start:
//!
//! - a temporal delimiter (type 2: exactly `12 00`, and only as the first OBU), padding (15)
//!   and sequence headers (1) stay in the clear and are left where they are;
//! - the first other OBU is the *carrier*. Everything from its first byte to the end of the
//!   frame (its header, size field and payload, and every OBU after it: further tile groups,
//!   metadata, the frames of other layers) is the plaintext, encrypted verbatim as one SFrame
//!   payload. In front of the SFrame header goes a copy of the carrier's header (and
//!   extension) with `obu_has_size_field` set and a minimal `leb128()` size covering exactly
//!   `SFrame header || ciphertext || tag`:
//!
//! ```text
//! plaintext: [TD][SH][carrier hdr][size][carrier payload][more OBUs ...]
//! wire:      [TD][SH][carrier hdr'][size'][SFrame header][ciphertext of: carrier hdr .. end][tag]
//! ```
//!
//! The packetizer then sees the clear OBUs and one carrier OBU of the same type and layer ids
//! as the original, whose size is right. Encrypting the carrier's own header and size field
//! too (1 to 6 bytes per frame) buys an exact round trip: the receiver's output ends
//! with the sender's bytes as they were, whether the carrier had a size field or not, however
//! many OBUs followed it, whatever size encoding the encoder chose.
//!
//! A frame whose carrier would be a tile list is refused: packetizers drop tile lists (they
//! belong to large-scale tile decoding, never to real-time streams). So is a frame with no
//! carrier at all, a clear OBU without a size field, or a temporal delimiter other than a
//! leading `12 00`: none of them is real-time encoder output, and each would leave something the
//! receiver could not find or authenticate.
//!
//! **Receiving.** The same walk over clear OBUs (whatever a depacketizer left of them), then
//! the carrier: its size, when it has one, must equal the bytes after it exactly. The
//! decrypted frame is `clear OBUs as received || plaintext`.
//!
//! **Canonical metadata.** Authenticated, in order: for each sequence header, its header byte
//! with `obu_has_size_field` cleared, its extension byte if any, its payload length as 4
//! big-endian bytes and its payload; then the carrier's header byte (size flag cleared) and
//! extension byte. Left out: temporal delimiters and padding OBUs (depacketizers drop them;
//! they carry nothing) and every size field (depacketizers rewrite them; the sizes that matter
//! are fixed by the authenticated payloads and the SFrame layout).

use super::NoPrefix;

/// OBU types (AV1 spec section 6.2.2).
const OBU_SEQUENCE_HEADER: u8 = 1;
const OBU_TEMPORAL_DELIMITER: u8 = 2;
const OBU_TILE_LIST: u8 = 8;
const OBU_PADDING: u8 = 15;

/// `obu_forbidden_bit`.
const FORBIDDEN_BIT: u8 = 0x80;
/// `obu_extension_flag`.
const EXTENSION_FLAG: u8 = 0x04;
/// `obu_has_size_field`.
const HAS_SIZE_FIELD: u8 = 0x02;
/// The one temporal-delimiter header accepted: type 2, a size field, nothing else set.
const TEMPORAL_DELIMITER_HEADER: u8 = 0x12;

/// Longest `leb128()` this module reads or writes (AV1 spec section 4.10.5).
const MAX_LEB128_LEN: usize = 8;

/// How the sender lays out an AV1 frame: the clear OBUs it keeps, and the carrier's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Carrier {
    /// Where the carrier OBU starts: the clear prefix's length.
    pub(crate) at: usize,
    header: [u8; 2],
    header_len: usize,
}

/// The bytes between the clear prefix and the SFrame header (AV1's carrier header and size).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Framing {
    bytes: [u8; 2 + MAX_LEB128_LEN],
    len: usize,
}

impl Framing {
    /// No framing (every codec but AV1).
    pub(crate) const NONE: Framing = Framing {
        bytes: [0; 2 + MAX_LEB128_LEN],
        len: 0,
    };

    /// The framing bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Carrier {
    /// The carrier's header with `obu_has_size_field` set, then `leb128(sealed_len)`, where
    /// `sealed_len` is the length of `SFrame header || ciphertext || tag`.
    pub(crate) fn framing(&self, sealed_len: usize) -> Framing {
        let mut f = Framing::NONE;
        f.bytes[..self.header_len].copy_from_slice(&self.header[..self.header_len]);
        f.bytes[0] |= HAS_SIZE_FIELD;
        let mut v = sealed_len as u64;
        let mut n = self.header_len;
        // `sealed_len` is below `MAX_FRAME_LEN` plus a few bytes, so under 2^28: 4 bytes at most.
        while n < f.bytes.len() {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                f.bytes[n] = b;
                n += 1;
                break;
            }
            f.bytes[n] = b | 0x80;
            n += 1;
        }
        f.len = n;
        f
    }
}

/// Where a received AV1 frame splits: `(clear prefix length, framing length)`.
pub(crate) fn open_split(frame: &[u8]) -> Result<(usize, usize), NoPrefix> {
    let at = walk_clear(frame, |_, _| {})?;
    let (header, header_len) = obu_header(frame, at)?;
    if obu_type(header) == OBU_TILE_LIST {
        return Err(NoPrefix);
    }
    if header & HAS_SIZE_FIELD == 0 {
        // A depacketizer may leave the last OBU without a size: it runs to the end.
        return Ok((at, header_len));
    }
    let (size, leb_len) = read_leb128(frame, at + header_len)?;
    let start = at + header_len + leb_len;
    if frame.len() - start != size {
        // The carrier ends before the frame does (more OBUs after it: not what a sender
        // sends) or runs past its end (truncated).
        return Err(NoPrefix);
    }
    Ok((at, header_len + leb_len))
}

/// Finds the carrier of a plaintext AV1 frame.
pub(crate) fn send_split(frame: &[u8]) -> Result<Carrier, NoPrefix> {
    let at = walk_clear(frame, |_, _| {})?;
    let (header, header_len) = obu_header(frame, at)?;
    if obu_type(header) == OBU_TILE_LIST {
        return Err(NoPrefix);
    }
    let mut h = [0u8; 2];
    h[..header_len].copy_from_slice(&frame[at..at + header_len]);
    Ok(Carrier {
        at,
        header: h,
        header_len,
    })
}

/// Appends the canonical metadata (module docs) of a wire prefix, `clear OBUs || framing`,
/// which [`open_split`] or [`send_split`] already accepted.
pub(crate) fn write_metadata(prefix: &[u8], out: &mut Vec<u8>) {
    let walked = walk_clear(prefix, |header, payload| {
        out.push(header[0] & !HAS_SIZE_FIELD);
        out.extend_from_slice(&header[1..]);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload);
    });
    // Both cannot fail on an accepted prefix; were they to, the AAD would only come out
    // shorter and the frame would fail authentication.
    if let Ok(at) = walked
        && let Ok((header, header_len)) = obu_header(prefix, at)
    {
        out.push(header & !HAS_SIZE_FIELD);
        out.extend_from_slice(&prefix[at + 1..at + header_len]);
    }
}

fn obu_type(header: u8) -> u8 {
    (header >> 3) & 0x0f
}

/// The OBU header at `at`: `(first byte, header length)` (1, or 2 with an extension byte).
fn obu_header(frame: &[u8], at: usize) -> Result<(u8, usize), NoPrefix> {
    let header = *frame.get(at).ok_or(NoPrefix)?;
    if header & FORBIDDEN_BIT != 0 {
        return Err(NoPrefix);
    }
    let len = 1 + usize::from(header & EXTENSION_FLAG != 0);
    if frame.len() - at < len {
        return Err(NoPrefix);
    }
    Ok((header, len))
}

/// Walks the clear OBUs at the start of `frame` (temporal delimiters, padding, sequence
/// headers), handing each sequence header to `keep` as `(header bytes, payload)`; returns
/// where the first other OBU starts.
fn walk_clear(frame: &[u8], mut keep: impl FnMut(&[u8], &[u8])) -> Result<usize, NoPrefix> {
    let mut at = 0usize;
    loop {
        let (header, header_len) = obu_header(frame, at)?;
        let obu_type = obu_type(header);
        if !matches!(
            obu_type,
            OBU_SEQUENCE_HEADER | OBU_TEMPORAL_DELIMITER | OBU_PADDING
        ) {
            return Ok(at);
        }
        if header & HAS_SIZE_FIELD == 0 {
            // A clear OBU without a size would run to the end: no carrier after it.
            return Err(NoPrefix);
        }
        let (size, leb_len) = read_leb128(frame, at + header_len)?;
        let start = at + header_len + leb_len;
        if frame.len() - start < size {
            return Err(NoPrefix);
        }
        let end = start + size;
        match obu_type {
            // Left out of the metadata, so nothing in it may vary: exactly `12 00`, and
            // only where a temporal unit starts.
            OBU_TEMPORAL_DELIMITER
                if at != 0 || header != TEMPORAL_DELIMITER_HEADER || size != 0 =>
            {
                return Err(NoPrefix);
            }
            OBU_SEQUENCE_HEADER => keep(&frame[at..at + header_len], &frame[start..end]),
            _ => {}
        }
        at = end;
    }
}

/// Reads an AV1 `leb128()` (at most 8 bytes, value below 2^32) at `at`: `(value, length)`.
fn read_leb128(frame: &[u8], at: usize) -> Result<(usize, usize), NoPrefix> {
    let mut value = 0u64;
    for i in 0..MAX_LEB128_LEN {
        let b = *frame.get(at + i).ok_or(NoPrefix)?;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return u32::try_from(value)
                .map(|v| (v as usize, i + 1))
                .map_err(|_| NoPrefix);
        }
    }
    Err(NoPrefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_clear_obus_to_the_carrier() {
        // Temporal delimiter, sequence header (size 2), then a frame OBU with an extension.
        let frame = [
            0x12, 0x00, 0x0a, 0x02, 0xaa, 0xbb, 0x36, 0x10, 0x05, 1, 2, 3, 4, 5,
        ];
        let c = send_split(&frame).unwrap();
        assert_eq!((c.at, c.header, c.header_len), (6, [0x36, 0x10], 2));
        assert_eq!(send_split(&[0x32, 0x01]).unwrap().at, 0);
        // A carrier without a size field gets one on the wire.
        let c = send_split(&[0x30, 0x01]).unwrap();
        assert_eq!(c.framing(5).as_bytes(), [0x32, 0x05]);
    }

    #[test]
    fn refuses_what_it_cannot_reproduce() {
        for bad in [
            &[0x12][..],                           // truncated
            &[0x12, 0xff, 0xff, 0xff, 0xff, 0x7f], // size past 2^32
            &[0x92, 0x00, 0x32],                   // forbidden bit
            &[0x10, 0x00],                         // clear OBU without a size
            &[0x12, 0x00, 0x0a, 0x05, 0xaa],       // sequence header runs past the end
            &[0x12, 0x00, 0x0a, 0x00],             // no carrier
            &[0x12, 0x01, 0x00, 0x32],             // temporal delimiter with a payload
            &[0x16, 0x00, 0x00, 0x32],             // temporal delimiter with an extension
            &[0x13, 0x00, 0x32],                   // temporal delimiter, reserved bit
            &[0x0a, 0x00, 0x12, 0x00, 0x32],       // temporal delimiter not first
            &[0x42, 0x00],                         // tile list carrier
            &[0x36],                               // carrier extension missing
        ] {
            assert_eq!(send_split(bad), Err(NoPrefix), "{bad:02x?}");
        }
    }

    #[test]
    fn framing_sizes_cross_leb128_boundaries() {
        let c = send_split(&[0x32, 0x00]).unwrap();
        assert_eq!(c.framing(127).as_bytes(), [0x32, 0x7f]);
        assert_eq!(c.framing(128).as_bytes(), [0x32, 0x80, 0x01]);
        assert_eq!(c.framing(16_384).as_bytes(), [0x32, 0x80, 0x80, 0x01]);
        assert_eq!(
            c.framing(crate::MAX_FRAME_LEN + 64).as_bytes(),
            [0x32, 0xc0, 0x80, 0x80, 0x08]
        );
        for n in [0, 1, 127, 128, 300, 16_383, 16_384, 1 << 21, (1 << 28) - 1] {
            let f = c.framing(n);
            assert_eq!(read_leb128(f.as_bytes(), 1), Ok((n, f.len - 1)));
        }
    }

    #[test]
    fn receiver_checks_the_carrier_size() {
        let wire = [0x0a, 0x01, 0xaa, 0x32, 0x03, 1, 2, 3];
        assert_eq!(open_split(&wire), Ok((3, 2)));
        // Padded size encoding, and no size field at all, are the same frame.
        assert_eq!(
            open_split(&[0x0a, 0x01, 0xaa, 0x32, 0x83, 0x00, 1, 2, 3]),
            Ok((3, 3))
        );
        assert_eq!(open_split(&[0x0a, 0x01, 0xaa, 0x30, 1, 2, 3]), Ok((3, 1)));
        assert_eq!(open_split(&wire[..7]), Err(NoPrefix), "truncated");
        assert_eq!(
            open_split(&[&wire[..], &[9]].concat()),
            Err(NoPrefix),
            "trailing"
        );
    }

    #[test]
    fn metadata_ignores_sizes_delimiters_and_padding() {
        let a = [0x12, 0x00, 0x0a, 0x02, 0xaa, 0xbb, 0x36, 0x10, 0x05];
        // Delimiter dropped, padding added, sizes padded, carrier without a size.
        let b = [0x7a, 0x01, 0xee, 0x0a, 0x82, 0x00, 0xaa, 0xbb, 0x34, 0x10];
        let (mut ma, mut mb) = (Vec::new(), Vec::new());
        write_metadata(&a, &mut ma);
        write_metadata(&b, &mut mb);
        assert_eq!(ma, [0x08, 0, 0, 0, 2, 0xaa, 0xbb, 0x34, 0x10]);
        assert_eq!(ma, mb);
    }
}
