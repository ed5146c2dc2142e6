//! Prometheus metrics of the relay, rendered in the OpenMetrics text format (which Prometheus
//! scrapes natively) by the `prometheus-client` crate.
//!
//! Every metric is a cheap atomic behind an `Arc`: the adapters share one [`Metrics`] (in an
//! `Arc`) and bump counters from any task; `/metrics` calls [`Metrics::render`]. Label values
//! come only from closed sets ([`ErrorCode`] strings, message types, fixed reason lists), so a
//! client cannot grow the label space: an unknown E2EE drop reason is counted as `other`.
//!
//! [`Metrics::observe`] counts what the routing core decided from its [`Output`]s (joins,
//! refusals by code, keyframe requests, rekey points, messages sent), so the adapters only add
//! what the core cannot see: connections, forwarded and dropped packets (the driver reads the
//! fan-outs' counters when `/metrics` is scraped). Client-reported E2EE health (`hush_e2ee_*`)
//! comes from members' `e2ee_stats` reports through the core ([`Output::E2eeHealth`]): the core
//! rate limits them, maps unknown reasons to `other` and clamps each count, and no participant id
//! becomes a label. These are diagnostics, not accounting: a client can report anything within
//! those bounds.

use std::fmt::Write as _;

use hush_proto::{E2eeDropReason, ErrorCode, ServerMessage};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::routing::{Audit, E2eeHealth, Output};

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Why a media packet was dropped by the relay (label values of `hush_dropped_packets`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PacketDrop {
    /// A subscriber's connection could not take the packet at once (its webrtc-rs driver queue,
    /// 256 events, is full: a stalled subscriber), or a recording tap's queue was full.
    QueueFull,
    /// The packet belongs to no published track (unpublished, unknown SSRC).
    UnknownTrack,
    /// A retransmission to a subscriber over its budget (a share of its bandwidth estimate).
    RetransmitBudget,
}

impl PacketDrop {
    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::UnknownTrack => "unknown_track",
            Self::RetransmitBudget => "retransmit_budget",
        }
    }
}

/// Where a keyframe request came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyframeOrigin {
    /// RTCP PLI or FIR from a subscriber's media session.
    Rtcp,
    /// A `keyframe_request` signaling message.
    Signaling,
}

type Labels = [(&'static str, &'static str); 1];

