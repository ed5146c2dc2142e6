//! Media mode: which leading bytes of a frame stay in the clear, per codec.
//!
//! Browsers' RTP packetizers and depacketizers read the first bytes of an encoded frame, so in
//! *media mode* a codec-specific clear prefix stays readable and is authenticated as SFrame
//! metadata (RFC 9605 section 4.4.3: `aad = header || metadata`):
//!
//! ```text
//! [clear prefix][SFrame header][ciphertext][tag]
//! ```
//!
//! The receiver must find the same prefix length from the frame it receives, so every rule
//! below depends only on bytes inside the prefix itself; the bytes after it (SFrame header and
//! ciphertext) are never looked at. Rules, with the reason for each:
//!
//! | codec | clear prefix | why |
//! |---|---|---|
//! | Opus | 1 byte, the TOC (RFC 6716 section 3.1) | mode, bandwidth and frame count; lets a receiver's jitter buffer and an SFU's audio-level logic see the packet's shape |
//! | VP8 | 10 bytes on key frames, 3 on delta frames (RFC 6386 section 9.1: frame tag, then start code and dimensions on key frames) | the key-frame bit and dimensions are read by the receiver's frame assembler; what Jitsi and LiveKit keep |
//! | VP9 | none | WebRTC's VP9 packetizer builds the payload descriptor from encoder metadata, not from the bitstream, and nothing downstream parses the uncompressed header; keeping it clear would only leak it |
//! | H.264 | start codes, every NAL unit before the first slice in full (SPS, PPS, SEI, AUD), then the slice's NAL header and one byte of its slice header | the packetizer splits at start codes; the depacketizer reads NAL types (key frame = IDR + SPS/PPS) and the first slice-header byte (`first_mb_in_slice`, `slice_type`); what LiveKit keeps |
//! | H.265 | the same, with 2-byte NAL headers (VPS, SPS, PPS, AUD, SEI clear) | as H.264 |
//! | AV1 | leading temporal-delimiter, sequence-header and padding OBUs in full; then a copy of the first other OBU's header (and extension) with a size field for the sealed part ([`av1`]) | the packetizer parses OBUs by their size fields, so the wire frame stays a valid OBU stream; OBU types and layer ids stay visible; frame headers, tile groups and metadata are encrypted |
//!
//! For H.264 and H.265 the bytes after the prefix are escaped ([`crate::escape`]) so that the
//! ciphertext never contains a start code. NAL types not in the clear list end the prefix
//! (encrypted from there), so an unknown NAL type is never sent in the clear.
//!
//! **Fallbacks.** An H.26x frame that does not start with a start code, or has no NAL unit
//! that ends the prefix, gets no clear prefix at all; the receiver then sees no start code
//! either (escaping removed them all), so both sides agree. A frame too short for its VP8,
//! Opus or H.26x rule, or an AV1 frame whose leading OBUs do not parse, cannot be given a
//! prefix the receiver would reproduce: the encryptor refuses it
//! ([`crate::EncryptError::FrameTooShort`]) and the caller drops it; no valid encoder output
//! is refused this way.
//!
//! **Canonical metadata for H.26x.** The receiver's depacketizer rebuilds Annex B with its
//! own start codes (4 bytes in WebRTC), which may differ from the sender's (3 or 4), so the
//! metadata authenticated for H.264/H.265 is not the raw prefix but each NAL unit in it
//! without its start code and trailing zero bytes, each preceded by its length as 4
//! big-endian bytes.
//!
//! **AV1 framing and canonical metadata.** The AV1 depacketizer drops temporal delimiters and
//! padding and rewrites every OBU size field, and the packetizer needs a valid OBU stream, so
//! AV1 is the one layout with *framing*: bytes the sender inserts between the clear prefix and
//! the SFrame header (the carrier OBU's header and size) and the receiver removes, and whose
//! metadata leaves out delimiters, padding and sizes. [`av1`] has the rules and the reasons.
//! The wire frame is `[clear prefix][framing][SFrame header][ciphertext][tag]` and the
//! metadata is computed from `clear prefix || framing`. For the other codecs there is no
//! framing and the metadata is the prefix itself.

pub mod av1;

/// A codec whose frames media mode understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// Opus audio.
    Opus,
    /// VP8 video.
    Vp8,
    /// VP9 video.
    Vp9,
    /// H.264 video, Annex B byte stream.
    H264,
    /// H.265 video, Annex B byte stream.
    H265,
    /// AV1 video, low-overhead bitstream format (OBUs).
    Av1,
}

