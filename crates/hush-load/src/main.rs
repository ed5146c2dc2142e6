//! `hush-load`: load a Hush relay with real E2EE clients and measure it against a bare UDP
//! forwarder, an SRTP-only reference and the same fan-out on str0m in the same run (see the
//! crate docs and the README's "Benchmarks" section).
//!
//! ```text
//! hush-load run --rooms 2 --per-room 4 --seconds 10 --video-kbps 300 --json out.json
//! hush-load run --url wss://relay.example.org/v1/rtc --tokens tokens.txt --seconds 30
//! hush-load sweep --per-room 4 --rooms 1,2,3,4,6 --seconds 8 --p99-ms 10
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};

use clap::{Args, Parser, Subcommand};
use hush_load::baseline::{self, Mode, Stream};
use hush_load::clients::{self, Plan};
use hush_load::procfs;
use hush_load::relay::{RelayProcess, RelayWindow, sibling_relay};
use hush_load::report::{Binary, Phase, ReferenceFigures, RelayFigures, Report};

/// Load tool for a Hush relay.
#[derive(Parser, Debug)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// One run: the relay, then (for a local relay) the SRTP-only, str0m and bare references.
    Run(RunArgs),
    /// Runs of growing size until p99 latency or loss passes its bound.
    Sweep(SweepArgs),
    /// A reference forwarder (the tool starts these itself, as separate processes).
    Forwarder(ForwarderArgs),
}

