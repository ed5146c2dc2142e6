//! The run's figures: a table for people, a JSON file for scripts (`--json`).

use serde::Serialize;

use crate::baseline::{LatencySummary, Measured};
use crate::clients::{ClientFigures, Plan};

/// The relay's side of a run.
#[derive(Debug, Default, Serialize)]
pub struct RelayFigures {
    /// What the clients measured.
    pub clients: ClientFigures,
    /// RTP packets the relay forwarded in the window (`hush_forwarded_packets_total`).
    pub forwarded_packets: u64,
    /// Per second.
    pub forwarded_pps: f64,
    /// RTP bytes forwarded per second (payload and fixed header, before SRTP:
    /// `hush_forwarded_bytes_total`).
    pub forwarded_bytes_per_sec: f64,
    /// The relay's counters over the window (drops by reason, layer switches).
    pub relay_counters: crate::relay::Counters,
    /// Decrypted payload bytes per second, all receivers.
    pub received_bytes_per_sec: f64,
    /// The relay's CPU seconds in the window (`None`: not on this host).
    pub cpu_secs: Option<f64>,
    /// Share of one core (1.0 = a whole core).
    pub cpu_cores: Option<f64>,
    /// Relay CPU per forwarded packet, µs.
    pub cpu_us_per_packet: Option<f64>,
    /// Relay RSS before the clients joined, KiB.
    pub rss_idle_kb: Option<u64>,
    /// At the window's end, KiB.
    pub rss_loaded_kb: Option<u64>,
    /// (loaded − idle) / participants, KiB.
    pub rss_per_participant_kb: Option<f64>,
    /// This process's CPU in the window as a share of the machine (near 1.0: the generator, not
    /// the relay, is the bottleneck).
    pub generator_machine_share: f64,
    /// The window, s.
    pub window_secs: f64,
}

/// A reference forwarder's side.
#[derive(Debug, Serialize)]
pub struct ReferenceFigures {
    /// What its clients measured.
    pub measured: Measured,
    /// Its CPU seconds over the run.
    pub cpu_secs: f64,
    /// Per forwarded packet, µs.
    pub cpu_us_per_packet: f64,
    /// Forwarded packets per second.
    pub forwarded_pps: f64,
    /// RTP bytes (payload and fixed header) forwarded per second.
    pub forwarded_bytes_per_sec: f64,
    /// (RSS at the end − RSS before the participants came) / participants, KiB.
    pub rss_per_participant_kb: f64,
}

/// Everything, written as JSON.
#[derive(Debug, Serialize)]
pub struct Report {
    /// What was sent.
    pub plan: Plan,
    /// CPUs of this machine.
    pub machine_cpus: usize,
    /// The relay.
    pub relay: RelayFigures,
    /// The `--before-bin` relay under the same load, run first.
    pub before: Option<RelayFigures>,
    /// The bare UDP forwarder.
    pub plain: Option<ReferenceFigures>,
    /// The SRTP-only reference.
    pub srtp: Option<ReferenceFigures>,
    /// The same fan-out on str0m (a whole WebRTC stack, no Hush logic).
    pub str0m: Option<ReferenceFigures>,
    /// The str0m reference's CPU per packet ÷ the SRTP reference's.
    pub str0m_ratio_to_srtp: Option<f64>,
    /// Relay CPU per packet ÷ the str0m reference's.
    pub ratio_to_str0m: Option<f64>,
    /// Relay CPU per packet ÷ SRTP reference's (target: at most 2).
    pub ratio_to_srtp: Option<f64>,
    /// Relay CPU per packet ÷ bare forwarder's.
    pub ratio_to_plain: Option<f64>,
    /// The `--before-bin` relay's CPU per packet ÷ the same SRTP reference's.
    pub before_ratio_to_srtp: Option<f64>,
    /// This relay ÷ the `--before-bin` one, pooled over their phases.
    pub after_to_before: Option<Change>,
    /// Every relay phase in the order run (`--rounds`).
    pub phases: Vec<Phase>,
}

/// Which relay binary a phase ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Binary {
    /// `--before-bin`.
    Before,
    /// `--relay-bin` (or the one next to hush-load).
    After,
}

