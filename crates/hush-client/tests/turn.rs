#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic
//! The native client through TURN: the relay hands out coturn's URL and a credential in
//! `joined` (coturn's REST convention), and clients that may use relay candidates only
//! (`relay_only`, a browser's `iceTransportPolicy: "relay"`) call through Debian's coturn,
//! started here on a free loopback port. The control: with a credential minted from another
//! secret, coturn refuses the allocations and nothing is decrypted.

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hush_proto::Source;
use hush_relay::turn::TurnConfig;
use hush_testkit::client::{Media, pump_until_decrypted};
use hush_testkit::relay::TestRelay;
use zeroize::Zeroizing;

const TURNSERVER: &str = "/usr/bin/turnserver";
const SECRET: &str = "coturn and the relay share this";

/// Debian's coturn on 127.0.0.1 (UDP only), its verbose log (one line per allocation)
/// collected.
struct Coturn {
    child: Child,
    log: Arc<Mutex<String>>,
    port: u16,
}

impl Coturn {
    fn start() -> Self {
        assert!(
            std::path::Path::new(TURNSERVER).exists(),
            "{TURNSERVER} is missing: apt-get install -y coturn (cargo xtask test does)"
        );
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pid = std::env::temp_dir().join(format!("hush-coturn-{}.pid", std::process::id()));
        let mut child = Command::new(TURNSERVER)
            .args(["-n", "-v", "--no-cli", "--no-tcp", "--no-tls", "--no-dtls"])
            .args(["--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1"])
            .args(["--listening-port", &port.to_string()])
            .args([
                "--allow-loopback-peers",
                "--fingerprint",
                "--realm",
                "hush.test",
            ])
            .args(["--use-auth-secret", "--static-auth-secret", SECRET])
            .args(["--log-file", "stdout", "--simple-log", "--pidfile"])
            .arg(pid)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().unwrap();
        let keep = Arc::clone(&log);
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let mut log = keep.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let coturn = Self { child, log, port };
        // Listening once it says so (a second at most here).
        for _ in 0..100 {
            if coturn.log().contains("IO method") {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        coturn
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// A relay TURN configuration pointing here, credentials minted from `secret`.
    fn config(&self, secret: &str) -> TurnConfig {
        TurnConfig::new(
            vec![format!("turn:127.0.0.1:{}?transport=udp", self.port)],
            Zeroizing::new(secret.as_bytes().to_vec()),
            Duration::from_secs(600),
        )
        .unwrap()
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn call_through(turn: TurnConfig, room: &str) -> Vec<u64> {
    let relay = TestRelay::builder()
        .configure(move |o| o.media.turn = Some(turn))
        .start()
        .await;
    let alice = relay
        .client(room, "alice")
        .publish(&[Source::Camera, Source::Microphone])
        .options(|o| o.relay_only = true)
        .connect()
        .await;
    let bob = relay
        .client(room, "bob")
        .options(|o| o.relay_only = true)
        .connect()
        .await;
    pump_until_decrypted(&alice, &[&bob], 100, Media::AudioVideo, 12).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_clients_call_through_coturn_with_the_credentials_from_joined() {
    let coturn = Coturn::start();
    let decrypted = tokio::time::timeout(
        Duration::from_secs(60),
        call_through(coturn.config(SECRET), "turn"),
    )
    .await
    .expect("the call ends in time");
    let log = coturn.log();
    assert!(decrypted[0] > 100, "{decrypted:?}\n{log}");
    // Both allocated (the log names each allocation's user: expiry:participant).
    let allocations = log
        .lines()
        .filter(|l| l.contains("ALLOCATE processed, success"))
        .count();
    assert!(allocations >= 2, "{allocations} allocations\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_from_another_secret_get_no_allocation_and_no_media() {
    let coturn = Coturn::start();
    let decrypted = tokio::time::timeout(
        Duration::from_secs(60),
        call_through(coturn.config("not the secret coturn has"), "turn-bad"),
    )
    .await
    .expect("the call ends in time");
    let log = coturn.log();
    assert_eq!(decrypted, [0], "{log}");
    assert!(!log.contains("ALLOCATE processed, success"), "{log}");
    assert!(log.contains("error 401: Unauthorized"), "{log}");
}
