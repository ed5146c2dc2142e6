//! Simulcast: which encoding of a published video each subscriber gets, and the header rewrite
//! that keeps the subscriber's stream continuous across switches. Pure state machines: time
//! comes in as milliseconds, packets as the few header fields the decisions need.
//!
//! **Why E2EE survives a switch.** A publisher's send transform sees the frames of every
//! encoding and seals them all with one SFrame context (one key, one counter): counters never
//! repeat across encodings, so no (key, nonce) pair is used twice. A subscriber's receiver keeps
//! one replay window per sender key; after a switch it sees counters of the new encoding, which
//! are interleaved with the old one's in the sender's single counter space. Encoders emit the
//! encodings of one captured frame together, before the next capture, so the first frame of the
//! new encoding (a keyframe of a later capture) has a counter above every frame already
//! forwarded, and the window only moves forward; a frame the relay forwarded twice would still
//! be refused as a replay. The relay reads only RTP headers and the clear bytes
//! [`super::keyframe`] lists.

use std::time::Duration;

/// A simulcast encoding, 0 the lowest.
pub(crate) type Layer = u8;

/// The most encodings a published track may have.
pub(crate) const MAX_LAYERS: usize = 3;

/// The layer an encoding's RTP stream id names: `q`, `h`, `f` (quarter, half, full: the names
/// the Hush web client and LiveKit use) or `0`..`2`. Other names are not layers the relay knows.
pub(crate) fn layer_of_rid(rid: &str) -> Option<Layer> {
    match rid {
        "q" | "0" => Some(0),
        "h" | "1" => Some(1),
        "f" | "2" => Some(2),
        _ => None,
    }
}

/// What the writer does with one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Forward it with this sequence number and timestamp.
    Forward { seq: u16, ts: u32 },
    /// Not this subscriber's layer (or not yet: waiting for a keyframe of it).
    Drop,
}

/// One subscriber's view of one published video: the layer it receives, the one it should
/// receive, and the offsets that turn each layer's sequence numbers and timestamps into one
/// continuous stream.
#[derive(Debug)]
pub(crate) struct LayerSwitch {
    /// Video clock ticks per millisecond (90 for every video codec in WebRTC).
    ticks_per_ms: u32,
    /// `false` for a publication with one encoding: everything is forwarded as it comes,
    /// without waiting for a keyframe (the decoder asks for one itself).
    simulcast: bool,
    target: Layer,
    current: Option<Layer>,
    seq_offset: u16,
    ts_offset: u32,
    /// The highest (out) sequence number and its timestamp and arrival time.
    last: Option<(u16, u32, u64)>,
    /// The (in) sequence number of the keyframe the current layer was switched in at.
    first: Option<u16>,
    switches: u64,
}

impl LayerSwitch {
    /// A subscriber's switch for a publication with `layers` encodings.
    pub(crate) fn new(layers: usize, clock_rate: u32) -> Self {
        Self {
            ticks_per_ms: (clock_rate / 1000).max(1),
            simulcast: layers > 1,
            target: 0,
            current: None,
            seq_offset: 0,
            ts_offset: 0,
            last: None,
            first: None,
            switches: 0,
        }
    }

    /// Becomes a simulcast switch (the publisher's second encoding showed up).
    pub(crate) fn set_simulcast(&mut self) {
        self.simulcast = true;
    }

    /// Asks for `layer` from the next keyframe on. Returns `true` if that needs a keyframe of
    /// `layer` (the caller asks the publisher for one).
    pub(crate) fn set_target(&mut self, layer: Layer) -> bool {
        self.target = layer;
        self.simulcast && self.current != Some(layer)
    }

    /// The layer forwarded now.
    pub(crate) fn current(&self) -> Option<Layer> {
        self.current
    }

    /// The layer asked for.
    pub(crate) fn target(&self) -> Layer {
        self.target
    }

    /// Whether a keyframe of the target is awaited.
    pub(crate) fn pending(&self) -> bool {
        self.simulcast && self.current != Some(self.target)
    }

    /// Layer switches so far.
    pub(crate) fn switches(&self) -> u64 {
        self.switches
    }

