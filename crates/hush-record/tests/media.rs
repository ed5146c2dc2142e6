//! The plaintext writers: IVF parsed back by a local reader, Ogg Opus read back with the `ogg`
//! crate, Opus packet durations, and the writers' refusals.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{self, Cursor, Seek, SeekFrom, Write};

use hush_record::media::{IvfWriter, OggOpusWriter, opus_packet_samples};
use ogg::PacketReader;

// ---------------------------------------------------------------- IVF

struct Ivf {
    fourcc: [u8; 4],
    width: u16,
    height: u16,
    den: u32,
    num: u32,
    count: u32,
    frames: Vec<(u64, Vec<u8>)>,
}

/// A strict IVF parser: every length must add up to the end of the file.
fn parse_ivf(b: &[u8]) -> Ivf {
    let le16 = |i: usize| u16::from_le_bytes(b[i..i + 2].try_into().unwrap());
    let le32 = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
    assert_eq!(&b[0..4], b"DKIF");
    assert_eq!(le16(4), 0, "version");
    assert_eq!(le16(6), 32, "header length");
    assert_eq!(le32(28), 0, "unused");
    let mut frames = Vec::new();
    let mut at = 32;
    while at < b.len() {
        let len = le32(at) as usize;
        let pts = u64::from_le_bytes(b[at + 4..at + 12].try_into().unwrap());
        frames.push((pts, b[at + 12..at + 12 + len].to_vec()));
        at += 12 + len;
    }
    assert_eq!(at, b.len());
    Ivf {
        fourcc: b[8..12].try_into().unwrap(),
        width: le16(12),
        height: le16(14),
        den: le32(16),
        num: le32(20),
        count: le32(24),
        frames,
    }
}

#[test]
fn ivf_header_fields_frames_and_patched_count() {
    let mut w = IvfWriter::new(Cursor::new(Vec::new()), *b"VP80", 640, 480, 90_000, 1).unwrap();
    let frames = [
        (0u64, vec![0x10, 0x02, 0x00]),
        (3000, vec![]),
        (6000, vec![7; 1000]),
    ];
    for (pts, data) in &frames {
        w.write_frame(*pts, data).unwrap();
    }
    assert_eq!(w.frames(), 3);
    let out = w.finish().unwrap();
    assert_eq!(
        out.position(),
        out.get_ref().len() as u64,
        "left at the end"
    );
    let ivf = parse_ivf(out.get_ref());
    assert_eq!(&ivf.fourcc, b"VP80");
    assert_eq!((ivf.width, ivf.height), (640, 480));
    assert_eq!((ivf.den, ivf.num), (90_000, 1));
    assert_eq!(ivf.count, 3);
    assert_eq!(ivf.frames, frames);
}

#[test]
fn ivf_without_finish_says_zero_frames_and_an_empty_one_is_valid() {
    let shared = SharedBuf::default();
    let mut w = IvfWriter::new(shared.clone(), *b"AV01", 1, 2, 30, 1).unwrap();
    w.write_frame(0, b"obu").unwrap();
    drop(w);
    let ivf = parse_ivf(shared.0.borrow().get_ref());
    assert_eq!(ivf.count, 0);
    assert_eq!(ivf.frames, [(0, b"obu".to_vec())]);

    let empty = IvfWriter::new(Cursor::new(Vec::new()), *b"VP90", 0, 0, 1000, 1)
        .unwrap()
        .finish()
        .unwrap();
    let ivf = parse_ivf(empty.get_ref());
    assert_eq!((&ivf.fourcc, ivf.count, ivf.frames.len()), (b"VP90", 0, 0));
}

/// A writer whose bytes the test can still read after the IVF writer is dropped.
#[derive(Clone, Default)]
struct SharedBuf(std::rc::Rc<std::cell::RefCell<Cursor<Vec<u8>>>>);

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for SharedBuf {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.0.borrow_mut().seek(pos)
    }
}

