//! A real relay on loopback: [`TestRelay`] runs `hush_relay::http::serve_all` in process on
//! `127.0.0.1:0` with tokens from its own [`Tokens`]; [`RelayProcess`] runs the `hush-relay`
//! binary. Both stop when dropped.
//!
//! ```no_run
//! # async fn example() {
//! use hush_testkit::client::RawSignal;
//! use hush_testkit::relay::TestRelay;
//!
//! let relay = TestRelay::builder().admin().tap().start().await;
//! let token = relay.tokens().mint("standup", "alice").publish().subscribe().string();
//! let mut alice = RawSignal::connect(&relay.ws_url()).await;
//! alice.join_with(token, None).await;
//! let joined = alice.expect_joined().await;
//! assert_eq!(joined.room.as_str(), "standup");
//! let state = relay.admin_request("GET", "/v1/admin/rooms/standup", "").await;
//! assert_eq!(state.json()["participants"], 1);
//! # }
//! ```

use std::future::{Future, poll_fn};
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use std::time::Duration;

use hush_proto::TrackId;
use hush_relay::http::admin::AdminToken;
use hush_relay::http::{DevMinter, RelayOptions, ServeError, serve_all};
use hush_relay::ops::audit::AuditSink;
use hush_relay::ops::limits::IpLimits;
use hush_relay::routing::RateLimit;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::rustls::ServerConfig;

use crate::http::{self, HttpResponse};
use crate::tokens::{AUDIENCE, Tokens};

/// The admin token [`TestRelayBuilder::admin`] sets.
pub const ADMIN_TOKEN: &str = "testkit-admin-token-0123456789-abcdefghij";

/// How many payloads a [`Tap`] keeps (it counts all of them).
pub const TAP_CAP: usize = 200_000;

/// What the relay's forwarding tap saw: every forwarded RTP payload with its track, in order
/// (the first [`TAP_CAP`] of them).
#[derive(Debug, Default)]
pub struct Tap {
    payloads: Mutex<Vec<(TrackId, Vec<u8>)>>,
    seen: AtomicU64,
}

impl Tap {
    fn record(&self, track: TrackId, payload: &[u8]) {
        self.seen.fetch_add(1, Ordering::Relaxed);
        let mut payloads = self.payloads();
        if payloads.len() < TAP_CAP {
            payloads.push((track, payload.to_vec()));
        }
    }

    /// The payloads kept so far (hold the guard briefly: the media path waits on it).
    pub fn payloads(&self) -> MutexGuard<'_, Vec<(TrackId, Vec<u8>)>> {
        // A panicking test thread poisons it; the data is still what was recorded.
        self.payloads.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many payloads are kept: a mark for [`Tap::since`].
    pub fn len(&self) -> usize {
        self.payloads().len()
    }

    /// Whether nothing was kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The payloads kept after `mark`.
    pub fn since(&self, mark: usize) -> Vec<Vec<u8>> {
        self.payloads()
            .iter()
            .skip(mark)
            .map(|(_, p)| p.clone())
            .collect()
    }

    /// How many kept payloads match `pred`.
    pub fn count(&self, pred: impl Fn(&[u8]) -> bool) -> usize {
        self.payloads().iter().filter(|(_, p)| pred(p)).count()
    }

    /// How many payloads went through, kept or not.
    pub fn seen(&self) -> u64 {
        self.seen.load(Ordering::Relaxed)
    }
}

/// Why a relay did not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// The listener could not be bound (an address this host lacks).
    Bind(std::io::Error),
    /// `serve_all` refused to start.
    Serve(ServeError),
}

/// Builds a [`TestRelay`]: the relay's defaults plus the knobs tests turn.
#[derive(Debug)]
#[must_use = "a builder starts nothing until `start`"]
pub struct TestRelayBuilder {
    tokens: Tokens,
    options: RelayOptions,
    bind: IpAddr,
    tls: Option<Arc<ServerConfig>>,
    metrics_listener: bool,
    admin: Option<String>,
    tap: bool,
}

impl TestRelayBuilder {
    /// Signs tokens with `tokens` (instead of [`Tokens::default`]).
    pub fn tokens(mut self, tokens: Tokens) -> Self {
        self.options.keys = tokens.verifying_keys();
        self.tokens = tokens;
        self
    }

    /// Per-IP limits.
    pub fn ip_limits(mut self, limits: IpLimits) -> Self {
        self.options.ip_limits = limits;
        self
    }

    /// Per-IP limits that let everything through, with `change` applied: for tests of one limit.
    pub fn open_ip_limits(self, change: impl FnOnce(&mut IpLimits)) -> Self {
        let mut limits = IpLimits::default();
        limits.connect_rate = RateLimit {
            burst: 1000,
            per_second: 1000,
        };
        limits.max_concurrent = 1000;
        change(&mut limits);
        self.ip_limits(limits)
    }

