//! The `hush-relay` binary itself, on 127.0.0.1: `--dev`, `--audit-file`, `--log-format json`,
//! `/healthz`, `/metrics`, and that neither the audit trail nor the log ever holds a token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Client, STEP, join_message};
use hush_proto::{ErrorCode, ServerMessage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Ends the child (by its own handle) however the test ends.
struct Relay {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_relay(args: &[&str]) -> Relay {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hush-relay"))
        .args([
            "--dev",
            "--bind",
            "127.0.0.1:0",
            "--static-dir",
            "/nonexistent",
        ])
        .args(args)
        // Debug everywhere, our crates and webrtc-rs included: still no token may show up.
        .env("RUST_LOG", "debug")
        .env_remove("HUSH_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let keep = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("hush-relay listening on http://") {
                let addr = rest.split('/').next().unwrap_or_default().to_owned();
                let _ = addr_tx.send(addr);
            }
            keep.lock().unwrap().push(line);
        }
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the relay did not start")
        .parse()
        .unwrap();
    Relay {
        child,
        addr,
        stderr: lines,
    }
}

async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(STEP, stream.read_to_string(&mut response))
        .await
        .unwrap()
        .unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

async fn dev_token(addr: SocketAddr, room: &str) -> String {
    let (status, body) = http(
        addr,
        "POST",
        "/dev/token",
        &format!("{{\"room\":\"{room}\"}}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
    json["token"].as_str().unwrap().to_owned()
}

/// Reads `path` until `want` lines are there (bounded).
async fn read_lines(path: &std::path::Path, want: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for _ in 0..100 {
        lines = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        if lines.len() >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    lines
}

#[tokio::test]
async fn the_binary_audits_joins_and_refusals_without_tokens_and_logs_json() {
    let dir = std::env::temp_dir().join(format!("hush-binary-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let audit_path = dir.join("audit.jsonl");
    let _ = std::fs::remove_file(&audit_path);
    let relay = spawn_relay(&[
        "--audit-file",
        audit_path.to_str().unwrap(),
        "--log-format",
        "json",
    ]);
    let addr = relay.addr;
    assert_eq!(
        http(addr, "GET", "/healthz", "").await,
        (200, "ok\n".into())
    );

    // A join with a dev token.
    let token = dev_token(addr, "secret-room").await;
    let mut c = Client::connect(addr).await;
    c.send(&join_message(token.clone(), None)).await;
    assert!(matches!(c.recv().await, Some(ServerMessage::Joined(_))));
    // The same token again: single use, refused.
    let mut replay = Client::connect(addr).await;
    replay.send(&join_message(token.clone(), None)).await;
    match replay.recv().await {
        Some(ServerMessage::Error(e)) => assert_eq!(e.code, ErrorCode::TokenReplayed),
        other => panic!("expected token_replayed, got {other:?}"),
    }
    // A tampered token: the signature fails.
    let mut forged = token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let mut bad = Client::connect(addr).await;
    bad.send(&join_message(forged.clone(), None)).await;
    match bad.recv().await {
        Some(ServerMessage::Error(e)) => assert_eq!(e.code, ErrorCode::TokenBadSignature),
        other => panic!("expected token_bad_signature, got {other:?}"),
    }

    // /metrics is on the (loopback) main listener and counted the join and the refusals.
    let (status, text) = http(addr, "GET", "/metrics", "").await;
    assert_eq!(status, 200);
    assert!(text.contains("hush_joins_total 1\n"), "{text}");
    assert!(text.contains("hush_refusals_total{code=\"token_replayed\"} 1\n"));
    assert!(text.contains("hush_refusals_total{code=\"token_bad_signature\"} 1\n"));

    // The audit trail: one JSON object per line; the join and both refusals, no token, no id.
    let lines = read_lines(&audit_path, 3).await;
    let events: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let kinds: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_owned(),
                e["code"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(
        kinds.contains(&("joined".into(), String::new())),
        "{kinds:?}"
    );
    assert!(kinds.contains(&("join_refused".into(), "token_replayed".into())));
    assert!(kinds.contains(&("join_refused".into(), "token_bad_signature".into())));
    let signature = token.rsplit('.').next().unwrap();
    for line in &lines {
        assert!(
            !line.contains(signature) && !line.contains(&forged),
            "{line}"
        );
        assert!(
            !line.contains("secret-room") && !line.contains("dev-"),
            "{line}"
        );
    }

    // The log (stderr) is JSON lines (after the banner) and holds no token either.
    drop(c);
    drop(replay);
    drop(bad);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = relay.stderr.lock().unwrap().clone();
    let json_lines: Vec<&String> = log.iter().filter(|l| l.starts_with('{')).collect();
    assert!(!json_lines.is_empty(), "no JSON log lines: {log:?}");
    for line in &json_lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(value["level"].is_string(), "{line}");
    }
    for line in &log {
        assert!(!line.contains(signature), "token in the log: {line}");
        assert!(!line.contains(&forged), "token in the log: {line}");
        assert!(
            !line.contains("\"event\":\"joined\""),
            "audit line in the log: {line}"
        );
    }
    drop(relay);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_binary_refuses_bad_limits_and_serves_metrics_on_its_own_bind() {
    let dir = std::env::temp_dir().join(format!("hush-binary-limits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[limits]\nmessage_rate = 0\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hush-relay"))
        .args(["--bind", "127.0.0.1:0", "--config", bad.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("[limits] message_rate"), "{stderr}");

    // A room of at most one participant, from the file.
    let good = dir.join("good.toml");
    std::fs::write(&good, "[limits]\nmax_participants_per_room = 1\n").unwrap();
    let metrics_port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let metrics_bind = format!("127.0.0.1:{metrics_port}");
    let relay = spawn_relay(&[
        "--config",
        good.to_str().unwrap(),
        "--metrics-bind",
        &metrics_bind,
    ]);
    let addr = relay.addr;
    let mut first = Client::connect(addr).await;
    first
        .send(&join_message(dev_token(addr, "small").await, None))
        .await;
    assert!(matches!(first.recv().await, Some(ServerMessage::Joined(_))));
    let mut second = Client::connect(addr).await;
    second
        .send(&join_message(dev_token(addr, "small").await, None))
        .await;
    match second.recv().await {
        Some(ServerMessage::Error(e)) => assert_eq!(e.code, ErrorCode::RoomFull),
        other => panic!("expected room_full, got {other:?}"),
    }
    // /metrics moved to its own listener.
    assert_eq!(http(addr, "GET", "/metrics", "").await.0, 404);
    let metrics_addr: SocketAddr = metrics_bind.parse().unwrap();
    let (status, text) = http(metrics_addr, "GET", "/metrics", "").await;
    assert_eq!(status, 200);
    assert!(
        text.contains("hush_refusals_total{code=\"room_full\"} 1\n"),
        "{text}"
    );
    drop(relay);
    let _ = std::fs::remove_dir_all(&dir);
}
