//! The forwarded packet's RTP header, rewritten for the subscriber's leg: its payload type as
//! the subscriber numbered the codec, and the few header extensions that describe the media
//! ([`FORWARDED_EXTENSIONS`]) under the subscriber leg's ids; every other extension is dropped.
//! Pure functions on webrtc-rs types; the writer that applies them is in `peer::forwarding`.

use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters,
};

/// Header extensions forwarded from publisher to subscriber, their ids mapped per leg. They
/// describe the media itself, not the hop: the AV1 dependency descriptor (frame dependencies and
/// layers; the receiver needs it for SVC) and the camera's orientation. Per-hop extensions are
/// never forwarded: `abs-send-time` and `transport-cc` are about this leg's timing (webrtc-rs
/// writes its own), `sdes:mid`/`rid` name this leg's m-section (webrtc-rs writes its own), and
/// the rest Chromium offers (`toffset`, `playout-delay`, `video-content-type`, `video-timing`,
/// `color-space`, `ssrc-audio-level`) are not negotiated, so publishers do not send them.
/// `ssrc-audio-level` in particular would show the relay who speaks when, in the clear.
pub(super) const FORWARDED_EXTENSIONS: [&str; 2] = [
    "https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension",
    "urn:3gpp:video-orientation",
];

/// The payload type the subscriber leg's negotiated `codecs` give the publisher's `codec`.
pub(super) fn negotiated_payload_type(
    codecs: &[RTCRtpCodecParameters],
    codec: &RTCRtpCodec,
) -> Option<u8> {
    let same_mime =
        |c: &&RTCRtpCodecParameters| c.rtp_codec.mime_type.eq_ignore_ascii_case(&codec.mime_type);
    codecs
        .iter()
        .filter(same_mime)
        .find(|c| c.rtp_codec.sdp_fmtp_line == codec.sdp_fmtp_line)
        .or_else(|| codecs.iter().find(same_mime))
        .map(|c| c.payload_type)
}

/// The (URI, id) of each [`FORWARDED_EXTENSIONS`] entry among `negotiated`.
pub(super) fn forwarded(negotiated: &[RTCRtpHeaderExtensionParameters]) -> Vec<(String, u8)> {
    negotiated
        .iter()
        .filter(|e| FORWARDED_EXTENSIONS.contains(&e.uri.as_str()))
        .filter_map(|e| Some((e.uri.clone(), u8::try_from(e.id).ok()?)))
        .collect()
}

/// (publisher id, subscriber id) for each extension both legs negotiated.
pub(super) fn map_extension_ids(
    publisher: &[(String, u8)],
    subscriber: &[(String, u8)],
) -> Vec<(u8, u8)> {
    publisher
        .iter()
        .filter_map(|(uri, from)| {
            let (_, to) = subscriber.iter().find(|(u, _)| u == uri)?;
            Some((*from, *to))
        })
        .collect()
}

