//! The `hush-record` command line: `keygen` writes a private key once (mode 0600) and prints
//! the public key; `inspect` shows a recording without a key; `decrypt` with a key that is not
//! the recording's recorder's fails with a clear message and writes nothing; bad input gets a
//! precise error. (Opening a real recording is tested end to end in hush-client's
//! tests/recording.rs, through the same `open` function.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

use hush_record::manifest::{EVENTS_FILE, track_file_name};
use hush_record::{
    EventRecord, FrameRecord, Manifest, RecordKind, RecordWriter, RecorderInfo, TrackInfo,
    TrackKind,
};

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hush-record"))
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A small recording: one audio track of 3 frames, 2 events, stopped cleanly.
fn recording(dir: &Path, recorder_key_b64: &str) {
    let mut events = RecordWriter::create(dir.join(EVENTS_FILE), RecordKind::Events).unwrap();
    for (i, t) in ["joined", "participant_joined"].iter().enumerate() {
        let json = format!(r#"{{"v":1,"type":"{t}"}}"#);
        events
            .append_event(&EventRecord {
                at_us: i as u64 * 1000,
                json,
            })
            .unwrap();
    }
    events.sync().unwrap();
    let mut frames =
        RecordWriter::create(dir.join(track_file_name(0)), RecordKind::Frames).unwrap();
    for i in 0..3u32 {
        let f = FrameRecord {
            at_us: u64::from(i) * 20_000,
            rtp_timestamp: i * 960,
            keyframe: false,
            gap: false,
            data: vec![0x78, 1, 2, 3],
        };
        frames.append_frame(&f).unwrap();
    }
    frames.sync().unwrap();
    let m = Manifest {
        recording_id: "1767225600000-4".into(),
        room: "standup".into(),
        recorder: RecorderInfo {
            participant: "rec".into(),
            identity_key: recorder_key_b64.into(),
        },
        started_at_ms: 1_767_225_600_000,
        stopped_at_ms: Some(1_767_225_601_000),
        stop_reason: Some(hush_record::StopReason::Stopped),
        events_file: EVENTS_FILE.into(),
        tracks: vec![TrackInfo {
            file: track_file_name(0),
            track_id: "0".into(),
            participant: "alice".into(),
            sender_index: 1,
            kind: TrackKind::Audio,
            codec: "opus".into(),
            clock_rate: 48_000,
            added_at_ms: 1_767_225_600_000,
        }],
    };
    m.write_atomic(dir).unwrap();
}

#[test]
fn keygen_writes_a_private_key_once_and_prints_the_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("recorder.key");
    let o = cli(&["keygen", "--out", key.to_str().unwrap()]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let public = out.trim();
    assert_eq!(public.len(), 44, "base64 of 32 bytes: {public}");
    let private = std::fs::read_to_string(&key).unwrap();
    assert_eq!(private.trim().len(), 44);
    assert_ne!(private.trim(), public, "the private key is not printed");
    assert!(
        !err.contains(private.trim()),
        "the private key is not printed"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Never overwritten.
    let again = cli(&["keygen", "--out", key.to_str().unwrap()]);
    assert!(!again.status.success());
    assert_eq!(std::fs::read_to_string(&key).unwrap(), private);
}

#[test]
fn inspect_shows_a_recording_without_a_key() {
    let dir = tempfile::tempdir().unwrap();
    recording(dir.path(), "q83vq83vq83vq83vq83vq83vq83vq83vq83vq83vq80=");
    let o = cli(&["inspect", dir.path().to_str().unwrap()]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("standup"), "{out}");
    assert!(out.contains("reason stopped"), "{out}");
    assert!(out.contains("joined 1, participant_joined 1"), "{out}");
    assert!(out.contains("track-0.hrf"), "{out}");
    let row = out.lines().find(|l| l.starts_with("track-0.hrf")).unwrap();
    assert!(
        row.contains(" 3 ") && row.contains(" 12 "),
        "3 frames, 12 bytes: {row}"
    );
    // Not a recording: a precise error.
    let empty = tempfile::tempdir().unwrap();
    let o = cli(&["inspect", empty.path().to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("manifest"), "{}", text(&o).1);
}

#[test]
fn decrypt_refuses_another_key_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let mine = keys.path().join("mine.key");
    let theirs = keys.path().join("theirs.key");
    let public = text(&cli(&["keygen", "--out", mine.to_str().unwrap()]))
        .0
        .trim()
        .to_owned();
    assert!(
        cli(&["keygen", "--out", theirs.to_str().unwrap()])
            .status
            .success()
    );
    recording(dir.path(), &public);
    let out = keys.path().join("out");
    let o = cli(&[
        "decrypt",
        "--quiet",
        "--insecure-unvouched-members",
        "--key",
        theirs.to_str().unwrap(),
        dir.path().to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = text(&o).1;
    assert!(err.contains("not the recording's recorder key"), "{err}");
    assert!(!out.exists(), "nothing written");
    // A key file that is not one.
    std::fs::write(keys.path().join("bad.key"), "not base64!").unwrap();
    let o = cli(&[
        "decrypt",
        "--insecure-unvouched-members",
        "--key",
        keys.path().join("bad.key").to_str().unwrap(),
        dir.path().to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("not a recorder key"), "{}", text(&o).1);
    // Neither the backend's key nor the explicit opt-out: refused before anything is read (a
    // relay could have written the whole recording with a member of its own).
    let o = cli(&[
        "decrypt",
        "--quiet",
        "--key",
        mine.to_str().unwrap(),
        dir.path().to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "a usage error");
    assert!(text(&o).1.contains("--backend-key"), "{}", text(&o).1);
    assert!(!out.exists(), "nothing written");
    // The right key opens it: the synthetic frames are no SFrame, so each is refused and
    // counted, the run finishes, and its status says the recording was altered (3; 2 is a
    // usage error).
    let o = cli(&[
        "decrypt",
        "--quiet",
        "--insecure-unvouched-members",
        "--key",
        mine.to_str().unwrap(),
        dir.path().to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    let (stdout, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(stdout.contains("alice"), "{stdout}");
    assert!(stdout.contains("members not checked"), "{stdout}");
    assert!(
        err.contains("warning: --insecure-unvouched-members"),
        "{err}"
    );
    assert!(err.contains("altered or damaged"), "{err}");
    assert!(err.contains("frames refused as"), "{err}");
}
