//! Record files: round trips, then every way a file can be cut, damaged or forged, each with
//! the precise refusal and with the honest records around it still read back.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::io::{self, Cursor, Read};
use std::path::{Path, PathBuf};

use hush_record::records::{FILE_HEADER_LEN, FRAME_FIXED_LEN, MAX_RECORD_LEN};
use hush_record::{
    Corruption, EventRecord, FrameRecord, ReadStats, Record, RecordError, RecordKind, RecordReader,
    RecordWriter,
};
use proptest::prelude::*;

fn frame(at_us: u64, data: &[u8]) -> FrameRecord {
    FrameRecord {
        at_us,
        rtp_timestamp: (at_us as u32).wrapping_mul(90),
        keyframe: at_us.is_multiple_of(2),
        gap: at_us.is_multiple_of(3),
        data: data.to_vec(),
    }
}

fn event(at_us: u64, json: &str) -> EventRecord {
    EventRecord {
        at_us,
        json: json.to_owned(),
    }
}

fn three_frames() -> Vec<FrameRecord> {
    vec![
        frame(0, b"\x90\x80keyframe bytes"),
        frame(20_000, b"x"),
        frame(40_001, &[0xAB; 37]),
    ]
}

/// A frames file with `frames`, and the offset of each record plus the file's end.
fn frames_file(dir: &Path, frames: &[FrameRecord]) -> (PathBuf, Vec<u64>) {
    let path = dir.join("track-0.hrf");
    let mut w = RecordWriter::create(&path, RecordKind::Frames).unwrap();
    let mut bounds = vec![w.bytes_written()];
    for f in frames {
        let before = w.bytes_written();
        let added = w.append_frame(f).unwrap();
        assert_eq!(w.bytes_written(), before + added);
        bounds.push(w.bytes_written());
    }
    w.sync().unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len(), w.bytes_written());
    (path, bounds)
}

fn read_all<R: Read>(r: RecordReader<R>) -> Vec<Result<Record, RecordError>> {
    r.collect()
}

fn frames_of(items: &[Result<Record, RecordError>]) -> Vec<FrameRecord> {
    items
        .iter()
        .filter_map(|i| match i {
            Ok(Record::Frame(f)) => Some(f.clone()),
            _ => None,
        })
        .collect()
}

fn reader(bytes: &[u8], kind: RecordKind) -> RecordReader<Cursor<&[u8]>> {
    RecordReader::new(Cursor::new(bytes), kind).unwrap()
}

/// A raw record: length, CRC-32 of `body` (or `crc`), body.
fn raw_record(body: &[u8], crc: Option<u32>) -> Vec<u8> {
    let mut r = (body.len() as u32).to_be_bytes().to_vec();
    r.extend_from_slice(&crc.unwrap_or_else(|| crc32fast::hash(body)).to_be_bytes());
    r.extend_from_slice(body);
    r
}

fn raw_frame_body(at_us: u64, flags: u8, data: &[u8]) -> Vec<u8> {
    let mut b = at_us.to_be_bytes().to_vec();
    b.extend_from_slice(&7u32.to_be_bytes());
    b.push(flags);
    b.extend_from_slice(data);
    b
}

// ---------------------------------------------------------------- round trips

#[test]
fn frames_round_trip_through_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut frames = three_frames();
    frames.push(FrameRecord {
        at_us: u64::MAX,
        rtp_timestamp: u32::MAX,
        keyframe: true,
        gap: true,
        data: vec![0; MAX_RECORD_LEN - FRAME_FIXED_LEN], // the largest body there is
    });
    let (path, _) = frames_file(dir.path(), &frames);
    let mut r = RecordReader::open(&path, RecordKind::Frames).unwrap();
    assert_eq!(r.kind(), RecordKind::Frames);
    let items: Vec<_> = r.by_ref().collect();
    assert!(items.iter().all(Result::is_ok));
    assert_eq!(frames_of(&items), frames);
    assert_eq!(r.offset(), fs::metadata(&path).unwrap().len());
    assert_eq!(
        r.stats(),
        ReadStats {
            records: 4,
            ..ReadStats::default()
        }
    );
    assert!(r.next().is_none(), "fused after the end");
}