/// The relay's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    connections_open: Gauge,
    connections: Counter,
    connections_refused: Family<Labels, Counter>,
    rooms: Gauge,
    participants: Gauge,
    media_thread_sessions: Family<[(&'static str, String); 1], Gauge>,
    joins: Counter,
    refusals: Family<Labels, Counter>,
    messages_in: Family<Labels, Counter>,
    messages_out: Family<Labels, Counter>,
    forwarded_packets: Counter,
    forwarded_bytes: Counter,
    layer_switches: Counter,
    dropped_packets: Family<Labels, Counter>,
    keyframe_requests_in: Family<Labels, Counter>,
    keyframe_requests_out: Counter,
    rekeys: Counter,
    e2ee_dropped_frames: Family<Labels, Counter>,
    e2ee_decrypted_frames: Counter,
    e2ee_epoch_changes: Counter,
    e2ee_reports: Family<Labels, Counter>,
    token_claims: Family<Labels, Counter>,
    pub(crate) recording: super::recording_metrics::RecordingMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric at zero, registered under the `hush_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("hush");
        let m = Self {
            registry: Registry::default(),
            connections_open: Gauge::default(),
            connections: Counter::default(),
            connections_refused: Family::default(),
            rooms: Gauge::default(),
            participants: Gauge::default(),
            media_thread_sessions: Family::default(),
            joins: Counter::default(),
            refusals: Family::default(),
            messages_in: Family::default(),
            messages_out: Family::default(),
            forwarded_packets: Counter::default(),
            forwarded_bytes: Counter::default(),
            layer_switches: Counter::default(),
            dropped_packets: Family::default(),
            keyframe_requests_in: Family::default(),
            keyframe_requests_out: Counter::default(),
            rekeys: Counter::default(),
            e2ee_dropped_frames: Family::default(),
            e2ee_decrypted_frames: Counter::default(),
            e2ee_epoch_changes: Counter::default(),
            e2ee_reports: Family::default(),
            token_claims: Family::default(),
            recording: Default::default(),
        };
        let r = &mut registry;
        r.register(
            "connections_open",
            "Signaling connections open now",
            m.connections_open.clone(),
        );
        r.register(
            "connections",
            "Signaling connections accepted",
            m.connections.clone(),
        );
        r.register(
            "connections_refused",
            "Connections refused before signaling, by per-IP limit",
            m.connections_refused.clone(),
        );
        r.register("rooms", "Rooms the relay holds", m.rooms.clone());
        r.register(
            "participants",
            "Participants in all rooms",
            m.participants.clone(),
        );
        r.register(
            "media_thread_sessions",
            "Media sessions running on each media thread (a room's all on one)",
            m.media_thread_sessions.clone(),
        );
        r.register("joins", "Successful joins", m.joins.clone());
        r.register(
            "refusals",
            "Error messages sent to clients, by code",
            m.refusals.clone(),
        );
        r.register(
            "messages_in",
            "Signaling messages received, by type",
            m.messages_in.clone(),
        );
        r.register(
            "messages_out",
            "Signaling messages sent, by type",
            m.messages_out.clone(),
        );
        r.register(
            "forwarded_packets",
            "RTP packets forwarded to subscribers",
            m.forwarded_packets.clone(),
        );
        r.register(
            "forwarded_bytes",
            "RTP bytes forwarded to subscribers (payload and fixed header, before SRTP)",
            m.forwarded_bytes.clone(),
        );
        r.register(
            "layer_switches",
            "Simulcast layer switches made for subscribers (at a keyframe of the new layer)",
            m.layer_switches.clone(),
        );
        r.register(
            "dropped_packets",
            "RTP packets dropped by the relay, by reason",
            m.dropped_packets.clone(),
        );
        r.register(
            "keyframe_requests_in",
            "Keyframe requests from subscribers, by origin",
            m.keyframe_requests_in.clone(),
        );
        r.register(
            "keyframe_requests_out",
            "Keyframe requests sent to publishers after merging",
            m.keyframe_requests_out.clone(),
        );
        r.register(
            "token_claims",
            "Token ids checked in the token store, by result (fresh, used, unavailable)",
            m.token_claims.clone(),
        );
        r.register(
            "rekeys",
            "Rekey points placed in room logs",
            m.rekeys.clone(),
        );
        r.register(
            "e2ee_dropped_frames",
            "Frames dropped by clients' E2EE transforms, by reason (client-reported)",
            m.e2ee_dropped_frames.clone(),
        );
        r.register(
            "e2ee_decrypted_frames",
            "Frames decrypted by clients' E2EE transforms (client-reported)",
            m.e2ee_decrypted_frames.clone(),
        );
        r.register(
            "e2ee_epoch_changes",
            "Key epoch changes seen by clients, summed over members (client-reported)",
            m.e2ee_epoch_changes.clone(),
        );
        r.register(
            "e2ee_reports",
            "E2EE health reports from clients, by outcome (counted or rate_limited)",
            m.e2ee_reports.clone(),
        );
        m.recording.register(&mut registry);
        Self { registry, ..m }
    }

    /// The exposition text for `/metrics` (serve it with [`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut text = String::new();
        if encode(&mut text, &self.registry).is_err() {
            // Writing into a String cannot fail; an encoder error would be a bug in a metric.
            let _ = writeln!(text, "# EOF");
        }
        text
    }

    /// Counts what the routing core decided. Call it on every [`Output`] before carrying it
    /// out.
    pub fn observe(&self, output: &Output) {
        match output {
            Output::Send { message, .. } => {
                self.messages_out
                    .get_or_create(&[("type", message.type_name())])
                    .inc();
                if let ServerMessage::Error(e) = message {
                    self.refusal(e.code);
                }
            }
            Output::RequestKeyframe { .. } => {
                self.keyframe_requests_out.inc();
            }
            Output::Audit(Audit::Joined { .. }) => {
                self.joins.inc();
            }
            Output::Audit(Audit::Rekey { .. }) => {
                self.rekeys.inc();
            }
            Output::E2eeHealth(health) => self.e2ee_health(health),
            _ => {}
        }
    }

    /// A refusal sent to a client (already counted by [`Metrics::observe`] for core refusals).
    pub fn refusal(&self, code: ErrorCode) {
        self.refusals
            .get_or_create(&[("code", code.as_str())])
            .inc();
    }

    /// A signaling message arrived (`type_name` from `ClientMessage::type_name`, or
    /// `"invalid"` for one that did not decode).
    pub fn message_in(&self, type_name: &'static str) {
        self.messages_in.get_or_create(&[("type", type_name)]).inc();
    }

    /// A connection was accepted.
    pub fn connection_opened(&self) {
        self.connections.inc();
        self.connections_open.inc();
    }

    /// A connection ended.
    pub fn connection_closed(&self) {
        self.connections_open.dec();
    }

    /// A connection was refused by a per-IP limit (`reason` from `LimitRefusal::as_str`).
    pub fn connection_refused(&self, reason: &'static str) {
        self.connections_refused
            .get_or_create(&[("reason", reason)])
            .inc();
    }

    /// Sets the room and participant gauges (from `Relay::room_count` and the rooms' sizes).
    pub fn set_rooms(&self, rooms: usize, participants: usize) {
        self.rooms.set(i64::try_from(rooms).unwrap_or(i64::MAX));
        self.participants
            .set(i64::try_from(participants).unwrap_or(i64::MAX));
    }

    /// Sets the media sessions per media thread (`sessions[i]` on thread `i`).
    pub fn set_media_thread_sessions(&self, sessions: &[usize]) {
        for (i, n) in sessions.iter().enumerate() {
            self.media_thread_sessions
                .get_or_create(&[("thread", i.to_string())])
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
    }

    /// `packets` RTP packets of `bytes` (payload and fixed header) forwarded to subscribers
    /// (one per packet and subscriber; the driver adds the fan-outs' counters).
    pub fn add_forwarded_packets(&self, packets: u64, bytes: u64) {
        self.forwarded_packets.inc_by(packets);
        self.forwarded_bytes.inc_by(bytes);
    }

    /// `switches` simulcast layer switches (the driver adds the fan-outs' counters).
    pub fn add_layer_switches(&self, switches: u64) {
        self.layer_switches.inc_by(switches);
    }

    /// One RTP packet dropped.
    pub fn dropped(&self, reason: PacketDrop) {
        self.add_dropped(reason, 1);
    }

    /// `packets` RTP packets dropped for `reason`.
    pub fn add_dropped(&self, reason: PacketDrop, packets: u64) {
        self.dropped_packets
            .get_or_create(&[("reason", reason.as_str())])
            .inc_by(packets);
    }

    /// The token store answered a join's claim.
    pub fn token_claim(&self, claim: crate::routing::TokenClaim) {
        let result = match claim {
            crate::routing::TokenClaim::Fresh => "fresh",
            crate::routing::TokenClaim::Used => "used",
            crate::routing::TokenClaim::Unavailable => "unavailable",
        };
        self.token_claims.get_or_create(&[("result", result)]).inc();
    }

    /// A keyframe request arrived from a subscriber (before merging).
    pub fn keyframe_request(&self, origin: KeyframeOrigin) {
        let origin = match origin {
            KeyframeOrigin::Rtcp => "rtcp",
            KeyframeOrigin::Signaling => "signaling",
        };
        self.keyframe_requests_in
            .get_or_create(&[("origin", origin)])
            .inc();
    }

    /// A client reported `count` frames dropped by its E2EE transforms for `reason` (a name
    /// outside [`E2eeDropReason::ALL`] counts as `other`).
    pub fn e2ee_dropped(&self, reason: &str, count: u64) {
        let reason = E2eeDropReason::from_wire(reason).as_str();
        self.e2ee_dropped_frames
            .get_or_create(&[("reason", reason)])
            .inc_by(count);
    }

    /// A client reported a key epoch change.
    pub fn e2ee_epoch_changed(&self) {
        self.e2ee_epoch_changes.inc();
    }

    /// A member's `e2ee_stats` report, as the core bounded it.
    fn e2ee_health(&self, health: &E2eeHealth) {
        let outcome = match health {
            E2eeHealth::RateLimited => "rate_limited",
            E2eeHealth::Report {
                dropped,
                decrypted,
                epoch_changes,
            } => {
                for &(reason, count) in dropped {
                    self.e2ee_dropped(reason.as_str(), count);
                }
                self.e2ee_decrypted_frames.inc_by(*decrypted);
                self.e2ee_epoch_changes.inc_by(*epoch_changes);
                "counted"
            }
        };
        self.e2ee_reports
            .get_or_create(&[("outcome", outcome)])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use hush_proto::{Ping, RekeyEvent};

    use super::*;
    use crate::routing::ConnId;

    fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(prefix))
    }

    #[test]
    fn renders_every_metric_in_openmetrics_text() {
        let m = Metrics::new();
        m.connection_opened();
        m.connection_opened();
        m.connection_closed();
        m.connection_refused("connect_rate");
        m.set_rooms(3, 7);
        m.set_media_thread_sessions(&[2, 5]);
        m.message_in("join");
        m.message_in("join");
        m.message_in("rekey");
        m.add_forwarded_packets(2, 2_400);
        m.add_layer_switches(3);
        m.add_dropped(PacketDrop::RetransmitBudget, 4);
        m.dropped(PacketDrop::QueueFull);
        m.keyframe_request(KeyframeOrigin::Rtcp);
        m.observe(&Output::Audit(Audit::Rekey {
            room: hush_proto::RoomId::new("r").unwrap(),
            seq: 3,
        }));
        m.e2ee_dropped("auth_failed", 5);
        m.e2ee_dropped("replayed", 1);
        m.e2ee_epoch_changed();
        let text = m.render();
        for (prefix, value) in [
            ("hush_connections_open ", "1"),
            ("hush_connections_total ", "2"),
            (
                "hush_connections_refused_total{reason=\"connect_rate\"} ",
                "1",
            ),
            ("hush_rooms ", "3"),
            ("hush_participants ", "7"),
            ("hush_messages_in_total{type=\"join\"} ", "2"),
            ("hush_messages_in_total{type=\"rekey\"} ", "1"),
            ("hush_forwarded_packets_total ", "2"),
            ("hush_forwarded_bytes_total ", "2400"),
            ("hush_layer_switches_total ", "3"),
            (
                "hush_dropped_packets_total{reason=\"retransmit_budget\"} ",
                "4",
            ),
            ("hush_dropped_packets_total{reason=\"queue_full\"} ", "1"),
            ("hush_keyframe_requests_in_total{origin=\"rtcp\"} ", "1"),
            ("hush_rekeys_total ", "1"),
            (
                "hush_e2ee_dropped_frames_total{reason=\"auth_failed\"} ",
                "5",
            ),
            ("hush_e2ee_dropped_frames_total{reason=\"replayed\"} ", "1"),
            ("hush_e2ee_epoch_changes_total ", "1"),
        ] {
            let got = line(&text, prefix).unwrap_or_else(|| panic!("{prefix} missing:\n{text}"));
            assert_eq!(&got[prefix.len()..], value, "{got}");
        }
        assert!(text.contains("# TYPE hush_forwarded_packets counter"));
        assert!(text.contains("# TYPE hush_participants gauge"));
        assert!(
            text.contains("hush_media_thread_sessions{thread=\"1\"} 5\n"),
            "{text}"
        );
        // prometheus-client ends help texts with a period; families with no label set yet (here
        // `refusals`) are not written at all.
        assert!(
            text.contains("# HELP hush_forwarded_packets RTP packets forwarded to subscribers.\n")
        );
        assert!(!text.contains("hush_refusals"));
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn core_outputs_are_counted() {
        let m = Metrics::new();
        let conn = ConnId(0);
        let outputs = [
            Output::Send {
                conn,
                message: ServerMessage::error(ErrorCode::TokenExpired, "token has expired", true),
            },
            Output::Send {
                conn,
                message: ServerMessage::error(ErrorCode::TokenExpired, "token has expired", true),
            },
            Output::Send {
                conn,
                message: ServerMessage::error(ErrorCode::RoomFull, "the room is full", true),
            },
            Output::Send {
                conn,
                message: ServerMessage::Pong(Ping { seq: 1 }),
            },
            Output::Send {
                conn,
                message: ServerMessage::Rekey(RekeyEvent {
                    seq: 4,
                    by: Vec::new(),
                }),
            },
            Output::RequestKeyframe {
                publisher: conn,
                track: hush_proto::TrackId(0),
            },
            Output::Close { conn },
        ];
        for o in &outputs {
            m.observe(o);
        }
        let text = m.render();
        assert!(
            text.contains("hush_refusals_total{code=\"token_expired\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("hush_refusals_total{code=\"room_full\"} 1\n"));
        assert!(text.contains("hush_messages_out_total{type=\"error\"} 3\n"));
        assert!(text.contains("hush_messages_out_total{type=\"pong\"} 1\n"));
        assert!(text.contains("hush_messages_out_total{type=\"rekey\"} 1\n"));
        assert!(text.contains("hush_keyframe_requests_out_total 1\n"));
    }

    #[test]
    fn e2ee_health_outputs_are_counted_without_ids() {
        let m = Metrics::new();
        m.observe(&Output::E2eeHealth(E2eeHealth::Report {
            dropped: vec![(E2eeDropReason::AuthFailed, 4), (E2eeDropReason::Other, 2)],
            decrypted: 300,
            epoch_changes: 2,
        }));
        m.observe(&Output::E2eeHealth(E2eeHealth::RateLimited));
        m.observe(&Output::E2eeHealth(E2eeHealth::RateLimited));
        let text = m.render();
        for want in [
            "hush_e2ee_dropped_frames_total{reason=\"auth_failed\"} 4\n",
            "hush_e2ee_dropped_frames_total{reason=\"other\"} 2\n",
            "hush_e2ee_decrypted_frames_total 300\n",
            "hush_e2ee_epoch_changes_total 2\n",
            "hush_e2ee_reports_total{outcome=\"counted\"} 1\n",
            "hush_e2ee_reports_total{outcome=\"rate_limited\"} 2\n",
        ] {
            assert!(text.contains(want), "{want} missing:\n{text}");
        }
    }

    #[test]
    fn client_reported_reasons_cannot_grow_the_label_space() {
        let m = Metrics::new();
        for i in 0..100 {
            m.e2ee_dropped(&format!("made_up_{i}"), 1);
        }
        m.e2ee_dropped("other", 1);
        let text = m.render();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("hush_e2ee_dropped_frames_total"))
            .collect();
        assert_eq!(
            lines,
            ["hush_e2ee_dropped_frames_total{reason=\"other\"} 101"]
        );
        assert!(!text.contains("made_up"));
    }
}
