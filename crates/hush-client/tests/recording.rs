#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic
//! Encrypted recording end to end (issue 12): native clients in a call through the real relay,
//! recorded by the relay, opened offline by `hush_record::open` with the recorder's private
//! key. The relay's disk holds no plaintext; the output decodes (Debian's `ffprobe`); the
//! wrong key, a missing grant, a tampered or truncated file each get their precise answer.
//!
//! `cargo xtask test` installs Debian's `ffmpeg` (which brings `ffprobe`) before the tests.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hush_client::synth::PLAINTEXT_MARKER;
use hush_client::{Client, ClientEvent};
use hush_participant::Event;
use hush_proto::{ClientMessage, ErrorCode, Grants, Record, RecordAction, Source};
use hush_record::open::{OpenError, OpenOptions, Report, TrackReport, open};
use hush_record::{Manifest, Record as Rec, RecordKind, RecordReader, RecordWriter, TrackKind};
use hush_testkit::client::{Media, next_error, pump, pump_until_decrypted};
use hush_testkit::recording::RecordingOptions;
use hush_testkit::recording::{TestRecorder, files_containing, recordings_in};
use hush_testkit::relay::TestRelay;

const ROOM: &str = "rec-room";

fn recorder_grants() -> Grants {
    Grants {
        publish: true,
        subscribe: true,
        record: true,
        ..Grants::default()
    }
}

async fn relay_recording_to(dir: &Path) -> TestRelay {
    let mut options = RecordingOptions::new(dir.to_path_buf());
    options.sync_interval = Duration::from_millis(100);
    TestRelay::builder()
        .admin()
        .recording(options)
        .start()
        .await
}

/// A relay recording to `disk` with `recorder` set on the room, and in the call alice (who
/// may record) publishing `alice_sources` and bob publishing `bob_sources`.
async fn recorded_call(
    disk: &Path,
    recorder: &TestRecorder,
    alice_sources: &[Source],
    bob_sources: &[Source],
) -> (TestRelay, Client, Client) {
    let relay = relay_recording_to(disk).await;
    relay.set_recorder(ROOM, recorder).await;
    let alice = relay
        .client(ROOM, "alice")
        .grants(recorder_grants())
        .publish(alice_sources)
        .connect()
        .await;
    let bob = relay
        .client(ROOM, "bob")
        .publish(bob_sources)
        .connect()
        .await;
    (relay, alice, bob)
}

async fn record(client: &Client, action: RecordAction) {
    client
        .send_message(ClientMessage::Record(Record { action }))
        .await
        .unwrap();
}

/// Waits (10 s at most) until `client` shows the call as recorded (`on`) or not, by the key
/// exchange's own word; panics otherwise.
async fn shows_recording(client: &mut Client, on: bool) {
    let wait = async {
        while let Some(ev) = client.next_event().await {
            if matches!(ev, ClientEvent::Keys(Event::Recording(x)) if x == on) {
                return;
            }
        }
        panic!("session closed");
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .unwrap_or_else(|_| panic!("never shown as recording={on}"));
}

fn open_with(dir: &Path, recorder: &TestRecorder, relay: &TestRelay, out: &Path) -> Report {
    let options = OpenOptions {
        backend_key: Some(relay.tokens().backend_key()),
    };
    open(dir, recorder.key_pair(), out, &options, &mut |_| {}).expect("the recording opens")
}

fn track<'a>(r: &'a Report, who: &str, kind: &str) -> &'a TrackReport {
    r.tracks
        .iter()
        .find(|t| t.participant == who && t.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} track of {who} in {:#?}", r.tracks))
}

/// `ffprobe`'s count of what it read from `file`'s first stream: packets (`decode: false`) or
/// decoded frames.
fn ffprobe_count(file: &Path, decode: bool) -> u64 {
    let (flag, entry) = if decode {
        ("-count_frames", "nb_read_frames")
    } else {
        ("-count_packets", "nb_read_packets")
    };
    let out = Command::new("ffprobe")
        .args(["-v", "error", flag, "-select_streams", "0", "-show_entries"])
        .arg(format!("stream=codec_name,{entry}"))
        .args(["-of", "default=nw=1"])
        .arg(file)
        .output()
        .expect("ffprobe (Debian's ffmpeg; `cargo xtask test` installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ffprobe {}: {text} {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{entry}=")))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("ffprobe said {text}"))
}

