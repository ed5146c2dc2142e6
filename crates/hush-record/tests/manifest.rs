//! `manifest.json`: round trip, atomic replacement, and every refusal of a foreign or tampered
//! manifest, precisely.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::io;

use hush_record::manifest::{
    EVENTS_FILE, MANIFEST_FILE, MANIFEST_TMP_FILE, MAX_MANIFEST_LEN, is_safe_file_name,
    track_file_name,
};
use hush_record::{
    EventRecord, FormatError, FrameRecord, Manifest, Record, RecordKind, RecordWriter,
    RecorderInfo, RecordingDir, StopReason, TrackInfo, TrackKind,
};
use serde_json::{Value, json};

const KEY: &str = "q83vq83vq83vq83vq83vq83vq83vq83vq83vq83vq80=";

fn track(n: u32, kind: TrackKind) -> TrackInfo {
    TrackInfo {
        file: track_file_name(n),
        track_id: format!("t{n}"),
        participant: "p-alice".into(),
        sender_index: n + 3,
        kind,
        codec: if kind == TrackKind::Audio {
            "opus"
        } else {
            "vp8"
        }
        .into(),
        clock_rate: if kind == TrackKind::Audio {
            48_000
        } else {
            90_000
        },
        added_at_ms: 1_767_225_600_120 + u64::from(n),
    }
}

fn manifest() -> Manifest {
    Manifest {
        recording_id: "rec-5f2c".into(),
        room: "demo".into(),
        recorder: RecorderInfo {
            participant: "p-recorder".into(),
            identity_key: KEY.into(),
        },
        started_at_ms: 1_767_225_600_000,
        stopped_at_ms: Some(1_767_229_200_000),
        stop_reason: Some(StopReason::DiskFull),
        events_file: EVENTS_FILE.into(),
        tracks: vec![track(0, TrackKind::Audio), track(1, TrackKind::Video)],
    }
}

fn json_of(m: &Manifest) -> Value {
    serde_json::from_slice(&m.to_json().unwrap()).unwrap()
}

fn parse(v: &Value) -> Result<Manifest, FormatError> {
    Manifest::from_json(&serde_json::to_vec(v).unwrap())
}

#[test]
fn round_trips_through_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest();
    m.write_atomic(dir.path()).unwrap();
    assert_eq!(Manifest::read(dir.path()).unwrap(), m);
    assert!(!dir.path().join(MANIFEST_TMP_FILE).exists());

    // Replacing it: the second one wins, a stale temporary file is overwritten.
    fs::write(
        dir.path().join(MANIFEST_TMP_FILE),
        b"half a manifest from a crash",
    )
    .unwrap();
    let mut running = m.clone();
    running.stopped_at_ms = None;
    running.stop_reason = None;
    running.tracks.truncate(1);
    running.write_atomic(dir.path()).unwrap();
    assert_eq!(Manifest::read(dir.path()).unwrap(), running);
    assert!(!dir.path().join(MANIFEST_TMP_FILE).exists());
}

#[test]
fn json_has_the_documented_fields() {
    let v = json_of(&manifest());
    assert_eq!(v["format"], "hush-recording");
    assert_eq!(v["version"], 1);
    assert_eq!(v["recorder"]["identity_key"], KEY);
    assert_eq!(v["stop_reason"], "disk_full");
    assert_eq!(v["tracks"][1]["kind"], "video");
    assert_eq!(v["tracks"][1]["file"], "track-1.hrf");
    assert_eq!(v["tracks"][0]["clock_rate"], 48_000);
    let mut running = manifest();
    running.stopped_at_ms = None;
    running.stop_reason = None;
    let v = json_of(&running);
    assert_eq!(v["stopped_at_ms"], Value::Null);
    assert_eq!(v["stop_reason"], Value::Null);
}

#[test]
fn stop_reasons_are_snake_case() {
    let all = [
        (StopReason::Stopped, "stopped"),
        (StopReason::DiskFull, "disk_full"),
        (StopReason::WriteError, "write_error"),
        (StopReason::SizeLimit, "size_limit"),
        (StopReason::RoomClosed, "room_closed"),
        (StopReason::Shutdown, "shutdown"),
        (StopReason::RecorderRemoved, "recorder_removed"),
    ];
    for (reason, name) in all {
        assert_eq!(serde_json::to_value(reason).unwrap(), name);
        let mut v = json_of(&manifest());
        v["stop_reason"] = name.into();
        assert_eq!(parse(&v).unwrap().stop_reason, Some(reason));
    }
    let mut v = json_of(&manifest());
    v["stop_reason"] = "bored".into();
    assert!(matches!(parse(&v), Err(FormatError::Json(_))));
}