#[test]
fn events_round_trip_through_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.hrf");
    let events = [
        event(5, r#"{"v":1,"type":"joined","room":"démo ✓"}"#),
        event(6, "{}"),
        event(u64::MAX, "x"),
    ];
    let mut w = RecordWriter::create(&path, RecordKind::Events).unwrap();
    for e in &events {
        w.append_event(e).unwrap();
    }
    w.sync().unwrap();
    drop(w);
    let got: Vec<_> = RecordReader::open(&path, RecordKind::Events)
        .unwrap()
        .map(|r| match r.unwrap() {
            Record::Event(e) => e,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(got, events);
}

#[test]
fn file_header_is_magic_kind_and_zeros() {
    let dir = tempfile::tempdir().unwrap();
    for (kind, byte) in [(RecordKind::Events, 0u8), (RecordKind::Frames, 1)] {
        let path = dir.path().join(format!("{byte}.hrf"));
        let w = RecordWriter::create(&path, kind).unwrap();
        assert_eq!(w.bytes_written(), FILE_HEADER_LEN as u64);
        // The header is on disk at once, before any sync.
        let mut expected = b"HUSHREC1".to_vec();
        expected.extend_from_slice(&[byte, 0, 0, 0]);
        assert_eq!(fs::read(&path).unwrap(), expected);
        assert_eq!(kind.file_header().to_vec(), expected);
        drop(w);
        assert!(read_all(RecordReader::open(&path, kind).unwrap()).is_empty());
    }
}

#[test]
fn record_layout_is_the_documented_one() {
    let dir = tempfile::tempdir().unwrap();
    let f = FrameRecord {
        at_us: 0x0102_0304_0506_0708,
        rtp_timestamp: 0x0A0B_0C0D,
        keyframe: true,
        gap: true,
        data: b"abc".to_vec(),
    };
    let (path, _) = frames_file(dir.path(), std::slice::from_ref(&f));
    let bytes = fs::read(path).unwrap();
    let body = [
        1, 2, 3, 4, 5, 6, 7, 8, 0x0A, 0x0B, 0x0C, 0x0D, 0b11, b'a', b'b', b'c',
    ];
    assert_eq!(&bytes[12..16], &16u32.to_be_bytes());
    assert_eq!(&bytes[16..20], &crc32fast::hash(&body).to_be_bytes());
    assert_eq!(&bytes[20..], &body);
}

// ---------------------------------------------------------------- writer refusals

#[test]
fn create_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = frames_file(dir.path(), &three_frames());
    let before = fs::read(&path).unwrap();
    let err = RecordWriter::create(&path, RecordKind::Frames).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    assert_eq!(fs::read(&path).unwrap(), before);
}

#[test]
fn writer_refuses_wrong_kind_empty_and_oversized_records_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.hrf");
    let mut w = RecordWriter::create(&path, RecordKind::Frames).unwrap();
    w.append_frame(&frame(1, b"ok")).unwrap();
    let size = w.bytes_written();
    let refusals = [
        w.append_event(&event(1, "{}")).unwrap_err(),
        w.append_frame(&frame(2, b"")).unwrap_err(),
        w.append_frame(&frame(2, &vec![0; MAX_RECORD_LEN - FRAME_FIXED_LEN + 1]))
            .unwrap_err(),
    ];
    for e in refusals {
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    }
    assert_eq!(w.bytes_written(), size);
    // A refusal does not poison the writer.
    w.append_frame(&frame(3, b"after")).unwrap();
    w.sync().unwrap();
    let items = read_all(RecordReader::open(&path, RecordKind::Frames).unwrap());
    assert_eq!(frames_of(&items), [frame(1, b"ok"), frame(3, b"after")]);

    let events = dir.path().join("e.hrf");
    let mut w = RecordWriter::create(&events, RecordKind::Events).unwrap();
    for e in [
        w.append_frame(&frame(1, b"x")).unwrap_err(),
        w.append_event(&event(1, "")).unwrap_err(),
        w.append_event(&event(1, &"x".repeat(MAX_RECORD_LEN - 7)))
            .unwrap_err(),
    ] {
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    }
    assert_eq!(w.bytes_written(), FILE_HEADER_LEN as u64);
}

// ---------------------------------------------------------------- crashes and damage