    /// Decides one packet of `layer` (`keyframe`: it starts a keyframe), arrived at `now_ms`.
    pub(crate) fn packet(
        &mut self,
        layer: Layer,
        seq: u16,
        ts: u32,
        keyframe: bool,
        now_ms: u64,
    ) -> Verdict {
        if !self.simulcast {
            self.current = Some(layer);
            return self.rewrite(seq, ts, now_ms);
        }
        if self.current != Some(layer) {
            if layer != self.target || !keyframe {
                return Verdict::Drop;
            }
            // Switch: the keyframe continues the subscriber's stream right after the last
            // packet sent, at a timestamp as far on as the time that passed.
            if let Some((last_seq, last_ts, at)) = self.last {
                let elapsed = u32::try_from(now_ms.saturating_sub(at)).unwrap_or(u32::MAX);
                let step = elapsed.saturating_mul(self.ticks_per_ms).max(1);
                self.seq_offset = last_seq.wrapping_add(1).wrapping_sub(seq);
                self.ts_offset = last_ts.wrapping_add(step).wrapping_sub(ts);
            }
            if self.current.is_some() {
                self.switches += 1;
            }
            self.current = Some(layer);
            self.first = Some(seq);
        } else if let Some(first) = self.first
            && seq.wrapping_sub(first) >= 0x8000
        {
            // A packet of this layer from before the keyframe it was switched in at (late, or
            // a retransmission): its number would fall among the previous layer's.
            return Verdict::Drop;
        }
        self.rewrite(seq, ts, now_ms)
    }

    fn rewrite(&mut self, seq: u16, ts: u32, now_ms: u64) -> Verdict {
        let out_seq = seq.wrapping_add(self.seq_offset);
        let out_ts = ts.wrapping_add(self.ts_offset);
        let newer = match self.last {
            None => true,
            Some((last, _, _)) => {
                let ahead = out_seq.wrapping_sub(last);
                ahead != 0 && ahead < 0x8000
            }
        };
        if newer {
            self.last = Some((out_seq, out_ts, now_ms));
        }
        Verdict::Forward {
            seq: out_seq,
            ts: out_ts,
        }
    }
}

/// One forwarded video as the allocator sees it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Demand {
    /// Measured bitrate of each layer (bits/s); 0 for a layer the publisher is not sending.
    pub(crate) layer_bps: [u64; MAX_LAYERS],
    /// The highest layer the subscriber wants (from its tile's size).
    pub(crate) max_layer: Layer,
    /// The layer it gets now.
    pub(crate) current: Option<Layer>,
}

impl Demand {
    fn active(&self, layer: Layer) -> bool {
        self.layer_bps
            .get(usize::from(layer))
            .is_some_and(|&bps| bps > 0)
    }

    fn lowest(&self) -> Option<Layer> {
        (0..MAX_LAYERS as Layer).find(|&l| self.active(l))
    }

    fn cost(&self, layer: Layer) -> u64 {
        self.layer_bps.get(usize::from(layer)).copied().unwrap_or(0)
    }

    fn next_up(&self, layer: Layer) -> Option<Layer> {
        (layer + 1..=self.max_layer.min(MAX_LAYERS as Layer - 1)).find(|&l| self.active(l))
    }
}

/// How the allocator probes for more bandwidth and how much it keeps in reserve.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AllocatorConfig {
    /// Bits/s kept for each forwarded audio track before video is allotted (audio is never
    /// traded for video).
    pub(crate) audio_reserve_bps: u64,
    /// An upgrade must fit in this fraction of what is left (hysteresis against flapping).
    pub(crate) upgrade_headroom: f64,
    /// How long the estimate must have held before an upgrade beyond it is tried.
    pub(crate) probe_after: Duration,
    /// How long a tried upgrade is watched; the estimate falling by more than
    /// [`Self::probe_failure_drop`] in that time undoes it.
    pub(crate) probe_watch: Duration,
    /// See [`Self::probe_watch`].
    pub(crate) probe_failure_drop: f64,
    /// The longest wait between tries after failures (the wait doubles per failure).
    pub(crate) probe_backoff_max: Duration,
}