#[test]
fn unknown_fields_are_ignored_and_optional_ones_may_be_absent() {
    let mut v = json_of(&manifest());
    v["future"] = json!({"nested": [1, 2]});
    v["tracks"][0]["simulcast_layer"] = 2.into();
    v["recorder"]["device"] = "x".into();
    let obj = v.as_object_mut().unwrap();
    obj.remove("stopped_at_ms");
    obj.remove("stop_reason");
    let m = parse(&v).unwrap();
    assert_eq!(m.stopped_at_ms, None);
    assert_eq!(m.stop_reason, None);
    assert_eq!(m.tracks, manifest().tracks);
}

#[test]
fn another_format_is_refused() {
    let mut v = json_of(&manifest());
    v["format"] = "hush-recording-v2".into();
    assert!(matches!(
        parse(&v),
        Err(FormatError::UnknownFormat { found: Some(f) }) if f == "hush-recording-v2"
    ));
    v["format"] = "x".repeat(10_000).into();
    assert!(matches!(
        parse(&v),
        Err(FormatError::UnknownFormat { found: Some(f) }) if f.len() == 64
    ));
    v["format"] = 1.into();
    assert!(matches!(
        parse(&v),
        Err(FormatError::UnknownFormat { found: None })
    ));
    v.as_object_mut().unwrap().remove("format");
    assert!(matches!(
        parse(&v),
        Err(FormatError::UnknownFormat { found: None })
    ));
}

#[test]
fn another_version_is_refused_before_the_fields_are_read() {
    // A version-2 manifest may change anything: refused as a version, not as a shape.
    let v2 = json!({"format": "hush-recording", "version": 2, "tracks": "elsewhere"});
    assert!(matches!(
        parse(&v2),
        Err(FormatError::UnsupportedVersion { found: Some(2) })
    ));
    let mut v = json_of(&manifest());
    for bad in [json!(0), json!("1"), json!(1.5), json!(-1), Value::Null] {
        v["version"] = bad.clone();
        let err = parse(&v).unwrap_err();
        let want_found = bad.as_u64();
        assert!(
            matches!(err, FormatError::UnsupportedVersion { found } if found == want_found),
            "{bad}: {err:?}"
        );
    }
    v.as_object_mut().unwrap().remove("version");
    assert!(matches!(
        parse(&v),
        Err(FormatError::UnsupportedVersion { found: None })
    ));
}

#[test]
fn file_names_that_could_leave_the_directory_are_refused() {
    let bad = [
        "",
        ".",
        "..",
        "../manifest.json",
        "../../etc/passwd",
        "/etc/passwd",
        "a/b.hrf",
        "a\\b.hrf",
        "a..b",
        ".hidden.hrf",
        "track 0.hrf",
        "trąck.hrf",
        "track\0.hrf",
        &"a".repeat(65),
    ];
    for name in bad {
        assert!(!is_safe_file_name(name), "{name:?}");
        let mut v = json_of(&manifest());
        v["events_file"] = name.into();
        assert!(
            matches!(
                parse(&v),
                Err(FormatError::BadFileName {
                    field: "events_file",
                    ..
                })
            ),
            "events_file {name:?}"
        );
        let mut v = json_of(&manifest());
        v["tracks"][1]["file"] = name.into();
        assert!(
            matches!(
                parse(&v),
                Err(FormatError::BadFileName {
                    field: "tracks[].file",
                    ..
                })
            ),
            "file {name:?}"
        );
    }
    for good in ["events.hrf", "track-0.hrf", "T_9.x-y", &"a".repeat(64)] {
        assert!(is_safe_file_name(good), "{good:?}");
    }
}

#[test]
fn one_file_named_twice_is_refused() {
    let mut v = json_of(&manifest());
    v["tracks"][1]["file"] = "track-0.hrf".into();
    assert!(matches!(
        parse(&v),
        Err(FormatError::DuplicateFile { name }) if name == "track-0.hrf"
    ));
    let mut v = json_of(&manifest());
    v["events_file"] = "track-1.hrf".into();
    assert!(matches!(parse(&v), Err(FormatError::DuplicateFile { .. })));
}