    /// How long a silent WebSocket stays open.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.options.idle_timeout = timeout;
        self
    }

    /// The admin API with `token`.
    pub fn admin_token(mut self, token: &str) -> Self {
        self.options.admin_token =
            Some(AdminToken::new(token.as_bytes()).expect("an admin token long enough"));
        self.admin = Some(token.to_owned());
        self
    }

    /// The admin API with [`ADMIN_TOKEN`].
    pub fn admin(self) -> Self {
        self.admin_token(ADMIN_TOKEN)
    }

    /// Records rooms under `dir` (small limits and a fast sync can be set on the options).
    pub fn recording(mut self, options: hush_relay::recording::RecordingOptions) -> Self {
        self.options.recording = Some(options);
        self
    }

    /// Dev mode: `POST /dev/token` mints tokens (the kit's tokens stay valid too).
    pub fn dev_mode(mut self) -> Self {
        let minter =
            DevMinter::generate(&mut self.options.keys, AUDIENCE).expect("a fresh dev key");
        self.options.dev = Some(minter);
        self
    }

    /// The audit trail's writer.
    pub fn audit(mut self, sink: AuditSink) -> Self {
        self.options.audit = Some(sink);
        self
    }

    /// Serves HTTPS and WSS with `config` (`hush_relay::ops::tls::server_config`).
    pub fn tls(mut self, config: Arc<ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Serves `/metrics` on a listener of its own on 127.0.0.1 ([`TestRelay::metrics_addr`]).
    pub fn metrics_listener(mut self) -> Self {
        self.metrics_listener = true;
        self
    }

    /// Binds the public listener to `ip` (port 0) instead of 127.0.0.1; the relay is still
    /// reached on 127.0.0.1. For what the relay does off loopback.
    pub fn bind(mut self, ip: IpAddr) -> Self {
        self.bind = ip;
        self
    }

    /// Records every forwarded payload in a [`Tap`] ([`TestRelay::tap`]).
    pub fn tap(mut self) -> Self {
        self.tap = true;
        self
    }

    /// Any other option.
    pub fn configure(mut self, change: impl FnOnce(&mut RelayOptions)) -> Self {
        change(&mut self.options);
        self
    }

    /// Starts the relay; panics if it does not start.
    pub async fn start(self) -> TestRelay {
        match self.try_start().await {
            Ok(relay) => relay,
            Err(e) => panic!("the test relay did not start: {e:?}"),
        }
    }

    /// Starts the relay, or says why `serve_all` refused (or the address could not be bound).
    pub async fn try_start(mut self) -> Result<TestRelay, StartError> {
        init_tracing();
        let listener = TcpListener::bind(SocketAddr::new(self.bind, 0))
            .await
            .map_err(StartError::Bind)?;
        let port = listener.local_addr().map_err(StartError::Bind)?.port();
        let (metrics, metrics_addr) = if self.metrics_listener {
            let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .await
                .map_err(StartError::Bind)?;
            let addr = l.local_addr().map_err(StartError::Bind)?;
            (Some(l), Some(addr))
        } else {
            (None, None)
        };
        let tap = self.tap.then(|| Arc::new(Tap::default()));
        if let Some(tap) = &tap {
            let tap = Arc::clone(tap);
            self.options.media.forward_tap = Some(Arc::new(move |track, payload: &[u8]| {
                tap.record(track, payload)
            }));
        }
        let is_tls = self.tls.is_some();
        let mut serve = Box::pin(serve_all(listener, self.tls, metrics, self.options));
        // Every refusal comes before the first await that waits for a connection: poll once to
        // see it, then leave the rest to a task.
        if let Poll::Ready(result) = poll_fn(|cx| Poll::Ready(serve.as_mut().poll(cx))).await {
            return Err(match result {
                Err(e) => StartError::Serve(e),
                Ok(()) => StartError::Serve(ServeError::Io(std::io::ErrorKind::Other.into())),
            });
        }
        let task = tokio::spawn(async move {
            let _ = serve.await;
        });
        Ok(TestRelay {
            addr: SocketAddr::new(loopback_for(self.bind), port),
            metrics_addr,
            tokens: self.tokens,
            admin: self.admin,
            tap,
            tls: is_tls,
            task,
        })
    }
}

/// The loopback address that reaches a listener bound to `ip`.
fn loopback_for(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ip if ip.is_unspecified() => IpAddr::from(Ipv4Addr::LOCALHOST),
        ip => ip,
    }
}

