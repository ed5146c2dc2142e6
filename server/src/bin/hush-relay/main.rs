//! `hush-relay`: the Hush relay.
//!
//! - `hush-relay [serve] [--bind ADDR] [--config FILE] [--dev] [--static-dir DIR] ...` runs the
//!   relay (the default command). With no flags and no file it listens on 127.0.0.1:8080.
//!
//!   Output: the audit trail as JSON Lines on stdout (or `--audit-file`), the log on stderr
//!   (`--log-format text|json`, filtered by `RUST_LOG`), and the start-up banner on stderr.
//! - `hush-relay token --room R --sub S --key-file F [--kid K] [--ttl SECS] [--publish]
//!   [--subscribe] [--moderator]` prints a signed access token (HS256; the secret is read from
//!   the file, never from the command line).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use logging::{LogFormat, init_logging};

mod logging;
mod token;
use hush_relay::config::{
    DEFAULT_BIND, FileConfig, read_admin_token, read_audit_key, read_secret_file,
};
use hush_relay::http::{DevMinter, RelayOptions, serve_all};
use hush_relay::media::MediaOptions;
use hush_relay::ops::audit::AuditSink;
use hush_relay::ops::token_store::{TokenStore, TokenStoreSpec};
use hush_relay::token::TokenPolicy;

#[derive(Parser, Debug)]
#[command(
    name = "hush-relay",
    version,
    about = "The Hush relay: end-to-end encrypted calls"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the relay (the default).
    Serve(Box<ServeArgs>),
    /// Mint an access token (HS256 or EdDSA) for tests and scripts, as a backend would.
    Token(token::TokenArgs),
    /// Make an Ed25519 token-signing key: the private seed to a file (0600), the public key
    /// (base64, for `[[keys]] public_key`) to stdout.
    Keygen(token::KeygenArgs),
}

