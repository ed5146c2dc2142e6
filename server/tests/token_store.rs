//! Single-use tokens across restarts and relays (`--token-store`), against the relay binary:
//! a token used before a `kill -9` is refused after the restart (the file store), a token used
//! on relay A is refused on relay B when both share Debian's `redis-server` (started here, on a
//! free loopback port), two relays racing for one token admit it once, and a Redis that is down
//! refuses joins (`server_busy`, `/readyz` 503) until it is back. Each has its control: without
//! a store the same replay after a restart is admitted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hush_proto::ErrorCode;
use hush_testkit::client::RawSignal;
use hush_testkit::http::{dev_token, get, metric};
use hush_testkit::relay::RelayProcess;

const REDIS: &str = "/usr/bin/redis-server";

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hush-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A relay in dev mode on `store`. Every client here comes from 127.0.0.1 and half the joins
/// are refused on purpose (replays, the race's loser), so the per-IP backoff for refused tokens
/// is lifted: on a fast machine one relay can lose the race six times running, and the sixth
/// refusal would start a backoff (429) that has nothing to do with the store.
fn relay(key: &Path, store: &str) -> RelayProcess {
    let config = key.with_file_name("relay.toml");
    std::fs::write(
        &config,
        "[limits]\nip_free_auth_failures = 1000\nip_connect_burst = 1000\n",
    )
    .unwrap();
    RelayProcess::spawn(
        env!("CARGO_BIN_EXE_hush-relay"),
        &[
            "--config",
            config.to_str().unwrap(),
            "--dev-key-file",
            key.to_str().unwrap(),
            "--token-store",
            store,
        ],
    )
}

async fn join(relay: &RelayProcess, token: &str) -> Option<ErrorCode> {
    RawSignal::try_join(&relay.ws_url(), token).await.1
}

async fn claims(relay: &RelayProcess, result: &str) -> u64 {
    let text = get(relay.addr(), "/metrics").await.body;
    metric(
        &text,
        &format!("hush_token_claims_total{{result=\"{result}\"}}"),
    )
    .unwrap_or(0)
}

#[tokio::test]
async fn a_used_token_stays_used_after_the_relay_is_killed_and_started_again() {
    let dir = temp_dir("token-file");
    let key = dir.join("dev.key");
    let store = dir.join("used-tokens");
    let store = store.to_str().unwrap();

    let mut a = relay(&key, store);
    let used = dev_token(a.addr(), "standup").await;
    let spare = dev_token(a.addr(), "standup").await;
    assert_eq!(join(&a, &used).await, None);
    assert_eq!(join(&a, &used).await, Some(ErrorCode::TokenReplayed));
    assert_eq!(claims(&a, "fresh").await, 1);
    // kill -9: nothing runs after; the id was on disk before the join was admitted.
    a.kill();

    let b = relay(&key, store);
    assert_eq!(join(&b, &used).await, Some(ErrorCode::TokenReplayed));
    assert_eq!(claims(&b, "used").await, 1);
    // A token minted before the restart but never used still joins.
    assert_eq!(join(&b, &spare).await, None);
    let file = std::fs::read_to_string(store).unwrap();
    assert_eq!(file.lines().count(), 2, "{file}");
    assert!(!file.contains(&used), "no token on disk");
    drop(b);

    // The control: with the store off the same replay after a restart is admitted.
    let mut c = relay(&key, "memory");
    let token = dev_token(c.addr(), "standup").await;
    assert_eq!(join(&c, &token).await, None);
    c.kill();
    let d = relay(&key, "memory");
    assert_eq!(
        join(&d, &token).await,
        None,
        "no store: replayed after a restart"
    );
}

#[tokio::test]
async fn one_store_file_serves_one_relay() {
    let dir = temp_dir("token-lock");
    let store = dir.join("used-tokens");
    let _a = relay(&dir.join("dev.key"), store.to_str().unwrap());
    let out = Command::new(env!("CARGO_BIN_EXE_hush-relay"))
        .args(["--dev", "--bind", "127.0.0.1:0", "--token-store"])
        .arg(&store)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("in use by another process"), "{stderr}");
}