#[derive(Args, Debug, Clone)]
struct LoadArgs {
    /// Participants per room.
    #[arg(long, default_value_t = 4)]
    per_room: usize,
    /// The measured window, seconds (at most an hour).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Sending before the window, seconds: at least this, and until every client decrypts each
    /// room-mate (at most 60 s).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Video bitrate per publisher, kbit/s (0: audio only).
    #[arg(long, default_value_t = 300)]
    video_kbps: u32,
    /// Video frames per second.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Simulcast encodings per camera (1: none; 2 or 3: rids q, h, f, each lower one a
    /// quarter of the rate above; --video-kbps is the top one's).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=3))]
    simulcast: u8,
    /// Audio frame bytes (50 frames/s).
    #[arg(long, default_value_t = 80)]
    audio_bytes: usize,
    /// Joins at once.
    #[arg(long, default_value_t = 4)]
    join_concurrency: usize,
    /// The relay binary [default: hush-relay next to this one].
    #[arg(long)]
    relay_bin: Option<PathBuf>,
    /// Another relay binary (an older build, say) run first under the same load, so a change's
    /// effect is read from one run: its figures and its ratio to the same SRTP reference.
    #[arg(long, conflicts_with = "url")]
    before_bin: Option<PathBuf>,
    /// Relay phases per binary, in the order before, after, after, before, ... (the order's
    /// own effect cancels); CPU per packet is pooled over a binary's phases.
    #[arg(long, default_value_t = 1, conflicts_with = "url")]
    rounds: usize,
    /// A relay that runs elsewhere: its signaling URL (no /proc figures, no references).
    #[arg(long, requires = "tokens")]
    url: Option<String>,
    /// With --url: a file of access tokens, one per line, `per_room` consecutive lines a room.
    #[arg(long)]
    tokens: Option<PathBuf>,
    /// With --url: where its /metrics answers (host:port, plain HTTP).
    #[arg(long)]
    metrics: Option<SocketAddr>,
    /// Skip the reference forwarders.
    #[arg(long)]
    no_baseline: bool,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Rooms.
    #[arg(long, default_value_t = 1)]
    rooms: usize,
    #[command(flatten)]
    load: LoadArgs,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct SweepArgs {
    /// Room counts to try, in order.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,6,8")]
    rooms: Vec<usize>,
    #[command(flatten)]
    load: LoadArgs,
    /// Stop when p99 latency passes this, ms.
    #[arg(long, default_value_t = 10.0)]
    p99_ms: f64,
    /// Stop when loss passes this share.
    #[arg(long, default_value_t = 0.01)]
    max_loss: f64,
    /// Write every run's report as a JSON array here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct ForwarderArgs {
    /// plain, srtp or str0m.
    #[arg(long)]
    mode: String,
    /// Where to listen (UDP; str0m also takes its signaling on TCP at the same address).
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: SocketAddr,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Cmd::Run(args) => {
                let report = one_run(args.rooms, &args.load).await?;
                print!("{}", report.table());
                write_json(args.json.as_ref(), &report)
            }
            Cmd::Sweep(args) => sweep(args).await,
            Cmd::Forwarder(args) => forwarder(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("hush-load: {e}");
    ExitCode::from(2)
}

type Result<T> = std::result::Result<T, String>;

fn write_json(path: Option<&PathBuf>, value: &impl serde::Serialize) -> Result<()> {
    if let Some(path) = path {
        let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("report written to {}", path.display());
    }
    Ok(())
}

fn plan(rooms: usize, load: &LoadArgs) -> Plan {
    Plan {
        rooms,
        per_room: load.per_room.max(2),
        seconds: load.seconds.clamp(1.0, 3600.0),
        warmup: load.warmup.clamp(0.0, 60.0),
        audio_bytes: load.audio_bytes.clamp(16, 1000),
        video_kbps: load.video_kbps.min(20_000),
        fps: load.fps.clamp(1, 60),
        simulcast: load.simulcast,
        join_concurrency: load.join_concurrency,
    }
}

/// Tokens from a file, `per_room` consecutive lines a room.
fn tokens_file(path: &PathBuf, per_room: usize) -> Result<Vec<Vec<String>>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(lines
        .chunks(per_room.max(1))
        .map(<[String]>::to_vec)
        .collect())
}

async fn one_run(rooms: usize, load: &LoadArgs) -> Result<Report> {
    let mut plan = plan(rooms, load);
    let mut phases = Vec::new();
    let (before, figures) = match (&load.url, &load.tokens) {
        (Some(url), Some(file)) => {
            let tokens = tokens_file(file, plan.per_room)?;
            plan.rooms = tokens.len();
            let window = RelayWindow {
                metrics: load.metrics,
                ..RelayWindow::default()
            };
            (None, relay_run(url, None, tokens, &plan, window).await)
        }
        _ => {
            let bin = load
                .relay_bin
                .clone()
                .or_else(sibling_relay)
                .ok_or("no hush-relay next to hush-load: build it or pass --relay-bin")?;
            // Before first in even rounds, after first in odd ones.
            let mut before = None;
            let mut after = None;
            for round in 0..load.rounds.clamp(1, 20) {
                let old_first = round % 2 == 0;
                for old in [old_first, !old_first] {
                    match (old, &load.before_bin) {
                        (true, Some(path)) => {
                            let f = local_relay_run(path, &plan).await?;
                            phases.push(Phase::of(Binary::Before, &f));
                            before = Some(f);
                        }
                        (true, None) => {}
                        (false, _) => {
                            let f = local_relay_run(&bin, &plan).await?;
                            phases.push(Phase::of(Binary::After, &f));
                            after = Some(f);
                        }
                    }
                }
            }
            (before, after.ok_or("no relay phase ran")?)
        }
    };

    let mut report = Report {
        machine_cpus: procfs::cpus(),
        relay: figures,
        before,
        plain: None,
        srtp: None,
        str0m: None,
        str0m_ratio_to_srtp: None,
        ratio_to_str0m: None,
        ratio_to_srtp: None,
        ratio_to_plain: None,
        before_ratio_to_srtp: None,
        after_to_before: None,
        phases,
        plan,
    };
    report.pool();
    if load.url.is_none() && !load.no_baseline {
        let stream = Stream {
            rooms: report.plan.rooms,
            per_room: report.plan.per_room,
            seconds: report.plan.seconds,
            audio_pps: 50,
            // The SFrame header and tag ride in every frame: the same bytes on the wire.
            audio_bytes: report.plan.audio_bytes + 20,
            video_kbps: report.plan.video_kbps,
            fps: report.plan.fps,
            mtu_payload: 1200,
        };
        report.srtp = Some(reference(Mode::Srtp, &stream).await?);
        report.str0m = Some(reference(Mode::Str0m, &stream).await?);
        report.plain = Some(reference(Mode::Plain, &stream).await?);
        let ratio = |us: Option<f64>, r: &Option<ReferenceFigures>| {
            us.zip(r.as_ref())
                .map(|(a, b)| a / b.cpu_us_per_packet.max(1e-9))
        };
        let after = report.pooled_cpu_us(Binary::After);
        report.ratio_to_srtp = ratio(after, &report.srtp);
        report.ratio_to_plain = ratio(after, &report.plain);
        report.before_ratio_to_srtp = ratio(report.pooled_cpu_us(Binary::Before), &report.srtp);
        report.ratio_to_str0m = ratio(after, &report.str0m);
        let str0m_us = report.str0m.as_ref().map(|s| s.cpu_us_per_packet);
        report.str0m_ratio_to_srtp = ratio(str0m_us, &report.srtp);
    }
    Ok(report)
}

/// The relay binary `bin` started here with the run's own config, under `plan`'s load.
async fn local_relay_run(bin: &Path, plan: &Plan) -> Result<RelayFigures> {
    let dir = std::env::temp_dir().join(format!("hush-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let relay = RelayProcess::start(bin, &dir, plan.per_room).map_err(|e| e.to_string())?;
    let tokens = relay
        .tokens(plan.rooms, plan.per_room)
        .map_err(|e| e.to_string())?;
    let url = relay.ws_url();
    let window = RelayWindow {
        pid: Some(relay.pid()),
        metrics: Some(relay.addr()),
        ..RelayWindow::default()
    };
    eprintln!("relay: {}", bin.display());
    let figures = relay_run(&url, Some(relay), tokens, plan, window).await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(figures)
}

/// One relay phase: the clients against `url`; `relay` (when started here) is stopped after.
async fn relay_run(
    url: &str,
    relay: Option<RelayProcess>,
    tokens: Vec<Vec<String>>,
    plan: &Plan,
    mut window: RelayWindow,
) -> RelayFigures {
    let idle = window.pid.and_then(|p| procfs::sample(Some(p)).ok());
    eprintln!(
        "relay run: {} room(s) x {} participants at {url}",
        plan.rooms, plan.per_room
    );
    let clients = clients::run(url, tokens, plan, &mut window).await;
    drop(relay);
    relay_figures(clients, &window, idle, plan)
}

fn relay_figures(
    clients: clients::ClientFigures,
    window: &RelayWindow,
    idle: Option<procfs::Sample>,
    plan: &Plan,
) -> RelayFigures {
    let secs = plan.seconds;
    let mut f = RelayFigures {
        received_bytes_per_sec: clients.received_bytes as f64 / secs,
        window_secs: secs,
        ..RelayFigures::default()
    };
    if let (Some((r0, me0, c0)), Some((r1, me1, c1))) = (&window.start, &window.end) {
        let moved = c1.since(c0);
        f.forwarded_packets = moved.forwarded;
        f.forwarded_pps = f.forwarded_packets as f64 / secs;
        f.forwarded_bytes_per_sec = moved.forwarded_bytes as f64 / secs;
        f.relay_counters = moved;
        f.generator_machine_share = (me1.cpu_secs - me0.cpu_secs) / secs / procfs::cpus() as f64;
        if window.pid.is_some() {
            let cpu = r1.cpu_secs - r0.cpu_secs;
            f.cpu_secs = Some(cpu);
            f.cpu_cores = Some(cpu / secs);
            f.cpu_us_per_packet =
                (f.forwarded_packets > 0).then(|| cpu * 1e6 / f.forwarded_packets as f64);
            f.rss_loaded_kb = Some(r1.rss_kb);
            if let Some(idle) = idle {
                f.rss_idle_kb = Some(idle.rss_kb);
                let joined = clients.joined.max(1) as f64;
                f.rss_per_participant_kb =
                    Some(r1.rss_kb.saturating_sub(idle.rss_kb) as f64 / joined);
            }
        }
    }
    f.clients = clients;
    f
}

/// A reference forwarder as a process of its own (its CPU from /proc), driven with `stream`.
async fn reference(mode: Mode, stream: &Stream) -> Result<ReferenceFigures> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let name = match mode {
        Mode::Plain => "plain",
        Mode::Srtp => "srtp",
        Mode::Str0m => "str0m",
    };
    eprintln!("reference run: {name}");
    let mut child = Command::new(exe)
        .args(["forwarder", "--mode", name, "--bind", "127.0.0.1:0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let addr = forwarder_addr(&mut child)?;
    let pid = child.id();
    let idle = procfs::sample(Some(pid)).map_err(|e| e.to_string())?;
    let mut before = idle;
    let measured = match mode {
        // The window starts after the ICE and DTLS handshakes, as the relay's does.
        Mode::Str0m => {
            let at_start = || before = procfs::sample(Some(pid)).unwrap_or(idle);
            baseline::sfu::drive(addr, stream, at_start).await
        }
        _ => baseline::drive(mode, addr, stream).await,
    };
    let after = procfs::sample(Some(pid)).unwrap_or(before);
    let _ = child.kill();
    let _ = child.wait();
    let measured = measured.map_err(|e| format!("{name} reference: {e}"))?;
    let cpu = after.cpu_secs - before.cpu_secs;
    let participants = (stream.rooms * stream.per_room).max(1) as f64;
    Ok(ReferenceFigures {
        rss_per_participant_kb: after.rss_kb.saturating_sub(idle.rss_kb) as f64 / participants,
        cpu_secs: cpu,
        cpu_us_per_packet: cpu * 1e6 / measured.forwarded_packets.max(1) as f64,
        forwarded_pps: measured.forwarded_packets as f64 / measured.wall_secs.max(1e-9),
        forwarded_bytes_per_sec: (measured.received_bytes + 12 * measured.forwarded_packets) as f64
            / measured.wall_secs.max(1e-9),
        measured,
    })
}

/// The forwarder's first stdout line: `forwarding on ADDR`.
fn forwarder_addr(child: &mut Child) -> Result<SocketAddr> {
    use std::io::BufRead;
    let out = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    std::io::BufReader::new(out)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    line.trim()
        .strip_prefix("forwarding on ")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("the forwarder said {line:?}"))
}

/// `hush-load forwarder`: forwards until stdin closes (the parent went away) or it is killed.
async fn forwarder(args: ForwarderArgs) -> Result<()> {
    let mode = match args.mode.as_str() {
        "plain" => Mode::Plain,
        "srtp" => Mode::Srtp,
        "str0m" => Mode::Str0m,
        other => return Err(format!("--mode {other}: plain, srtp or str0m")),
    };
    let socket = tokio::net::UdpSocket::bind(args.bind)
        .await
        .map_err(|e| e.to_string())?;
    let local = socket.local_addr().map_err(|e| e.to_string())?;
    let listener = match mode {
        Mode::Str0m => Some(
            tokio::net::TcpListener::bind(local)
                .await
                .map_err(|e| e.to_string())?,
        ),
        _ => None,
    };
    println!("forwarding on {local}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let stop = async {
        let mut sink = Vec::new();
        use tokio::io::AsyncReadExt;
        let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    };
    let done = match listener {
        Some(listener) => baseline::sfu::forward(socket, listener, stop)
            .await
            .map(|_| ()),
        None => baseline::forward(mode, socket, stop).await.map(|_| ()),
    };
    done.map_err(|e| e.to_string())
}

async fn sweep(args: SweepArgs) -> Result<()> {
    let mut reports = Vec::new();
    println!(
        "rooms  participants  fwd pkt/s  relay cores  us/pkt  x srtp  x str0m  p99 ms  loss    generator"
    );
    for rooms in args.rooms.iter().copied() {
        let report = one_run(rooms, &args.load).await?;
        let r = &report.relay;
        let p99 = r.clients.latency_us.p99 as f64 / 1000.0;
        println!(
            "{rooms:<7}{:<14}{:<11.0}{:<13}{:<8}{:<8}{:<9}{:<8.2}{:<8.4}{:.0} %",
            report.plan.participants(),
            r.forwarded_pps,
            r.cpu_cores.map_or("-".into(), |c| format!("{c:.2}")),
            r.cpu_us_per_packet
                .map_or("-".into(), |c| format!("{c:.1}")),
            report
                .ratio_to_srtp
                .map_or("-".into(), |c| format!("{c:.2}")),
            report
                .ratio_to_str0m
                .map_or("-".into(), |c| format!("{c:.2}")),
            p99,
            r.clients.loss,
            r.generator_machine_share * 100.0
        );
        let over = p99 > args.p99_ms || r.clients.loss > args.max_loss;
        reports.push(report);
        if over {
            println!(
                "saturation: {rooms} room(s) x {} passed p99 {} ms or loss {}",
                args.load.per_room, args.p99_ms, args.max_loss
            );
            break;
        }
    }
    write_json(args.json.as_ref(), &reports)
}
