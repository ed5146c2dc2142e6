//! The relay's keyframe recognition (`hush_relay::media::keyframe`) on arbitrary RTP payloads,
//! which publishers choose: never a panic, for every codec; a VP8 payload whose keyframe size
//! reads is also recognised as a keyframe start, and sizes fit in 14 bits; so is a VP9 payload
//! whose scalability structure gives a size, never 0 wide or high.
#![no_main]

use hush_relay::media::keyframe::{
    VideoCodec, keyframe_size, starts_keyframe, vp8_keyframe_size, vp9_keyframe_size,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|payload: &[u8]| {
    for codec in [VideoCodec::Vp8, VideoCodec::Vp9, VideoCodec::H264, VideoCodec::Av1] {
        let _ = starts_keyframe(codec, payload);
    }
    if let Some((width, height)) = vp8_keyframe_size(payload) {
        assert!(starts_keyframe(VideoCodec::Vp8, payload));
        assert!(width < 1 << 14 && height < 1 << 14);
    }
    if let Some((width, height)) = vp9_keyframe_size(payload) {
        assert!(starts_keyframe(VideoCodec::Vp9, payload));
        assert!(width > 0 && height > 0);
    }
    for codec in [VideoCodec::H264, VideoCodec::Av1] {
        assert_eq!(keyframe_size(codec, payload), None);
    }
});