/// Debian's redis-server on a free loopback port, with an append-only file synced on every
/// write (what a token store needs: a restarted Redis must still know the used ids).
struct Redis {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Redis {
    fn start(dir: &Path) -> Self {
        assert!(
            Path::new(REDIS).exists(),
            "{REDIS} is missing: apt-get install -y redis-server (cargo xtask test does)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self::start_on(dir, port)
    }

    fn start_on(dir: &Path, port: u16) -> Self {
        let child = Command::new(REDIS)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let redis = Self {
            child,
            port,
            dir: dir.to_owned(),
        };
        redis.wait_ready();
        redis
    }

    fn wait_ready(&self) {
        use std::io::{Read, Write};
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                let mut answer = [0u8; 7];
                if s.write_all(b"PING\r\n").is_ok()
                    && s.read_exact(&mut answer).is_ok()
                    && &answer == b"+PONG\r\n"
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not answer on port {}", self.port);
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(&mut self) {
        self.stop();
        *self = Self::start_on(&self.dir.clone(), self.port);
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
async fn relays_sharing_redis_admit_each_token_once_and_refuse_while_it_is_down() {
    let dir = temp_dir("token-redis");
    let key = dir.join("dev.key");
    let mut redis = Redis::start(&dir);
    let url = redis.url();
    let a = relay(&key, &url);
    let b = relay(&key, &url);

    // Used on A, refused on B; used on B, refused on A.
    let t1 = dev_token(a.addr(), "standup").await;
    assert_eq!(join(&a, &t1).await, None);
    assert_eq!(join(&b, &t1).await, Some(ErrorCode::TokenReplayed));
    let t2 = dev_token(b.addr(), "standup").await;
    assert_eq!(join(&b, &t2).await, None);
    assert_eq!(join(&a, &t2).await, Some(ErrorCode::TokenReplayed));

    // Both relays at once with the same token: exactly one admits it, ten times over.
    for _ in 0..10 {
        let t = dev_token(a.addr(), "race").await;
        let (on_a, on_b) = tokio::join!(join(&a, &t), join(&b, &t));
        let mut results = [on_a, on_b];
        results.sort_by_key(|r| r.is_some());
        assert_eq!(results, [None, Some(ErrorCode::TokenReplayed)]);
    }
    assert_eq!(claims(&a, "fresh").await + claims(&b, "fresh").await, 12);

    // Redis goes down: joins are refused (the token cannot be checked), /readyz says why.
    let t3 = dev_token(a.addr(), "standup").await;
    redis.stop();
    assert_eq!(join(&a, &t3).await, Some(ErrorCode::ServerBusy));
    // `/readyz` probes the store at most once a second: read again until it has.
    let mut ready = get(a.addr(), "/readyz").await;
    let down = Instant::now();
    while ready.status == 200 && down.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        ready = get(a.addr(), "/readyz").await;
    }
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(ready.body.contains("token store"), "{}", ready.body);
    assert!(claims(&a, "unavailable").await >= 1);

    // Back (from its append-only file): the ids used before are still used, t3 (never
    // recorded) joins, within a bounded time of Redis answering again.
    redis.restart();
    let back = Instant::now();
    let mut refusal = join(&a, &t3).await;
    while refusal == Some(ErrorCode::ServerBusy) && back.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        refusal = join(&a, &t3).await;
    }
    assert_eq!(refusal, None, "joins again once Redis is back");
    eprintln!(
        "joins again {} ms after Redis answered",
        back.elapsed().as_millis()
    );
    assert_eq!(join(&b, &t1).await, Some(ErrorCode::TokenReplayed));
    let mut ready = get(a.addr(), "/readyz").await;
    while ready.status != 200 && back.elapsed() < Duration::from_secs(13) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        ready = get(a.addr(), "/readyz").await;
    }
    assert_eq!(ready.status, 200, "{}", ready.body);
}

#[test]
fn a_redis_that_does_not_answer_at_start_stops_the_relay() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(env!("CARGO_BIN_EXE_hush-relay"))
        .args(["--dev", "--bind", "127.0.0.1:0", "--token-store"])
        .arg(format!("redis://:pw-not-shown@127.0.0.1:{port}/0"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("token store redis"), "{stderr}");
    assert!(!stderr.contains("pw-not-shown"), "{stderr}");
}
