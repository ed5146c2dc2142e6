//! Frames of every codec for the integration tests.
#![allow(dead_code)] // each test binary uses part of this module

use hush_frame::{Codec, Layout};

pub(crate) mod av1;

/// A plausible frame of `layout` whose payload is `body` (which may be empty).
pub(crate) fn frame(layout: Layout, key: bool, body: &[u8]) -> Vec<u8> {
    let mut f = match layout {
        Layout::Pure | Layout::Media(Codec::Vp9) => Vec::new(),
        Layout::Media(Codec::Opus) => vec![0x78],
        Layout::Media(Codec::Vp8) if key => {
            vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]
        }
        Layout::Media(Codec::Vp8) => vec![0x31, 0x02, 0x00],
        Layout::Media(Codec::H264) if key => vec![
            0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0xda, // SPS
            0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80, // PPS
            0, 0, 0, 1, 0x65, 0x88, // IDR slice header byte
        ],
        Layout::Media(Codec::H264) => vec![0, 0, 0, 1, 0x41, 0x9a],
        Layout::Media(Codec::H265) => vec![
            0, 0, 0, 1, 0x40, 0x01, 0x0c, 0x01, // VPS
            0, 0, 0, 1, 0x26, 0x01, 0xaf, // IDR_W_RADL
        ],
        Layout::Media(Codec::Av1) => vec![0x12, 0x00, 0x0a, 0x02, 0xaa, 0xbb, 0x32],
        Layout::Media(_) => Vec::new(),
    };
    f.extend_from_slice(body);
    f
}