/// Logs to the test's output at the level `RUST_LOG` asks for (once per process).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A relay serving on loopback in this process; stops when dropped.
#[derive(Debug)]
pub struct TestRelay {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    tokens: Tokens,
    admin: Option<String>,
    tap: Option<Arc<Tap>>,
    tls: bool,
    task: JoinHandle<()>,
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestRelay {
    /// A builder with the relay's defaults and [`Tokens::default`].
    pub fn builder() -> TestRelayBuilder {
        let tokens = Tokens::default();
        TestRelayBuilder {
            options: RelayOptions::new(tokens.verifying_keys()),
            tokens,
            bind: IpAddr::from(Ipv4Addr::LOCALHOST),
            tls: None,
            metrics_listener: false,
            admin: None,
            tap: false,
        }
    }

    /// A relay with the defaults.
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    /// The address it serves on (loopback).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The metrics listener's address, with [`TestRelayBuilder::metrics_listener`].
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// `ws://127.0.0.1:port/v1/rtc` (`wss://` with TLS).
    pub fn ws_url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}/v1/rtc", self.addr)
    }

    /// `http://127.0.0.1:port` (`https://` with TLS).
    pub fn http_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The key its tokens are signed with.
    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    /// The admin token, with [`TestRelayBuilder::admin`] or [`TestRelayBuilder::admin_token`].
    pub fn admin_token(&self) -> Option<&str> {
        self.admin.as_deref()
    }

    /// The forwarding tap; panics without [`TestRelayBuilder::tap`].
    pub fn tap(&self) -> &Tap {
        self.tap
            .as_deref()
            .expect("the relay was built without .tap()")
    }

    /// `GET path` (plain HTTP only).
    pub async fn get(&self, path: &str) -> HttpResponse {
        http::get(self.addr, path).await
    }

    /// `POST path` with `body` (JSON).
    pub async fn post(&self, path: &str, body: &str) -> HttpResponse {
        http::request(self.addr, "POST", path, None, body).await
    }

    /// A request to the admin API with the relay's admin token.
    pub async fn admin_request(&self, method: &str, path: &str, body: &str) -> HttpResponse {
        let token = self.admin_token().expect("the relay has no admin API");
        http::request(self.addr, method, path, Some(token), body).await
    }

    /// The `/metrics` text (from the metrics listener if it has one); panics unless `200`.
    pub async fn metrics(&self) -> String {
        let response = http::get(self.metrics_addr.unwrap_or(self.addr), "/metrics").await;
        assert_eq!(response.status, 200, "{}", response.body);
        response.body
    }
}

/// The `hush-relay` binary, run with `--dev --bind 127.0.0.1:0` and the given arguments, debug
/// logging on; its stderr is collected. Killed when dropped.
#[derive(Debug)]
pub struct RelayProcess {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The workspace's relay binary, `target/<profile>/hush-relay`, for tests of other crates
/// (the relay's own tests have `env!("CARGO_BIN_EXE_hush-relay")`): next to the running test's
/// `deps/` directory. `cargo test --workspace` builds it; panics naming the command otherwise.
pub fn relay_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("hush-relay"))
        .expect("a test binary lives in target/<profile>/deps");
    assert!(
        bin.exists(),
        "{} is missing: `cargo build -p hush-relay` (cargo test --workspace builds it)",
        bin.display()
    );
    bin
}

impl RelayProcess {
    /// Runs `exe` (`env!("CARGO_BIN_EXE_hush-relay")` in the relay's tests) with `args` after
    /// the kit's, and waits (30 s at most) for the line that says where it listens.
    pub fn spawn(exe: impl AsRef<Path>, args: &[&str]) -> Self {
        Self::spawn_wrapped(&[], exe, args)
    }

    /// As [`RelayProcess::spawn`], run by `wrapper` (a command line that ends by running its
    /// arguments, as `unshare --mount -- sh -c '...; exec "$@"' sh` does): the relay is
    /// `wrapper... exe kit-args... args...`.
    pub fn spawn_wrapped(wrapper: &[&str], exe: impl AsRef<Path>, args: &[&str]) -> Self {
        let mut command = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(exe.as_ref());
                c
            }
            None => Command::new(exe.as_ref()),
        };
        let mut child = command
            .args([
                "--dev",
                "--bind",
                "127.0.0.1:0",
                "--static-dir",
                "/nonexistent",
            ])
            .args(args)
            // Debug everywhere, our crates and webrtc-rs included.
            .env("RUST_LOG", "debug")
            .env_remove("HUSH_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the relay binary");
        let stderr = child.stderr.take().expect("stderr is piped");
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
                keep.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(line);
            }
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the relay did not start")
            .parse()
            .expect("the relay printed its address");
        Self {
            child,
            addr,
            stderr: lines,
        }
    }

    /// The address it serves on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:port/v1/rtc`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/rtc", self.addr)
    }

    /// `http://127.0.0.1:port`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Its process id (the relay's own: wrappers exec it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills it with SIGKILL (`kill -9`: nothing runs after) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends it SIGTERM (with `kill`, from procps): a graceful shutdown.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits up to `limit` for it to exit; its status, or `None` if it still runs.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The stderr lines so far.
    pub fn stderr(&self) -> Vec<String> {
        self.stderr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
