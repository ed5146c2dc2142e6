//! HTTP: the signaling WebSocket (`GET /v1/rtc`), `GET /healthz`, `GET /metrics`, the demo's
//! static files, in dev mode `POST /dev/token`, `POST /dev/attest` and `GET /dev/backend-key`, and with an admin token the admin API
//! (`/v1/admin/...`, see [`admin`]).
//!
//! [`serve`] runs everything on one listener: it starts the driver (which owns the routing
//! core) and answers each WebSocket with a reader and a writer bound to one core connection.
//!
//! **Per-IP limits.** Before a WebSocket upgrade the client's address (per /64 for IPv6) must
//! pass the [`IpLimiter`]: a connection rate, a cap on open connections, and a doubling backoff
//! after repeated token refusals. A refused request gets `429 Too Many Requests` with
//! `Retry-After` and `{"error": "connect_rate" | "too_many_connections" | "auth_backoff"}`
//! (`503` and `table_full` when the limiter's table is full of busy addresses). The address
//! comes from the TCP connection: behind a reverse proxy every client shares the proxy's
//! address, so raise the limits there (`[limits]`) or let the proxy limit.
//!
//! **Where `/metrics` is served.** Prometheus text says how many rooms, participants and
//! connections there are, which is more than the public should see. [`serve_all`] with a
//! separate `metrics` listener (`--metrics-bind`) serves `/metrics` (and `/healthz`) only
//! there, in plain HTTP: bind it to a private address. Without one, `/metrics` is on the main
//! listener only when that is bound to a loopback address and no trusted proxy is configured
//! (development); otherwise it is not served at all. A relay behind a local proxy sets
//! `trusted_proxies` (and then `metrics_bind`): without it, anything the proxy forwards,
//! `/metrics` included, reaches the public.
//!
//! **Idle connections.** A WebSocket that sends nothing (no message, no pong) for half of
//! [`RelayOptions::idle_timeout`] gets a WebSocket ping (browsers answer by themselves); one
//! silent for the whole timeout is closed with code 1001 and reason `idle timeout`.

pub mod accept;
pub mod admin;
mod conn;
mod dev;
mod ready;
pub mod tls;
mod ws;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tower_http::services::{ServeDir, ServeFile};

pub use conn::DEFAULT_HEADER_TIMEOUT;
pub use dev::{DEV_KID, DEV_RECORDER, DEV_RECORDER_KEY_FILE, DevKeyError, DevMinter};

use crate::driver::{self, DriverHandle, DriverOps};
use crate::media::MediaOptions;
use crate::ops::admin_token::AdminToken;
use crate::ops::audit::AuditSink;
use crate::ops::limits::{IpLimiter, IpLimits};
use crate::ops::metrics::{self, Metrics};
use crate::ops::proxy::TrustedProxies;
use crate::routing::{Relay, RelayConfig};
use crate::token::{TokenPolicy, TokenVerifier, VerifyingKeys};

