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
    /// Relay CPU per packet ÷ SRTP reference's (target: at most 2).
    pub ratio_to_srtp: Option<f64>,
    /// Relay CPU per packet ÷ bare forwarder's.
    pub ratio_to_plain: Option<f64>,
    /// The `--before-bin` relay's CPU per packet ÷ the same SRTP reference's.
    pub before_ratio_to_srtp: Option<f64>,
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
    /// The table.
    pub fn table(&self) -> String {
        let r = &self.relay;
        let c = &r.clients;
        let mut out = String::new();
        let p = &self.plan;
        out.push_str(&format!(
            "plan: {} room(s) x {} = {} participants, audio {} B x 50/s, video {} kbit/s at {} fps, {:.0} s window; {} CPUs\n",
            p.rooms, p.per_room, p.participants(), p.audio_bytes, p.video_kbps, p.fps, p.seconds, self.machine_cpus
        ));
        out.push_str(&format!(
            "{:<24}{:<24}{:<24}{}\n",
            "", "relay", "srtp-only", "bare UDP"
        ));
        let refs = [&self.srtp, &self.plain];
        let row = |name: &str, relay: String, f: &dyn Fn(&ReferenceFigures) -> String| {
            let cells: Vec<String> = refs
                .iter()
                .map(|x| x.as_ref().map_or_else(|| "-".to_owned(), f))
                .collect();
            format!("{name:<24}{relay:<24}{:<24}{}\n", cells[0], cells[1])
        };
        out.push_str(&row(
            "forwarded packets/s",
            format!("{:.0}", r.forwarded_pps),
            &|x| format!("{:.0}", x.forwarded_pps),
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
        if let Some(b) = &self.before {
            out.push_str(&before_line(b, r, self.before_ratio_to_srtp));
        }
        out
    }
}

/// The `--before-bin` relay against this one: the figures a change moves, and their ratios.
fn before_line(before: &RelayFigures, after: &RelayFigures, to_srtp: Option<f64>) -> String {
    let ratio = |a: Option<f64>, b: Option<f64>| {
        opt(a.zip(b).map(|(a, b)| a / b.max(1e-9)), 2)
    };
    format!(
        "before (--before-bin): CPU {} us/packet ({} x the SRTP-only reference), RSS {} KiB per participant, p99 {} ms, loss {:.4}; after / before: CPU per packet {} x, RSS per participant {} x\n",
        opt(before.cpu_us_per_packet, 1),
        opt(to_srtp, 2),
        opt(before.rss_per_participant_kb, 0),
        ms(before.clients.latency_us.p99),
        before.clients.loss,
        ratio(after.cpu_us_per_packet, before.cpu_us_per_packet),
        ratio(after.rss_per_participant_kb, before.rss_per_participant_kb),
    )
}
