//! Retransmissions on a subscriber's leg: a NACK responder with a short, bounded history and a
//! budget.
//!
//! webrtc-rs 0.21's NACK responder keeps the last 1,024 packets of every stream it sends, in a
//! table allocated up front, and resends every packet a subscriber asks for, at once and
//! without limit. Both cost the relay. The history: at 300 kbit/s, 1,024 video packets are about
//! 30 seconds of media, and every forwarded leg holds its own copy of each header and keeps the
//! publisher's payloads alive that long (measured with `hush-load`: about 1.7 MB of relay RSS
//! per participant). The resends: on a congested downlink they are a storm (each lost packet is
//! asked for again and again, a browser retries a NACK up to ten times, the resends are lost in
//! turn); measured in `net-simulcast.test.mjs` (300 kbit/s downlink): 12,714 packets dropped at
//! the bottleneck in 10 s with the unlimited responder, 121 without NACK at all.
//!
//! [`Retransmitter`] replaces that responder. It keeps each stream's packets for three round
//! trips, at least [`HISTORY_MIN`] and at most [`HISTORY_MAX`] (libwebrtc's sender keeps
//! max(1 s, 3 x RTT)), and at most [`HISTORY_PACKETS`] of them (a NACK that comes later than that
//! would repair a frame the receiver has already given up on). The round trip is the leg's own:
//! from the subscriber's reception reports, against the sender reports they answer (RFC 3550
//! 6.4.1). It answers a NACK from that history
//! (as RTX, RFC 4588, when the leg negotiated it), and lets the resends out only within a token
//! bucket refilled at a share of the leg's bandwidth estimate; the rest are dropped and counted,
//! and the subscriber's decoder asks for a keyframe if it must. Sitting where the responder sat
//! (nearer the wire than the sender reports, further than transport-wide congestion control),
//! its resends are numbered and counted by the interceptors below it like any packet.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rtc::interceptor::{
    Attribute, AttributedPacket, Interceptor, Packet, StreamInfo, TaggedPacket,
};
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::reception_report::ReceptionReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::rtp;
use rtc::sansio::Protocol;
use rtc::shared::TransportContext;
use rtc::shared::error::Error;

/// The share of the estimate retransmissions may use.
const SHARE: f64 = 0.2;
/// Retransmissions may always use this much (bits/s), whatever the estimate.
const FLOOR_BPS: f64 = 30_000.0;
/// The bucket holds this many seconds of budget.
const BURST_SECONDS: f64 = 0.25;
/// How long a sent packet can be asked for again, at least, and while the leg's round trip is
/// not known yet: libwebrtc's sender keeps max(1 s, 3 x RTT). A browser asks within a round
/// trip or two and gives a packet up after about a second of retries.
pub(crate) const HISTORY_MIN: Duration = Duration::from_secs(1);
/// And at most, whatever the round trip (mediasoup keeps video two seconds). Memory grows with
/// the bitrate times this: at 1.5 Mbit/s, two seconds of one publisher's video are 375 KB.
pub(crate) const HISTORY_MAX: Duration = Duration::from_secs(2);
/// Round trips are kept for this many of them.
const HISTORY_RTTS: u32 = 3;
/// Sender reports remembered per stream for round-trip measurement (a report block answers one
/// of the last few; sender reports go out about once a second per stream).
const SENT_REPORTS: usize = 4;
/// At most this many packets per stream (about 2 s at 5 Mbit/s), whatever their age.
pub(crate) const HISTORY_PACKETS: usize = 1_024;

/// A token bucket for retransmitted bits: pure, time handed in.
#[derive(Debug)]
pub(crate) struct Budget {
    tokens: f64,
    at: Option<Instant>,
}

impl Budget {
    pub(crate) fn new() -> Self {
        Self {
            tokens: 0.0,
            at: None,
        }
    }

    /// Whether `bits` may go now, with the leg's estimate `estimate_bps`; takes them if so.
    pub(crate) fn take(&mut self, bits: f64, estimate_bps: f64, now: Instant) -> bool {
        let rate = (estimate_bps * SHARE).max(FLOOR_BPS);
        let elapsed = self.at.map_or(BURST_SECONDS, |at| {
            now.saturating_duration_since(at).as_secs_f64()
        });
        self.tokens = (self.tokens + elapsed * rate).min(rate * BURST_SECONDS);
        self.at = Some(now);
        if self.tokens >= bits {
            self.tokens -= bits;
            true
        } else {
            false
        }
    }
}

