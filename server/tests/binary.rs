//! The `hush-relay` binary itself, on 127.0.0.1: `--dev`, `--audit-file`, `--log-format json`,
//! `/healthz`, `/metrics`, and that neither the audit trail nor the log ever holds a token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

use std::process::{Command, Stdio};
use std::time::Duration;

use hush_proto::ErrorCode;
use hush_testkit::client::RawSignal;
use hush_testkit::http::{dev_token, get};
use hush_testkit::relay::RelayProcess;

fn spawn_relay(args: &[&str]) -> RelayProcess {
    RelayProcess::spawn(env!("CARGO_BIN_EXE_hush-relay"), args)
}

/// Joins `relay` with `token`: the refusal's code, or `None` when joined.
async fn join(relay: &RelayProcess, token: &str) -> (RawSignal, Option<ErrorCode>) {
    RawSignal::try_join(&relay.ws_url(), token).await
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
    let addr = relay.addr();
    let healthz = get(addr, "/healthz").await;
    assert_eq!((healthz.status, healthz.body.as_str()), (200, "ok\n"));

    // A join with a dev token.
    let token = dev_token(addr, "secret-room").await;
    let (c, refusal) = join(&relay, &token).await;
    assert_eq!(refusal, None);
    // The same token again: single use, refused.
    let (replay, refusal) = join(&relay, &token).await;
    assert_eq!(refusal, Some(ErrorCode::TokenReplayed));
    // A tampered token: the signature fails. (Its first character: the last one of a 32-byte
    // signature carries 2 padding bits, and 'A' to 'B' would change only those.)
    let at = token.rfind('.').unwrap() + 1;
    let first = if token[at..].starts_with('A') {
        "B"
    } else {
        "A"
    };
    let mut forged = token.clone();
    forged.replace_range(at..=at, first);
    let (bad, refusal) = join(&relay, &forged).await;
    assert_eq!(refusal, Some(ErrorCode::TokenBadSignature));

    // /metrics is on the (loopback) main listener and counted the join and the refusals.
    let metrics = get(addr, "/metrics").await;
    assert_eq!(metrics.status, 200);
    let text = metrics.body;
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
    let log = relay.stderr();
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
    let addr = relay.addr();
    let (_first, refusal) = join(&relay, &dev_token(addr, "small").await).await;
    assert_eq!(refusal, None);
    let (_second, refusal) = join(&relay, &dev_token(addr, "small").await).await;
    assert_eq!(refusal, Some(ErrorCode::RoomFull));
    // /metrics moved to its own listener.
    assert_eq!(get(addr, "/metrics").await.status, 404);
    let metrics = get(metrics_bind.parse().unwrap(), "/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .body
            .contains("hush_refusals_total{code=\"room_full\"} 1\n"),
        "{}",
        metrics.body
    );
    drop(relay);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_binary_hands_out_turn_credentials_and_refuses_half_a_turn_config() {
    let dir = std::env::temp_dir().join(format!("hush-binary-turn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("turn.secret");
    std::fs::write(&secret, "north\n").unwrap();
    // URLs without the secret file: refused at start, with the reason.
    let out = Command::new(env!("CARGO_BIN_EXE_hush-relay"))
        .args([
            "--bind",
            "127.0.0.1:0",
            "--dev",
            "--turn-url",
            "turn:198.18.1.1:3478",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--turn-secret-file"), "{stderr}");

    let url = "turn:198.18.1.1:3478?transport=tcp";
    let relay = spawn_relay(&[
        "--turn-url",
        url,
        "--turn-secret-file",
        secret.to_str().unwrap(),
        "--turn-ttl-secs",
        "600",
    ]);
    let mut c = RawSignal::connect(&relay.ws_url()).await;
    c.join_with(dev_token(relay.addr(), "turn-room").await, None)
        .await;
    let joined = c.expect_joined().await;
    let [server] = &joined.ice_servers[..] else {
        panic!("one ICE server, got {:?}", joined.ice_servers);
    };
    assert_eq!(server.urls, [url]);
    // `expiry:participant`, expiry about 600 s from now; the HMAC over it with the file's
    // secret (its trailing newline dropped), as coturn computes it.
    let username = server.username.clone().unwrap();
    let (expiry, who) = username.split_once(':').unwrap();
    assert_eq!(who, joined.you.as_str());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expiry: u64 = expiry.parse().unwrap();
    assert!(
        (now + 590..=now + 610).contains(&expiry),
        "{expiry} vs {now}"
    );
    use base64::Engine as _;
    use hmac::{KeyInit as _, Mac as _};
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(b"north").unwrap();
    mac.update(username.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(server.credential.as_deref(), Some(expected.as_str()));
    drop(relay);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn sigterm_drains_tells_participants_refuses_newcomers_then_closes_and_exits() {
    let mut relay = spawn_relay(&["--drain-secs", "1"]);
    let addr = relay.addr();
    let ready = get(addr, "/readyz").await;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
    let token = dev_token(addr, "drain").await;
    let (mut alice, refusal) = join(&relay, &token).await;
    assert_eq!(refusal, None);

    let signalled = std::time::Instant::now();
    relay.terminate();
    // Alice is told, and her call goes on meanwhile.
    let notice = alice.next_error().await;
    assert_eq!(notice.code, ErrorCode::ServerShuttingDown);
    assert!(!notice.fatal, "{notice:?}");
    alice.ping(7).await;
    // Not ready, still alive; newcomers refused before the upgrade.
    let ready = get(addr, "/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(ready.body.contains("draining"), "{}", ready.body);
    assert_eq!(get(addr, "/healthz").await.status, 200);
    let newcomer = tokio_tungstenite::connect_async(relay.ws_url()).await;
    match newcomer {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
        }
        other => panic!("a newcomer was not refused: {other:?}"),
    }
    // After the drain: closed with 1001 (going away), and the process exits cleanly.
    let close = loop {
        match alice.next_raw_within(Duration::from_secs(5)).await {
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame)))) => break frame,
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    let elapsed = signalled.elapsed();
    assert_eq!(close.map(|f| u16::from(f.code)), Some(1001));
    assert!(
        elapsed >= Duration::from_millis(900),
        "closed after {elapsed:?}"
    );
    let status = relay
        .wait_exit(Duration::from_secs(5))
        .expect("the relay exited");
    assert!(status.success(), "{status:?}");
}

/// Runs the relay binary in a network namespace of its own (nothing it binds is reachable from
/// this machine's network) with `args`.
fn isolated_relay(args: &[&str]) -> std::process::Child {
    Command::new("unshare")
        .args(["--net", "--", env!("CARGO_BIN_EXE_hush-relay")])
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("HUSH_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare (util-linux) and the relay binary")
}

#[test]
fn plain_http_off_loopback_needs_insecure_and_is_then_logged() {
    let args = ["--bind", "0.0.0.0:0", "--static-dir", "/nonexistent"];
    let out = isolated_relay(&args).wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("refusing plain HTTP") && stderr.contains("--insecure"),
        "{stderr}"
    );

    let mut child = isolated_relay(&[&args[..], &["--insecure"]].concat());
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut listening, mut warned) = (false, false);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !(listening && warned) && std::time::Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            listening |= line.contains("hush-relay listening on http://0.0.0.0:");
            warned |= line.contains("--insecure: serving plain HTTP");
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(listening, "it serves with --insecure");
    assert!(warned, "and says so in the log");
}

/// The certificate a TLS handshake with `addr` presents (any certificate is accepted: only
/// which one is asked).
async fn served_certificate(addr: std::net::SocketAddr) -> Vec<u8> {
    use std::sync::Arc;
    use tokio_rustls::rustls::client::danger::{
        HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
    };
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use tokio_rustls::rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

    #[derive(Debug)]
    struct Any;
    impl ServerCertVerifier for Any {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, tokio_rustls::rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            tokio_rustls::rustls::crypto::ring::default_provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Any))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test]
async fn sighup_reloads_the_tls_certificate_and_keeps_it_when_the_new_one_is_bad() {
    let dir = std::env::temp_dir().join(format!("hush-binary-hup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let make = || rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let first = make();
    std::fs::write(&cert, first.cert.pem()).unwrap();
    std::fs::write(&key, first.signing_key.serialize_pem()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hush-relay"))
        .args(["--bind", "127.0.0.1:0", "--static-dir", "/nonexistent"])
        .args([
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ])
        .env("RUST_LOG", "info")
        .env_remove("HUSH_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let addr: std::net::SocketAddr = loop {
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        if let Some(rest) = line.strip_prefix("hush-relay listening on https://") {
            break rest.split('/').next().unwrap().parse().unwrap();
        }
    };
    let hup = |pid: u32| {
        let ok = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -HUP");
    };
    assert_eq!(served_certificate(addr).await, first.cert.der().to_vec());
    let second = make();
    std::fs::write(&cert, second.cert.pem()).unwrap();
    std::fs::write(&key, second.signing_key.serialize_pem()).unwrap();
    hup(child.id());
    let mut now_served = Vec::new();
    for _ in 0..50 {
        now_served = served_certificate(addr).await;
        if now_served == second.cert.der().to_vec() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(now_served, second.cert.der().to_vec(), "reloaded on SIGHUP");
    // A key that belongs to another certificate: refused, the second one stays.
    std::fs::write(&key, make().signing_key.serialize_pem()).unwrap();
    hup(child.id());
    let mut warned = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !warned && std::time::Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            warned = line.contains("TLS certificate not reloaded");
        }
    }
    assert!(warned, "the refused reload is logged");
    assert_eq!(served_certificate(addr).await, second.cert.der().to_vec());
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `hush-relay keygen` and `hush-relay token --alg eddsa`: what a backend does, by hand. The
/// public key printed verifies the token minted with the seed; the seed file is 0600 and never
/// overwritten.
#[test]
fn keygen_and_an_eddsa_token_verify_with_the_printed_public_key() {
    use std::os::unix::fs::PermissionsExt;

    use base64::Engine as _;
    use hush_relay::token::{TokenPolicy, TokenVerifier, VerifyingKeys};

    let dir = std::env::temp_dir().join(format!("hush-keygen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let seed = dir.join("backend.key");
    let exe = env!("CARGO_BIN_EXE_hush-relay");
    let out = Command::new(exe)
        .args(["keygen", "--out"])
        .arg(&seed)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let public = String::from_utf8(out.stdout).unwrap();
    let public = base64::engine::general_purpose::STANDARD
        .decode(public.trim())
        .unwrap();
    let mode = std::fs::metadata(&seed).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let again = Command::new(exe)
        .args(["keygen", "--out"])
        .arg(&seed)
        .output()
        .unwrap();
    assert!(
        !again.status.success(),
        "an existing key is never overwritten"
    );

    let out = Command::new(exe)
        .args([
            "token", "--alg", "eddsa", "--kid", "2026-12", "--room", "standup",
        ])
        .args(["--sub", "u-1", "--publish", "--key-file"])
        .arg(&seed)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8(out.stdout).unwrap();
    let mut keys = VerifyingKeys::new();
    keys.add_ed25519("2026-12", &public.try_into().unwrap())
        .unwrap();
    let mut verifier = TokenVerifier::new(keys, TokenPolicy::new("hush"));
    let now = hush_relay::driver::now().unix_secs();
    let claims = verifier.verify(now, token.trim(), None).unwrap();
    assert_eq!(claims.room.as_str(), "standup");
    assert!(claims.grants.publish && !claims.grants.subscribe);
    // Another key's public half does not verify it.
    let mut other = VerifyingKeys::new();
    other.add_ed25519("2026-12", &[7u8; 32]).ok();
    let mut verifier = TokenVerifier::new(other, TokenPolicy::new("hush"));
    assert!(verifier.verify(now, token.trim(), None).is_err());
}