/// Real VP8 (15 fps, keyframe every 15) and Opus (20 ms) frames made by Debian's ffmpeg.
fn real_media(dir: &Path) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let ivf = dir.join("src.ivf");
    let ogg = dir.join("src.ogg");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc=size=160x120:rate=15:duration=6")
        .args(["-c:v", "libvpx", "-g", "15", "-b:v", "200k"])
        .arg(&ivf)
        .args(["-f", "lavfi", "-i", "sine=frequency=440:duration=6"])
        .args([
            "-map",
            "1:a",
            "-c:a",
            "libopus",
            "-b:a",
            "32k",
            "-frame_duration",
            "20",
        ])
        .arg(&ogg)
        .status()
        .expect("ffmpeg (Debian's; `cargo xtask test` installs it)");
    assert!(status.success(), "ffmpeg failed");
    let mut video = Vec::new();
    let mut r = hush_client::ivf::IvfReader::new(std::fs::File::open(&ivf).unwrap()).unwrap();
    while let Some(f) = r.next_frame().unwrap() {
        video.push(f);
    }
    let mut audio = Vec::new();
    let mut p = ogg::reading::PacketReader::new(std::fs::File::open(&ogg).unwrap());
    while let Some(pkt) = p.read_packet().unwrap() {
        if !pkt.data.starts_with(b"OpusHead") && !pkt.data.starts_with(b"OpusTags") {
            audio.push(pkt.data);
        }
    }
    assert!(
        video.len() > 60 && audio.len() > 200,
        "{} {}",
        video.len(),
        audio.len()
    );
    (video, audio)
}