/// Keeps only the extensions in `ids` (publisher id, subscriber id), renumbered; drops the rest.
/// Uses the two-byte form (RFC 8285) when one value is over 16 bytes, as the dependency
/// descriptor's template structure on keyframes often is.
pub(super) fn rewrite_extensions(header: &mut rtp::header::Header, ids: &[(u8, u8)]) {
    let kept: Vec<(u8, bytes::Bytes)> = ids
        .iter()
        .filter_map(|&(from, to)| header.get_extension(from).map(|value| (to, value)))
        .collect();
    header.extension = false;
    header.extension_profile = 0;
    header.extensions.clear();
    header.extensions_padding = 0;
    if kept.is_empty() {
        return;
    }
    let two_byte = kept
        .iter()
        .any(|(id, value)| *id > 14 || value.is_empty() || value.len() > 16);
    header.extension = true;
    header.extension_profile = if two_byte {
        rtp::header::EXTENSION_PROFILE_TWO_BYTE
    } else {
        rtp::header::EXTENSION_PROFILE_ONE_BYTE
    };
    for (id, value) in kept {
        // Too long even for two bytes: that extension alone is left out.
        let _ = header.set_extension(id, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use rtc::shared::marshal::{Marshal, Unmarshal};
    use rtp::header::{EXTENSION_PROFILE_ONE_BYTE, EXTENSION_PROFILE_TWO_BYTE, Header};

    /// A publisher's header with two-byte extensions: a 30-byte dependency descriptor (5),
    /// abs-send-time (2) and the camera orientation (7).
    fn publisher_header() -> Header {
        let mut h = Header {
            version: 2,
            payload_type: 96,
            sequence_number: 7,
            timestamp: 9,
            ssrc: 1,
            extension: true,
            extension_profile: EXTENSION_PROFILE_TWO_BYTE,
            ..Default::default()
        };
        h.set_extension(5, Bytes::from(vec![0xd0; 30])).unwrap();
        h.set_extension(2, Bytes::from_static(&[1, 2, 3])).unwrap();
        h.set_extension(7, Bytes::from_static(&[1])).unwrap();
        h
    }

    fn round_trip(h: &Header) -> Header {
        let raw = h.marshal().unwrap();
        Header::unmarshal(&mut raw.freeze()).unwrap()
    }

    #[test]
    fn forwarded_extensions_are_renumbered_and_the_rest_dropped() {
        let mut h = publisher_header();
        rewrite_extensions(&mut h, &[(5, 12), (7, 13)]);
        let back = round_trip(&h);
        assert_eq!(
            back.extension_profile, EXTENSION_PROFILE_TWO_BYTE,
            "30 bytes need two"
        );
        assert_eq!(back.get_extension(12).unwrap().as_ref(), &[0xd0; 30][..]);
        assert_eq!(back.get_extension(13).unwrap().as_ref(), &[1]);
        for gone in [2, 5, 7] {
            assert!(back.get_extension(gone).is_none(), "id {gone} left over");
        }
    }

    #[test]
    fn short_values_use_the_one_byte_form() {
        let mut h = publisher_header();
        rewrite_extensions(&mut h, &[(7, 3)]);
        let back = round_trip(&h);
        assert_eq!(back.extension_profile, EXTENSION_PROFILE_ONE_BYTE);
        assert_eq!(back.get_extension(3).unwrap().as_ref(), &[1]);
        assert_eq!(back.extensions.len(), 1);
    }

    #[test]
    fn nothing_mapped_means_no_extension_block() {
        let mut h = publisher_header();
        rewrite_extensions(&mut h, &[]);
        assert!(!h.extension);
        assert_eq!(round_trip(&h).marshal().unwrap().len(), 12);
        // A mapping for an extension this packet does not carry changes nothing either.
        let mut h = publisher_header();
        rewrite_extensions(&mut h, &[(9, 4)]);
        assert!(!round_trip(&h).extension);
    }

    #[test]
    fn only_extensions_both_legs_negotiated_are_mapped() {
        let dd = FORWARDED_EXTENSIONS[0].to_owned();
        let cvo = FORWARDED_EXTENSIONS[1].to_owned();
        let publisher = vec![(dd.clone(), 5), (cvo.clone(), 7)];
        let subscriber = vec![(cvo, 13)];
        assert_eq!(map_extension_ids(&publisher, &subscriber), vec![(7, 13)]);
        assert!(map_extension_ids(&[], &subscriber).is_empty());
        let negotiated = vec![
            RTCRtpHeaderExtensionParameters {
                uri: dd,
                id: 11,
                ..Default::default()
            },
            RTCRtpHeaderExtensionParameters {
                uri: "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time".into(),
                id: 2,
                ..Default::default()
            },
        ];
        assert_eq!(
            forwarded(&negotiated).len(),
            1,
            "per-hop extensions never forwarded"
        );
    }

    #[test]
    fn payload_type_follows_the_subscribers_numbering() {
        let vp8 = |pt| RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: "video/VP8".into(),
                clock_rate: 90_000,
                ..Default::default()
            },
            payload_type: pt,
        };
        let publisher = vp8(96).rtp_codec;
        assert_eq!(negotiated_payload_type(&[vp8(120)], &publisher), Some(120));
        let h264 = RTCRtpCodec {
            mime_type: "video/H264".into(),
            ..Default::default()
        };
        assert_eq!(
            negotiated_payload_type(&[vp8(120)], &h264),
            None,
            "not negotiated"
        );
    }
}
