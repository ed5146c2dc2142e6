//! `hush-record`: the offline tool for Hush's encrypted recordings.
//!
//! - `hush-record keygen --out recorder.key`: a recorder key pair. The private key goes to the
//!   file (mode 0600, base64); the public key is printed, for the app backend to vouch for
//!   (`Attestation::sign_as(.., Role::Recorder, ..)`) and set on a room through the relay's
//!   admin API (`PUT /v1/admin/rooms/{room}/recorder`).
//! - `hush-record inspect RECORDING`: what a recording holds, without a key (tracks, sizes,
//!   times, events by type; nothing secret).
//! - `hush-record decrypt --key recorder.key --backend-key B64 RECORDING -o DIR`: opens it
//!   into IVF (VP8) and Ogg Opus files, with a summary of every track and every frame refused
//!   and why. Exit status 3 when it finished but found the recording altered or damaged (2: a
//!   usage error).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clap::{Parser, Subcommand};
use hush_keys::IdentityKeyPair;
use hush_keys::ed25519_dalek::VerifyingKey;
use hush_record::open::{OpenOptions, Report, open, tracks_bytes};
use hush_record::{Record, RecordingDir};
use zeroize::Zeroizing;

#[derive(Parser, Debug)]
#[command(
    name = "hush-record",
    version,
    about = "Open Hush's encrypted recordings offline"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Make a recorder key pair: the private key to a file, the public key printed.
    Keygen {
        /// Where the private key goes (created, mode 0600; refused if it exists).
        #[arg(long)]
        out: PathBuf,
    },
    /// Show what a recording holds, without a key.
    Inspect {
        /// The recording's directory.
        recording: PathBuf,
    },
    /// Decrypt a recording with the recorder's private key.
    Decrypt {
        /// The recorder's private key file (from `keygen`).
        #[arg(long)]
        key: PathBuf,
        /// The app backend's Ed25519 public key (base64): members must carry its
        /// attestation, as in the browsers. Required, unless --insecure-unvouched-members.
        #[arg(long, required_unless_present = "insecure_unvouched_members")]
        backend_key: Option<String>,
        /// Take the recording's members as the relay announced them (no --backend-key): a
        /// relay that added a member of its own could have written the whole recording.
        #[arg(long, conflicts_with = "backend_key")]
        insecure_unvouched_members: bool,
        /// The recording's directory.
        recording: PathBuf,
        /// Where the playable files go.
        #[arg(short, long)]
        out: PathBuf,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
}

/// Exit status of a decrypt that finished but found the recording altered or damaged (what
/// opened was written; the report says what did not). Not 2, which is a usage error (clap's).
const ALTERED: u8 = 3;

/// How a command finished.
enum Opened {
    /// Nothing to report.
    Clean,
    /// A decrypt found frames refused, damage or refused members ([`Report::alterations`]).
    Altered,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Keygen { out } => keygen(&out).map(|()| Opened::Clean),
        Command::Inspect { recording } => inspect(&recording).map(|()| Opened::Clean),
        Command::Decrypt {
            key,
            backend_key,
            insecure_unvouched_members: _,
            recording,
            out,
            quiet,
        } => decrypt(&key, backend_key.as_deref(), &recording, &out, quiet),
    };
    match r {
        Ok(Opened::Clean) => ExitCode::SUCCESS,
        Ok(Opened::Altered) => ExitCode::from(ALTERED),
        Err(e) => {
            eprintln!("hush-record: {e}");
            ExitCode::FAILURE
        }
    }
}

fn keygen(out: &Path) -> Result<(), String> {
    let mut secret = Zeroizing::new([0u8; 32]);
    getrandom::fill(secret.as_mut_slice()).map_err(|_| "no randomness from the OS")?;
    let pair = IdentityKeyPair::from_secret_bytes(*secret);
    let text = Zeroizing::new(format!("{}\n", STANDARD.encode(secret.as_slice())));
    write_private(out, text.as_bytes()).map_err(|e| format!("{}: {e}", out.display()))?;
    println!("{}", STANDARD.encode(pair.public().as_bytes()));
    eprintln!(
        "private key written to {} (keep it offline); the public key above goes to the app backend",
        out.display()
    );
    Ok(())
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn read_key(path: &Path) -> Result<IdentityKeyPair, String> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?,
    );
    let bytes = Zeroizing::new(
        STANDARD
            .decode(text.trim())
            .map_err(|_| format!("{}: not a recorder key (base64)", path.display()))?,
    );
    let secret: Zeroizing<[u8; 32]> = Zeroizing::new(
        bytes
            .as_slice()
            .try_into()
            .map_err(|_| format!("{}: a recorder key is 32 bytes", path.display()))?,
    );
    Ok(IdentityKeyPair::from_secret_bytes(*secret))
}

