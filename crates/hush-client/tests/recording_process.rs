#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic
//! Encrypted recording against the relay *binary* (issue 12): a recording cut by `kill -9`
//! opens up to its last sync, and a full disk (a 256 KiB tmpfs in the relay's own mount
//! namespace) stops the recording with `disk_full` told to every participant while the call
//! goes on.
//!
//! The relay binary is the workspace's `target/<profile>/hush-relay`, which `cargo test
//! --workspace` builds with the relay's own tests (`cargo build -p hush-relay` otherwise).

use std::time::Duration;

use hush_client::{Client, ClientEvent};
use hush_participant::Event;
use hush_proto::{Grants, RecordingEnd, Source};
use hush_record::Manifest;
use hush_record::open::{OpenOptions, open};
use hush_testkit::client::{Media, decrypted_from, pump, pump_until_decrypted};
use hush_testkit::recording::{
    TestRecorder, admin_record_at, process_config, recordings_in, set_recorder_at,
};
use hush_testkit::relay::{ADMIN_TOKEN, RelayProcess, relay_binary};
use hush_testkit::tokens::Tokens;

const ROOM: &str = "proc-room";

async fn call(relay: &RelayProcess, tokens: &Tokens) -> (Client, Client) {
    let alice = relay
        .client(tokens, ROOM, "alice")
        .grants(Grants {
            publish: true,
            subscribe: true,
            record: true,
            ..Grants::default()
        })
        .publish(&[Source::Camera, Source::Microphone])
        .connect()
        .await;
    let bob = relay
        .client(tokens, ROOM, "bob")
        .publish(&[Source::Microphone])
        .connect()
        .await;
    let got = pump_until_decrypted(&alice, &[&bob], 20, Media::Audio, 10).await;
    assert!(got[0] > 20, "bob decrypts alice: {got:?}");
    (alice, bob)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_cut_by_kill_9_opens_up_to_its_last_sync() {
    let work = tempfile::tempdir().unwrap();
    let disk = work.path().join("recordings");
    let tokens = Tokens::default();
    let config = process_config(work.path(), &tokens);
    let mut relay = RelayProcess::spawn(
        relay_binary(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--recording-dir",
            disk.to_str().unwrap(),
            "--recording-sync-ms",
            "500",
        ],
    );
    let recorder = TestRecorder::new("rec", 11);
    set_recorder_at(relay.addr(), ADMIN_TOKEN, &tokens, ROOM, &recorder).await;
    let (alice, bob) = call(&relay, &tokens).await;
    let r = admin_record_at(relay.addr(), ADMIN_TOKEN, ROOM, true).await;
    assert_eq!(r.status, 200, "{}", r.body);
    tokio::join!(
        pump(&alice, 4, Media::AudioVideo),
        pump(&bob, 4, Media::Audio)
    );
    relay.kill();

    let dir = &recordings_in(&disk)[0];
    let manifest = Manifest::read(dir).unwrap();
    assert_eq!(manifest.stopped_at_ms, None, "it never stopped cleanly");
    let options = OpenOptions {
        backend_key: Some(tokens.backend_key()),
    };
    let out = work.path().join("out");
    let report = open(dir, recorder.key_pair(), &out, &options, &mut |_| {}).unwrap();
    eprintln!("{report:#?}");
    // 4 s recorded, synced every 0.5 s: at least 3 s of it is on disk.
    for t in &report.tracks {
        assert_eq!(t.refused.get("auth_failed"), None, "{t:?}");
        // At most the record being written when the process died is cut.
        assert!(t.damage.len() <= 1, "{t:?}");
    }
    let audio: Vec<_> = report.tracks.iter().filter(|t| t.kind == "audio").collect();
    assert_eq!(audio.len(), 2, "{report:#?}");
    for t in audio {
        assert!(t.written >= 140, "{t:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_recording_with_disk_full_and_the_call_goes_on() {
    let work = tempfile::tempdir().unwrap();
    let disk = work.path().join("small-disk");
    std::fs::create_dir_all(&disk).unwrap();
    let tokens = Tokens::default();
    let config = process_config(work.path(), &tokens);
    // The relay runs in a mount namespace of its own with a 256 KiB tmpfs as its recording
    // directory (gone with it; nothing on this machine's mounts changes).
    let mount = "mount -t tmpfs -o size=256k hush-test \"$0\" && exec \"$@\"";
    let wrapper = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        mount,
        disk.to_str().unwrap(),
    ];
    let relay = RelayProcess::spawn_wrapped(
        &wrapper,
        relay_binary(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--recording-dir",
            disk.to_str().unwrap(),
        ],
    );
    let recorder = TestRecorder::new("rec", 12);
    set_recorder_at(relay.addr(), ADMIN_TOKEN, &tokens, ROOM, &recorder).await;
    let (alice, mut bob) = call(&relay, &tokens).await;
    let r = admin_record_at(relay.addr(), ADMIN_TOKEN, ROOM, true).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Video fills 256 KiB in seconds; bob is told why the recording stopped.
    let told = async {
        let mut shown_off = false;
        let mut reason = None;
        while let Some(ev) = bob.next_event().await {
            match ev {
                ClientEvent::Recording(r) if !r.active => reason = r.reason,
                ClientEvent::Keys(Event::Recording(false)) => shown_off = true,
                _ => {}
            }
            if shown_off && reason.is_some() {
                return reason;
            }
        }
        None
    };
    let (reason, ()) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(30), told),
        pump(&alice, 12, Media::AudioVideo)
    );
    assert_eq!(reason.ok().flatten(), Some(RecordingEnd::DiskFull));
    // The call goes on: bob still decrypts alice.
    let before = decrypted_from(&bob, alice.info().sender_index);
    pump(&alice, 2, Media::Audio).await;
    let after = decrypted_from(&bob, alice.info().sender_index);
    assert!(after > before + 50, "{before} -> {after}");
    let metrics = reqwest_metrics(&relay).await;
    assert!(
        metrics.contains("hush_recording_failures_total{reason=\"disk_full\"} 1"),
        "{metrics}"
    );
}

async fn reqwest_metrics(relay: &RelayProcess) -> String {
    let r = hush_testkit::http::get(relay.addr(), "/metrics").await;
    assert_eq!(r.status, 200);
    r.body
}