/// One sent stream's recent packets, oldest first, by increasing sequence number (modulo
/// 2^16: gaps are allowed, a packet at or behind the newest is not stored again).
#[derive(Debug, Default)]
pub(crate) struct History {
    packets: VecDeque<(Instant, rtp::Packet)>,
}

impl History {
    /// Stores `packet`, sent at `now`, and forgets what is older than `keep` or too many.
    pub(crate) fn push(&mut self, now: Instant, packet: &rtp::Packet, keep: Duration) {
        if let Some((_, newest)) = self.packets.back() {
            let ahead = packet
                .header
                .sequence_number
                .wrapping_sub(newest.header.sequence_number);
            if ahead == 0 || ahead >= 0x8000 {
                return; // a resend, or out of order: the first copy is kept
            }
        }
        self.forget(now, keep);
        if self.packets.len() >= HISTORY_PACKETS {
            self.packets.pop_front();
        }
        self.packets.push_back((now, packet.clone()));
    }

    /// Drops the packets older than `keep` at `now`.
    fn forget(&mut self, now: Instant, keep: Duration) {
        while let Some((at, _)) = self.packets.front() {
            if now.saturating_duration_since(*at) <= keep {
                break;
            }
            self.packets.pop_front();
        }
    }

    /// The packet with sequence number `seq`, if it is still held at `now` (kept for `keep`).
    pub(crate) fn get(&mut self, now: Instant, seq: u16, keep: Duration) -> Option<&rtp::Packet> {
        self.forget(now, keep);
        let first = self.packets.front()?.1.header.sequence_number;
        let offset = |s: u16| s.wrapping_sub(first);
        let at = self
            .packets
            .binary_search_by_key(&offset(seq), |(_, p)| offset(p.header.sequence_number))
            .ok()?;
        self.packets.get(at).map(|(_, p)| p)
    }

    /// Packets held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.packets.len()
    }
}

/// A stream this leg sends with NACK negotiated.
struct Stream {
    history: History,
    /// Its sender reports sent lately: (the middle 32 bits of their NTP time, when), oldest
    /// first. Per stream: each stream's reports carry their own NTP times.
    sent_reports: VecDeque<(u32, Instant)>,
    /// RTX SSRC and payload type, when negotiated.
    rtx: Option<(u32, u8)>,
    rtx_sequence: u16,
}