impl Default for AllocatorConfig {
    fn default() -> Self {
        Self {
            audio_reserve_bps: 48_000,
            upgrade_headroom: 0.85,
            probe_after: Duration::from_secs(8),
            probe_watch: Duration::from_secs(2),
            probe_failure_drop: 0.15,
            probe_backoff_max: Duration::from_secs(60),
        }
    }
}

/// Splits one subscriber's bandwidth estimate among the videos it receives.
///
/// Every video gets its lowest active layer (a frozen tile is worse than a blurry one); a new
/// video then goes up round-robin, one layer at a time, while it fits with headroom, and a
/// video being sent keeps its layer while the estimate covers it. Going up from a layer being
/// sent is a probe: a send-side estimate on a leg that sends less than it could runs ahead of
/// what the path carries (webrtc-rs's GCC does not cap its increase at the acknowledged rate),
/// so an estimate alone is not trusted to carry more. After the estimate has held for
/// [`AllocatorConfig::probe_after`], the cheapest one-layer upgrade that fits the estimate is
/// tried; it is undone, and the next try waits twice as long, if the estimate falls while it is
/// watched or no longer carries it when the watch ends. (With no padding to probe with, the
/// upgrade is the probe: a subscriber on a link that cannot carry it sees a short freeze, less
/// and less often.)
#[derive(Debug)]
pub(crate) struct Allocator {
    config: AllocatorConfig,
    /// Since when the estimate has not fallen.
    steady_since: u64,
    last_estimate: u64,
    /// The tried upgrade: (video index, layer it had, layer tried, estimate when tried,
    /// tried at).
    probe: Option<(usize, Layer, Layer, u64, u64)>,
    backoff: Duration,
    /// Tries that failed (for metrics and tests).
    pub(crate) failed_probes: u64,
}

impl Allocator {
    /// An allocator with `config`, starting at `now_ms`.
    pub(crate) fn new(config: AllocatorConfig, now_ms: u64) -> Self {
        Self {
            config,
            steady_since: now_ms,
            last_estimate: 0,
            probe: None,
            backoff: config.probe_after,
            failed_probes: 0,
        }
    }