/// How long a WebSocket may stay silent (no message, no pong) before the relay closes it.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Everything [`serve`] needs.
#[derive(Debug)]
pub struct RelayOptions {
    /// Limits and timers of the routing core.
    pub relay: RelayConfig,
    /// Keys that verify access tokens.
    pub keys: VerifyingKeys,
    /// What tokens must satisfy.
    pub policy: TokenPolicy,
    /// Media sockets and the forwarding tap.
    pub media: MediaOptions,
    /// Where encrypted recordings go (`None`: this relay does not record).
    pub recording: Option<crate::recording::RecordingOptions>,
    /// The web root: `demo/` is served at `/`, `dist/` at `/dist/`, `wasm/` at `/wasm/`. Empty:
    /// no pages at all (an API-only relay).
    pub static_dir: PathBuf,
    /// Dev mode: `POST /dev/token` mints tokens with this key (which must also be in `keys`),
    /// `POST /dev/attest` vouches for identity keys with its dev backend key.
    /// Only for a relay bound to a loopback address; [`serve`] refuses it otherwise.
    pub dev: Option<DevMinter>,
    /// Per-IP connection and authentication-failure limits.
    pub ip_limits: IpLimits,
    /// How long a WebSocket may stay silent before it is closed (pinged at half of it).
    pub idle_timeout: Duration,
    /// How long a connection may take to send a request's head, and stay idle between
    /// requests (HTTP keep-alive), before it is closed (default [`DEFAULT_HEADER_TIMEOUT`]).
    pub header_timeout: Duration,
    /// The audit trail's writer; `None`: one with a random pseudonym key.
    pub audit: Option<AuditSink>,
    /// The admin API's bearer token; `None`: no admin API (see [`admin`]).
    pub admin_token: Option<AdminToken>,
    /// Turns `true` to shut down gracefully: `/readyz` answers 503, new connections are
    /// refused, every participant is told (`server_shutting_down`), and after
    /// [`Self::drain`] every connection is closed (1001) and [`serve_all`] returns.
    pub shutdown: Option<tokio::sync::watch::Receiver<bool>>,
    /// How long calls go on after a shutdown starts (default [`DEFAULT_DRAIN`]).
    pub drain: Duration,
    /// Reverse proxies whose `Forwarded` / `X-Forwarded-For` headers are believed: per-IP
    /// limits then apply per real client ([`crate::ops::proxy`]). Empty by default.
    pub trusted_proxies: TrustedProxies,
    /// Serve plain HTTP on a non-loopback address (behind a proxy that terminates TLS): without
    /// it [`serve_all`] refuses ([`ServeError::PlainNotLoopback`]); with it a warning is logged
    /// every minute.
    pub insecure: bool,
    /// Where used token ids are kept beyond this process's memory (a file that survives a
    /// restart, or Redis shared by several relays); `None`: single use until a restart only.
    pub token_store: Option<Arc<crate::ops::token_store::TokenStore>>,
}

/// The default [`RelayOptions::drain`].
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(10);

impl RelayOptions {
    /// Options with these keys and everything else at its default: audience `hush`, the web
    /// root `web/`, media on 127.0.0.1, no dev mode.
    pub fn new(keys: VerifyingKeys) -> Self {
        Self {
            relay: RelayConfig::default(),
            keys,
            policy: TokenPolicy::new("hush"),
            media: MediaOptions::default(),
            recording: None,
            insecure: false,
            token_store: None,
            trusted_proxies: TrustedProxies::default(),
            static_dir: PathBuf::from("web"),
            dev: None,
            ip_limits: IpLimits::default(),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            audit: None,
            admin_token: None,
            shutdown: None,
            drain: DEFAULT_DRAIN,
        }
    }
}

/// Shared by the HTTP handlers.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) driver: DriverHandle,
    pub(crate) dev: Option<Arc<DevMinter>>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) limiter: Arc<Mutex<IpLimiter>>,
    pub(crate) idle_timeout: Duration,
    /// The admin API's token (its routes exist only with one).
    pub(crate) admin: Option<Arc<AdminToken>>,
    /// Set when a graceful shutdown starts: `/readyz` fails, new connections are refused.
    pub(crate) draining: Arc<AtomicBool>,
    /// What `/readyz` checks: a media socket binds here, and token keys are loaded.
    pub(crate) media_ip: std::net::IpAddr,
    pub(crate) keys_loaded: bool,
    /// The token store, if any: `/readyz` checks that it answers.
    pub(crate) token_store: Option<Arc<crate::ops::token_store::TokenStore>>,
    /// `/readyz`'s last probe, reused for a second ([`ready::ProbeCache`]).
    pub(crate) ready_probe: Arc<ready::ProbeCache>,
    /// Where recordings go (dev mode writes its recorder's key there).
    pub(crate) recording_dir: Option<std::path::PathBuf>,
    /// Proxies whose forwarding headers name the client ([`TrustedProxies`]).
    pub(crate) proxies: Arc<TrustedProxies>,
}

impl AppState {
    /// The client's address: the TCP peer, or, when the peer is a trusted proxy, what its
    /// `Forwarded` / `X-Forwarded-For` headers say (see [`crate::ops::proxy`]).
    pub(crate) fn client_ip(
        &self,
        peer: std::net::IpAddr,
        headers: &axum::http::HeaderMap,
    ) -> std::net::IpAddr {
        if self.proxies.is_empty() {
            return peer;
        }
        let values = |name| {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect::<Vec<_>>()
        };
        let forwarded = values(axum::http::header::FORWARDED);
        let xff = values(axum::http::HeaderName::from_static("x-forwarded-for"));
        self.proxies.client_ip(peer, forwarded, xff)
    }
}

/// The client's address, as axum's connect info on every request (the WebSocket handler reads
/// it for the per-IP limits; [`conn`] puts it there).
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

