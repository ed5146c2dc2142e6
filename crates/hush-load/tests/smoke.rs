#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic
//! `hush-load run` for a few seconds with a small room against the relay binary: the report is
//! complete and sane (everyone joined, packets forwarded, latency measured after decryption,
//! little loss, no decrypt failure, the relay's CPU and memory read, both references run and
//! the ratios computed). Speed is not asserted: figures go to the benchmark, not to a test.

use std::process::Command;

use serde_json::Value;

/// One room of three for three seconds after a two-second warm-up.
const SMALL: [&str; 8] = [
    "--rooms",
    "1",
    "--per-room",
    "3",
    "--seconds",
    "3",
    "--warmup",
    "2",
];

/// `hush-load run SMALL ARGS --relay-bin <the relay next to it> --json <tmp>`: its stdout and
/// report.
fn run_load(args: &[&str]) -> (String, Value) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let exe = env!("CARGO_BIN_EXE_hush-load");
    let relay = std::path::Path::new(exe).with_file_name("hush-relay");
    assert!(
        relay.exists(),
        "{} is missing: cargo build -p hush-relay (cargo test --workspace builds it)",
        relay.display()
    );
    let out = Command::new(exe)
        .arg("run")
        .args(SMALL)
        .args(args)
        .arg("--relay-bin")
        .arg(&relay)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    eprintln!("{stdout}");
    let report = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    (stdout, report)
}

#[test]
fn a_short_run_reports_every_figure() {
    let exe = env!("CARGO_BIN_EXE_hush-load");
    let relay = std::path::Path::new(exe).with_file_name("hush-relay");
    let relay = relay.to_str().unwrap();
    // The same binary as the "before" build: both phases run and are compared.
    let (stdout, r) = run_load(&["--video-kbps", "200", "--before-bin", relay]);
    assert!(stdout.contains("relay CPU per packet"), "{stdout}");
    let relay = &r["relay"];
    let clients = &relay["clients"];
    let num = |v: &Value| v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"));
    assert_eq!(clients["joined"], 3, "{r:#}");
    assert!(num(&clients["sent_frames"]) > 100.0, "{r:#}");
    assert!(num(&clients["received_frames"]) > 100.0, "{r:#}");
    assert!(num(&clients["loss"]) < 0.2, "{r:#}");
    assert_eq!(clients["decrypt_failures"], 0, "{r:#}");
    let lat = &clients["latency_us"];
    assert!(
        num(&lat["count"]) > 100.0 && num(&lat["p50"]) > 0.0,
        "{r:#}"
    );
    assert!(num(&lat["p50"]) <= num(&lat["p95"]) && num(&lat["p95"]) <= num(&lat["p99"]));
    assert!(num(&clients["join_ms"]["count"]) == 3.0, "{r:#}");
    assert!(num(&relay["forwarded_packets"]) > 100.0, "{r:#}");
    // At least the fixed header of each packet per second forwarded.
    assert!(
        num(&relay["forwarded_bytes_per_sec"]) > 12.0 * num(&relay["forwarded_pps"]),
        "{r:#}"
    );
    assert!(num(&relay["cpu_us_per_packet"]) > 0.0, "{r:#}");
    assert!(num(&relay["rss_loaded_kb"]) > 1000.0, "{r:#}");
    assert!(relay["rss_per_participant_kb"].is_number(), "{r:#}");
    let share = num(&relay["generator_machine_share"]);
    assert!(share > 0.0 && share <= 1.5, "{r:#}");
    for reference in ["plain", "srtp", "str0m"] {
        let m = &r[reference]["measured"];
        assert!(num(&m["forwarded_packets"]) > 100.0, "{reference}: {r:#}");
        assert!(
            num(&m["forwarded_packets"]) >= 0.9 * num(&m["expected_packets"]),
            "{reference}: {r:#}"
        );
        assert!(num(&m["latency_us"]["count"]) > 100.0, "{reference}: {r:#}");
        assert!(
            num(&r[reference]["cpu_us_per_packet"]) >= 0.0,
            "{reference}: {r:#}"
        );
    }
    assert!(
        num(&r["ratio_to_srtp"]) > 0.0 && num(&r["ratio_to_plain"]) > 0.0,
        "{r:#}"
    );
    assert!(
        num(&r["ratio_to_str0m"]) > 0.0 && num(&r["str0m_ratio_to_srtp"]) > 0.0,
        "{r:#}"
    );
    assert!(
        stdout.contains("media stack: relay (webrtc-rs)"),
        "{stdout}"
    );
    let before = &r["before"];
    assert_eq!(before["clients"]["joined"], 3, "{r:#}");
    assert!(num(&before["forwarded_packets"]) > 100.0, "{r:#}");
    assert!(num(&r["before_ratio_to_srtp"]) > 0.0, "{r:#}");
    let phases: Vec<&str> = r["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["binary"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["before", "after"], "{r:#}");
    assert!(num(&r["after_to_before"]["cpu_per_packet"]) > 0.0, "{r:#}");
    assert!(
        stdout.contains("after / before: CPU per packet"),
        "{stdout}"
    );
}

#[test]
fn bad_arguments_are_refused_with_a_reason() {
    let exe = env!("CARGO_BIN_EXE_hush-load");
    let out = Command::new(exe)
        .args(["forwarder", "--mode", "carrier-pigeon"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("plain, srtp or str0m"));
    let out = Command::new(exe)
        .args([
            "run",
            "--relay-bin",
            "/nonexistent/hush-relay",
            "--seconds",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    // Simulcast sends at most three encodings.
    let out = Command::new(exe)
        .args(["run", "--simulcast", "4", "--seconds", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--simulcast"));
    // A "before" binary needs a relay started here.
    let out = Command::new(exe)
        .args([
            "run",
            "--url",
            "wss://relay.example/v1/rtc",
            "--tokens",
            "t.txt",
        ])
        .args(["--before-bin", "/usr/bin/true"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--before-bin") && stderr.contains("--url"),
        "{stderr}"
    );
}

#[test]
fn a_simulcast_run_forwards_one_encoding_per_subscriber() {
    let (stdout, r) = run_load(&["--video-kbps", "400", "--simulcast", "3", "--no-baseline"]);
    assert!(stdout.contains("in 3 simulcast encodings"), "{stdout}");
    let num = |v: &Value| v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"));
    assert_eq!(r["plan"]["simulcast"], 3, "{r:#}");
    let clients = &r["relay"]["clients"];
    assert_eq!(clients["joined"], 3, "{r:#}");
    assert_eq!(clients["decrypt_failures"], 0, "{r:#}");
    assert!(num(&clients["received_frames"]) > 100.0, "{r:#}");
    // Each publisher sends every frame three times (one per encoding); each subscriber gets
    // each frame once: had the relay forwarded more than one encoding, frames would arrive
    // more often than they were sent (a negative loss).
    let loss = num(&clients["loss"]);
    assert!((-0.01..0.2).contains(&loss), "loss {loss}: {r:#}");
}
