//! The relay under load: started by the tool (the `hush-relay` binary next to it, with a config
//! of the run's own: an HS256 key the tool mints tokens with, per-address limits lifted for one
//! load host, no pages), or reached at a URL (another host: then no /proc figures). Its CPU and
//! memory come from /proc, its forwarded packets from `/metrics`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hush_proto::{Grants, ParticipantId, RoomId};
use hush_relay::token::{Issue, SigningKey, mint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::clients::Window;
use crate::procfs::{self, Sample};

/// The key id of the run's token key.
const KID: &str = "load";

/// A relay process the tool started; killed when dropped.
#[derive(Debug)]
pub struct RelayProcess {
    child: Child,
    addr: SocketAddr,
    key: SigningKey,
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `hush-relay` binary next to this one (`target/<profile>/`).
pub fn sibling_relay() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.join("hush-relay");
    bin.exists().then_some(bin)
}

impl RelayProcess {
    /// Starts `binary` on 127.0.0.1 (a free port) with a config in `dir` sized for `per_room`
    /// participants per room; waits (30 s at most) until it listens.
    pub fn start(binary: &Path, dir: &Path, per_room: usize) -> std::io::Result<Self> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| std::io::Error::other(e.to_string()))?;
        let secret_file = dir.join("load-hs256.key");
        std::fs::write(&secret_file, secret)?;
        let config = dir.join("load-relay.toml");
        let per_room = per_room.max(2);
        std::fs::write(
            &config,
            format!(
                "static_dir = \"\"\ntoken_store = \"memory\"\n\n[limits]\n\
                 max_participants_per_room = {per_room}\nip_connect_burst = 100000\n\
                 ip_connect_rate = 100000\nip_max_connections = 100000\n\n[[keys]]\n\
                 kid = \"{KID}\"\nalg = \"HS256\"\nsecret_file = {:?}\n",
                secret_file.display().to_string()
            ),
        )?;
        let mut child = Command::new(binary)
            .args(["serve", "--config"])
            .arg(&config)
            .args(["--bind", "127.0.0.1:0", "--drain-secs", "0"])
            .env("RUST_LOG", "warn")
            .env_remove("HUSH_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null()) // the audit trail
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| std::io::Error::other("no stderr"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("hush-relay listening on http://") {
                    let _ = tx.send(rest.split('/').next().unwrap_or_default().to_owned());
                } else if line.contains("ERROR") || line.starts_with("hush-relay:") {
                    eprintln!("relay: {line}");
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| std::io::Error::other("the relay did not start"))?
            .parse()
            .map_err(|_| std::io::Error::other("the relay printed no address"))?;
        let key =
            SigningKey::hs256(KID, &secret).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Self { child, addr, key })
    }

    /// Its signaling URL.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/rtc", self.addr)
    }

    /// Its address (also serves `/metrics`: loopback).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Mints one single-use token per participant, `rooms` × `per_room`, as a backend would.
    pub fn tokens(&self, rooms: usize, per_room: usize) -> std::io::Result<Vec<Vec<String>>> {
        mint_tokens(&self.key, rooms, per_room)
    }
}

/// Tokens for `rooms` rooms (`load-0`, ...) of `per_room` participants, signed with `key`.
pub fn mint_tokens(
    key: &SigningKey,
    rooms: usize,
    per_room: usize,
) -> std::io::Result<Vec<Vec<String>>> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    (0..rooms)
        .map(|r| {
            (0..per_room)
                .map(|p| {
                    let mut jti = [0u8; 16];
                    getrandom::fill(&mut jti).map_err(|e| invalid(e.to_string()))?;
                    let claims = Issue {
                        sub: ParticipantId::new(format!("l{r}-{p}"))
                            .map_err(|e| invalid(e.to_string()))?,
                        room: RoomId::new(format!("load-{r}"))
                            .map_err(|e| invalid(e.to_string()))?,
                        audience: "hush".to_owned(),
                        now_unix: now,
                        ttl_secs: 3600,
                        grants: Grants {
                            publish: true,
                            subscribe: true,
                            ..Grants::default()
                        },
                    }
                    .claims(&jti);
                    mint(&claims, key).map_err(|e| invalid(e.to_string()))
                })
                .collect()
        })
        .collect()
}

/// The relay's counters the load tool reads.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Counters {
    /// `hush_forwarded_packets_total`.
    pub forwarded: u64,
    /// `hush_forwarded_bytes_total` (RTP payload and fixed header, before SRTP).
    pub forwarded_bytes: u64,
    /// `hush_dropped_packets_total`, by reason.
    pub dropped: std::collections::BTreeMap<String, u64>,
    /// `hush_layer_switches_total`.
    pub layer_switches: u64,
}

impl Counters {
    /// What moved from `before` to `self`.
    pub fn since(&self, before: &Self) -> Self {
        Self {
            forwarded: self.forwarded.saturating_sub(before.forwarded),
            forwarded_bytes: self.forwarded_bytes.saturating_sub(before.forwarded_bytes),
            dropped: self
                .dropped
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.saturating_sub(*before.dropped.get(k).unwrap_or(&0)),
                    )
                })
                .collect(),
            layer_switches: self.layer_switches.saturating_sub(before.layer_switches),
        }
    }
}

/// `GET /metrics` over plain HTTP: the counters.
pub async fn counters(metrics: SocketAddr) -> Option<Counters> {
    let mut s = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(metrics),
    )
    .await
    .ok()?
    .ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut body = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut body))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&body);
    let value = |v: &str| v.trim().parse::<f64>().ok().map(|v| v as u64);
    let mut c = Counters::default();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("hush_forwarded_packets_total ") {
            c.forwarded = value(v)?;
        } else if let Some(v) = line.strip_prefix("hush_forwarded_bytes_total ") {
            c.forwarded_bytes = value(v).unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("hush_layer_switches_total ") {
            c.layer_switches = value(v).unwrap_or(0);
        } else if let Some(rest) = line.strip_prefix("hush_dropped_packets_total{reason=\"")
            && let Some((reason, v)) = rest.split_once("\"} ")
        {
            c.dropped.insert(reason.to_owned(), value(v).unwrap_or(0));
        }
    }
    Some(c)
}

/// The relay's readings at the window's edges.
#[derive(Debug, Default)]
pub struct RelayWindow {
    /// The relay's pid (`None`: on another host).
    pub pid: Option<u32>,
    /// Where its `/metrics` answers.
    pub metrics: Option<SocketAddr>,
    /// At the start: relay, this process, the relay's counters.
    pub start: Option<(Sample, Sample, Counters)>,
    /// At the end.
    pub end: Option<(Sample, Sample, Counters)>,
}

impl RelayWindow {
    async fn read(&self) -> (Sample, Sample, Counters) {
        let relay = self
            .pid
            .and_then(|pid| procfs::sample(Some(pid)).ok())
            .unwrap_or_default();
        let me = procfs::sample(None).unwrap_or_default();
        let counters = match self.metrics {
            Some(at) => counters(at).await.unwrap_or_default(),
            None => Counters::default(),
        };
        (relay, me, counters)
    }
}

impl Window for RelayWindow {
    async fn begin(&mut self) {
        self.start = Some(self.read().await);
    }

    async fn end(&mut self) {
        self.end = Some(self.read().await);
    }
}
