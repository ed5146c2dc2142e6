//! Synthetic media for tests and the load tool: VP8 frames with a valid frame tag (and keyframe
//! start code and size on keyframes) and Opus-sized packets with a TOC byte, each carrying a
//! plaintext marker so a test can prove the relay never saw plaintext.

/// The marker every synthetic frame carries in its payload.
pub const PLAINTEXT_MARKER: &[u8] = b"HUSH-PLAINTEXT-MARKER";

/// A synthetic VP8 frame, `len` bytes at least 10 + marker: a keyframe every `keyframe_every`
/// frames (frame 0 included).
pub fn vp8_frame(index: u32, len: usize, keyframe_every: u32) -> Vec<u8> {
    let key = keyframe_every != 0 && index.is_multiple_of(keyframe_every);
    let mut f = Vec::with_capacity(len.max(40));
    // 3-byte frame tag: bit 0 = 0 for a keyframe (1 = interframe), version 0, show_frame = 1,
    // 19-bit first partition size (here a small made-up value).
    let partition: u32 = 16;
    let tag: u32 = u32::from(!key) | (1 << 4) | (partition << 5);
    f.extend_from_slice(&tag.to_le_bytes()[..3]);
    if key {
        f.extend_from_slice(&[0x9d, 0x01, 0x2a]); // start code
        f.extend_from_slice(&64u16.to_le_bytes()); // width
        f.extend_from_slice(&48u16.to_le_bytes()); // height
    }
    push_payload(&mut f, index, len);
    f
}

/// A synthetic Opus packet of `len` bytes: TOC byte 0x78 (SILK-WB 20 ms mono, one frame).
pub fn opus_frame(index: u32, len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(len.max(32));
    f.push(0x78);
    push_payload(&mut f, index, len);
    f
}

fn push_payload(f: &mut Vec<u8>, index: u32, len: usize) {
    f.extend_from_slice(PLAINTEXT_MARKER);
    f.extend_from_slice(&index.to_be_bytes());
    let len = len.max(f.len());
    let mut x = index.wrapping_mul(2_654_435_761) | 1;
    while f.len() < len {
        // Filler that repeats the marker now and then, so any fragment of a frame holds it.
        if f.len().is_multiple_of(97) {
            f.extend_from_slice(PLAINTEXT_MARKER);
            continue;
        }
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        f.push(x as u8);
    }
    f.truncate(len);
}

/// True when `data` holds the marker or any 8-byte window of it.
pub fn contains_marker_fragment(data: &[u8]) -> bool {
    PLAINTEXT_MARKER
        .windows(8)
        .any(|w| data.windows(8).any(|d| d == w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_have_codec_headers_and_markers() {
        let k = vp8_frame(0, 200, 30);
        assert_eq!(k[0] & 1, 0, "keyframe bit");
        assert_eq!(&k[3..6], &[0x9d, 0x01, 0x2a]);
        assert_eq!(k.len(), 200);
        let d = vp8_frame(1, 120, 30);
        assert_eq!(d[0] & 1, 1, "interframe bit");
        assert!(contains_marker_fragment(&d));
        let o = opus_frame(5, 80);
        assert_eq!((o[0], o.len()), (0x78, 80));
        assert!(contains_marker_fragment(&o[40..]) || contains_marker_fragment(&o));
        assert!(!contains_marker_fragment(&[0u8; 500]));
    }
}