    /// The layer for each of `videos` (None: nothing to send yet), given the bandwidth
    /// `estimate` (bits/s) and `audio` forwarded audio tracks, at `now_ms`.
    pub(crate) fn allocate(
        &mut self,
        estimate: u64,
        audio: usize,
        videos: &[Demand],
        now_ms: u64,
    ) -> Vec<Option<Layer>> {
        if estimate < self.last_estimate.saturating_mul(95) / 100 {
            self.steady_since = now_ms;
        }
        self.last_estimate = estimate;
        let reserve = self
            .config
            .audio_reserve_bps
            .saturating_mul(u64::try_from(audio).unwrap_or(u64::MAX));
        let budget = estimate.saturating_sub(reserve);

        let mut layers: Vec<Option<Layer>> = videos.iter().map(Demand::lowest).collect();
        let mut used: u64 = videos
            .iter()
            .zip(&layers)
            .map(|(d, l)| l.map_or(0, |l| d.cost(l)))
            .sum();
        // Upgrades that fit: a video keeps its current layer while the budget covers it, and
        // moves above it only with headroom.
        loop {
            let mut upgraded = false;
            for (i, demand) in videos.iter().enumerate() {
                let Some(layer) = layers[i] else { continue };
                let Some(next) = demand.next_up(layer) else {
                    continue;
                };
                let extra = demand.cost(next).saturating_sub(demand.cost(layer));
                let limit = match demand.current {
                    // A video being sent keeps its layer while the budget covers it, and goes
                    // above it only by a probe (below): the estimate of a leg that sends less
                    // than it could tends to run ahead of what the path carries.
                    Some(current) if current >= next => budget,
                    Some(_) => continue,
                    // A new video starts as high as fits, with headroom.
                    None => (budget as f64 * self.config.upgrade_headroom) as u64,
                };
                if used.saturating_add(extra) <= limit {
                    layers[i] = Some(next);
                    used += extra;
                    upgraded = true;
                }
            }
            if !upgraded {
                break;
            }
        }

        // A probe under watch: undone if the estimate falls; at the end of the watch, kept only
        // if the estimate grew to carry it (the allocation above chose it without the probe).
        if let Some((index, before, tried, at_estimate, at)) = self.probe {
            let floor = (at_estimate as f64 * (1.0 - self.config.probe_failure_drop)) as u64;
            let fell = estimate < floor;
            let over = now_ms.saturating_sub(at) >= millis(self.config.probe_watch);
            let slot = layers.get_mut(index);
            if fell || over {
                self.probe = None;
                let carried = slot.as_ref().is_some_and(|l| **l >= Some(tried));
                if !fell && carried {
                    self.backoff = self.config.probe_after;
                } else {
                    self.failed_probes += 1;
                    self.backoff = (self.backoff * 2).min(self.config.probe_backoff_max);
                    self.steady_since = now_ms;
                    if let Some(slot) = slot {
                        *slot = (*slot).min(Some(before));
                    }
                }
            } else if let Some(slot) = slot {
                // Hold the tried layer while it is watched.
                *slot = (*slot).max(Some(tried));
            }
        } else if now_ms.saturating_sub(self.steady_since) >= millis(self.backoff) {
            // Steady long enough: try the cheapest upgrade the estimate says fits.
            let candidate = videos
                .iter()
                .enumerate()
                .filter_map(|(i, d)| {
                    let layer = layers[i]?;
                    let next = d.next_up(layer)?;
                    let extra = d.cost(next).saturating_sub(d.cost(layer));
                    (used.saturating_add(extra) <= budget).then_some((extra, i, layer, next))
                })
                .min();
            if let Some((_, index, before, next)) = candidate {
                layers[index] = Some(next);
                self.probe = Some((index, before, next, estimate, now_ms));
                self.steady_since = now_ms;
            }
        }
        layers
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: Layer = 0;
    const H: Layer = 1;
    const F: Layer = 2;

    fn forward(switch: &mut LayerSwitch, layer: Layer, seq: u16, ts: u32, key: bool, now: u64) {
        let verdict = switch.packet(layer, seq, ts, key, now);
        assert!(matches!(verdict, Verdict::Forward { .. }), "{verdict:?}");
    }

    #[test]
    fn a_switch_waits_for_a_keyframe_of_the_target_and_keeps_the_stream_continuous() {
        let mut s = LayerSwitch::new(3, 90_000);
        assert!(s.set_target(F));
        // Nothing until a keyframe of the target: delta frames of f, anything of q.
        assert_eq!(s.packet(F, 100, 9_000, false, 0), Verdict::Drop);
        assert_eq!(s.packet(Q, 500, 9_000, true, 0), Verdict::Drop);
        assert_eq!(
            s.packet(F, 101, 12_000, true, 33),
            Verdict::Forward {
                seq: 101,
                ts: 12_000
            }
        );
        forward(&mut s, F, 102, 12_000, false, 34);
        forward(&mut s, F, 103, 15_000, false, 66);
        assert_eq!(s.current(), Some(F));
        assert!(!s.pending());

        // Down to q: f keeps flowing until q's keyframe; then q continues f's numbering.
        assert!(s.set_target(Q));
        assert!(s.pending());
        assert_eq!(s.packet(Q, 7_000, 1_000_000, false, 80), Verdict::Drop);
        forward(&mut s, F, 104, 18_000, false, 99);
        assert_eq!(
            s.packet(Q, 7_001, 1_003_000, true, 132),
            Verdict::Forward {
                seq: 105,
                ts: 18_000 + 33 * 90
            }
        );
        // A late q packet from before the keyframe would collide with f's numbers: dropped.
        assert_eq!(s.packet(Q, 7_000, 1_000_000, false, 133), Verdict::Drop);
        // f's packets after the switch are dropped, q's follow with the same offsets.
        assert_eq!(s.packet(F, 105, 21_000, false, 133), Verdict::Drop);
        assert_eq!(
            s.packet(Q, 7_002, 1_006_000, false, 165),
            Verdict::Forward {
                seq: 106,
                ts: 18_000 + 33 * 90 + 3_000
            }
        );
        assert_eq!(s.switches(), 1);
    }

    #[test]
    fn the_rewrite_wraps_and_tolerates_reordering() {
        let mut s = LayerSwitch::new(2, 90_000);
        s.set_target(H);
        forward(&mut s, H, 65_534, u32::MAX - 10, true, 0);
        forward(&mut s, H, 0, 2_990, false, 33);
        // A late packet is forwarded with its own (older) number, and does not move `last`;
        // one from before the keyframe is dropped.
        assert_eq!(
            s.packet(H, 65_535, u32::MAX - 10, false, 40),
            Verdict::Forward {
                seq: 65_535,
                ts: u32::MAX - 10
            }
        );
        assert_eq!(
            s.packet(H, 65_533, u32::MAX - 3_010, false, 40),
            Verdict::Drop
        );
        s.set_target(Q);
        assert_eq!(
            s.packet(Q, 10, 50, true, 66),
            Verdict::Forward {
                seq: 1,
                ts: 2_990 + 33 * 90
            }
        );
    }

    #[test]
    fn a_single_encoding_is_forwarded_untouched_without_waiting_for_a_keyframe() {
        let mut s = LayerSwitch::new(1, 90_000);
        assert!(!s.set_target(Q));
        assert_eq!(
            s.packet(Q, 7, 70, false, 0),
            Verdict::Forward { seq: 7, ts: 70 }
        );
        assert!(!s.pending());
    }

    fn demand(q: u64, h: u64, f: u64, current: Option<Layer>) -> Demand {
        Demand {
            layer_bps: [q, h, f],
            max_layer: F,
            current,
        }
    }

    fn quiet() -> AllocatorConfig {
        AllocatorConfig {
            probe_after: Duration::from_secs(3600),
            ..AllocatorConfig::default()
        }
    }

    #[test]
    fn a_slow_subscriber_gets_the_low_layers_and_a_fast_one_the_top() {
        let videos = [
            demand(100_000, 400_000, 1_200_000, None),
            demand(100_000, 400_000, 1_200_000, None),
        ];
        let mut slow = Allocator::new(quiet(), 0);
        assert_eq!(
            slow.allocate(300_000, 2, &videos, 0),
            vec![Some(Q), Some(Q)]
        );
        // Below even the lowest layers: each video still gets its lowest (never frozen).
        assert_eq!(
            slow.allocate(50_000, 2, &videos, 10),
            vec![Some(Q), Some(Q)]
        );
        let mut fast = Allocator::new(quiet(), 0);
        assert_eq!(
            fast.allocate(5_000_000, 2, &videos, 0),
            vec![Some(F), Some(F)]
        );
        // In between: upgrades go round-robin, one step at a time.
        let mut mid = Allocator::new(quiet(), 0);
        assert_eq!(
            mid.allocate(1_000_000, 1, &videos, 0),
            vec![Some(H), Some(H)]
        );
    }

    #[test]
    fn layers_the_publisher_does_not_send_and_the_tile_size_cap_are_respected() {
        let mut a = Allocator::new(quiet(), 0);
        // The publisher's encoder dropped its top layer; another video is capped at h.
        let capped = Demand {
            max_layer: H,
            ..demand(100_000, 400_000, 1_200_000, None)
        };
        let videos = [demand(100_000, 400_000, 0, None), capped];
        assert_eq!(
            a.allocate(10_000_000, 0, &videos, 0),
            vec![Some(H), Some(H)]
        );
        // A publication with no media measured yet gets nothing.
        assert_eq!(
            a.allocate(10_000_000, 0, &[demand(0, 0, 0, None)], 0),
            vec![None]
        );
    }

    #[test]
    fn an_upgrade_needs_headroom_but_the_current_layer_holds_to_the_estimate() {
        let mut a = Allocator::new(quiet(), 0);
        // 1.3 Mbit/s: f (1.2 M) fits the budget but not with 15 % headroom.
        let new = [demand(100_000, 400_000, 1_200_000, Some(H))];
        assert_eq!(a.allocate(1_300_000, 0, &new, 0), vec![Some(H)]);
        let held = [demand(100_000, 400_000, 1_200_000, Some(F))];
        assert_eq!(a.allocate(1_300_000, 0, &held, 10), vec![Some(F)]);
    }

    #[test]
    fn a_steady_estimate_is_probed_and_a_failed_probe_is_undone_with_backoff() {
        let config = AllocatorConfig::default();
        let mut a = Allocator::new(config, 0);
        let at_q = [demand(100_000, 400_000, 1_200_000, Some(Q))];
        // 450 kbit/s would carry h, but a video being sent goes up only by a probe: after 8 s
        // steady.
        assert_eq!(a.allocate(450_000, 0, &at_q, 0), vec![Some(Q)]);
        assert_eq!(a.allocate(450_000, 0, &at_q, 7_000), vec![Some(Q)]);
        assert_eq!(a.allocate(450_000, 0, &at_q, 8_000), vec![Some(H)]);
        let at_h = [demand(100_000, 400_000, 1_200_000, Some(H))];
        // Held while watched...
        assert_eq!(a.allocate(440_000, 0, &at_h, 9_000), vec![Some(H)]);
        // ...and undone when the estimate falls by more than 15 %.
        assert_eq!(a.allocate(300_000, 0, &at_h, 9_500), vec![Some(Q)]);
        assert_eq!(a.failed_probes, 1);
        // The next try waits twice as long (16 s).
        assert_eq!(a.allocate(450_000, 0, &at_q, 25_000), vec![Some(Q)]);
        assert_eq!(a.allocate(450_000, 0, &at_q, 25_500), vec![Some(H)]);
        // A probe that holds is kept: the estimate grew with the rate.
        assert_eq!(a.allocate(600_000, 0, &at_h, 26_500), vec![Some(H)]);
        assert_eq!(a.allocate(600_000, 0, &at_h, 27_500), vec![Some(H)]);
        assert_eq!(a.failed_probes, 1);
    }

    #[test]
    fn a_probe_the_estimate_stops_carrying_is_undone_and_none_starts_beyond_the_estimate() {
        let mut a = Allocator::new(AllocatorConfig::default(), 0);
        let at_q = [demand(100_000, 400_000, 1_200_000, Some(Q))];
        let at_h = [demand(100_000, 400_000, 1_200_000, Some(H))];
        assert_eq!(a.allocate(420_000, 0, &at_q, 0), vec![Some(Q)]);
        assert_eq!(a.allocate(420_000, 0, &at_q, 8_000), vec![Some(H)]);
        // The estimate sags 7 % (not a fall) but no longer carries h at the end of the watch.
        assert_eq!(a.allocate(390_000, 0, &at_h, 9_000), vec![Some(H)]);
        assert_eq!(a.allocate(390_000, 0, &at_h, 10_000), vec![Some(Q)]);
        assert_eq!(a.failed_probes, 1);
        // An estimate that cannot carry the next layer is never probed beyond, however steady.
        let two = [
            demand(100_000, 400_000, 1_200_000, Some(Q)),
            demand(100_000, 400_000, 1_200_000, Some(Q)),
        ];
        for t in (11_000..120_000).step_by(500) {
            assert_eq!(
                a.allocate(450_000, 0, &two, t),
                vec![Some(Q), Some(Q)],
                "at {t}"
            );
        }
    }

    #[test]
    fn a_video_being_sent_goes_up_only_by_a_probe_however_high_the_estimate() {
        let mut a = Allocator::new(AllocatorConfig::default(), 0);
        let at_q = [demand(100_000, 400_000, 1_200_000, Some(Q))];
        assert_eq!(a.allocate(5_000_000, 0, &at_q, 0), vec![Some(Q)]);
        assert_eq!(a.allocate(5_000_000, 0, &at_q, 7_500), vec![Some(Q)]);
        // The probe goes one layer up.
        assert_eq!(a.allocate(5_000_000, 0, &at_q, 8_000), vec![Some(H)]);
    }

    #[test]
    fn rids_name_layers() {
        assert_eq!(layer_of_rid("q"), Some(0));
        assert_eq!(layer_of_rid("f"), Some(2));
        assert_eq!(layer_of_rid("1"), Some(1));
        assert_eq!(layer_of_rid("x"), None);
    }
}