/// One relay phase's main figures.
#[derive(Debug, Serialize)]
pub struct Phase {
    /// Which binary.
    pub binary: Binary,
    /// Relay CPU seconds in the window.
    pub cpu_secs: f64,
    /// Packets forwarded in the window.
    pub forwarded_packets: u64,
    /// (loaded − idle) RSS / participants, KiB.
    pub rss_per_participant_kb: f64,
    /// Latency p99, µs.
    pub p99_us: u64,
}

impl Phase {
    /// The phase summary of `f`.
    pub fn of(binary: Binary, f: &RelayFigures) -> Self {
        Self {
            binary,
            cpu_secs: f.cpu_secs.unwrap_or(0.0),
            forwarded_packets: f.forwarded_packets,
            rss_per_participant_kb: f.rss_per_participant_kb.unwrap_or(0.0),
            p99_us: f.clients.latency_us.p99,
        }
    }
}

/// After ÷ before.
#[derive(Debug, Serialize)]
pub struct Change {
    /// CPU per forwarded packet.
    pub cpu_per_packet: f64,
    /// RSS per participant.
    pub rss_per_participant: f64,
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn lat(l: &LatencySummary) -> String {
    format!("{} / {} / {} ms", ms(l.p50), ms(l.p95), ms(l.p99))
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"))
}

impl Report {
    /// `binary`'s CPU per forwarded packet over all its phases, µs.
    pub fn pooled_cpu_us(&self, binary: Binary) -> Option<f64> {
        let (cpu, packets) = self
            .phases
            .iter()
            .filter(|p| p.binary == binary)
            .fold((0.0, 0u64), |(c, n), p| {
                (c + p.cpu_secs, n + p.forwarded_packets)
            });
        (packets > 0 && cpu > 0.0).then(|| cpu * 1e6 / packets as f64)
    }

    /// `binary`'s mean RSS per participant over its phases, KiB.
    pub fn pooled_rss_kb(&self, binary: Binary) -> Option<f64> {
        let rss: Vec<f64> = self
            .phases
            .iter()
            .filter(|p| p.binary == binary)
            .map(|p| p.rss_per_participant_kb)
            .collect();
        (!rss.is_empty()).then(|| rss.iter().sum::<f64>() / rss.len() as f64)
    }

    /// Fills in [`Report::after_to_before`] from the phases.
    pub fn pool(&mut self) {
        let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a / b.max(1e-9));
        let cpu = ratio(
            self.pooled_cpu_us(Binary::After),
            self.pooled_cpu_us(Binary::Before),
        );
        let rss = ratio(
            self.pooled_rss_kb(Binary::After),
            self.pooled_rss_kb(Binary::Before),
        );
        self.after_to_before = cpu
            .zip(rss)
            .map(|(cpu_per_packet, rss_per_participant)| Change {
                cpu_per_packet,
                rss_per_participant,
            });
    }