#[test]
fn ivf_written_after_other_bytes_patches_its_own_header() {
    let mut out = Cursor::new(b"prefix".to_vec());
    out.seek(SeekFrom::End(0)).unwrap();
    let mut w = IvfWriter::new(out, *b"VP90", 320, 240, 1000, 1).unwrap();
    w.write_frame(5, b"abc").unwrap();
    w.write_frame(6, b"def").unwrap();
    let out = w.finish().unwrap().into_inner();
    assert_eq!(&out[..6], b"prefix");
    let ivf = parse_ivf(&out[6..]);
    assert_eq!(ivf.count, 2);
    assert_eq!(ivf.frames[1], (6, b"def".to_vec()));
}

// ---------------------------------------------------------------- Ogg Opus

const SILENCE: [u8; 3] = [0xF8, 0xFF, 0xFE]; // CELT FB 20 ms, mono, code 0

fn read_ogg(bytes: &[u8]) -> Vec<ogg::Packet> {
    let mut r = PacketReader::new(Cursor::new(bytes));
    let mut packets = Vec::new();
    while let Some(p) = r.read_packet().unwrap() {
        packets.push(p);
    }
    packets
}

/// `n` packets of 20 ms after `pre_skip`, through a writer, finished at the last granule.
fn opus_stream(n: u64, pre_skip: u16) -> (Vec<u8>, Vec<u64>) {
    let mut w =
        OggOpusWriter::new(Cursor::new(Vec::new()), 0x1234_5678, 1, pre_skip, 48_000).unwrap();
    let mut granules = Vec::new();
    let mut granule = u64::from(pre_skip);
    for i in 0..n {
        let mut packet = SILENCE.to_vec();
        packet.push(i as u8); // tell them apart
        granule += u64::from(opus_packet_samples(&packet).unwrap());
        w.write_packet(&packet, granule).unwrap();
        granules.push(granule);
    }
    (w.finish(granule).unwrap().into_inner(), granules)
}

#[test]
fn ogg_opus_headers_then_packets_with_their_granules_then_end_of_stream() {
    let (bytes, granules) = opus_stream(120, 312); // 2.4 s
    let packets = read_ogg(&bytes);
    assert_eq!(packets.len(), 2 + 120);

    let head = &packets[0];
    assert_eq!(&head.data[..8], b"OpusHead");
    assert_eq!(head.data.len(), 19);
    assert_eq!(head.data[8], 1, "version");
    assert_eq!(head.data[9], 1, "channels");
    assert_eq!(u16::from_le_bytes([head.data[10], head.data[11]]), 312);
    assert_eq!(
        u32::from_le_bytes(head.data[12..16].try_into().unwrap()),
        48_000
    );
    assert_eq!(&head.data[16..19], &[0, 0, 0], "gain 0, mapping family 0");
    assert!(head.first_in_stream() && head.first_in_page() && head.last_in_page());
    assert_eq!(head.absgp_page(), 0);
    assert_eq!(head.stream_serial(), 0x1234_5678);

    let tags = &packets[1];
    assert_eq!(&tags.data[..8], b"OpusTags");
    let vendor_len = u32::from_le_bytes(tags.data[8..12].try_into().unwrap()) as usize;
    assert_eq!(&tags.data[12..12 + vendor_len], b"hush-record");
    assert_eq!(&tags.data[12 + vendor_len..], &[0, 0, 0, 0], "no comments");
    assert!(
        tags.first_in_page() && tags.last_in_page(),
        "alone on its page"
    );
    assert_eq!(tags.absgp_page(), 0);

    let audio = &packets[2..];
    assert!(audio[0].first_in_page(), "audio starts a new page");
    let mut pages = 0;
    for (i, (p, &granule)) in audio.iter().zip(&granules).enumerate() {
        assert_eq!(p.data[..3], SILENCE);
        assert_eq!(p.data[3], i as u8);
        if p.last_in_page() {
            pages += 1;
            assert_eq!(p.absgp_page(), granule, "page granule = its last packet's");
        }
        assert_eq!(p.last_in_stream(), i == audio.len() - 1);
    }
    assert!((2..=4).contains(&pages), "about a page a second: {pages}");
}

