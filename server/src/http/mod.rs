//! HTTP: the signaling WebSocket (`GET /v1/rtc`), `GET /healthz`, the demo's static files, and
//! in dev mode `POST /dev/token`.
//!
//! [`serve`] runs everything on one listener: it starts the driver (which owns the routing
//! core) and answers each WebSocket with a reader and a writer bound to one core connection.

mod dev;
pub mod tls;
mod ws;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tower_http::services::{ServeDir, ServeFile};

pub use dev::{DEV_KID, DevKeyError, DevMinter};

use crate::driver::{self, DriverHandle};
use crate::media::MediaOptions;
use crate::routing::{Relay, RelayConfig};
use crate::token::{TokenPolicy, TokenVerifier, VerifyingKeys};

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
    /// The web root: `demo/` is served at `/`, `dist/` at `/dist/`, `wasm/` at `/wasm/`.
    pub static_dir: PathBuf,
    /// Dev mode: `POST /dev/token` mints tokens with this key (which must also be in `keys`).
    /// Only for a relay bound to a loopback address; [`serve`] refuses it otherwise.
    pub dev: Option<DevMinter>,
}

impl RelayOptions {
    /// Options with these keys and everything else at its default: audience `hush`, the web
    /// root `web/`, media on 127.0.0.1, no dev mode.
    pub fn new(keys: VerifyingKeys) -> Self {
        Self {
            relay: RelayConfig::default(),
            keys,
            policy: TokenPolicy::new("hush"),
            media: MediaOptions::default(),
            static_dir: PathBuf::from("web"),
            dev: None,
        }
    }
}

/// Shared by the HTTP handlers.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) driver: DriverHandle,
    pub(crate) dev: Option<Arc<DevMinter>>,
}

/// Why the relay did not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServeError {
    /// Dev mode on a listener that is not bound to a loopback address.
    DevNotLoopback,
    /// The listener failed.
    Io(io::Error),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::DevNotLoopback => f.write_str(
                "dev mode mints tokens for anyone who asks: it only runs on a loopback address",
            ),
            Self::Io(err) => write!(f, "listener: {err}"),
        }
    }
}

impl std::error::Error for ServeError {}

/// The relay's routes, with a driver already started (on the current tokio runtime).
pub fn router(options: RelayOptions) -> Router {
    let verifier = TokenVerifier::new(options.keys, options.policy);
    let relay = Relay::new(options.relay, verifier);
    let driver = driver::spawn(relay, options.media);
    let state = AppState {
        driver,
        dev: options.dev.map(Arc::new),
    };
    let root = options.static_dir;
    let demo = root.join("demo");
    Router::new()
        .route("/v1/rtc", get(ws::upgrade))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/dev/token", post(dev::token))
        .route_service("/r/{name}", ServeFile::new(demo.join("index.html")))
        .nest_service("/dist", ServeDir::new(root.join("dist")))
        .nest_service("/wasm", ServeDir::new(root.join("wasm")))
        .fallback_service(ServeDir::new(demo))
        .with_state(state)
}

/// Serves the relay on `listener` until the task is dropped or the listener fails.
pub async fn serve(listener: TcpListener, options: RelayOptions) -> Result<(), ServeError> {
    let local = listener.local_addr().map_err(ServeError::Io)?;
    if options.dev.is_some() && !local.ip().is_loopback() {
        return Err(ServeError::DevNotLoopback);
    }
    let app = router(options);
    axum::serve(listener, app).await.map_err(ServeError::Io)
}

/// Serves the relay over TLS (HTTPS and WSS) on `listener`, with a configuration from
/// [`crate::ops::tls::server_config`].
pub async fn serve_tls(
    listener: TcpListener,
    config: Arc<tokio_rustls::rustls::ServerConfig>,
    options: RelayOptions,
) -> Result<(), ServeError> {
    let local = listener.local_addr().map_err(ServeError::Io)?;
    if options.dev.is_some() && !local.ip().is_loopback() {
        return Err(ServeError::DevNotLoopback);
    }
    let listener = tls::TlsListener::new(listener, config).map_err(ServeError::Io)?;
    let app = router(options);
    axum::serve(listener, app).await.map_err(ServeError::Io)
}