#[test]
fn identity_key_must_be_base64_of_32_bytes() {
    for bad in [
        "",
        "q83v",
        "q83vq83vq83vq83vq83vq83vq83vq83vq83vq83vq80", // no padding
        "q83vq83vq83vq83vq83vq83vq83vq83vq83vq83vq8_=", // URL-safe alphabet
        "q83vq83vq83vq83vq83vq83vq83vq83vq83vq83vq83vq80=", // 35 bytes
    ] {
        let mut v = json_of(&manifest());
        v["recorder"]["identity_key"] = bad.into();
        assert!(
            matches!(parse(&v), Err(FormatError::BadIdentityKey)),
            "{bad:?}"
        );
    }
}

#[test]
fn not_json_too_large_or_missing_is_refused() {
    assert!(matches!(
        Manifest::from_json(b"\xef\xbb\xbf{not json"),
        Err(FormatError::Json(_))
    ));
    assert!(matches!(
        Manifest::from_json(b"[1,2]"),
        Err(FormatError::Json(_))
    ));
    assert!(matches!(
        Manifest::from_json(b""),
        Err(FormatError::Json(_))
    ));
    // Right format and version, wrong shape.
    let mut v = json_of(&manifest());
    v["started_at_ms"] = "yesterday".into();
    assert!(matches!(parse(&v), Err(FormatError::Json(_))));
    v.as_object_mut().unwrap().remove("tracks");
    assert!(matches!(parse(&v), Err(FormatError::Json(_))));

    let mut v = json_of(&manifest());
    v["padding"] = "x".repeat(MAX_MANIFEST_LEN).into();
    let big = serde_json::to_vec(&v).unwrap();
    assert!(matches!(
        Manifest::from_json(&big),
        Err(FormatError::TooLarge)
    ));
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(MANIFEST_FILE), &big).unwrap();
    assert!(matches!(
        Manifest::read(dir.path()),
        Err(FormatError::TooLarge)
    ));

    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        Manifest::read(empty.path()),
        Err(FormatError::Io(e)) if e.kind() == io::ErrorKind::NotFound
    ));
}

#[test]
fn write_atomic_refuses_what_read_would_refuse_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let good = manifest();
    good.write_atomic(dir.path()).unwrap();
    let mut bad = manifest();
    bad.tracks[0].file = "../escape.hrf".into();
    let err = bad.write_atomic(dir.path()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(matches!(
        bad.validate(),
        Err(FormatError::BadFileName { .. })
    ));
    assert_eq!(Manifest::read(dir.path()).unwrap(), good);
    assert!(!dir.path().join(MANIFEST_TMP_FILE).exists());
}

#[test]
fn recording_dir_opens_the_files_the_manifest_names() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest();
    let mut events =
        RecordWriter::create(dir.path().join(EVENTS_FILE), RecordKind::Events).unwrap();
    events
        .append_event(&EventRecord {
            at_us: 1,
            json: "{}".into(),
        })
        .unwrap();
    events.sync().unwrap();
    let frame = FrameRecord {
        at_us: 2,
        rtp_timestamp: 3,
        keyframe: true,
        gap: false,
        data: vec![1],
    };
    for t in &m.tracks {
        let mut w = RecordWriter::create(dir.path().join(&t.file), RecordKind::Frames).unwrap();
        w.append_frame(&frame).unwrap();
        w.sync().unwrap();
    }
    m.write_atomic(dir.path()).unwrap();

    let rec = RecordingDir::open(dir.path()).unwrap();
    assert_eq!(rec.manifest(), &m);
    assert_eq!(rec.dir(), dir.path());
    assert_eq!(rec.events_path(), dir.path().join("events.hrf"));
    assert_eq!(rec.track_path(1), Some(dir.path().join("track-1.hrf")));
    assert_eq!(rec.track_path(2), None);
    assert_eq!(rec.open_events().unwrap().count(), 1);
    let got: Vec<_> = rec.open_track(1).unwrap().unwrap().collect();
    assert!(matches!(&got[..], [Ok(Record::Frame(f))] if *f == frame));
    assert!(rec.open_track(2).is_none());
    // A listed file that is gone is an I/O error, NotFound.
    fs::remove_file(dir.path().join("track-0.hrf")).unwrap();
    assert!(matches!(
        rec.open_track(0).unwrap(),
        Err(hush_record::RecordError::Io(e)) if e.kind() == io::ErrorKind::NotFound
    ));

    let tampered = tempfile::tempdir().unwrap();
    let mut v = json_of(&m);
    v["events_file"] = "../../etc/passwd".into();
    fs::write(
        tampered.path().join(MANIFEST_FILE),
        serde_json::to_vec(&v).unwrap(),
    )
    .unwrap();
    assert!(matches!(
        RecordingDir::open(tampered.path()),
        Err(FormatError::BadFileName { .. })
    ));
}