#[derive(Args, Debug, Clone, Default)]
struct ServeArgs {
    /// Listen address [default: 127.0.0.1:8080].
    #[arg(long, env = "HUSH_BIND")]
    bind: Option<SocketAddr>,
    /// TOML configuration file.
    #[arg(long, env = "HUSH_CONFIG")]
    config: Option<PathBuf>,
    /// Dev mode: POST /dev/token and /dev/attest serve anyone (loopback addresses only).
    #[arg(long, env = "HUSH_DEV")]
    dev: bool,
    /// Dev mode: keep the dev token and backend keys in this file (made on first use, mode
    /// 0600), so a restarted dev relay accepts what its clients were given before.
    #[arg(long, env = "HUSH_DEV_KEY_FILE")]
    dev_key_file: Option<PathBuf>,
    /// The web root: demo/ at /, dist/ at /dist/, wasm/ at /wasm/ [default: web].
    #[arg(long, env = "HUSH_STATIC_DIR")]
    static_dir: Option<PathBuf>,
    /// TLS certificate chain (PEM).
    #[arg(long, env = "HUSH_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "HUSH_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Where media (UDP) sockets bind [default: the listen address if specific, else 127.0.0.1].
    #[arg(long, env = "HUSH_MEDIA_IP")]
    media_ip: Option<IpAddr>,
    /// The public address announced in ICE host candidates (behind 1:1 NAT).
    #[arg(long, env = "HUSH_PUBLIC_IP")]
    public_ip: Option<IpAddr>,
    /// A TURN server URL handed to clients in `joined` (repeat for several; with
    /// --turn-secret-file; overrides the file's [turn] urls).
    #[arg(long = "turn-url", env = "HUSH_TURN_URLS", value_delimiter = ',')]
    turn_urls: Vec<String>,
    /// File holding the secret shared with the TURN server (coturn's static-auth-secret).
    #[arg(long, env = "HUSH_TURN_SECRET_FILE")]
    turn_secret_file: Option<PathBuf>,
    /// TURN credential lifetime in seconds [default: 43200].
    #[arg(long, env = "HUSH_TURN_TTL_SECS")]
    turn_ttl_secs: Option<u64>,
    /// On SIGTERM (or Ctrl-C), how long calls go on before the relay closes them and exits:
    /// meanwhile /readyz answers 503, new connections are refused and participants are told
    /// (`server_shutting_down`). A second signal exits at once [default: 10].
    #[arg(long, env = "HUSH_DRAIN_SECS")]
    drain_secs: Option<u64>,
    /// Write encrypted recordings under this directory (rooms are recorded only when a member
    /// with the `record` grant or the admin API asks) [default: no recording].
    #[arg(long, env = "HUSH_RECORDING_DIR")]
    recording_dir: Option<PathBuf>,
    /// Most MiB one recording may take [default: 2048].
    #[arg(long, env = "HUSH_RECORDING_MAX_ROOM_MB")]
    recording_max_room_mb: Option<u64>,
    /// Most MiB all recordings under the directory may take [default: 20480].
    #[arg(long, env = "HUSH_RECORDING_MAX_TOTAL_MB")]
    recording_max_total_mb: Option<u64>,
    /// How often recordings are synced to disk, in ms [default: 1000].
    #[arg(long, env = "HUSH_RECORDING_SYNC_MS")]
    recording_sync_ms: Option<u64>,
    /// A reverse proxy (CIDR or address) whose `Forwarded` / `X-Forwarded-For` headers name
    /// the client; per-IP limits then count real clients (repeat or comma-separate; replaces
    /// the file's `trusted_proxies`) [default: none].
    #[arg(
        long = "trusted-proxy",
        env = "HUSH_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    trusted_proxies: Vec<String>,
    /// The header the trusted proxies append the client's address to: `x-forwarded-for` or
    /// `forwarded`; the other is ignored (a proxy passes it through as the client wrote it)
    /// [default: x-forwarded-for].
    #[arg(long, env = "HUSH_PROXY_HEADER")]
    proxy_header: Option<String>,
    /// UDP ports for media, FIRST-LAST: one per participant, so the firewall opens exactly
    /// this range [default: any free port].
    #[arg(long, env = "HUSH_MEDIA_PORTS")]
    media_ports: Option<String>,
    /// Threads running media, a room to a thread (a packet crosses no thread inside its room)
    /// [default: one per CPU core].
    #[arg(long, env = "HUSH_MEDIA_THREADS")]
    media_threads: Option<usize>,
    /// Where used token ids are kept, so tokens stay single use across restarts and relays: a
    /// file path, a redis:// URL (shared by several relays), or `memory` [default:
    /// $STATE_DIRECTORY/used-tokens under systemd, else memory].
    #[arg(long, env = "HUSH_TOKEN_STORE")]
    token_store: Option<String>,
    /// Serve plain HTTP on a non-loopback address (only behind a proxy that terminates TLS);
    /// without it the relay refuses to start there without TLS. Logged every minute.
    #[arg(long, env = "HUSH_INSECURE")]
    insecure: bool,
    /// The token audience this relay accepts [default: hush].
    #[arg(long, env = "HUSH_AUDIENCE")]
    audience: Option<String>,
    /// Serve /metrics (and /healthz) on this separate address, plain HTTP [default: /metrics
    /// on the main address only when it is loopback].
    #[arg(long, env = "HUSH_METRICS_BIND")]
    metrics_bind: Option<SocketAddr>,
    /// File holding the admin API's bearer token (at least 32 visible ASCII bytes) [default:
    /// no admin API].
    #[arg(long, env = "HUSH_ADMIN_TOKEN_FILE")]
    admin_token_file: Option<PathBuf>,
    /// Append the audit trail (JSON Lines) to this file instead of stdout.
    #[arg(long, env = "HUSH_AUDIT_FILE")]
    audit_file: Option<PathBuf>,
    /// The log's format on stderr.
    #[arg(long, env = "HUSH_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Token(args)) => token::token(args),
        Some(Command::Keygen(args)) => token::keygen(args),
        Some(Command::Serve(args)) => run_serve(*args),
        None => run_serve(cli.serve),
    }
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("hush-relay: {message}");
    ExitCode::from(2)
}

