//! `hush-relay`: the Hush relay.
//!
//! - `hush-relay [serve] [--bind ADDR] [--config FILE] [--dev] [--static-dir DIR] ...` runs the
//!   relay (the default command). With no flags and no file it listens on 127.0.0.1:8080.
//! - `hush-relay token --room R --sub S --key-file F [--kid K] [--ttl SECS] [--publish]
//!   [--subscribe] [--moderator]` prints a signed access token (HS256; the secret is read from
//!   the file, never from the command line).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use hush_proto::{Audience, Grants, ParticipantId, RoomId, TokenClaims};
use hush_relay::config::{DEFAULT_BIND, FileConfig, read_secret_file};
use hush_relay::http::{DevMinter, RelayOptions, serve, serve_tls};
use hush_relay::media::MediaOptions;
use hush_relay::token::{SigningKey, TokenPolicy, mint};

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
    Serve(ServeArgs),
    /// Mint an HS256 access token for development and scripts.
    Token(TokenArgs),
}

#[derive(Args, Debug, Clone, Default)]
struct ServeArgs {
    /// Listen address [default: 127.0.0.1:8080].
    #[arg(long, env = "HUSH_BIND")]
    bind: Option<SocketAddr>,
    /// TOML configuration file.
    #[arg(long, env = "HUSH_CONFIG")]
    config: Option<PathBuf>,
    /// Dev mode: POST /dev/token mints tokens for anyone (loopback addresses only).
    #[arg(long, env = "HUSH_DEV")]
    dev: bool,
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
    /// The token audience this relay accepts [default: hush].
    #[arg(long, env = "HUSH_AUDIENCE")]
    audience: Option<String>,
}

#[derive(Args, Debug)]
struct TokenArgs {
    /// The room the token opens.
    #[arg(long)]
    room: String,
    /// The participant id (opaque, no personal data).
    #[arg(long)]
    sub: String,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 600)]
    ttl: u64,
    /// Grant publishing.
    #[arg(long)]
    publish: bool,
    /// Grant subscribing.
    #[arg(long)]
    subscribe: bool,
    /// Grant moderator commands.
    #[arg(long)]
    moderator: bool,
    /// File holding the HS256 secret (raw bytes, at least 32).
    #[arg(long, env = "HUSH_KEY_FILE")]
    key_file: PathBuf,
    /// The key id the relay knows the secret by.
    #[arg(long, default_value = "default")]
    kid: String,
    /// The audience.
    #[arg(long, default_value = "hush")]
    audience: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Token(args)) => token(args),
        Some(Command::Serve(args)) => run_serve(args),
        None => run_serve(cli.serve),
    }
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("hush-relay: {message}");
    ExitCode::from(2)
}

fn token(args: TokenArgs) -> ExitCode {
    let secret = match read_secret_file(&args.key_file) {
        Ok(secret) => secret,
        Err(err) => return fail(err),
    };
    let key = match SigningKey::hs256(args.kid, &secret) {
        Ok(key) => key,
        Err(err) => return fail(err),
    };
    let (Ok(sub), Ok(room)) = (ParticipantId::new(args.sub), RoomId::new(args.room)) else {
        return fail("--sub and --room must be 1 to 128 characters of [A-Za-z0-9._~-]");
    };
    let now = hush_relay::driver::now().unix_secs();
    let mut jti = [0u8; 16];
    if getrandom::fill(&mut jti).is_err() {
        return fail("the OS random number generator failed");
    }
    let claims = TokenClaims {
        sub,
        room,
        aud: Audience::from(args.audience.as_str()),
        exp: now + args.ttl,
        nbf: None,
        iat: Some(now),
        jti: Some(jti.iter().map(|b| format!("{b:02x}")).collect()),
        grants: Grants {
            publish: args.publish,
            subscribe: args.subscribe,
            moderator: args.moderator,
            ..Grants::default()
        },
    };
    match mint(&claims, &key) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(err) => fail(err),
    }
}

fn run_serve(args: ServeArgs) -> ExitCode {
    let started = Instant::now();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,webrtc=warn,rtc=warn")
            }),
        )
        .init();
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
    let tls = match &tls_files {
        Some((cert, key)) => match hush_relay::ops::tls::server_config(cert, key) {
            Ok(config) => Some(config),
            Err(err) => return fail(err),
        },
        None => None,
    };
    let mut keys = match file.verifying_keys() {
        Ok(keys) => keys,
        Err(err) => return fail(err),
    };
    let audience = args
        .audience
        .or(file.audience.clone())
        .unwrap_or_else(|| "hush".to_owned());
    let minter = if dev {
        match DevMinter::generate(&mut keys, &audience) {
            Ok(minter) => Some(minter),
            Err(err) => return fail(err),
        }
    } else {
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
    let mut options = RelayOptions::new(keys);
    options.policy = TokenPolicy::new(audience);
    options.static_dir = args
        .static_dir
        .or(file.static_dir.clone())
        .unwrap_or_else(|| PathBuf::from("web"));
    options.media = MediaOptions {
        udp_ip: media_ip,
        public_ip: args.public_ip.or(file.public_ip),
        forward_tap: None,
    };
    options.dev = minter;

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
        let local = listener.local_addr().unwrap_or(bind);
        if dev {
            println!("{}", dev_banner(local));
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        println!(
            "hush-relay listening on {scheme}://{local}/ (started in {} ms)",
            started.elapsed().as_millis()
        );
        tokio::select! {
            result = async {
                match tls {
                    Some(config) => serve_tls(listener, config, options).await,
                    None => serve(listener, options).await,
                }
            } => match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => fail(err),
            },
            _ = tokio::signal::ctrl_c() => {
                println!("hush-relay: shutting down");
                ExitCode::SUCCESS
            }
        }
    })
}

fn dev_banner(local: SocketAddr) -> String {
    let line = "!".repeat(72);
    format!(
        "{line}\n!! DEV MODE: POST /dev/token mints a token for any room, for anyone who can\n\
         !! reach {local}. Never expose this relay. The key is random and lives only in\n\
         !! this process.\n!! Open http://127.0.0.1:{port}/r/<room> in two tabs to call.\n{line}",
        port = local.port()
    )
}