/// The relay's two route sets, sharing one driver.
#[derive(Debug)]
pub struct Routers {
    /// Signaling, `/healthz`, static files, dev tokens. Serve it with connect info
    /// ([`PeerAddr`]), as [`serve_all`] does; without it every client counts as one address
    /// (`0.0.0.0`) for the per-IP limits.
    pub public: Router,
    /// `GET /metrics` alone.
    pub metrics: Router,
    /// `GET /readyz` alone (already in `public`; for a separate metrics listener).
    pub probes: Router,
    /// For [`serve_all`]'s graceful shutdown.
    lifecycle: Lifecycle,
}

/// What a graceful shutdown needs from the routes' state.
#[derive(Debug, Clone)]
struct Lifecycle {
    driver: DriverHandle,
    draining: Arc<AtomicBool>,
    /// For the listeners' refusals (per-address caps).
    metrics: Arc<Metrics>,
}

/// Why the relay did not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServeError {
    /// Dev mode on a listener that is not bound to a loopback address.
    DevNotLoopback,
    /// Dev mode with [`RelayOptions::trusted_proxies`]: a proxy on the same host makes a
    /// loopback listener public (and a proxy's requests pass its `Host` and `Origin` checks).
    DevBehindProxy,
    /// Plain HTTP on a listener that is not bound to a loopback address, without
    /// [`RelayOptions::insecure`].
    PlainNotLoopback,
    /// The OS random number generator failed (for the room instance and audit keys).
    Rng,
    /// The listener failed.
    Io(io::Error),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::DevNotLoopback => f.write_str(
                "dev mode mints tokens for anyone who asks: it only runs on a loopback address",
            ),
            Self::DevBehindProxy => f.write_str(
                "dev mode mints tokens for anyone who asks: it does not run behind a proxy \
                 (trusted_proxies is set)",
            ),
            Self::PlainNotLoopback => f.write_str(
                "refusing plain HTTP on a non-loopback address: configure TLS ([tls] or \
                 --tls-cert/--tls-key), or pass --insecure behind a proxy that terminates TLS",
            ),
            Self::Rng => f.write_str("the OS random number generator failed"),
            Self::Io(err) => write!(f, "listener: {err}"),
        }
    }
}

impl std::error::Error for ServeError {}

/// The relay's routes, with a driver already started (on the current tokio runtime).
pub fn routers(options: RelayOptions) -> Result<Routers, ServeError> {
    let keys_loaded = !options.keys.is_empty();
    let verifier = TokenVerifier::new(options.keys, options.policy);
    let mut relay_config = options.relay;
    relay_config.recording = options.recording.is_some();
    relay_config.token_store = options.token_store.is_some();
    let mut relay = Relay::new(relay_config, verifier);
    // Room instances must differ across restarts: a fresh secret each start.
    let mut instance_key = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(instance_key.as_mut_slice()).map_err(|_| ServeError::Rng)?;
    relay.set_room_instance_key(*instance_key);
    let audit = match options.audit {
        Some(audit) => audit,
        None => {
            let mut key = zeroize::Zeroizing::new([0u8; 32]);
            getrandom::fill(key.as_mut_slice()).map_err(|_| ServeError::Rng)?;
            AuditSink::new(*key)
        }
    };
    let metrics = Arc::new(Metrics::new());
    let limiter = Arc::new(Mutex::new(IpLimiter::new(options.ip_limits)));
    let ops = DriverOps {
        metrics: Arc::clone(&metrics),
        limiter: Arc::clone(&limiter),
        audit,
        token_store: options.token_store.clone(),
    };
    let media_ip = options.media.udp_ip;
    let recording_dir = options.recording.as_ref().map(|r| r.dir.clone());
    let driver = driver::spawn(relay, options.media, options.recording, ops);
    let draining = Arc::new(AtomicBool::new(false));
    let lifecycle = Lifecycle {
        driver: driver.clone(),
        draining: Arc::clone(&draining),
        metrics: Arc::clone(&metrics),
    };
    let state = AppState {
        draining,
        media_ip,
        keys_loaded,
        token_store: options.token_store.clone(),
        ready_probe: Arc::new(ready::ProbeCache::default()),
        recording_dir,
        driver,
        dev: options.dev.map(Arc::new),
        metrics,
        limiter,
        idle_timeout: options.idle_timeout,
        admin: options.admin_token.map(Arc::new),
        proxies: Arc::new(options.trusted_proxies),
    };
    let root = options.static_dir;
    let demo = root.join("demo");
    let public = match state.admin {
        Some(_) => admin::routes(),
        None => Router::new(),
    };
    let public = public
        .route("/v1/rtc", get(ws::upgrade))
        .route("/healthz", get(healthz))
        .route("/readyz", get(ready::readyz))
        .route("/dev/token", post(dev::token))
        .route("/dev/attest", post(dev::attest))
        .route("/dev/backend-key", get(dev::backend_key))
        .route("/dev/recorder", post(dev::recorder));
    // An empty web root serves no pages (not the working directory).
    let public = if root.as_os_str().is_empty() {
        public
    } else {
        public
            .route_service("/r/{name}", ServeFile::new(demo.join("index.html")))
            .nest_service("/dist", ServeDir::new(root.join("dist")))
            .nest_service("/wasm", ServeDir::new(root.join("wasm")))
            .fallback_service(ServeDir::new(demo))
    };
    let public = public
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state.clone());
    let probes = Router::new()
        .route("/readyz", get(ready::readyz))
        .with_state(state.clone());
    let metrics = Router::new()
        .route("/metrics", get(render_metrics))
        .with_state(state);
    Ok(Routers {
        public,
        metrics,
        probes,
        lifecycle,
    })
}