fn run_serve(args: ServeArgs) -> ExitCode {
    let started = Instant::now();
    if let Err(err) = init_logging(args.log_format, args.audit_file.as_deref()) {
        return fail(err);
    }
    let file = match &args.config {
        Some(path) => match FileConfig::load(path) {
            Ok(file) => file,
            Err(err) => return fail(err),
        },
        None => FileConfig::default(),
    };
    let bind = match args.bind.or(file.bind) {
        Some(bind) => bind,
        None => match DEFAULT_BIND.parse() {
            Ok(bind) => bind,
            Err(_) => return fail("bad default bind address"),
        },
    };
    let dev = args.dev || file.dev.unwrap_or(false);
    if dev && !bind.ip().is_loopback() {
        return fail(format!(
            "--dev mints tokens for anyone who asks: refusing to run it on {bind}; bind 127.0.0.1"
        ));
    }
    let tls_files = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        _ => file.tls.clone().map(|t| (t.cert, t.key)),
    };
    // The certificate is read again on SIGHUP (a renewal), without a restart.
    let (tls, reloader) = match &tls_files {
        Some((cert, key)) => match hush_relay::ops::tls::reloadable_server_config(cert, key) {
            Ok((config, reloader)) => (Some(config), Some(reloader)),
            Err(err) => return fail(err),
        },
        None => (None, None),
    };
    if tls.is_none() && !bind.ip().is_loopback() && !args.insecure {
        return fail(hush_relay::http::ServeError::PlainNotLoopback);
    }
    let mut keys = match file.verifying_keys() {
        Ok(keys) => keys,
        Err(err) => return fail(err),
    };
    let audience = args
        .audience
        .or(file.audience.clone())
        .unwrap_or_else(|| "hush".to_owned());
    let minter = if dev {
        let made = match &args.dev_key_file {
            Some(path) => DevMinter::load_or_generate(path, &mut keys, &audience),
            None => DevMinter::generate(&mut keys, &audience),
        };
        match made {
            Ok(minter) => Some(minter),
            Err(err) => return fail(err),
        }
    } else {
        if args.dev_key_file.is_some() {
            tracing::warn!("--dev-key-file is ignored without dev mode");
        }
        None
    };
    if keys.is_empty() {
        tracing::warn!(
            "no token keys configured: every join will be refused (add [[keys]] or run with --dev)"
        );
    }
    let media_ip = args.media_ip.or(file.media_ip).unwrap_or_else(|| {
        if bind.ip().is_unspecified() {
            IpAddr::from([127, 0, 0, 1])
        } else {
            bind.ip()
        }
    });
    // TURN: the command line's URLs and secret file, else the file's [turn].
    let turn_file = file.turn.clone();
    let turn_urls = if args.turn_urls.is_empty() {
        turn_file
            .as_ref()
            .map(|t| t.urls.clone())
            .unwrap_or_default()
    } else {
        args.turn_urls.clone()
    };
    let turn_secret = args
        .turn_secret_file
        .clone()
        .or(turn_file.as_ref().map(|t| t.secret_file.clone()));
    let turn = match (turn_urls.is_empty(), turn_secret) {
        (true, None) => None,
        (false, Some(path)) => {
            let secret = match read_secret_file(&path) {
                Ok(secret) => secret,
                Err(err) => return fail(err),
            };
            let ttl = args
                .turn_ttl_secs
                .or(turn_file.as_ref().and_then(|t| t.ttl_secs))
                .map_or(hush_relay::turn::DEFAULT_TTL, Duration::from_secs);
            match hush_relay::turn::TurnConfig::new(turn_urls, secret, ttl) {
                Ok(turn) => Some(turn),
                Err(err) => return fail(err),
            }
        }
        (true, Some(_)) => return fail("a TURN secret file without TURN URLs (--turn-url)"),
        (false, None) => return fail("TURN URLs without the secret file (--turn-secret-file)"),
    };
    let mut options = RelayOptions::new(keys);
    let limits = (
        file.limits.relay_config(),
        file.limits.ip_limits(),
        file.limits.idle_timeout(),
    );
    match limits {
        (Ok(relay), Ok(ip), Ok(idle)) => {
            options.relay = relay;
            options.ip_limits = ip;
            options.idle_timeout = idle;
        }
        (Err(err), _, _) | (_, Err(err), _) | (_, _, Err(err)) => return fail(err),
    }
    if let Some(path) = &file.audit_key_file {
        match read_audit_key(path) {
            Ok(key) => options.audit = Some(AuditSink::new(*key)),
            Err(err) => return fail(err),
        }
    }
    if let Some(path) = args
        .admin_token_file
        .as_ref()
        .or(file.admin_token_file.as_ref())
    {
        match read_admin_token(path) {
            Ok(token) => options.admin_token = Some(token),
            Err(err) => return fail(err),
        }
    }
    let admin_api = options.admin_token.is_some();
    let metrics_bind = args.metrics_bind.or(file.metrics_bind);
    options.policy = TokenPolicy::new(audience);
    options.static_dir = args
        .static_dir
        .or(file.static_dir.clone())
        .unwrap_or_else(|| PathBuf::from("web"));
    let recording = match (args.recording_dir.clone(), file.recording.clone()) {
        (Some(dir), f) => Some(hush_relay::config::RecordingFileConfig {
            dir,
            max_room_mb: args
                .recording_max_room_mb
                .or(f.as_ref().and_then(|f| f.max_room_mb)),
            max_total_mb: args
                .recording_max_total_mb
                .or(f.as_ref().and_then(|f| f.max_total_mb)),
            sync_ms: args.recording_sync_ms.or(f.and_then(|f| f.sync_ms)),
        }),
        (None, Some(mut f)) => {
            f.max_room_mb = args.recording_max_room_mb.or(f.max_room_mb);
            f.max_total_mb = args.recording_max_total_mb.or(f.max_total_mb);
            f.sync_ms = args.recording_sync_ms.or(f.sync_ms);
            Some(f)
        }
        (None, None) => None,
    };
    let udp_ports = match args.media_ports.as_deref().or(file.media_ports.as_deref()) {
        Some(range) => match range.parse::<hush_relay::media::ports::PortRange>() {
            Ok(range) => Some(std::sync::Arc::new(range)),
            Err(e) => return fail(e),
        },
        None => None,
    };
    options.media = MediaOptions {
        udp_ip: media_ip,
        public_ip: args.public_ip.or(file.public_ip),
        turn,
        udp_ports,
        threads: args.media_threads.or(file.media_threads).unwrap_or(0),
        ..MediaOptions::default()
    };
    options.recording = recording.map(|r| r.options());
    options.dev = minter;
    options.drain = Duration::from_secs(args.drain_secs.unwrap_or(10));
    options.insecure = args.insecure;
    let proxies = if args.trusted_proxies.is_empty() {
        &file.trusted_proxies
    } else {
        &args.trusted_proxies
    };
    options.trusted_proxies =
        match hush_relay::ops::proxy::TrustedProxies::parse(proxies.iter().map(String::as_str)) {
            Ok(p) => p,
            Err(e) => return fail(format!("trusted proxies: {e}")),
        };
    if let Some(h) = args.proxy_header.as_ref().or(file.proxy_header.as_ref()) {
        match h.parse::<hush_relay::ops::proxy::ProxyHeader>() {
            Ok(h) => options.trusted_proxies = options.trusted_proxies.reading(h),
            Err(e) => return fail(e),
        }
    }
    let token_store = match TokenStoreSpec::choose(
        args.token_store.as_deref().or(file.token_store.as_deref()),
        std::env::var_os("STATE_DIRECTORY").as_deref(),
    ) {
        Ok(spec) => spec,
        Err(e) => return fail(format!("token store: {e}")),
    };
    if token_store.is_none() && !dev {
        tracing::warn!(
            "no token store: tokens are single use until this relay restarts (set token_store)"
        );
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    options.shutdown = Some(stop_rx);

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return fail(format!("cannot start the runtime: {err}")),
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(bind).await {
            Ok(listener) => listener,
            Err(err) => return fail(format!("cannot listen on {bind}: {err}")),
        };
        if let Some(spec) = &token_store {
            match TokenStore::open(spec, options.policy.replay_capacity).await {
                Ok(store) => options.token_store = Some(std::sync::Arc::new(store)),
                Err(err) => return fail(err.to_string()),
            }
        }
        let local = listener.local_addr().unwrap_or(bind);
        let metrics = match metrics_bind {
            Some(at) => match tokio::net::TcpListener::bind(at).await {
                Ok(listener) => Some(listener),
                Err(err) => return fail(format!("cannot listen on {at} for /metrics: {err}")),
            },
            None => None,
        };
        // stdout carries the audit trail alone: the banner goes to stderr.
        if dev {
            eprintln!("{}", dev_banner(local));
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        eprintln!(
            "hush-relay listening on {scheme}://{local}/ (started in {} ms)",
            started.elapsed().as_millis()
        );
        match metrics.as_ref().and_then(|m| m.local_addr().ok()) {
            Some(at) => eprintln!("hush-relay metrics on http://{at}/metrics"),
            None if local.ip().is_loopback() => {
                eprintln!("hush-relay metrics on {scheme}://{local}/metrics")
            }
            None => eprintln!("hush-relay: /metrics is off (set --metrics-bind)"),
        }
        if admin_api {
            eprintln!("hush-relay admin API on {scheme}://{local}/v1/admin/");
        }
        if let Some(reloader) = reloader {
            tokio::spawn(reload_on_sighup(reloader));
        }
        let serving = serve_all(listener, tls, metrics, options);
        tokio::pin!(serving);
        // The first SIGTERM or Ctrl-C drains (see --drain-secs); a second one exits at once.
        let mut signals = 0;
        loop {
            tokio::select! {
                result = &mut serving => break match result {
                    Ok(()) => {
                        eprintln!("hush-relay: shut down");
                        ExitCode::SUCCESS
                    }
                    Err(err) => fail(err),
                },
                () = shutdown_signal() => {
                    signals += 1;
                    if signals > 1 {
                        eprintln!("hush-relay: second signal: exiting now");
                        break ExitCode::SUCCESS;
                    }
                    eprintln!("hush-relay: shutting down, draining");
                    let _ = stop_tx.send(true);
                }
            }
        }
    })
}

/// SIGTERM (what service managers send) or Ctrl-C.
/// Reads the TLS certificate and key again at every SIGHUP; a pair that does not load is
/// refused (and logged) and the one served stays.
async fn reload_on_sighup(reloader: std::sync::Arc<hush_relay::ops::tls::ReloadableCert>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("no SIGHUP handler: the certificate is read at start only");
            return;
        };
        while hup.recv().await.is_some() {
            match reloader.reload() {
                Ok(()) => tracing::info!("TLS certificate reloaded"),
                Err(err) => {
                    tracing::warn!(%err, "TLS certificate not reloaded: still serving the previous one")
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = reloader;
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn dev_banner(local: SocketAddr) -> String {
    let line = "!".repeat(72);
    format!(
        "{line}\n!! DEV MODE: POST /dev/token mints a token for any room, and POST /dev/attest\n\
         !! vouches for any identity key with a dev backend key, for anyone who can\n\
         !! reach {local}. Never expose this relay. The keys are random and live only in\n\
         !! this process.\n!! Open http://127.0.0.1:{port}/r/<room> in two tabs to call.\n{line}",
        port = local.port()
    )
}