/// How a frame is laid out on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Layout {
    /// Plain RFC 9605: `[SFrame header][ciphertext][tag]`, for interop and data.
    #[default]
    Pure,
    /// `[clear prefix][SFrame header][ciphertext][tag]` with the codec's clear prefix.
    Media(Codec),
}

/// The frame is too short for (or, for AV1, does not parse as) its codec's prefix rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NoPrefix;

/// How the sender splits a plaintext frame: the clear prefix, and the framing to insert
/// after it (AV1 only; see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SendSplit {
    /// Bytes at the start of the frame that stay as they are.
    pub(crate) prefix_len: usize,
    carrier: Option<av1::Carrier>,
}

impl SendSplit {
    /// The framing for a sealed part (`SFrame header || ciphertext || tag`) of `sealed_len`
    /// bytes.
    pub(crate) fn framing(&self, sealed_len: usize) -> av1::Framing {
        self.carrier
            .map_or(av1::Framing::NONE, |c| c.framing(sealed_len))
    }
}

/// How a received frame splits: `[prefix][framing][SFrame header ...]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OpenSplit {
    /// The clear prefix, kept in the decrypted frame.
    pub(crate) prefix_len: usize,
    /// The framing after it, removed with the SFrame header and tag.
    pub(crate) framing_len: usize,
}

impl Layout {
    /// Every layout: pure mode, and media mode for each codec.
    pub const ALL: [Layout; 7] = [
        Layout::Pure,
        Layout::Media(Codec::Opus),
        Layout::Media(Codec::Vp8),
        Layout::Media(Codec::Vp9),
        Layout::Media(Codec::H264),
        Layout::Media(Codec::H265),
        Layout::Media(Codec::Av1),
    ];

    /// The sender's split of plaintext `frame`.
    pub(crate) fn send_split(self, frame: &[u8]) -> Result<SendSplit, NoPrefix> {
        if self == Layout::Media(Codec::Av1) {
            let c = av1::send_split(frame)?;
            return Ok(SendSplit {
                prefix_len: c.at,
                carrier: Some(c),
            });
        }
        Ok(SendSplit {
            prefix_len: self.clear_prefix(frame)?,
            carrier: None,
        })
    }

    /// The SFrame header of an encrypted wire `frame` in this layout, read without any key
    /// (the header is in the clear): what a relay may see of it, the KID and counter. `None`
    /// when the frame is too short or the header does not decode.
    pub fn header(self, frame: &[u8]) -> Option<crate::Header> {
        let split = self.open_split(frame).ok()?;
        let at = split.prefix_len.checked_add(split.framing_len)?;
        let (header, _) = crate::Header::decode(frame.get(at..)?).ok()?;
        Some(header)
    }

    /// The receiver's split of wire `frame` (before H.26x unescaping).
    pub(crate) fn open_split(self, frame: &[u8]) -> Result<OpenSplit, NoPrefix> {
        if self == Layout::Media(Codec::Av1) {
            let (prefix_len, framing_len) = av1::open_split(frame)?;
            return Ok(OpenSplit {
                prefix_len,
                framing_len,
            });
        }
        Ok(OpenSplit {
            prefix_len: self.clear_prefix(frame)?,
            framing_len: 0,
        })
    }

    /// Length of the clear prefix of `frame` (plaintext on the sender, as received on the
    /// receiver: both give the same answer).
    fn clear_prefix(self, frame: &[u8]) -> Result<usize, NoPrefix> {
        match self {
            Layout::Pure | Layout::Media(Codec::Vp9) => Ok(0),
            Layout::Media(Codec::Opus) => fixed(frame, 1),
            Layout::Media(Codec::Vp8) => {
                let first = *frame.first().ok_or(NoPrefix)?;
                // Frame tag bit 0 is the inverse key-frame flag (RFC 6386 section 9.1).
                fixed(frame, if first & 1 == 0 { 10 } else { 3 })
            }
            Layout::Media(Codec::H264) => annex_b_prefix(frame, &H264),
            Layout::Media(Codec::H265) => annex_b_prefix(frame, &H265),
            Layout::Media(Codec::Av1) => av1::send_split(frame).map(|c| c.at),
        }
    }

    /// Whether the encrypted part is escaped against start-code emulation.
    pub(crate) fn escapes(self) -> bool {
        matches!(self, Layout::Media(Codec::H264 | Codec::H265))
    }