fn inspect(dir: &Path) -> Result<(), String> {
    let rec = RecordingDir::open(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let m = rec.manifest();
    println!("recording   {}", m.recording_id);
    println!("room        {}", m.room);
    println!(
        "recorder    {} (key {})",
        m.recorder.participant, m.recorder.identity_key
    );
    println!("started     {} (Unix ms)", m.started_at_ms);
    match (m.stopped_at_ms, m.stop_reason) {
        (Some(at), Some(why)) => println!(
            "stopped     {at} (Unix ms), {:.1} s, reason {}",
            at.saturating_sub(m.started_at_ms) as f64 / 1000.0,
            serde_json::to_string(&why)
                .unwrap_or_default()
                .trim_matches('"')
        ),
        _ => println!("stopped     not cleanly (the relay died, or it still runs)"),
    }
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    let mut damage = Vec::new();
    if let Ok(events) = rec.open_events() {
        for r in events {
            match r {
                Ok(Record::Event(e)) => {
                    let kind = serde_json::from_str::<serde_json::Value>(&e.json)
                        .ok()
                        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned))
                        .unwrap_or_else(|| "?".into());
                    *kinds.entry(kind).or_default() += 1;
                }
                Ok(Record::Frame(_)) => {}
                Err(e) => damage.push(format!("events: {e}")),
            }
        }
    }
    let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!("events      {}", kinds.join(", "));
    println!();
    println!(
        "{:<14} {:<16} {:<6} {:<6} {:>8} {:>12} {:>10}",
        "file", "participant", "kind", "codec", "frames", "bytes", "seconds"
    );
    for (i, t) in m.tracks.iter().enumerate() {
        let (mut frames, mut bytes, mut first, mut last) = (0u64, 0u64, None, 0u64);
        if let Some(Ok(r)) = rec.open_track(i) {
            for x in r {
                match x {
                    Ok(Record::Frame(f)) => {
                        frames += 1;
                        bytes += f.data.len() as u64;
                        first.get_or_insert(f.at_us);
                        last = f.at_us;
                    }
                    Ok(Record::Event(_)) => {}
                    Err(e) => damage.push(format!("{}: {e}", t.file)),
                }
            }
        }
        let secs = first.map_or(0.0, |f| last.saturating_sub(f) as f64 / 1e6);
        println!(
            "{:<14} {:<16} {:<6} {:<6} {:>8} {:>12} {:>10.1}",
            t.file,
            t.participant,
            format!("{:?}", t.kind).to_lowercase(),
            t.codec,
            frames,
            bytes,
            secs
        );
    }
    for d in damage {
        println!("damaged: {d}");
    }
    Ok(())
}

fn decrypt(
    key: &Path,
    backend: Option<&str>,
    dir: &Path,
    out: &Path,
    quiet: bool,
) -> Result<Opened, String> {
    let pair = read_key(key)?;
    let backend_key = match backend {
        None => {
            eprintln!(
                "warning: --insecure-unvouched-members: members are taken as the relay announced them"
            );
            None
        }
        Some(b64) => {
            let bytes = STANDARD
                .decode(b64.trim())
                .map_err(|_| "--backend-key: not base64")?;
            let arr: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| "--backend-key: an Ed25519 public key is 32 bytes")?;
            Some(
                VerifyingKey::from_bytes(&arr)
                    .map_err(|_| "--backend-key: not an Ed25519 public key")?,
            )
        }
    };
    let total = tracks_bytes(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let bar = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        b
    };
    let options = OpenOptions { backend_key };
    let started = std::time::Instant::now();
    let report = open(dir, pair, out, &options, &mut |n| bar.set_position(n))
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    bar.finish_and_clear();
    print_report(&report, started.elapsed());
    let altered = report.alterations();
    if altered.is_empty() {
        return Ok(Opened::Clean);
    }
    eprintln!("hush-record: the recording was altered or damaged after it was sealed:");
    for line in altered {
        eprintln!("  {line}");
    }
    Ok(Opened::Altered)
}

fn print_report(r: &Report, took: std::time::Duration) {
    println!(
        "{:<16} {:<6} {:<12} {:<6} {:>8} {:>8} {:>9}  {:<28} output",
        "participant", "kind", "stream", "codec", "frames", "written", "seconds", "refused"
    );
    let (mut frames, mut bytes) = (0u64, 0u64);
    for t in &r.tracks {
        frames += t.frames;
        bytes += t.bytes;
        let refused: Vec<String> = t.refused.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!(
            "{:<16} {:<6} {:<12} {:<6} {:>8} {:>8} {:>9.1}  {:<28} {}",
            t.participant,
            t.kind,
            t.stream.as_deref().unwrap_or("-"),
            t.codec,
            t.frames,
            t.written,
            t.duration_ms as f64 / 1000.0,
            if refused.is_empty() {
                "-".into()
            } else {
                refused.join(", ")
            },
            t.output
                .as_ref()
                .map_or_else(|| "(none)".into(), |p| p.display().to_string())
        );
        for d in &t.damage {
            println!("  damaged: {d}");
        }
    }
    for d in &r.events_damage {
        println!("events damaged: {d}");
    }
    if !r.key_refusals.is_empty() {
        let refused: Vec<String> = r
            .key_refusals
            .iter()
            .map(|(code, n)| format!("{code} {n}"))
            .collect();
        println!("key session refused: {}", refused.join(", "));
    }
    println!(
        "{} events replayed; safety codes seen: {}; members {}",
        r.events,
        if r.safety_codes.is_empty() {
            "none".into()
        } else {
            r.safety_codes.join(" -> ")
        },
        if r.members_checked {
            "checked against the backend key"
        } else {
            "not checked"
        }
    );
    let secs = took.as_secs_f64().max(1e-9);
    println!(
        "{frames} frames, {bytes} bytes in {:.2} s ({:.0} frames/s, {:.1} MB/s)",
        secs,
        frames as f64 / secs,
        bytes as f64 / secs / 1e6
    );
}
