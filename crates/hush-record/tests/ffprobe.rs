//! An Ogg Opus file from this crate's writer, checked by FFmpeg's `ffprobe` (and decoded by
//! `ffmpeg` when it is there too). Skipped, with a line saying so, where FFmpeg is not
//! installed.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::process::Command;

use hush_record::media::{OggOpusWriter, opus_packet_samples};

const FFPROBE: &str = "/usr/bin/ffprobe";
const FFMPEG: &str = "/usr/bin/ffmpeg";

#[test]
fn ogg_opus_file_is_accepted_by_ffprobe_when_installed() {
    if !Path::new(FFPROBE).exists() {
        println!("SKIPPED ogg_opus_file_is_accepted_by_ffprobe_when_installed: no {FFPROBE}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("silence.opus");
    let pre_skip = 312u16;
    let mut w = OggOpusWriter::new(
        BufWriter::new(File::create(&path).unwrap()),
        0x4855_5348,
        1,
        pre_skip,
        48_000,
    )
    .unwrap();
    // 1.5 s of the smallest valid CELT frame: TOC 0xF8 (fullband, 20 ms, mono, one frame).
    let packet = [0xF8, 0xFF, 0xFE];
    let mut granule = u64::from(pre_skip);
    for _ in 0..75 {
        granule += u64::from(opus_packet_samples(&packet).unwrap());
        w.write_packet(&packet, granule).unwrap();
    }
    drop(w.finish(granule).unwrap());

    let out = Command::new(FFPROBE)
        .args(["-v", "error", "-show_streams", "-show_format"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffprobe failed: {stderr}");
    assert!(stderr.trim().is_empty(), "ffprobe complained: {stderr}");
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {name} in:\n{stdout}"))
            .to_owned()
    };
    assert_eq!(field("codec_name"), "opus");
    assert_eq!(field("channels"), "1");
    assert_eq!(field("sample_rate"), "48000");
    assert_eq!(field("format_name"), "ogg");
    let duration: f64 = field("duration").parse().unwrap();
    assert!((duration - 1.5).abs() < 0.03, "duration {duration}");

    if !Path::new(FFMPEG).exists() {
        println!("decode check skipped: no {FFMPEG}");
        return;
    }
    let out = Command::new(FFMPEG)
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "ffmpeg: {stderr}"
    );
}