/// The Content-Security-Policy of every response, the Worker's included: no plugins, no
/// `<base>`, forms only to this relay, never framed; scripts only from this relay (no inline
/// script, no eval), WebAssembly compilation allowed (hush-wasm in the Worker). Browser tests
/// must not give Playwright's `waitForFunction` a string: it evals it in the page, refused here.
pub const CONTENT_SECURITY_POLICY: &str = "object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'; script-src 'self' 'wasm-unsafe-eval'";

/// Security headers on every response of the public listener (a handler's own value wins).
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
    ] {
        headers
            .entry(name)
            .or_insert(header::HeaderValue::from_static(value));
    }
    // The demo uses the camera and microphone of its own origin, nothing else.
    headers
        .entry(header::HeaderName::from_static("permissions-policy"))
        .or_insert(header::HeaderValue::from_static(
            "camera=(self), microphone=(self), display-capture=(self), geolocation=(), \
             payment=(), usb=()",
        ));
    response
}

/// `Strict-Transport-Security` on every response of a TLS listener: browsers use HTTPS only
/// for this host for a year.
async fn hsts(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::STRICT_TRANSPORT_SECURITY,
        header::HeaderValue::from_static("max-age=31536000"),
    );
    response
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// How long `/metrics` waits for the driver to refresh the gauges before rendering anyway.
const METRICS_REFRESH_WAIT: Duration = Duration::from_secs(1);

async fn render_metrics(State(state): State<AppState>) -> Response {
    // A busy driver delays the gauges, not the scrape.
    let _ = tokio::time::timeout(METRICS_REFRESH_WAIT, state.driver.refresh_metrics()).await;
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        state.metrics.render(),
    )
        .into_response()
}

/// How often `--insecure` is said again in the log.
pub const INSECURE_WARNING_EVERY: Duration = Duration::from_secs(60);

/// Serves the relay on `listener` until the task is dropped or the listener fails (`/metrics`
/// included when `listener` is bound to a loopback address and no trusted proxy is set).
pub async fn serve(listener: TcpListener, options: RelayOptions) -> Result<(), ServeError> {
    serve_all(listener, None, None, options).await
}

/// Serves the relay over TLS (HTTPS and WSS) on `listener`, with a configuration from
/// [`crate::ops::tls::server_config`].
pub async fn serve_tls(
    listener: TcpListener,
    config: Arc<tokio_rustls::rustls::ServerConfig>,
    options: RelayOptions,
) -> Result<(), ServeError> {
    serve_all(listener, Some(config), None, options).await
}

