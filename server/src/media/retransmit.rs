//! A budget for retransmissions on a subscriber's leg.
//!
//! webrtc-rs 0.21's NACK responder resends every packet a subscriber asks for, at once and
//! without limit. On a congested downlink that is a storm: each lost packet is asked for again
//! and again (a browser retries a NACK up to ten times), the resends are lost in turn, and the
//! leg carries several times the media rate. Measured in `net-simulcast.test.mjs` (300 kbit/s
//! downlink): 12,714 packets dropped at the bottleneck in 10 s with the unlimited responder, 121
//! without NACK at all. This interceptor sits between the responder and the wire and lets
//! retransmissions through only within a token bucket refilled at a share of the leg's
//! bandwidth estimate; the rest are dropped (and counted), and the subscriber's decoder asks for
//! a keyframe if it must.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rtc::interceptor::{Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

/// The share of the estimate retransmissions may use.
const SHARE: f64 = 0.2;
/// Retransmissions may always use this much (bits/s), whatever the estimate.
const FLOOR_BPS: f64 = 30_000.0;
/// The bucket holds this many seconds of budget.
const BURST_SECONDS: f64 = 0.25;

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

/// The interceptor (see the module docs). `estimate` is the leg's estimate (bits/s as `f64`
/// bits, `peer::allocation`); `dropped` counts retransmissions refused.
pub(crate) struct RetransmitBudget {
    estimate: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    budget: Budget,
    /// RTX SSRCs of this leg's streams: everything on them is a retransmission.
    rtx: HashSet<u32>,
    /// The highest sequence number sent per media SSRC: a packet at or below it is a resend.
    highest: HashMap<u32, u16>,
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl RetransmitBudget {
    pub(crate) fn new(estimate: Arc<AtomicU64>, dropped: Arc<AtomicU64>) -> Self {
        Self {
            estimate,
            dropped,
            budget: Budget::new(),
            rtx: HashSet::new(),
            highest: HashMap::new(),
            read: VecDeque::new(),
            write: VecDeque::new(),
        }
    }

    fn is_retransmission(&mut self, ssrc: u32, seq: u16) -> bool {
        if self.rtx.contains(&ssrc) {
            return true;
        }
        match self.highest.get_mut(&ssrc) {
            Some(highest) => {
                let ahead = seq.wrapping_sub(*highest);
                if ahead != 0 && ahead < 0x8000 {
                    *highest = seq;
                    false
                } else {
                    true
                }
            }
            None => {
                self.highest.insert(ssrc, seq);
                false
            }
        }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for RetransmitBudget {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtp(packet) = &msg.message.packet {
            let (ssrc, seq) = (packet.header.ssrc, packet.header.sequence_number);
            if self.is_retransmission(ssrc, seq) {
                let bits = (packet.payload.len() + 12) as f64 * 8.0;
                let estimate = f64::from_bits(self.estimate.load(Ordering::Relaxed));
                if !self.budget.take(bits, estimate, msg.now) {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
            }
        }
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write.pop_front()
    }
}

impl Interceptor for RetransmitBudget {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        if let Some(rtx) = info.ssrc_rtx {
            self.rtx.insert(rtx);
        }
    }
    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        if let Some(rtx) = info.ssrc_rtx {
            self.rtx.remove(&rtx);
        }
        self.highest.remove(&info.ssrc);
    }
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_budget_is_a_share_of_the_estimate_with_a_floor() {
        let t0 = Instant::now();
        let mut budget = Budget::new();
        // 1 Mbit/s estimate: 200 kbit/s for resends, a 50 kbit bucket (starts full).
        assert!(budget.take(40_000.0, 1_000_000.0, t0));
        assert!(!budget.take(40_000.0, 1_000_000.0, t0));
        // 100 ms later: 20 kbit more.
        let t1 = t0 + Duration::from_millis(100);
        assert!(budget.take(25_000.0, 1_000_000.0, t1));
        // A collapsed estimate still allows the floor: 30 kbit/s.
        let t2 = t1 + Duration::from_secs(1);
        assert!(budget.take(7_000.0, 0.0, t2));
        assert!(!budget.take(7_000.0, 0.0, t2));
    }

    #[test]
    fn resends_are_told_from_new_packets_by_sequence_and_rtx_ssrc() {
        let mut b = RetransmitBudget::new(Arc::default(), Arc::default());
        b.rtx.insert(99);
        assert!(!b.is_retransmission(1, 65_535));
        assert!(!b.is_retransmission(1, 0));
        assert!(b.is_retransmission(1, 65_535));
        assert!(b.is_retransmission(1, 0));
        assert!(!b.is_retransmission(1, 1));
        assert!(b.is_retransmission(99, 5));
    }
}
