//! Recording files from arbitrary bytes: `RecordReader` (both kinds) on the raw input, on the
//! input after a valid file header, and on the same with every plausible record's CRC-32 fixed
//! (so the fuzzer reaches the body parsers, past the checksum); `Manifest::from_json` on the
//! raw input. Never a panic; the reader ends, consumes at least a record header per item, and
//! its stats add up; a manifest that parses re-encodes to itself.
#![no_main]

use std::io::Cursor;

use hush_record::records::{FILE_HEADER_LEN, MAX_RECORD_LEN, RECORD_HEADER_LEN};
use hush_record::{Manifest, Record, RecordError, RecordKind, RecordReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let kind = if selector & 1 == 0 { RecordKind::Events } else { RecordKind::Frames };

    read_all(rest, kind);
    let mut file = kind.file_header().to_vec();
    file.extend_from_slice(rest);
    read_all(&file, kind);
    if selector & 2 != 0 {
        fix_checksums(&mut file);
        read_all(&file, kind);
    }

    if let Ok(manifest) = Manifest::from_json(rest) {
        let json = manifest.to_json().expect("a manifest that was read validates");
        assert_eq!(Manifest::from_json(&json).expect("re-reads"), manifest);
    }
});

/// Reads every record of `bytes` and checks what the reader promises.
fn read_all(bytes: &[u8], kind: RecordKind) {
    let Ok(mut reader) = RecordReader::new(Cursor::new(bytes), kind) else { return };
    let (mut ok, mut items) = (0u64, 0usize);
    let mut ended = false;
    for item in reader.by_ref() {
        assert!(!ended, "an item after an error that ends the file");
        items += 1;
        assert!(items <= bytes.len() / RECORD_HEADER_LEN + 1, "the reader does not end");
        match item {
            Ok(Record::Frame(f)) => {
                assert_eq!(kind, RecordKind::Frames);
                assert!(!f.data.is_empty());
                ok += 1;
            }
            Ok(Record::Event(e)) => {
                assert_eq!(kind, RecordKind::Events);
                assert!(!e.json.is_empty());
                ok += 1;
            }
            Err(RecordError::Truncated { .. }) => ended = true,
            Err(RecordError::Corrupt { why, .. }) => {
                ended = !matches!(why, hush_record::Corruption::NotUtf8);
            }
            Err(RecordError::Checksum { .. }) => {}
            Err(e) => panic!("unexpected error from an in-memory file: {e:?}"),
        }
    }
    assert!(reader.next().is_none(), "fused");
    assert_eq!(reader.stats().records, ok);
    assert!(reader.offset() <= bytes.len() as u64);
}

/// Writes the right CRC-32 into every record header whose length fits in the file.
fn fix_checksums(file: &mut [u8]) {
    let mut at = FILE_HEADER_LEN;
    while let Some(header) = file.get(at..at + RECORD_HEADER_LEN) {
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let body = at + RECORD_HEADER_LEN;
        if len > MAX_RECORD_LEN {
            return;
        }
        let Some(crc) = file.get(body..body + len).map(crc32fast::hash) else { return };
        file[at + 4..at + 8].copy_from_slice(&crc.to_be_bytes());
        at = body + len;
    }
}
