//! Recognising the first packet of a keyframe without decrypting anything, so the relay can
//! switch a subscriber between simulcast layers where the subscriber's decoder can start.
//!
//! What the relay reads, per codec (all of it is visible to any router, E2EE or not):
//!
//! | codec | where | keyframe start |
//! |---|---|---|
//! | VP8 | RTP payload descriptor (RFC 7741) and the frame tag the SFrame clear prefix keeps (`hush_frame::codec`: 10 bytes on keyframes) | `S` = 1, partition 0, then the frame tag's `P` bit = 0 (RFC 6386 section 9.1) |
//! | VP9 | RTP payload descriptor (RFC 9628), written by the packetizer from encoder metadata | `B` = 1 and `P` = 0 on spatial layer 0 |
//! | H.264 | NAL unit headers (RFC 6184), kept clear by media mode | a single NAL, STAP-A or FU-A start whose NAL type is 5 (IDR) or 7 (SPS) |
//! | AV1 | RTP aggregation header (AV1 RTP spec section 4.4) | `N` = 1 (first packet of a coded video sequence) |
//!
//! A keyframe's size (for the tile cap) is read where it is in the clear: VP8's after the
//! frame tag in the clear prefix, VP9's in the payload descriptor's scalability structure.
//! Nothing here looks past those headers; the SFrame header and ciphertext are never touched.

/// A video codec whose keyframes [`starts_keyframe`] can recognise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VideoCodec {
    /// VP8.
    Vp8,
    /// VP9.
    Vp9,
    /// H.264.
    H264,
    /// AV1.
    Av1,
}

impl VideoCodec {
    /// The codec of a MIME type (`video/VP8`), if its keyframes can be recognised.
    pub fn from_mime(mime: &str) -> Option<Self> {
        let mime = mime.to_ascii_lowercase();
        match mime.strip_prefix("video/")? {
            "vp8" => Some(Self::Vp8),
            "vp9" => Some(Self::Vp9),
            "h264" => Some(Self::H264),
            "av1" => Some(Self::Av1),
            _ => None,
        }
    }
}

/// Whether an RTP packet with this `payload` is the first packet of a keyframe. Malformed or
/// short payloads are not keyframes.
pub fn starts_keyframe(codec: VideoCodec, payload: &[u8]) -> bool {
    match codec {
        VideoCodec::Vp8 => vp8(payload),
        VideoCodec::Vp9 => vp9(payload),
        VideoCodec::H264 => h264(payload),
        VideoCodec::Av1 => payload
            .first()
            .is_some_and(|b| b & 0x08 != 0 && b & 0x80 == 0),
    }
}

fn vp8(payload: &[u8]) -> bool {
    vp8_frame_start(payload).is_some_and(|tag| tag.first().is_some_and(|t| t & 0x01 == 0))
}