#[test]
fn ogg_opus_final_granule_may_trim_the_last_packet_within_bounds() {
    let build = |final_granule: u64| {
        let mut w = OggOpusWriter::new(Cursor::new(Vec::new()), 1, 2, 0, 0).unwrap();
        w.write_packet(&SILENCE, 960).unwrap();
        w.write_packet(&SILENCE, 1920).unwrap();
        w.finish(final_granule).map(Cursor::into_inner)
    };
    let packets = read_ogg(&build(1500).unwrap());
    let last = packets.last().unwrap();
    assert!(last.last_in_stream());
    assert_eq!(last.absgp_page(), 1500);
    assert_eq!(build(1921).unwrap_err().kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn ogg_opus_without_audio_ends_on_the_tags_page() {
    let w = OggOpusWriter::new(Cursor::new(Vec::new()), 9, 2, 0, 44_100).unwrap();
    let packets = read_ogg(&w.finish(12_345).unwrap().into_inner());
    assert_eq!(packets.len(), 2);
    assert!(packets[1].last_in_stream());
    assert_eq!(packets[1].absgp_page(), 0);
}

#[test]
fn ogg_opus_writer_refusals() {
    for channels in [0, 3, 255] {
        let err = OggOpusWriter::new(Cursor::new(Vec::new()), 1, channels, 0, 0).unwrap_err();
        assert_eq!(
            err.kind(),
            io::ErrorKind::InvalidInput,
            "{channels} channels"
        );
    }
    let mut w = OggOpusWriter::new(Cursor::new(Vec::new()), 1, 1, 0, 0).unwrap();
    w.write_packet(&SILENCE, 960).unwrap();
    let refusals = [
        w.write_packet(&[], 1920).unwrap_err(),
        w.write_packet(&SILENCE, 959).unwrap_err(),
        w.write_packet(&SILENCE, u64::MAX).unwrap_err(),
    ];
    for e in refusals {
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
    // The stream goes on after a refusal.
    w.write_packet(&SILENCE, 1920).unwrap();
    let packets = read_ogg(&w.finish(1920).unwrap().into_inner());
    assert_eq!(packets.len(), 4);
}

// ---------------------------------------------------------------- Opus durations

#[test]
fn opus_packet_samples_per_frame_count_code() {
    // Code 0: one frame; TOC config 31 = CELT FB 20 ms, config 1 = SILK NB 20 ms.
    assert_eq!(opus_packet_samples(&[0xF8]), Some(960));
    assert_eq!(opus_packet_samples(&[0x08, 1, 2]), Some(960));
    // Config 3, SILK NB 60 ms; config 16, CELT NB 2.5 ms; config 13, hybrid SWB 20 ms.
    assert_eq!(opus_packet_samples(&[3 << 3]), Some(2880));
    assert_eq!(opus_packet_samples(&[16 << 3]), Some(120));
    assert_eq!(opus_packet_samples(&[13 << 3]), Some(960));
    // Code 1 and 2: two frames.
    assert_eq!(opus_packet_samples(&[0xF9, 0, 0]), Some(1920));
    assert_eq!(opus_packet_samples(&[0xFA, 1, 0, 0]), Some(1920));
    // Code 3: the count byte's low 6 bits (VBR and padding bits set here).
    assert_eq!(opus_packet_samples(&[0xFB, 0xC0 | 3]), Some(2880));
    assert_eq!(opus_packet_samples(&[(16 << 3) | 3, 48]), Some(5760)); // 48 x 2.5 ms
    // The stereo bit changes nothing.
    assert_eq!(opus_packet_samples(&[0xFC]), Some(960));
}

#[test]
fn opus_packet_samples_refuses_impossible_packets() {
    assert_eq!(opus_packet_samples(&[]), None, "empty");
    assert_eq!(
        opus_packet_samples(&[0xFB]),
        None,
        "code 3 without its count byte"
    );
    assert_eq!(
        opus_packet_samples(&[0xFB, 0xC0]),
        None,
        "code 3 with 0 frames"
    );
    assert_eq!(
        opus_packet_samples(&[0xFB, 7]),
        None,
        "7 x 20 ms is over 120 ms"
    );
    assert_eq!(
        opus_packet_samples(&[(16 << 3) | 3, 49]),
        None,
        "49 x 2.5 ms"
    );
    // Exactly 120 ms is allowed.
    assert_eq!(
        opus_packet_samples(&[(3 << 3) | 1, 0]),
        Some(5760),
        "2 x 60 ms"
    );
}
