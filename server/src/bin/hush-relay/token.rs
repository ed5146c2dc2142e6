//! `hush-relay token` and `hush-relay keygen`: what an app backend does, by hand (tests,
//! scripts, a first call after a deployment). The relay itself never mints tokens.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::ExitCode;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clap::{Args, ValueEnum};
use hush_proto::{Grants, ParticipantId, RoomId};
use hush_relay::config::read_secret_file;
use hush_relay::token::{Issue, SigningKey, mint};
use zeroize::Zeroizing;

use crate::fail;

/// The signature algorithm of `hush-relay token`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum Alg {
    /// HMAC-SHA-256 with a shared secret (raw bytes, at least 32).
    Hs256,
    /// Ed25519 with a private seed (32 raw bytes, or their base64), as `hush-relay keygen`
    /// writes: the relay holds only the public key.
    Eddsa,
}

#[derive(Args, Debug)]
pub(crate) struct TokenArgs {
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
    /// The signature algorithm.
    #[arg(long, value_enum, default_value_t = Alg::Hs256)]
    alg: Alg,
    /// File holding the key: the HS256 secret, or the Ed25519 seed.
    #[arg(long, env = "HUSH_KEY_FILE")]
    key_file: PathBuf,
    /// The key id the relay knows the key by.
    #[arg(long, default_value = "default")]
    kid: String,
    /// The audience.
    #[arg(long, default_value = "hush")]
    audience: String,
}

#[derive(Args, Debug)]
pub(crate) struct KeygenArgs {
    /// Where the private seed goes (created with mode 0600; never overwritten).
    #[arg(long)]
    out: PathBuf,
}

/// The Ed25519 seed in `bytes`: 32 raw bytes, or their base64.
fn ed25519_seed(bytes: &[u8]) -> Result<Zeroizing<[u8; 32]>, String> {
    let mut seed = Zeroizing::new([0u8; 32]);
    if bytes.len() == 32 {
        seed.copy_from_slice(bytes);
        return Ok(seed);
    }
    let decoded = Zeroizing::new(
        STANDARD
            .decode(bytes.trim_ascii())
            .map_err(|_| "the Ed25519 key file must hold 32 bytes or their base64".to_owned())?,
    );
    if decoded.len() != 32 {
        return Err("the Ed25519 key file must hold 32 bytes or their base64".into());
    }
    seed.copy_from_slice(&decoded);
    Ok(seed)
}

/// `hush-relay token`.
pub(crate) fn token(args: TokenArgs) -> ExitCode {
    let secret = match read_secret_file(&args.key_file) {
        Ok(secret) => secret,
        Err(err) => return fail(err),
    };
    let key = match args.alg {
        Alg::Hs256 => SigningKey::hs256(args.kid, &secret).map_err(|e| e.to_string()),
        Alg::Eddsa => ed25519_seed(&secret)
            .and_then(|seed| SigningKey::ed25519(args.kid, &seed).map_err(|e| e.to_string())),
    };
    let key = match key {
        Ok(key) => key,
        Err(err) => return fail(err),
    };
    let (Ok(sub), Ok(room)) = (ParticipantId::new(args.sub), RoomId::new(args.room)) else {
        return fail(format!("--sub and --room must be {}", hush_proto::ID_RULE));
    };
    let now = hush_relay::driver::now().unix_secs();
    let mut jti = [0u8; 16];
    if getrandom::fill(&mut jti).is_err() {
        return fail("the OS random number generator failed");
    }
    let claims = Issue {
        sub,
        room,
        audience: args.audience,
        now_unix: now,
        ttl_secs: args.ttl,
        grants: Grants {
            publish: args.publish,
            subscribe: args.subscribe,
            moderator: args.moderator,
            ..Grants::default()
        },
    }
    .claims(&jti);
    match mint(&claims, &key) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(err) => fail(err),
    }
}

/// `hush-relay keygen`.
pub(crate) fn keygen(args: KeygenArgs) -> ExitCode {
    let mut seed = Zeroizing::new([0u8; 32]);
    if getrandom::fill(seed.as_mut_slice()).is_err() {
        return fail("the OS random number generator failed");
    }
    let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&args.out);
    let written = file.and_then(|mut f| {
        f.write_all(STANDARD.encode(seed.as_slice()).as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()
    });
    if let Err(e) = written {
        return fail(format!("{}: {e}", args.out.display()));
    }
    println!("{}", STANDARD.encode(public.as_bytes()));
    ExitCode::SUCCESS
}