    /// Appends the metadata authenticated for `prefix` (the wire bytes before the SFrame
    /// header: clear prefix and framing; see the module docs) to `out`.
    pub(crate) fn write_metadata(self, prefix: &[u8], out: &mut Vec<u8>) {
        if self == Layout::Media(Codec::Av1) {
            av1::write_metadata(prefix, out);
            return;
        }
        if !self.escapes() || prefix.is_empty() {
            out.extend_from_slice(prefix);
            return;
        }
        let mut nals = NalUnits::new(prefix);
        while let Some((nal, complete)) = nals.next_nal() {
            let nal = if complete {
                trim_trailing_zeros(nal)
            } else {
                nal
            };
            out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            out.extend_from_slice(nal);
        }
    }
}

/// A fixed-length prefix that the frame must be long enough for.
fn fixed(frame: &[u8], n: usize) -> Result<usize, NoPrefix> {
    if frame.len() >= n {
        Ok(n)
    } else {
        Err(NoPrefix)
    }
}

/// The per-codec facts the Annex B walk needs.
struct AnnexB {
    /// NAL header length in bytes.
    header_len: usize,
    /// Whether a NAL unit with this header stays entirely in the clear.
    clear: fn(&[u8]) -> bool,
}

/// H.264 (ITU-T H.264 table 7-1): SEI 6, SPS 7, PPS 8, AUD 9, end of sequence/stream 10/11,
/// filler 12, SPS extension 13, prefix NAL 14, subset SPS 15 stay clear.
const H264: AnnexB = AnnexB {
    header_len: 1,
    clear: |h| (6..=15).contains(&(h[0] & 0x1f)),
};

/// H.265 (ITU-T H.265 table 7-1): VPS 32, SPS 33, PPS 34, AUD 35, EOS 36, EOB 37, FD 38,
/// prefix/suffix SEI 39/40 stay clear.
const H265: AnnexB = AnnexB {
    header_len: 2,
    clear: |h| (32..=40).contains(&((h[0] >> 1) & 0x3f)),
};

/// Length of the start code at `at` (3 or 4), if there is one.
fn start_code_at(frame: &[u8], at: usize) -> Option<usize> {
    match frame.get(at..at + 4) {
        Some([0, 0, 0, 1]) => Some(4),
        _ => match frame.get(at..at + 3) {
            Some([0, 0, 1]) => Some(3),
            _ => None,
        },
    }
}

/// Position just after the next `00 00 01` at or after `from`, and where it starts.
fn next_start_code(frame: &[u8], from: usize) -> Option<(usize, usize)> {
    let rest = frame.get(from..)?;
    let i = rest.windows(3).position(|w| w == [0, 0, 1])?;
    Some((from + i, from + i + 3))
}

/// The Annex B walk of the module docs.
fn annex_b_prefix(frame: &[u8], codec: &AnnexB) -> Result<usize, NoPrefix> {
    let Some(sc) = start_code_at(frame, 0) else {
        return Ok(0);
    };
    let mut nal = sc;
    loop {
        let Some(header) = frame.get(nal..nal + codec.header_len) else {
            // A start code with no complete NAL header after it.
            return Ok(0);
        };
        if header[0] & 0x80 != 0 {
            // forbidden_zero_bit set: not a NAL unit this rule understands.
            return Ok(0);
        }
        if !(codec.clear)(header) {
            // Keep the NAL header and one byte of the slice header.
            return fixed(frame, nal + codec.header_len + 1);
        }
        match next_start_code(frame, nal + codec.header_len) {
            Some((_, next)) => nal = next,
            None => return Ok(0),
        }
    }
}

/// Iterates over the NAL units of an Annex B prefix: `(bytes, ended_by_a_start_code)`.
struct NalUnits<'a> {
    data: &'a [u8],
    at: Option<usize>,
}

impl<'a> NalUnits<'a> {
    fn new(data: &'a [u8]) -> Self {
        NalUnits {
            data,
            at: start_code_at(data, 0),
        }
    }

    fn next_nal(&mut self) -> Option<(&'a [u8], bool)> {
        let start = self.at?;
        match next_start_code(self.data, start) {
            Some((end, next)) => {
                self.at = Some(next);
                Some((&self.data[start..end], true))
            }
            None => {
                self.at = None;
                Some((&self.data[start..], false))
            }
        }
    }
}

