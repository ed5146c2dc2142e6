//! What `hush-record` does with frames a recording holds (participants chose them: decrypted,
//! still untrusted): VP8 reassembly from arbitrary packets (`assemble::Assembler`), the Opus
//! packet duration (`media::opus_packet_samples`) and the Ogg Opus and IVF writers. Never a
//! panic; a reassembled frame is never over `MAX_FRAME`; an Opus duration is 1 to 5,760
//! samples; the IVF writer's frame count never goes back.
#![no_main]

use std::io::Cursor;

use hush_record::assemble::{Assembler, MAX_FRAME};
use hush_record::media::{IvfWriter, OPUS_MAX_PACKET_SAMPLES, OggOpusWriter, opus_packet_samples};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Packets: seq (2), ts (4), flags (1: head, marker, broken), length (1), then the part.
    let mut a = Assembler::default();
    let mut rest = data;
    let mut frames = Vec::new();
    while rest.len() >= 8 {
        let seq = u16::from_be_bytes([rest[0], rest[1]]);
        let ts = u32::from_be_bytes([rest[2], rest[3], rest[4], rest[5]]);
        let flags = rest[6];
        let len = usize::from(rest[7]).min(rest.len() - 8);
        let part = &rest[8..8 + len];
        rest = &rest[8 + len..];
        if flags & 4 != 0 {
            a.broken();
            continue;
        }
        if let Some(frame) = a.push(seq, ts, flags & 1 != 0, flags & 2 != 0, part) {
            assert!(frame.len() <= MAX_FRAME);
            frames.push(frame);
        }
    }
    let _ = a.take_lost();

    if let Some(samples) = opus_packet_samples(data) {
        assert!(
            samples > 0 && samples <= OPUS_MAX_PACKET_SAMPLES,
            "{samples}"
        );
    }

    // The writers take whatever frames came out of reassembly, and the raw input as one.
    frames.push(data.to_vec());
    if let Ok(mut ogg) = OggOpusWriter::new(Vec::new(), 7, 2, 312, 48_000) {
        let mut granule = 0u64;
        for f in &frames {
            granule += u64::from(opus_packet_samples(f).unwrap_or(960));
            let _ = ogg.write_packet(f, granule);
        }
        let _ = ogg.finish(granule);
    }
    if let Ok(mut ivf) = IvfWriter::new(Cursor::new(Vec::new()), *b"VP80", 640, 480, 90_000, 1) {
        let mut last = 0;
        for (i, f) in frames.iter().enumerate() {
            let _ = ivf.write_frame(i as u64 * 3000, f);
            assert!(ivf.frames() >= last);
            last = ivf.frames();
        }
        let _ = ivf.finish();
    }
});