/// Sends the real frames in real time for `secs` (audio every 20 ms, video at 15 fps), in
/// order, looping.
async fn send_real(client: &Client, video: &[Vec<u8>], audio: &[Vec<u8>], secs: u64) {
    let start = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let (mut n, mut v) = (0usize, 0usize);
    while start.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        let a = &audio[n % audio.len()];
        let _ = client
            .send_frame(Source::Microphone, a, Duration::from_millis(20))
            .await;
        // Video frame v is due at v * 200 / 3 ms.
        while v * 200 <= n * 20 * 3 {
            let _ = client
                .send_frame(
                    Source::Camera,
                    &video[v % video.len()],
                    Duration::from_millis(66),
                )
                .await;
            v += 1;
        }
        n += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_call_opens_only_with_the_recorders_key_and_decodes() {
    let disk = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (video, audio) = real_media(work.path());
    let recorder = TestRecorder::new("recorder-1", 7);
    let (relay, alice, mut bob) = recorded_call(
        disk.path(),
        &recorder,
        &[Source::Camera, Source::Microphone],
        &[Source::Microphone],
    )
    .await;
    let got = pump_until_decrypted(&bob, &[&alice], 20, Media::Audio, 10).await;
    assert!(got[0] > 20, "alice decrypts bob: {got:?}");

    record(&alice, RecordAction::Start).await;
    shows_recording(&mut bob, true).await;
    tokio::join!(
        send_real(&alice, &video, &audio, 4),
        pump(&bob, 4, Media::Audio)
    );
    record(&alice, RecordAction::Stop).await;
    shows_recording(&mut bob, false).await;
    // Not recorded any more.
    pump(&bob, 1, Media::Audio).await;

    let recordings = recordings_in(disk.path());
    assert_eq!(recordings.len(), 1, "{recordings:?}");
    let dir = &recordings[0];
    assert_eq!(
        files_containing(disk.path(), PLAINTEXT_MARKER),
        Vec::<std::path::PathBuf>::new(),
        "plaintext on the relay's disk"
    );
    let manifest = Manifest::read(dir).unwrap();
    assert!(manifest.stopped_at_ms.is_some());

    let out = work.path().join("out");
    let report = open_with(dir, &recorder, &relay, &out);
    eprintln!("{report:#?}");
    let (av, aa, ba) = (
        track(&report, "alice", "video"),
        track(&report, "alice", "audio"),
        track(&report, "bob", "audio"),
    );
    for t in [av, aa, ba] {
        assert_eq!(t.refused.get("auth_failed"), None, "{t:?}");
        assert!(t.damage.is_empty(), "{t:?}");
    }
    // An honest recording shows no sign of alteration (the CLI exits 0).
    assert_eq!(report.alterations(), Vec::<String>::new());
    // About 4 s: 60 video frames (the first keyframe may come up to a second in), 200 audio.
    assert!(av.written >= 35, "{av:?}");
    assert!(aa.written >= 150, "{aa:?}");
    assert!(ba.written >= 150, "{ba:?}");
    // The real media decodes: every video frame written, and the audio.
    let (v, a) = (av.output.clone().unwrap(), aa.output.clone().unwrap());
    assert_eq!(ffprobe_count(&v, true), av.written, "{}", v.display());
    assert!(ffprobe_count(&a, true) >= aa.written - 2, "{}", a.display());
    // bob's synthetic frames come back with their plaintext marker, as Ogg packets.
    let b = ba.output.clone().unwrap();
    assert_eq!(ffprobe_count(&b, false), ba.written);
    assert_eq!(files_containing(&out, PLAINTEXT_MARKER), vec![b]);

    // Members checked against another backend's key: everyone is refused, no frame opens, and
    // the report says why (it said nothing before: key refusals were dropped).
    let other = hush_keys::ed25519_dalek::SigningKey::from_bytes(&[0x33; 32]).verifying_key();
    let options = OpenOptions {
        backend_key: Some(other),
    };
    let misjudged = open(
        dir,
        recorder.key_pair(),
        &work.path().join("other"),
        &options,
        &mut |_| {},
    )
    .expect("the recording opens");
    assert_eq!(
        misjudged
            .key_refusals
            .get("member_refused: bad_attestation"),
        Some(&2),
        "{:?}",
        misjudged.key_refusals
    );
    assert!(
        misjudged.tracks.iter().all(|t| t.written == 0),
        "{misjudged:?}"
    );
    assert!(
        report
            .key_refusals
            .keys()
            .all(|k| !k.starts_with("member_refused")),
        "the honest opening refused no member: {:?}",
        report.key_refusals
    );

    // Each track says which of the sender's streams its frames are, as their keys say.
    assert_eq!(av.stream.as_deref(), Some("camera"));
    assert_eq!(aa.stream.as_deref(), Some("microphone"));
    // alice's microphone frames moved into her camera's track: refused (`wrong_stream` where
    // the camera's layout finds their KID, `unknown_kid` where it reads garbage), none
    // written into her video.
    let spliced = work.path().join("spliced");
    copy_recording(dir, &spliced);
    let file_of = |kind: TrackKind| {
        let t = manifest
            .tracks
            .iter()
            .find(|t| t.participant == "alice" && t.kind == kind)
            .unwrap();
        spliced.join(&t.file)
    };
    let (audio_file, video_file) = (file_of(TrackKind::Audio), file_of(TrackKind::Video));
    let mut frames = frames_of(&video_file);
    frames.extend(frames_of(&audio_file));
    frames.sort_by_key(|f| f.at_us);
    rewrite_track(&video_file, &frames);
    rewrite_track(&audio_file, &[]);
    let r = open_with(
        &spliced,
        &recorder,
        &relay,
        &work.path().join("spliced-out"),
    );
    let v = track(&r, "alice", "video");
    assert_eq!(v.frames, av.frames + aa.frames, "{v:?}");
    assert_eq!(v.written, av.written, "{v:?}");
    assert_eq!(v.stream.as_deref(), Some("camera"));

    // Another key: refused, nothing written.
    let stranger = TestRecorder::new("recorder-1", 8);
    let elsewhere = work.path().join("stranger");
    let r = open(
        dir,
        stranger.key_pair(),
        &elsewhere,
        &OpenOptions::default(),
        &mut |_| {},
    );
    assert!(matches!(r, Err(OpenError::WrongKey)), "{r:?}");
    assert!(!elsewhere.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_needs_the_grant_and_a_recorder() {
    let disk = tempfile::tempdir().unwrap();
    let relay = relay_recording_to(disk.path()).await;
    let mut alice = relay
        .client(ROOM, "alice")
        .grants(recorder_grants())
        .connect()
        .await;
    let mut bob = relay.client(ROOM, "bob").connect().await;
    // No recorder set for the room yet.
    record(&alice, RecordAction::Start).await;
    assert_eq!(
        next_error(&mut alice).await,
        Some((ErrorCode::RecorderNotConfigured, false))
    );
    relay.set_recorder(ROOM, &TestRecorder::new("rec", 3)).await;
    // Without the grant.
    record(&bob, RecordAction::Start).await;
    assert_eq!(
        next_error(&mut bob).await,
        Some((ErrorCode::RecordNotAllowed, false))
    );
    record(&bob, RecordAction::Stop).await;
    assert_eq!(
        next_error(&mut bob).await,
        Some((ErrorCode::RecordNotAllowed, false))
    );
    // Stopping what is not running.
    record(&alice, RecordAction::Stop).await;
    assert_eq!(
        next_error(&mut alice).await,
        Some((ErrorCode::NotRecording, false))
    );
    assert!(recordings_in(disk.path()).is_empty(), "nothing written");
    let state = relay
        .admin_request("GET", &format!("/v1/admin/rooms/{ROOM}"), "")
        .await
        .json();
    assert_eq!(state["recording"], false);
    assert_eq!(state["recorder_set"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_and_a_removed_member_are_recorded_for_their_time_only() {
    let disk = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let relay = relay_recording_to(disk.path()).await;
    let recorder = TestRecorder::new("rec", 5);
    relay.set_recorder(ROOM, &recorder).await;
    let alice = relay
        .client(ROOM, "alice")
        .grants(Grants {
            moderator: true,
            ..recorder_grants()
        })
        .publish(&[Source::Microphone])
        .connect()
        .await;
    let dave = relay
        .client(ROOM, "dave")
        .publish(&[Source::Microphone])
        .connect()
        .await;
    pump_until_decrypted(&dave, &[&alice], 10, Media::Audio, 10).await;
    // Started by the app backend this time.
    let r = relay.admin_record(ROOM, true).await;
    assert_eq!(r.status, 200, "{}", r.body);
    tokio::join!(pump(&alice, 2, Media::Audio), pump(&dave, 2, Media::Audio));
    let removed_at = hush_record_now();
    alice
        .send_message(ClientMessage::ForceDisconnect(
            hush_proto::ForceDisconnect {
                participant: hush_proto::ParticipantId::new("dave").unwrap(),
            },
        ))
        .await
        .unwrap();
    // dave keeps sending into a closed session: nothing of it may land.
    tokio::join!(pump(&alice, 1, Media::Audio), pump(&dave, 1, Media::Audio));
    let carol_joined = hush_record_now();
    let carol = relay
        .client(ROOM, "carol")
        .publish(&[Source::Microphone])
        .connect()
        .await;
    tokio::join!(pump(&alice, 3, Media::Audio), pump(&carol, 3, Media::Audio));
    let r = relay.admin_record(ROOM, false).await;
    assert_eq!(r.status, 200, "{}", r.body);

    let dir = &recordings_in(disk.path())[0];
    let report = open_with(dir, &recorder, &relay, &work.path().join("out"));
    eprintln!("{report:#?}");
    // Honest churn (a member removed, one joining) is no alteration: the CLI exits 0.
    assert_eq!(report.alterations(), Vec::<String>::new());
    let (d, c) = (
        track(&report, "dave", "audio"),
        track(&report, "carol", "audio"),
    );
    assert!(d.written >= 60, "{d:?}");
    assert!(c.written >= 60, "{c:?}");
    let (_, dave_last) = d.written_between.unwrap();
    assert!(
        dave_last <= removed_at + 200,
        "dave recorded {} ms after removal",
        dave_last as i64 - removed_at as i64
    );
    let (carol_first, _) = c.written_between.unwrap();
    assert!(
        carol_first >= carol_joined,
        "carol recorded before she joined"
    );
    assert_eq!(
        track(&report, "alice", "audio").refused.get("auth_failed"),
        None
    );
}

fn hush_record_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_and_truncated_files_are_reported_and_the_rest_still_opens() {
    let disk = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let recorder = TestRecorder::new("rec", 9);
    let (relay, alice, bob) =
        recorded_call(disk.path(), &recorder, &[Source::Microphone], &[]).await;
    pump_until_decrypted(&alice, &[&bob], 10, Media::Audio, 10).await;
    record(&alice, RecordAction::Start).await;
    pump(&alice, 3, Media::Audio).await;
    record(&alice, RecordAction::Stop).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let dir = &recordings_in(disk.path())[0];
    let clean = open_with(dir, &recorder, &relay, &work.path().join("clean"));
    let good = track(&clean, "alice", "audio").written;
    assert!(good >= 100, "{clean:#?}");

    // Someone with the disk rewrites frame 50 with a valid checksum: SFrame refuses it.
    let manifest = Manifest::read(dir).unwrap();
    let file = dir.join(&manifest.tracks[0].file);
    let mut frames = Vec::new();
    for r in RecordReader::open(&file, RecordKind::Frames).unwrap() {
        if let Ok(Rec::Frame(f)) = r {
            frames.push(f);
        }
    }
    let n = frames.len();
    let end = frames[50].data.len() - 1;
    frames[50].data[end] ^= 0x55;
    std::fs::remove_file(&file).unwrap();
    let mut w = RecordWriter::create(&file, RecordKind::Frames).unwrap();
    for f in &frames {
        w.append_frame(f).unwrap();
    }
    w.sync().unwrap();
    drop(w);
    let tampered = open_with(dir, &recorder, &relay, &work.path().join("tampered"));
    let t = track(&tampered, "alice", "audio");
    assert_eq!(t.refused.get("auth_failed"), Some(&1), "{t:?}");
    assert_eq!(t.written, good - 1);
    assert_eq!(clean.alterations(), Vec::<String>::new());
    assert_eq!(
        tampered.alterations(),
        vec!["alice audio: 1 frames refused as auth_failed".to_owned()]
    );

    // A flipped byte without a new checksum, and the file cut in its last record.
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    bytes.truncate(bytes.len() - 7);
    std::fs::write(&file, &bytes).unwrap();
    let damaged = open_with(dir, &recorder, &relay, &work.path().join("damaged"));
    let t = track(&damaged, "alice", "audio");
    assert_eq!(t.damage.len(), 2, "{t:?}");
    assert!(t.damage.iter().any(|d| d.contains("checksum")), "{t:?}");
    assert!(
        t.damage
            .iter()
            .any(|d| d.contains("truncated") || d.contains("ends")),
        "{t:?}"
    );
    // Frame 50 (tampered), the one with the flipped byte and the cut one are gone; the rest
    // still opens.
    assert!(t.written >= good - 4 && t.written < good, "{t:?} of {n}");
}

/// A copy of recording `dir` in `to`, for a test to tamper with.
fn copy_recording(dir: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// The frames of track file `file`.
fn frames_of(file: &Path) -> Vec<hush_record::FrameRecord> {
    RecordReader::open(file, RecordKind::Frames)
        .unwrap()
        .filter_map(|r| match r {
            Ok(Rec::Frame(f)) => Some(f),
            _ => None,
        })
        .collect()
}

/// Replaces track file `file` with `frames`.
fn rewrite_track(file: &Path, frames: &[hush_record::FrameRecord]) {
    std::fs::remove_file(file).unwrap();
    let mut w = RecordWriter::create(file, RecordKind::Frames).unwrap();
    for f in frames {
        w.append_frame(f).unwrap();
    }
    w.sync().unwrap();
}

/// The relay writes the recording's manifest, so it names each track's sender; the keys name
/// who sealed each frame. A relay that merges bob's frames into alice's track, or swaps the
/// tracks' labels, gets those frames refused unopened (`wrong_sender`), not written out under
/// alice's name (they were, before the check), and alice's own frames still open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_relabels_recorded_tracks_gets_the_frames_refused_as_wrong_sender() {
    let disk = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let recorder = TestRecorder::new("rec", 11);
    let (relay, alice, bob) = recorded_call(
        disk.path(),
        &recorder,
        &[Source::Microphone],
        &[Source::Microphone],
    )
    .await;
    pump_until_decrypted(&alice, &[&bob], 10, Media::Audio, 10).await;
    record(&alice, RecordAction::Start).await;
    tokio::join!(pump(&alice, 2, Media::Audio), pump(&bob, 2, Media::Audio));
    record(&alice, RecordAction::Stop).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let dir = &recordings_in(disk.path())[0];
    let clean = open_with(dir, &recorder, &relay, &work.path().join("clean"));
    let (a, b) = (
        track(&clean, "alice", "audio").clone(),
        track(&clean, "bob", "audio").clone(),
    );
    assert!(a.written >= 50 && b.written >= 50, "{clean:#?}");
    assert_eq!(a.refused.get("wrong_sender"), None, "{a:?}");
    let manifest = Manifest::read(dir).unwrap();
    let index = |who: &str| {
        manifest
            .tracks
            .iter()
            .position(|t| t.participant == who)
            .unwrap()
    };
    let (ai, bi) = (index("alice"), index("bob"));

    // bob's frames moved into alice's track file, in time order (bob's left empty).
    let merged = work.path().join("merged");
    copy_recording(dir, &merged);
    let (alice_file, bob_file) = (
        merged.join(&manifest.tracks[ai].file),
        merged.join(&manifest.tracks[bi].file),
    );
    let bob_frames = frames_of(&bob_file);
    let mut frames = frames_of(&alice_file);
    frames.extend(bob_frames.iter().cloned());
    frames.sort_by_key(|f| f.at_us);
    rewrite_track(&alice_file, &frames);
    rewrite_track(&bob_file, &[]);
    let r = open_with(&merged, &recorder, &relay, &work.path().join("merged-out"));
    let t = track(&r, "alice", "audio");
    assert_eq!(t.written, a.written, "{t:?}");
    // Every frame of bob's that opened on his own track (the rest predate the recorder's keys).
    assert!(bob_frames.len() as u64 >= b.written);
    assert_eq!(t.refused.get("wrong_sender"), Some(&b.written), "{t:?}");

    // The two tracks' labels swapped (names and sender indexes): nothing is written under
    // either name.
    let swapped = work.path().join("swapped");
    copy_recording(dir, &swapped);
    let mut m = manifest.clone();
    let (fa, fb) = (m.tracks[ai].file.clone(), m.tracks[bi].file.clone());
    m.tracks[ai].file = fb;
    m.tracks[bi].file = fa;
    m.write_atomic(&swapped).unwrap();
    let r = open_with(
        &swapped,
        &recorder,
        &relay,
        &work.path().join("swapped-out"),
    );
    for (who, theirs) in [("alice", &b), ("bob", &a)] {
        let t = track(&r, who, "audio");
        assert_eq!(t.written, 0, "{t:?}");
        assert_eq!(
            t.refused.get("wrong_sender"),
            Some(&theirs.written),
            "{t:?}"
        );
    }

    // bob's track renamed alice's, its sender index left as bob's: the index is bob's key,
    // the name is not bob's.
    let renamed = work.path().join("renamed");
    copy_recording(dir, &renamed);
    let mut m = manifest.clone();
    m.tracks.remove(ai);
    let bj = m
        .tracks
        .iter()
        .position(|t| t.participant == "bob")
        .unwrap();
    m.tracks[bj].participant = "alice".into();
    m.write_atomic(&renamed).unwrap();
    let r = open_with(
        &renamed,
        &recorder,
        &relay,
        &work.path().join("renamed-out"),
    );
    let t = track(&r, "alice", "audio");
    assert_eq!(t.written, 0, "{t:?}");
    assert_eq!(t.refused.get("wrong_sender"), Some(&b.written), "{t:?}");

    // The recording labelled another room's: the recorder's `joined` names the real one, so
    // nothing opens and the report says why (it opened, relabelled, before).
    let moved = work.path().join("moved");
    copy_recording(dir, &moved);
    let mut m = manifest.clone();
    m.room = "another-room".into();
    m.write_atomic(&moved).unwrap();
    let r = open_with(&moved, &recorder, &relay, &work.path().join("moved-out"));
    assert!(r.tracks.iter().all(|t| t.written == 0), "{r:#?}");
    assert!(
        r.alterations().iter().any(|a| a.contains("wrong_room")),
        "{:?}",
        r.alterations()
    );

    // An event with a valid checksum that is no relay message: reported (it vanished).
    let junk = work.path().join("junk");
    copy_recording(dir, &junk);
    let events_file = junk.join(&manifest.events_file);
    let mut events: Vec<hush_record::EventRecord> =
        RecordReader::open(&events_file, RecordKind::Events)
            .unwrap()
            .filter_map(|r| match r {
                Ok(Rec::Event(e)) => Some(e),
                _ => None,
            })
            .collect();
    events.push(hush_record::EventRecord {
        at_us: u64::MAX,
        json: r#"{"not":"a message"}"#.to_owned(),
    });
    std::fs::remove_file(&events_file).unwrap();
    let mut w = RecordWriter::create(&events_file, RecordKind::Events).unwrap();
    for e in &events {
        w.append_event(e).unwrap();
    }
    w.sync().unwrap();
    drop(w);
    let r = open_with(&junk, &recorder, &relay, &work.path().join("junk-out"));
    assert_eq!(r.events_damage.len(), 1, "{:?}", r.events_damage);
    assert_eq!(track(&r, "alice", "audio").written, a.written);

    // The recorder's `joined` left out of the events: nothing opens (`unknown_kid`, a reason an
    // honest recording has too), so the report must say why (it exited 0 before).
    let headless = work.path().join("headless");
    copy_recording(dir, &headless);
    let events_file = headless.join(&manifest.events_file);
    let kept: Vec<hush_record::EventRecord> = events
        .iter()
        .filter(|e| e.at_us != u64::MAX && !e.json.contains(r#""type":"joined""#))
        .cloned()
        .collect();
    assert_eq!(
        kept.len() + 2,
        events.len(),
        "one joined and the junk left out"
    );
    std::fs::remove_file(&events_file).unwrap();
    let mut w = RecordWriter::create(&events_file, RecordKind::Events).unwrap();
    for e in &kept {
        w.append_event(e).unwrap();
    }
    w.sync().unwrap();
    drop(w);
    let r = open_with(
        &headless,
        &recorder,
        &relay,
        &work.path().join("headless-out"),
    );
    assert!(r.tracks.iter().all(|t| t.written == 0), "{r:#?}");
    assert!(!r.joined);
    assert!(
        r.alterations()
            .iter()
            .any(|a| a.contains("joined never arrived")),
        "{:?}",
        r.alterations()
    );
    assert_eq!(clean.alterations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_at_its_size_limit_stops_and_says_why_and_the_call_goes_on() {
    let disk = tempfile::tempdir().unwrap();
    let mut options = RecordingOptions::new(disk.path().to_path_buf());
    options.sync_interval = Duration::from_millis(100);
    options.max_room_bytes = 64 * 1024;
    let relay = TestRelay::builder()
        .admin()
        .recording(options)
        .start()
        .await;
    relay
        .set_recorder(ROOM, &TestRecorder::new("rec", 13))
        .await;
    let alice = relay
        .client(ROOM, "alice")
        .grants(recorder_grants())
        .publish(&[Source::Camera, Source::Microphone])
        .connect()
        .await;
    let mut bob = relay.client(ROOM, "bob").connect().await;
    pump_until_decrypted(&alice, &[&bob], 20, Media::Audio, 10).await;
    record(&alice, RecordAction::Start).await;
    // About 20 kB/s of media: 64 KiB in a few seconds.
    let told = async {
        while let Some(ev) = bob.next_event().await {
            if let ClientEvent::Recording(r) = ev
                && !r.active
            {
                return r.reason;
            }
        }
        None
    };
    let (reason, ()) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(20), told),
        pump(&alice, 8, Media::AudioVideo)
    );
    assert_eq!(
        reason.ok().flatten(),
        Some(hush_proto::RecordingEnd::SizeLimit)
    );
    let dir = &recordings_in(disk.path())[0];
    let manifest = Manifest::read(dir).unwrap();
    assert_eq!(
        manifest.stop_reason,
        Some(hush_record::StopReason::SizeLimit)
    );
    let on_disk: u64 = manifest
        .tracks
        .iter()
        .map(|t| std::fs::metadata(dir.join(&t.file)).unwrap().len())
        .sum();
    assert!(on_disk <= 64 * 1024, "{on_disk} bytes of tracks");
    // The call goes on.
    let from = alice.info().sender_index;
    let before = hush_testkit::client::decrypted_from(&bob, from);
    pump(&alice, 1, Media::Audio).await;
    assert!(hush_testkit::client::decrypted_from(&bob, from) > before + 20);
    let metrics = relay.metrics().await;
    assert!(
        metrics.contains("hush_recording_failures_total{reason=\"size_limit\"} 1"),
        "{metrics}"
    );
}