#[test]
fn a_cut_at_every_byte_keeps_the_complete_records_then_one_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let frames = three_frames();
    let (path, bounds) = frames_file(dir.path(), &frames);
    let bytes = fs::read(path).unwrap();
    assert_eq!(*bounds.last().unwrap(), bytes.len() as u64);
    for cut in 0..=bytes.len() {
        let prefix = &bytes[..cut];
        if cut < FILE_HEADER_LEN {
            let err = RecordReader::new(Cursor::new(prefix), RecordKind::Frames).unwrap_err();
            assert!(
                matches!(err, RecordError::Truncated { offset: 0 }),
                "cut {cut}: {err:?}"
            );
            continue;
        }
        let items = read_all(reader(prefix, RecordKind::Frames));
        let complete = bounds[1..].iter().filter(|&&b| b <= cut as u64).count();
        assert_eq!(frames_of(&items), frames[..complete], "cut {cut}");
        let errors: Vec<_> = items.iter().filter_map(|i| i.as_ref().err()).collect();
        if bounds.contains(&(cut as u64)) {
            assert!(errors.is_empty(), "cut {cut} on a boundary: {errors:?}");
        } else {
            assert_eq!(errors.len(), 1, "cut {cut}");
            assert!(
                matches!(errors[0], RecordError::Truncated { offset } if *offset == bounds[complete]),
                "cut {cut}: {:?}",
                errors[0]
            );
            assert!(items.last().unwrap().is_err(), "the error comes last");
        }
    }
}

#[test]
fn a_writer_dropped_without_sync_leaves_its_records_readable() {
    // A process that exits without `sync` loses nothing the kernel got; `Drop` flushes.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.hrf");
    let mut w = RecordWriter::create(&path, RecordKind::Frames).unwrap();
    for f in three_frames() {
        w.append_frame(&f).unwrap();
    }
    drop(w);
    let items = read_all(RecordReader::open(&path, RecordKind::Frames).unwrap());
    assert_eq!(frames_of(&items), three_frames());
}

#[test]
fn a_flipped_body_byte_costs_only_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let frames = three_frames();
    let (path, bounds) = frames_file(dir.path(), &frames);
    let bytes = fs::read(path).unwrap();
    for damaged in 0..frames.len() {
        // The last byte of the body, then the first byte of the CRC field.
        for at in [bounds[damaged + 1] - 1, bounds[damaged] + 4] {
            let mut copy = bytes.clone();
            copy[at as usize] ^= 0x01;
            let mut r = reader(&copy, RecordKind::Frames);
            let items: Vec<_> = r.by_ref().collect();
            assert_eq!(items.len(), frames.len());
            for (i, item) in items.iter().enumerate() {
                if i == damaged {
                    assert!(
                        matches!(item, Err(RecordError::Checksum { offset }) if *offset == bounds[i]),
                        "{item:?}"
                    );
                } else {
                    assert_eq!(item.as_ref().unwrap(), &Record::Frame(frames[i].clone()));
                }
            }
            assert_eq!(r.stats().checksum_errors, 1);
            assert_eq!(r.stats().records, 2);
        }
    }
}

#[test]
fn a_huge_length_is_corrupt_and_ends_the_file_without_allocating() {
    let mut bytes = RecordKind::Frames.file_header().to_vec();
    bytes.extend(raw_record(&raw_frame_body(1, 0, b"good"), None));
    let bad_at = bytes.len() as u64;
    bytes.extend_from_slice(&[0xFF; 4]); // body_len 0xFFFF_FFFF
    bytes.extend_from_slice(&[0; 4]);
    bytes.extend(raw_record(&raw_frame_body(2, 0, b"unreachable"), None));
    let mut r = reader(&bytes, RecordKind::Frames);
    assert!(matches!(r.next(), Some(Ok(Record::Frame(f))) if f.data == b"good"));
    match r.next() {
        Some(Err(RecordError::Corrupt {
            offset,
            why: Corruption::TooLong { len: u32::MAX },
        })) => assert_eq!(offset, bad_at),
        other => panic!("{other:?}"),
    }
    assert!(r.next().is_none(), "no resync after a corrupt length");
    assert_eq!(r.stats().corrupt, 1);

    // One over the limit is refused the same way.
    let mut bytes = RecordKind::Frames.file_header().to_vec();
    bytes.extend_from_slice(&(MAX_RECORD_LEN as u32 + 1).to_be_bytes());
    bytes.extend_from_slice(&[0; 4]);
    let items = read_all(reader(&bytes, RecordKind::Frames));
    assert!(matches!(
        items[..],
        [Err(RecordError::Corrupt {
            offset: 12,
            why: Corruption::TooLong { .. }
        })]
    ));
}