    /// The table.
    pub fn table(&self) -> String {
        let r = &self.relay;
        let c = &r.clients;
        let mut out = String::new();
        let p = &self.plan;
        out.push_str(&format!(
            "plan: {} room(s) x {} = {} participants, audio {} B x 50/s, video {} kbit/s at {} fps{}, {:.0} s window; {} CPUs\n",
            p.rooms, p.per_room, p.participants(), p.audio_bytes, p.video_kbps, p.fps,
            if p.simulcast > 1 {
                format!(" in {} simulcast encodings (the references forward the top one only)", p.simulcast)
            } else {
                String::new()
            },
            p.seconds, self.machine_cpus
        ));
        out.push_str(&format!(
            "{:<22}{:<24}{:<24}{:<24}{}\n",
            "", "relay", "str0m", "srtp-only", "bare UDP"
        ));
        let refs = [&self.str0m, &self.srtp, &self.plain];
        let row = |name: &str, relay: String, f: &dyn Fn(&ReferenceFigures) -> String| {
            let cells: Vec<String> = refs
                .iter()
                .map(|x| x.as_ref().map_or_else(|| "-".to_owned(), f))
                .collect();
            format!(
                "{name:<22}{relay:<24}{:<24}{:<24}{}\n",
                cells[0], cells[1], cells[2]
            )
        };
        out.push_str(&row(
            "forwarded packets/s",
            format!("{:.0}", r.forwarded_pps),
            &|x| format!("{:.0}", x.forwarded_pps),
        ));
        out.push_str(&row(
            "forwarded bytes/s",
            format!("{:.0}", r.forwarded_bytes_per_sec),
            &|x| format!("{:.0}", x.forwarded_bytes_per_sec),
        ));
        out.push_str(&row("CPU us / packet", opt(r.cpu_us_per_packet, 1), &|x| {
            format!("{:.1}", x.cpu_us_per_packet)
        }));
        out.push_str(&row("CPU (cores)", opt(r.cpu_cores, 2), &|x| {
            format!("{:.2}", x.cpu_secs / x.measured.wall_secs.max(1e-9))
        }));
        out.push_str(&row("latency p50/p95/p99", lat(&c.latency_us), &|x| {
            lat(&x.measured.latency_us)
        }));
        out.push_str(&row("loss", format!("{:.4}", c.loss), &|x| {
            let m = &x.measured;
            format!(
                "{:.4}",
                1.0 - m.forwarded_packets as f64 / (m.expected_packets.max(1)) as f64
            )
        }));
        out.push_str(&row(
            "RSS KiB / participant",
            opt(r.rss_per_participant_kb, 0),
            &|x| format!("{:.0}", x.rss_per_participant_kb),
        ));
        out.push_str(&format!(
            "relay: joined {}/{}, join p50/p95/p99 {} / {} / {} ms, decrypt failures {}, RSS {} -> {} KiB ({} KiB per participant), decrypted {:.0} B/s\n",
            c.joined,
            p.participants(),
            c.join_ms.p50, c.join_ms.p95, c.join_ms.p99,
            c.decrypt_failures,
            r.rss_idle_kb.map_or("-".into(), |v| v.to_string()),
            r.rss_loaded_kb.map_or("-".into(), |v| v.to_string()),
            opt(r.rss_per_participant_kb, 0),
            r.received_bytes_per_sec,
        ));
        let drops: Vec<String> = r
            .relay_counters
            .dropped
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        out.push_str(&format!(
            "relay dropped: {}; layer switches {}; warm-up {:.1} s\n",
            if drops.is_empty() {
                "none".to_owned()
            } else {
                drops.join(", ")
            },
            r.relay_counters.layer_switches,
            c.warmup_secs
        ));
        out.push_str(&format!(
            "load generator: {:.0} % of the machine{}\n",
            r.generator_machine_share * 100.0,
            if r.generator_machine_share > 0.8 {
                " (it, not the relay, may be the bottleneck)"
            } else {
                ""
            }
        ));
        out.push_str(&format!(
            "relay CPU per packet: {} x the SRTP-only reference, {} x the bare forwarder\n",
            opt(self.ratio_to_srtp, 2),
            opt(self.ratio_to_plain, 2)
        ));
        out.push_str(&format!(
            "media stack: relay (webrtc-rs) {} x str0m; str0m {} x the SRTP-only reference\n",
            opt(self.ratio_to_str0m, 2),
            opt(self.str0m_ratio_to_srtp, 2)
        ));
        if self.before.is_some() || self.phases.len() > 1 {
            out.push_str(&self.phase_lines());
        }
        out
    }
}

impl Report {
    /// One line a relay phase, then each binary pooled and after ÷ before.
    fn phase_lines(&self) -> String {
        let mut out = String::new();
        for (i, p) in self.phases.iter().enumerate() {
            out.push_str(&format!(
                "phase {} ({:?}): CPU {:.1} us/packet, RSS {:.0} KiB per participant, p99 {} ms\n",
                i + 1,
                p.binary,
                p.cpu_secs * 1e6 / p.forwarded_packets.max(1) as f64,
                p.rss_per_participant_kb,
                ms(p.p99_us),
            ));
        }
        for (binary, to_srtp) in [
            (Binary::Before, self.before_ratio_to_srtp),
            (Binary::After, self.ratio_to_srtp),
        ] {
            if let Some(us) = self.pooled_cpu_us(binary) {
                out.push_str(&format!(
                    "{binary:?}, pooled: CPU {us:.1} us/packet ({} x the SRTP-only reference), RSS {} KiB per participant\n",
                    opt(to_srtp, 2),
                    opt(self.pooled_rss_kb(binary), 0),
                ));
            }
        }
        if let Some(c) = &self.after_to_before {
            out.push_str(&format!(
                "after / before: CPU per packet {:.2} x, RSS per participant {:.2} x\n",
                c.cpu_per_packet, c.rss_per_participant
            ));
        }
        out
    }
}