/// The interceptor (see the module docs). `estimate` is the leg's estimate (bits/s as `f64`
/// bits, `peer::allocation`); `refused` counts retransmissions over the budget.
pub(crate) struct Retransmitter {
    estimate: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
    budget: Budget,
    streams: HashMap<u32, Stream>,
    /// The leg's round trip, from the newest reception report that answered one of them.
    rtt: Option<Duration>,
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl Retransmitter {
    pub(crate) fn new(estimate: Arc<AtomicU64>, refused: Arc<AtomicU64>) -> Self {
        Self {
            estimate,
            refused,
            budget: Budget::new(),
            streams: HashMap::new(),
            rtt: None,
            read: VecDeque::new(),
            write: VecDeque::new(),
        }
    }

    /// How long this leg's packets are kept: three round trips, within
    /// [`HISTORY_MIN`]..=[`HISTORY_MAX`]; [`HISTORY_MIN`] before the first measurement.
    pub(crate) fn keep(&self) -> Duration {
        self.rtt.map_or(HISTORY_MIN, |rtt| {
            rtt.saturating_mul(HISTORY_RTTS)
                .clamp(HISTORY_MIN, HISTORY_MAX)
        })
    }

    /// The leg's round trip as last measured.
    #[cfg(test)]
    pub(crate) fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// A sender report leaves at `now`: remembered (for a stream this leg retransmits), to time
    /// the reception reports that answer it.
    fn sent_report(&mut self, now: Instant, report: &SenderReport) {
        let Some(stream) = self.streams.get_mut(&report.ssrc) else {
            return;
        };
        if stream.sent_reports.len() >= SENT_REPORTS {
            stream.sent_reports.pop_front();
        }
        // The middle 32 bits of the NTP timestamp, as a reception report's LSR names it.
        stream
            .sent_reports
            .push_back(((report.ntp_time >> 16) as u32, now));
    }

    /// A reception report block arrived at `now`: the round trip, if it answers a sender report
    /// of ours (RFC 3550 6.4.1: arrival - LSR - DLSR).
    fn received_report(&mut self, now: Instant, block: &ReceptionReport) {
        if block.last_sender_report == 0 {
            return; // no sender report received yet
        }
        let Some(stream) = self.streams.get(&block.ssrc) else {
            return; // not a stream this leg retransmits
        };
        let Some(&(_, sent)) = stream
            .sent_reports
            .iter()
            .rev()
            .find(|(lsr, _)| *lsr == block.last_sender_report)
        else {
            return;
        };
        let held = Duration::from_secs_f64(f64::from(block.delay) / 65_536.0);
        if let Some(rtt) = now.saturating_duration_since(sent).checked_sub(held) {
            self.rtt = Some(rtt);
        }
    }

    /// Queues the resends `nack` asks for that the history holds and the budget allows.
    fn answer(&mut self, now: Instant, nack: &TransportLayerNack) {
        let keep = self.keep();
        let Some(stream) = self.streams.get_mut(&nack.media_ssrc) else {
            return;
        };
        let estimate = f64::from_bits(self.estimate.load(Ordering::Relaxed));
        for seq in nack.nacks.iter().flat_map(|pair| pair.packet_list()) {
            let Some(original) = stream.history.get(now, seq, keep) else {
                continue;
            };
            let bits = (original.payload.len() + 12) as f64 * 8.0;
            if !self.budget.take(bits, estimate, now) {
                self.refused.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let packet = match stream.rtx {
                Some((ssrc, payload_type)) => {
                    let sequence_number = stream.rtx_sequence;
                    stream.rtx_sequence = sequence_number.wrapping_add(1);
                    rtx(original, ssrc, payload_type, sequence_number)
                }
                None => original.clone(),
            };
            // Tagged, so the congestion controller below counts it as bytes on the wire.
            self.write.push_back(TaggedPacket {
                now,
                transport: TransportContext::default(),
                message: AttributedPacket::new(Packet::Rtp(packet)).with(Attribute::Retransmission),
            });
        }
    }
}

/// `original` as an RTX packet (RFC 4588): the original sequence number before the payload,
/// on the RTX stream's SSRC, payload type and sequence.
fn rtx(original: &rtp::Packet, ssrc: u32, payload_type: u8, sequence_number: u16) -> rtp::Packet {
    let mut payload = Vec::with_capacity(2 + original.payload.len());
    payload.extend_from_slice(&original.header.sequence_number.to_be_bytes());
    payload.extend_from_slice(&original.payload);
    rtp::Packet {
        header: rtp::header::Header {
            version: 2,
            ssrc,
            payload_type,
            sequence_number,
            timestamp: original.header.timestamp,
            marker: original.header.marker,
            ..Default::default()
        },
        payload: payload.into(),
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for Retransmitter {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            for packet in packets {
                let any = packet.as_any();
                if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
                    self.answer(msg.now, nack);
                } else if let Some(blocks) = any
                    .downcast_ref::<ReceiverReport>()
                    .map(|rr| &rr.reports)
                    // A subscriber that publishes too reports in its own sender reports.
                    .or_else(|| any.downcast_ref::<SenderReport>().map(|sr| &sr.reports))
                {
                    for block in blocks {
                        self.received_report(msg.now, block);
                    }
                }
            }
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        match &msg.message.packet {
            Packet::Rtp(packet) => {
                let keep = self.keep();
                if let Some(stream) = self.streams.get_mut(&packet.header.ssrc) {
                    stream.history.push(msg.now, packet, keep);
                }
            }
            Packet::Rtcp(packets) => {
                for packet in packets {
                    if let Some(sr) = packet.as_any().downcast_ref::<SenderReport>() {
                        self.sent_report(msg.now, sr);
                    }
                }
            }
            _ => {}
        }
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write.pop_front()
    }
}

impl Interceptor for Retransmitter {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        let nack = info
            .rtcp_feedback
            .iter()
            .any(|fb| fb.typ == "nack" && fb.parameter.is_empty());
        if nack {
            self.streams.insert(
                info.ssrc,
                Stream {
                    history: History::default(),
                    sent_reports: VecDeque::new(),
                    rtx: info.ssrc_rtx.zip(info.payload_type_rtx),
                    rtx_sequence: 0,
                },
            );
        }
    }
    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.streams.remove(&info.ssrc);
    }
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests;