/// Drops `trailing_zero_8bits` (and the first zero of a 4-byte start code).
fn trim_trailing_zeros(nal: &[u8]) -> &[u8] {
    let end = nal.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    &nal[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(codec: Codec, frame: &[u8]) -> Result<usize, NoPrefix> {
        Layout::Media(codec).clear_prefix(frame)
    }

    #[test]
    fn the_header_of_a_sealed_media_frame_reads_without_a_key() {
        let key = crate::BaseKey::new(&[7u8; 16]).unwrap();
        let mut enc = crate::Encryptor::new(crate::CipherSuite::Aes128GcmSha256_128, 0x1234, &key);
        let layout = Layout::Media(Codec::Vp8);
        let mut frame = vec![0x31, 0x02, 0x00, 0xff, 0xee, 0xdd, 0xcc];
        enc.encrypt(layout, &mut frame).unwrap();
        let h = layout.header(&frame).unwrap();
        assert_eq!(h.kid, 0x1234);
        assert_eq!(h.ctr, 0);
        // Too short for the prefix, or a prefix and nothing after it: no header.
        assert_eq!(layout.header(&frame[..2]), None);
        assert_eq!(layout.header(&frame[..3]), None);
    }

    #[test]
    fn vp8_and_opus() {
        let key = [
            0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01, 0xaa, 0xbb,
        ];
        assert_eq!(prefix(Codec::Vp8, &key), Ok(10));
        assert_eq!(prefix(Codec::Vp8, &[0x31, 0x02, 0x00, 0xff]), Ok(3));
        assert_eq!(prefix(Codec::Vp8, &key[..9]), Err(NoPrefix));
        assert_eq!(prefix(Codec::Vp8, &[]), Err(NoPrefix));
        assert_eq!(prefix(Codec::Opus, &[0x78, 1, 2]), Ok(1));
        assert_eq!(prefix(Codec::Opus, &[]), Err(NoPrefix));
        assert_eq!(prefix(Codec::Vp9, &[1, 2, 3]), Ok(0));
    }

    #[test]
    fn h264_keeps_parameter_sets_and_slice_header_byte() {
        let frame = [
            0, 0, 0, 1, 0x67, 0x42, 0x00, 0x1f, // SPS
            0, 0, 1, 0x68, 0xce, 0x3c, 0x80, // PPS, 3-byte start code
            0, 0, 0, 1, 0x65, 0x88, 0x84, 0x00, 0x33, // IDR slice
        ];
        assert_eq!(prefix(Codec::H264, &frame), Ok(21));
        // A frame without a start code, or whose only NAL is a parameter set: no prefix.
        assert_eq!(prefix(Codec::H264, &[0x65, 0x88]), Ok(0));
        assert_eq!(prefix(Codec::H264, &frame[..8]), Ok(0));
        // A slice NAL with no slice-header byte cannot get its prefix.
        assert_eq!(prefix(Codec::H264, &frame[..20]), Err(NoPrefix));
        // An unknown NAL type ends the prefix instead of staying clear.
        assert_eq!(prefix(Codec::H264, &[0, 0, 1, 0x78, 1, 2, 3]), Ok(5));
    }

    #[test]
    fn h264_metadata_ignores_start_code_length() {
        let four = [0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 1, 0x65, 0x88];
        let three = [0, 0, 1, 0x67, 0x42, 0, 0, 1, 0x65, 0x88];
        let (mut a, mut b) = (Vec::new(), Vec::new());
        Layout::Media(Codec::H264).write_metadata(&four, &mut a);
        Layout::Media(Codec::H264).write_metadata(&three, &mut b);
        assert_eq!(a, b);
        assert_eq!(a, [0, 0, 0, 2, 0x67, 0x42, 0, 0, 0, 2, 0x65, 0x88]);
    }

    #[test]
    fn h265_uses_two_byte_headers() {
        let frame = [
            0, 0, 0, 1, 0x40, 0x01, 0x0c, // VPS (type 32)
            0, 0, 0, 1, 0x26, 0x01, 0xaf, 0x11, // IDR_W_RADL (type 19)
        ];
        assert_eq!(prefix(Codec::H265, &frame), Ok(14));
    }

    #[test]
    fn av1_prefix_ends_at_the_carrier() {
        let frame = [0x12, 0x00, 0x0a, 0x02, 0xaa, 0xbb, 0x36, 0x10, 0x05, 1];
        assert_eq!(prefix(Codec::Av1, &frame), Ok(6));
        assert_eq!(prefix(Codec::Av1, &[0x12]), Err(NoPrefix));
    }
}