/// Serves the relay on `listener` (over TLS with `tls`), and `/metrics` with `/healthz` on
/// `metrics` if given (plain HTTP; see the module docs for where `/metrics` goes without it).
/// Runs until the task is dropped or a listener fails.
pub async fn serve_all(
    listener: TcpListener,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    metrics: Option<TcpListener>,
    options: RelayOptions,
) -> Result<(), ServeError> {
    let local = listener.local_addr().map_err(ServeError::Io)?;
    let tcp_cap = accept::tcp_cap(options.ip_limits.max_concurrent);
    // Not counted per address at accept: every client behind them shares their address.
    let proxies = options.trusted_proxies.clone();
    if options.dev.is_some() && !local.ip().is_loopback() {
        return Err(ServeError::DevNotLoopback);
    }
    if options.dev.is_some() && !options.trusted_proxies.is_empty() {
        return Err(ServeError::DevBehindProxy);
    }
    if tls.is_none() && !local.ip().is_loopback() {
        if !options.insecure {
            return Err(ServeError::PlainNotLoopback);
        }
        // Said again every minute, for as long as it serves: nobody should miss it.
        tokio::spawn(async move {
            let mut every = tokio::time::interval(INSECURE_WARNING_EVERY);
            loop {
                every.tick().await;
                tracing::warn!(
                    %local,
                    "--insecure: serving plain HTTP on a non-loopback address; tokens and \
                     signaling cross the network in the clear unless a proxy terminates TLS"
                );
            }
        });
    }
    let (shutdown, drain) = (options.shutdown.clone(), options.drain);
    let header_timeout = options.header_timeout;
    let routers = routers(options)?;
    let lifecycle = routers.lifecycle.clone();
    let (public, admin) = match metrics {
        Some(admin) => {
            let app = routers
                .metrics
                .merge(routers.probes)
                .route("/healthz", get(healthz));
            (routers.public, Some((admin, app)))
        }
        // On loopback the public listener is local, unless a trusted proxy forwards to it
        // (then everything the proxy forwards is public, /metrics with it).
        None if local.ip().is_loopback() && proxies.is_empty() => {
            (routers.public.merge(routers.metrics), None)
        }
        None => {
            tracing::info!(
                "/metrics is not served: the listener is not loopback, or a trusted proxy \
                 forwards to it (set metrics_bind)"
            );
            (routers.public, None)
        }
    };
    let public = match tls {
        Some(_) => public.layer(axum::middleware::map_response(hsts)),
        None => public,
    };
    let listener_metrics = Arc::clone(&lifecycle.metrics);
    let public = async {
        match tls {
            Some(config) => {
                let listener =
                    tls::TlsListener::new(listener, config, listener_metrics, tcp_cap, proxies)
                        .map_err(ServeError::Io)?;
                match conn::serve(listener, public, header_timeout).await {}
            }
            None => {
                let listener =
                    accept::GatedListener::new(listener, listener_metrics, tcp_cap, proxies);
                match conn::serve(listener, public, header_timeout).await {}
            }
        }
    };
    let serving = async {
        match admin {
            Some((admin, app)) => tokio::select! {
                result = public => result,
                never = conn::serve(admin, app, header_timeout) => match never {},
            },
            None => public.await,
        }
    };
    tokio::select! {
        result = serving => result,
        () = graceful_shutdown(shutdown, drain, lifecycle) => Ok(()),
    }
}

/// Waits for `shutdown` to turn `true` (forever without one), then drains: `/readyz` fails and
/// new connections are refused at once, every participant is told, and after `drain` every
/// connection is closed (1001).
async fn graceful_shutdown(
    shutdown: Option<tokio::sync::watch::Receiver<bool>>,
    drain: Duration,
    lifecycle: Lifecycle,
) {
    let Some(mut shutdown) = shutdown else {
        return std::future::pending().await;
    };
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        return std::future::pending().await;
    }
    lifecycle.draining.store(true, Ordering::Relaxed);
    tracing::info!(drain_secs = drain.as_secs_f64(), "shutting down: draining");
    lifecycle.driver.draining(drain).await;
    tokio::time::sleep(drain).await;
    lifecycle.driver.close_all().await;
    // Let the writers send their close frames.
    tokio::time::sleep(Duration::from_millis(200)).await;
    tracing::info!("shut down");
}

#[cfg(test)]
mod header_tests {
    use super::*;

    #[tokio::test]
    async fn tls_responses_carry_hsts_and_every_response_the_security_headers() {
        let response = hsts(security_headers("x".into_response()).await).await;
        let get = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(
            get("strict-transport-security").as_deref(),
            Some("max-age=31536000")
        );
        assert_eq!(get("x-content-type-options").as_deref(), Some("nosniff"));
        assert!(
            get("content-security-policy").is_some_and(|c| c.contains("frame-ancestors 'none'"))
        );
    }
}