/// A reader that remembers the largest buffer it was asked to fill.
struct Probe<'a> {
    data: &'a [u8],
    largest_ask: usize,
}

impl Read for Probe<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.largest_ask = self.largest_ask.max(buf.len());
        self.data.read(buf)
    }
}

#[test]
fn a_lying_length_on_a_short_file_does_not_grow_the_buffer_ahead() {
    let mut bytes = RecordKind::Frames.file_header().to_vec();
    bytes.extend_from_slice(&(MAX_RECORD_LEN as u32).to_be_bytes()); // allowed, but a lie
    bytes.extend_from_slice(&[0; 4]);
    bytes.extend_from_slice(&[7; 100]);
    let mut probe = Probe {
        data: &bytes,
        largest_ask: 0,
    };
    let items = read_all(RecordReader::new(&mut probe, RecordKind::Frames).unwrap());
    assert!(matches!(
        items[..],
        [Err(RecordError::Truncated { offset: 12 })]
    ));
    assert!(
        probe.largest_ask <= 64 << 10,
        "asked to fill {} bytes for a 100-byte body",
        probe.largest_ask
    );
}

#[test]
fn a_length_too_short_for_the_fixed_fields_is_corrupt_and_ends_the_file() {
    for (kind, len) in [
        (RecordKind::Frames, 0u32),
        (RecordKind::Frames, 13), // fixed fields, no frame byte
        (RecordKind::Events, 8),  // `at_us`, no JSON
        (RecordKind::Events, 3),
    ] {
        let mut bytes = kind.file_header().to_vec();
        let body = vec![b'{'; len as usize];
        bytes.extend(raw_record(&body, None));
        bytes.extend(raw_record(&raw_frame_body(1, 0, b"{}{}{}"), None));
        let items = read_all(reader(&bytes, kind));
        assert!(
            matches!(
                items[..],
                [Err(RecordError::Corrupt { offset: 12, why: Corruption::TooShort { len: l } })] if l == len
            ),
            "{kind} {len}: {items:?}"
        );
    }
}

#[test]
fn event_text_that_is_not_utf8_is_corrupt_and_reading_goes_on() {
    let mut bytes = RecordKind::Events.file_header().to_vec();
    let mut body = 1u64.to_be_bytes().to_vec();
    body.extend_from_slice(b"{\"x\":\"\xff\xfe\"}");
    bytes.extend(raw_record(&body, None));
    let mut good = 2u64.to_be_bytes().to_vec();
    good.extend_from_slice(b"{}");
    bytes.extend(raw_record(&good, None));
    let mut r = reader(&bytes, RecordKind::Events);
    assert!(matches!(
        r.next(),
        Some(Err(RecordError::Corrupt {
            offset: 12,
            why: Corruption::NotUtf8
        }))
    ));
    assert_eq!(r.next().unwrap().unwrap(), Record::Event(event(2, "{}")));
    assert!(r.next().is_none());
    assert_eq!(r.stats().corrupt, 1);
}

#[test]
fn unknown_flag_bits_are_ignored_on_read() {
    let mut bytes = RecordKind::Frames.file_header().to_vec();
    bytes.extend(raw_record(&raw_frame_body(9, 0xFD, b"f"), None));
    let items = read_all(reader(&bytes, RecordKind::Frames));
    let [Ok(Record::Frame(f))] = &items[..] else {
        panic!("{items:?}")
    };
    assert!(f.keyframe && !f.gap);
    assert_eq!(f.flags(), 0x01);
}