/// The width and height a VP8 keyframe's first packet gives (RFC 6386 section 9.1: after the
/// frame tag, the start code `9d 01 2a` and two 14-bit little-endian sizes, all inside the
/// 10 bytes the SFrame clear prefix keeps); `None` for anything else.
pub fn vp8_keyframe_size(payload: &[u8]) -> Option<(u16, u16)> {
    let frame = vp8_frame_start(payload)?;
    let header = frame.get(..10)?;
    if header[0] & 0x01 != 0 || header[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let width = u16::from_le_bytes([header[6], header[7]]) & 0x3fff;
    let height = u16::from_le_bytes([header[8], header[9]]) & 0x3fff;
    Some((width, height))
}

/// The frame size a keyframe's first packet gives, for the codecs that say it outside the
/// encrypted frame: VP8 ([`vp8_keyframe_size`]) and VP9 ([`vp9_keyframe_size`]). H.264's SPS
/// and AV1's sequence header are inside the encrypted frame: no size.
pub fn keyframe_size(codec: VideoCodec, payload: &[u8]) -> Option<(u16, u16)> {
    match codec {
        VideoCodec::Vp8 => vp8_keyframe_size(payload),
        VideoCodec::Vp9 => vp9_keyframe_size(payload),
        VideoCodec::H264 | VideoCodec::Av1 => None,
    }
}

/// The frame size a VP9 keyframe's first packet announces in the scalability structure of its
/// RTP payload descriptor (RFC 9628 section 4.2.1: `V` = 1 and `Y` = 1, a width and height per
/// spatial layer, which libwebrtc's packetizer writes on every keyframe): the top spatial
/// layer's, the size a subscriber decodes. `None` for anything else.
pub fn vp9_keyframe_size(payload: &[u8]) -> Option<(u16, u16)> {
    let &first = payload.first()?;
    let picture_id = first & 0x80 != 0;
    let inter_predicted = first & 0x40 != 0;
    let layer_indices = first & 0x20 != 0;
    let flexible = first & 0x10 != 0;
    let begins_frame = first & 0x08 != 0;
    let structure = first & 0x02 != 0;
    if inter_predicted || !begins_frame || !structure {
        return None;
    }
    let mut at = 1;
    if picture_id {
        let &pid = payload.get(at)?;
        at += if pid & 0x80 != 0 { 2 } else { 1 };
    }
    if layer_indices {
        // TID U SID D, then TL0PICIDX in non-flexible mode; the keyframe starts on SID 0.
        let &layers = payload.get(at)?;
        if (layers >> 1) & 0x07 != 0 {
            return None;
        }
        at += if flexible { 1 } else { 2 };
    }
    // No reference indices: P = 0. The structure: N_S (3) Y G, then the sizes if Y.
    let &ss = payload.get(at)?;
    if ss & 0x10 == 0 {
        return None;
    }
    let spatial_layers = usize::from(ss >> 5) + 1;
    let sizes = payload.get(at + 1..at + 1 + 4 * spatial_layers)?;
    let top = sizes.get(4 * (spatial_layers - 1)..)?;
    let width = u16::from_be_bytes([top[0], top[1]]);
    let height = u16::from_be_bytes([top[2], top[3]]);
    (width > 0 && height > 0).then_some((width, height))
}

/// The frame bytes of a VP8 packet that starts a frame (`S` = 1, partition 0), after its
/// payload descriptor (RFC 7741).
fn vp8_frame_start(payload: &[u8]) -> Option<&[u8]> {
    let &first = payload.first()?;
    let start_of_partition = first & 0x10 != 0;
    let partition = first & 0x07;
    if !start_of_partition || partition != 0 {
        return None;
    }
    let mut at = 1;
    if first & 0x80 != 0 {
        // X: the extension byte says which optional fields follow.
        let &ext = payload.get(at)?;
        at += 1;
        if ext & 0x80 != 0 {
            // I: picture id, 7 or 15 bits (M).
            let &pid = payload.get(at)?;
            at += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if ext & 0x40 != 0 {
            at += 1; // L: TL0PICIDX
        }
        if ext & 0x30 != 0 {
            at += 1; // T or K: TID/Y/KEYIDX
        }
    }
    payload.get(at..)
}

fn vp9(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    let has_picture_id = first & 0x80 != 0;
    let inter_predicted = first & 0x40 != 0;
    let has_layers = first & 0x20 != 0;
    let begins_frame = first & 0x08 != 0;
    if inter_predicted || !begins_frame {
        return false;
    }
    if !has_layers {
        return true;
    }
    let mut at = 1;
    if has_picture_id {
        let Some(&pid) = payload.get(at) else {
            return false;
        };
        at += if pid & 0x80 != 0 { 2 } else { 1 };
    }
    // Layer indices: TID (3) U (1) SID (3) D (1).
    payload.get(at).is_some_and(|l| (l >> 1) & 0x07 == 0)
}

fn h264(payload: &[u8]) -> bool {
    let is_key = |nal_type: u8| nal_type == 5 || nal_type == 7;
    let Some(&first) = payload.first() else {
        return false;
    };
    match first & 0x1f {
        24 => {
            // STAP-A: [size (2)][NAL] ...
            let mut rest = &payload[1..];
            while rest.len() >= 3 {
                let size = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                if size == 0 || rest.len() < 2 + size {
                    return false;
                }
                if is_key(rest[2] & 0x1f) {
                    return true;
                }
                rest = &rest[2 + size..];
            }
            false
        }
        28 => {
            // FU-A: FU header S bit and the fragmented NAL's type.
            payload
                .get(1)
                .is_some_and(|fu| fu & 0x80 != 0 && is_key(fu & 0x1f))
        }
        nal_type => is_key(nal_type),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_keyframes_are_recognised_through_every_descriptor_layout() {
        // Minimal descriptor: S=1, PID=0; keyframe tag (P=0).
        assert!(starts_keyframe(VideoCodec::Vp8, &[0x10, 0x50, 0x2a, 0x00]));
        // Delta frame tag (P=1).
        assert!(!starts_keyframe(VideoCodec::Vp8, &[0x10, 0x51, 0x2a, 0x00]));
        // Continuation packet (S=0) of a keyframe.
        assert!(!starts_keyframe(VideoCodec::Vp8, &[0x00, 0x50, 0x2a]));
        // Chromium's layout: X, I with a 15-bit picture id, L, T; then the keyframe tag.
        let chrome = [0x90, 0xe0, 0x80 | 0x12, 0x34, 0x07, 0x40, 0x10, 0x02, 0x00];
        assert!(starts_keyframe(VideoCodec::Vp8, &chrome));
        let mut delta = chrome;
        delta[6] = 0x11;
        assert!(!starts_keyframe(VideoCodec::Vp8, &delta));
        // Truncated descriptors are not keyframes.
        assert!(!starts_keyframe(VideoCodec::Vp8, &[0x90, 0xe0, 0x80]));
        assert!(!starts_keyframe(VideoCodec::Vp8, &[]));
        // Partition 1 is never a frame start.
        assert!(!starts_keyframe(VideoCodec::Vp8, &[0x11, 0x50]));
    }

    #[test]
    fn vp8_keyframes_give_their_size() {
        // Descriptor (S=1), keyframe tag, start code, 960 x 540.
        let key = [
            0x10, 0x50, 0x2a, 0x00, 0x9d, 0x01, 0x2a, 0xc0, 0x03, 0x1c, 0x02, 0xff,
        ];
        assert_eq!(vp8_keyframe_size(&key), Some((960, 540)));
        // The upper two bits are the scale, not the size.
        let mut scaled = key;
        scaled[8] |= 0x40;
        assert_eq!(vp8_keyframe_size(&scaled), Some((960, 540)));
        // A delta frame, a broken start code, a short packet: no size.
        let mut delta = key;
        delta[1] = 0x51;
        assert_eq!(vp8_keyframe_size(&delta), None);
        let mut broken = key;
        broken[5] = 0x02;
        assert_eq!(vp8_keyframe_size(&broken), None);
        assert_eq!(vp8_keyframe_size(&key[..9]), None);
    }

    #[test]
    fn vp9_keyframes_are_the_unpredicted_start_of_spatial_layer_zero() {
        // I=1 (7-bit id), P=0, L=0, B=1.
        assert!(starts_keyframe(VideoCodec::Vp9, &[0x88, 0x05]));
        // P=1: inter predicted.
        assert!(!starts_keyframe(VideoCodec::Vp9, &[0xc8, 0x05]));
        // B=0: not the frame's first packet.
        assert!(!starts_keyframe(VideoCodec::Vp9, &[0x80, 0x05]));
        // L=1 with SID 0, then SID 1.
        assert!(starts_keyframe(VideoCodec::Vp9, &[0xa8, 0x05, 0x00, 0x00]));
        assert!(!starts_keyframe(VideoCodec::Vp9, &[0xa8, 0x05, 0x02, 0x00]));
        assert!(!starts_keyframe(VideoCodec::Vp9, &[0xa8]));
    }

    #[test]
    fn vp9_keyframes_give_the_size_their_scalability_structure_announces() {
        // libwebrtc's layout on a simulcast encoding's keyframe: I (15-bit id), L, B, V;
        // layer indices (SID 0) and TL0PICIDX; SS: one spatial layer, Y, G; 640 x 360; then
        // one picture group (N_G = 1: T U R).
        let key = [
            0xaa, 0x81, 0x23, 0x00, 0x07, 0x18, 0x02, 0x80, 0x01, 0x68, 0x01, 0x04, 0x00,
        ];
        assert!(starts_keyframe(VideoCodec::Vp9, &key));
        assert_eq!(vp9_keyframe_size(&key), Some((640, 360)));
        assert_eq!(keyframe_size(VideoCodec::Vp9, &key), Some((640, 360)));
        // Three spatial layers (SVC): the top one is what is decoded.
        let svc = [
            0x8a, 0x05, 0x50, 0x01, 0x40, 0x00, 0xb4, 0x02, 0x80, 0x01, 0x68, 0x05, 0x00, 0x02,
            0xd0,
        ];
        assert_eq!(vp9_keyframe_size(&svc), Some((1280, 720)));
        // Flexible mode: the layer byte without TL0PICIDX.
        let flexible = [0xba, 0x05, 0x00, 0x10, 0x01, 0x40, 0x00, 0xb4];
        assert_eq!(vp9_keyframe_size(&flexible), Some((320, 180)));
        // No structure (V = 0), no sizes in it (Y = 0), inter predicted, not the frame start,
        // spatial layer 1, zero or truncated sizes: no size.
        let mut no_ss = key;
        no_ss[0] &= !0x02;
        assert_eq!(vp9_keyframe_size(&no_ss), None);
        let mut no_y = key;
        no_y[5] &= !0x10;
        assert_eq!(vp9_keyframe_size(&no_y), None);
        let mut predicted = key;
        predicted[0] |= 0x40;
        assert_eq!(vp9_keyframe_size(&predicted), None);
        let mut later = key;
        later[0] &= !0x08;
        assert_eq!(vp9_keyframe_size(&later), None);
        let mut upper = key;
        upper[3] = 0x02;
        assert_eq!(vp9_keyframe_size(&upper), None);
        let mut zero = key;
        zero[6..10].fill(0);
        assert_eq!(vp9_keyframe_size(&zero), None);
        assert_eq!(vp9_keyframe_size(&svc[..14]), None);
        // H.264 and AV1 keep their sizes inside the encrypted frame.
        assert_eq!(keyframe_size(VideoCodec::H264, &[0x67, 0x42]), None);
        assert_eq!(keyframe_size(VideoCodec::Av1, &[0x18, 0x0a]), None);
    }

    #[test]
    fn h264_keyframes_are_idr_or_sps_in_any_packetization() {
        assert!(starts_keyframe(VideoCodec::H264, &[0x65, 0x88])); // IDR slice
        assert!(starts_keyframe(VideoCodec::H264, &[0x67, 0x42])); // SPS
        assert!(!starts_keyframe(VideoCodec::H264, &[0x41, 0x9a])); // non-IDR slice
        // STAP-A holding SPS and PPS.
        let stap = [0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce];
        assert!(starts_keyframe(VideoCodec::H264, &stap));
        // STAP-A holding SEI and a non-IDR slice; and a truncated one.
        let stap = [0x78, 0x00, 0x02, 0x06, 0x05, 0x00, 0x02, 0x41, 0x9a];
        assert!(!starts_keyframe(VideoCodec::H264, &stap));
        assert!(!starts_keyframe(
            VideoCodec::H264,
            &[0x78, 0x00, 0x09, 0x67]
        ));
        // FU-A: start of an IDR, middle of an IDR, start of a non-IDR.
        assert!(starts_keyframe(VideoCodec::H264, &[0x7c, 0x85, 0x00]));
        assert!(!starts_keyframe(VideoCodec::H264, &[0x7c, 0x05, 0x00]));
        assert!(!starts_keyframe(VideoCodec::H264, &[0x7c, 0x81, 0x00]));
    }

    #[test]
    fn av1_keyframes_start_a_new_coded_video_sequence() {
        assert!(starts_keyframe(VideoCodec::Av1, &[0x18, 0x0a]));
        assert!(!starts_keyframe(VideoCodec::Av1, &[0x10, 0x32]));
        // Z=1: continues an OBU from the previous packet.
        assert!(!starts_keyframe(VideoCodec::Av1, &[0x98, 0x32]));
        assert!(!starts_keyframe(VideoCodec::Av1, &[]));
    }

    #[test]
    fn codecs_are_named_by_mime_type() {
        assert_eq!(VideoCodec::from_mime("video/VP8"), Some(VideoCodec::Vp8));
        assert_eq!(VideoCodec::from_mime("video/H264"), Some(VideoCodec::H264));
        assert_eq!(VideoCodec::from_mime("audio/opus"), None);
        assert_eq!(VideoCodec::from_mime("video/H265"), None);
    }
}