#[test]
fn headers_that_are_not_ours_are_refused_precisely() {
    let cases: [(&[u8], RecordKind); 8] = [
        (b"", RecordKind::Frames),
        (b"HUSH", RecordKind::Frames),
        (b"HUSHREC1\x01\0", RecordKind::Frames),
        (b"GIF89a\0\0\0\0\0\0\0\0", RecordKind::Frames),
        (b"OggS", RecordKind::Events),
        (b"HUSHREC2\x01\0\0\0", RecordKind::Frames),
        (b"HUSHREC1\x00\0\0\0", RecordKind::Frames),
        (b"HUSHREC1\x07\0\0\0", RecordKind::Events),
    ];
    let got: Vec<String> = cases
        .iter()
        .map(
            |(bytes, kind)| match RecordReader::new(Cursor::new(*bytes), *kind) {
                Ok(_) => "ok".to_owned(),
                Err(e) => format!("{e:?}"),
            },
        )
        .collect();
    assert_eq!(
        got,
        [
            "Truncated { offset: 0 }",
            "Truncated { offset: 0 }",
            "Truncated { offset: 0 }",
            "NotARecording",
            "NotARecording",
            "UnsupportedVersion { version: 50 }",
            "WrongKind { expected: Frames, found: 0 }",
            "WrongKind { expected: Events, found: 7 }",
        ]
    );
    // Reserved bytes are ignored.
    assert!(
        RecordReader::new(Cursor::new(b"HUSHREC1\x01\xff\xff\xff"), RecordKind::Frames).is_ok()
    );
}

#[test]
fn a_missing_file_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = RecordReader::open(dir.path().join("nope.hrf"), RecordKind::Frames).unwrap_err();
    assert!(matches!(err, RecordError::Io(ref e) if e.kind() == io::ErrorKind::NotFound));
}

/// Hands out one byte per call and an `Interrupted` error between them.
struct Stutter<'a> {
    data: &'a [u8],
    interrupt: bool,
}

impl Read for Stutter<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.interrupt = !self.interrupt;
        if self.interrupt {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let n = buf.len().min(1);
        self.data.read(&mut buf[..n])
    }
}

#[test]
fn short_and_interrupted_reads_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = frames_file(dir.path(), &three_frames());
    let bytes = fs::read(path).unwrap();
    let r = RecordReader::new(
        Stutter {
            data: &bytes,
            interrupt: false,
        },
        RecordKind::Frames,
    )
    .unwrap();
    let items = read_all(r);
    assert!(items.iter().all(Result::is_ok));
    assert_eq!(frames_of(&items), three_frames());
}

// ---------------------------------------------------------------- properties

fn arb_frame() -> impl Strategy<Value = FrameRecord> {
    (
        any::<u64>(),
        any::<u32>(),
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(any::<u8>(), 1..300),
    )
        .prop_map(|(at_us, rtp_timestamp, keyframe, gap, data)| FrameRecord {
            at_us,
            rtp_timestamp,
            keyframe,
            gap,
            data,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_after_a_valid_header_never_panic(
        events in any::<bool>(),
        tail in prop::collection::vec(any::<u8>(), 0..2048),
    ) {
        let kind = if events { RecordKind::Events } else { RecordKind::Frames };
        let mut bytes = kind.file_header().to_vec();
        bytes.extend_from_slice(&tail);
        let mut r = reader(&bytes, kind);
        let mut items = 0usize;
        for item in r.by_ref() {
            items += 1;
            // Every item consumes at least a record header: the reader cannot loop.
            prop_assert!(items <= tail.len() / 8 + 1);
            if let Err(e) = item {
                prop_assert!(!matches!(e, RecordError::Io(_)));
            }
        }
        prop_assert!(r.next().is_none());
        prop_assert!(r.offset() <= bytes.len() as u64);
    }

    #[test]
    fn written_frames_read_back_and_any_prefix_keeps_the_complete_ones(
        frames in prop::collection::vec(arb_frame(), 0..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (path, bounds) = frames_file(dir.path(), &frames);
        let bytes = fs::read(path).unwrap();
        prop_assert_eq!(frames_of(&read_all(reader(&bytes, RecordKind::Frames))), frames.clone());
        let cut = FILE_HEADER_LEN + cut.index(bytes.len() - FILE_HEADER_LEN + 1);
        let items = read_all(reader(&bytes[..cut], RecordKind::Frames));
        let complete = bounds[1..].iter().filter(|&&b| b <= cut as u64).count();
        prop_assert_eq!(frames_of(&items), frames[..complete].to_vec());
        prop_assert!(items.len() - complete <= 1);
    }
}
