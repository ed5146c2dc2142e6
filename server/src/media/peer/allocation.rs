//! This peer's downlink bandwidth, split among the videos forwarded to it.
//!
//! The estimate is Google Congestion Control (webrtc-rs's `Gcc`) fed by the transport-wide
//! congestion control feedback the subscriber's browser sends for everything the relay sends
//! it; every [`ALLOCATION_INTERVAL`] the peer measures each forwarded video's layers and asks
//! [`crate::media::allocator::Allocator`] which layer each gets. The fan-out's switches carry the choice out at the next
//! keyframe of that layer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rtc::interceptor::{BandwidthEstimator, EstimatorStats, Gcc, PacketReport};

use hush_proto::TrackId;

use super::Peer;
use crate::media::allocator::Demand;
use crate::media::layers::MAX_LAYERS;

/// How often a peer re-divides its bandwidth.
pub(super) const ALLOCATION_INTERVAL: Duration = Duration::from_millis(500);

/// The estimate a new subscriber leg starts from (bits/s): one top layer or a few middle ones,
/// so a join shows a picture at once, the top layers follow as the estimate grows, and a slow
/// downlink is not flooded for long.
const INITIAL_ESTIMATE: f64 = 1_500_000.0;
/// The estimate never goes below this (bits/s): audio and the lowest layers.
const MIN_ESTIMATE: f64 = 100_000.0;
/// Nor above this.
const MAX_ESTIMATE: f64 = 50_000_000.0;

/// A layer counts as sent while its bytes grew this recently.
const LAYER_ACTIVE_FOR: Duration = Duration::from_millis(1_500);

/// Weight of the newest interval in a layer's smoothed bitrate.
const SMOOTHING: f64 = 0.3;

/// GCC, publishing its target for the peer's allocation loop after each change.
pub(super) struct SharedEstimate {
    gcc: Gcc,
    target: Arc<AtomicU64>,
}

impl SharedEstimate {
    /// A fresh estimator and the handle its target is read from (bits/s, as `f64` bits).
    pub(super) fn new() -> (Self, Arc<AtomicU64>) {
        let gcc = Gcc::new(INITIAL_ESTIMATE, MIN_ESTIMATE, MAX_ESTIMATE);
        let target = Arc::new(AtomicU64::new(gcc.target_bitrate().to_bits()));
        let handle = Arc::clone(&target);
        (Self { gcc, target }, handle)
    }

    fn publish(&self) {
        self.target
            .store(self.gcc.target_bitrate().to_bits(), Ordering::Relaxed);
    }
}

impl BandwidthEstimator for SharedEstimate {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        self.gcc.on_reports(now, reports);
        self.publish();
    }

    fn target_bitrate(&self) -> f64 {
        self.gcc.target_bitrate()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.gcc.handle_timeout(now);
        self.publish();
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.gcc.poll_timeout()
    }

    fn stats(&self) -> EstimatorStats {
        self.gcc.stats()
    }
}

/// One forwarded video's layer bitrates, as one subscriber measures them.
#[derive(Debug, Default)]
pub(crate) struct LayerMeter {
    last: Option<([u64; MAX_LAYERS], Instant)>,
    grew_at: [Option<Instant>; MAX_LAYERS],
    bps: [f64; MAX_LAYERS],
    /// Whether the allocator has chosen this video's layer yet.
    pub(super) allocated: bool,
    /// The size the subscriber shows it at (`video_size`), if it said.
    pub(super) shown: Option<(u32, u32)>,
}

impl LayerMeter {
    /// Takes the fan-out's byte counters at `now`; returns each layer's smoothed bitrate, 0 for
    /// layers not sent lately.
    pub(super) fn update(&mut self, bytes: [u64; MAX_LAYERS], now: Instant) -> [u64; MAX_LAYERS] {
        if let Some((last, at)) = self.last {
            let secs = now.saturating_duration_since(at).as_secs_f64();
            if secs > 0.0 {
                for layer in 0..MAX_LAYERS {
                    let delta = bytes[layer].saturating_sub(last[layer]);
                    if delta > 0 {
                        self.grew_at[layer] = Some(now);
                    }
                    let rate = delta as f64 * 8.0 / secs;
                    self.bps[layer] = if self.bps[layer] == 0.0 {
                        rate
                    } else {
                        SMOOTHING * rate + (1.0 - SMOOTHING) * self.bps[layer]
                    };
                }
            }
        }
        self.last = Some((bytes, now));
        std::array::from_fn(|layer| {
            let active = self.grew_at[layer]
                .is_some_and(|t| now.saturating_duration_since(t) < LAYER_ACTIVE_FOR);
            if active {
                self.bps[layer].max(1.0) as u64
            } else {
                0
            }
        })
    }
}

impl Peer {
    /// The subscriber shows forwarded `track` at `width` x `height`: its layer is capped.
    pub(super) fn video_size(&mut self, track: TrackId, width: u32, height: u32) {
        for ((_, t), forward) in self.forwards.iter_mut() {
            if *t == track && forward.meter.shown != Some((width, height)) {
                forward.meter.shown = Some((width, height));
                // Chosen afresh, as high as fits: a tile that grew should not wait for probes.
                forward.meter.allocated = false;
            }
        }
    }

    /// Divides the estimate among the forwarded videos and sets each one's layer.
    pub(super) fn allocate(&mut self) {
        let estimate = f64::from_bits(self.estimate.load(Ordering::Relaxed)).max(0.0) as u64;
        let now = Instant::now();
        let now_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut audio = 0;
        let mut videos = Vec::new();
        let mut controls = Vec::new();
        for forward in self.forwards.values_mut() {
            match forward.video {
                Some(true) => {
                    let layer_bps = forward.meter.update(forward.fanout.layer_bytes(), now);
                    let max_layer = match forward.meter.shown {
                        Some((width, height)) => forward.fanout.layer_for(width, height),
                        None => (MAX_LAYERS - 1) as u8,
                    };
                    videos.push(Demand {
                        layer_bps,
                        max_layer,
                        // Until the allocator chose its layer, a video counts as new (it may
                        // start as high as fits), whatever the switch started it on. Then
                        // it is on the layer it was given, even while the switch waits for
                        // that layer's keyframe: judged by the layer it still gets, a
                        // subscriber given the top layer at its start was moved down at the
                        // next allocation (500 ms) whenever the publisher's keyframe took
                        // longer, and could then go up only by probes, seconds apart.
                        current: forward
                            .meter
                            .allocated
                            .then(|| forward.control.assigned())
                            .flatten(),
                        sent: forward.control.current(),
                    });
                    controls.push((Arc::clone(&forward.control), &mut forward.meter.allocated));
                }
                Some(false) => audio += 1,
                None => {}
            }
        }
        if videos.is_empty() {
            return;
        }
        let layers = self.allocator.allocate(estimate, audio, &videos, now_ms);
        tracing::trace!(conn = self.conn.get(), estimate, ?layers, "allocation");
        if layers != self.last_allocation {
            let switches: u64 = controls.iter().map(|(c, _)| c.switches()).sum();
            tracing::debug!(
                conn = self.conn.get(),
                estimate,
                ?layers,
                switches,
                ?videos,
                "layers"
            );
        }
        for ((control, allocated), layer) in controls.iter_mut().zip(&layers) {
            if let Some(layer) = *layer {
                control.set_target(layer);
                **allocated = true;
            }
        }
        self.last_allocation = layers;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_meter_smooths_rates_and_forgets_layers_that_stopped() {
        let mut meter = LayerMeter::default();
        let t0 = Instant::now();
        assert_eq!(meter.update([0, 0, 0], t0), [0, 0, 0]);
        // 12.5 kB in 1 s on q = 100 kbit/s; h silent.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(meter.update([12_500, 0, 0], t1), [100_000, 0, 0]);
        let t2 = t1 + Duration::from_secs(1);
        let bps = meter.update([12_500 + 25_000, 0, 0], t2);
        assert_eq!(bps[0], (0.3 * 200_000.0 + 0.7 * 100_000.0) as u64);
        // Nothing for 2 s: q no longer counts as sent.
        let t3 = t2 + Duration::from_secs(2);
        assert_eq!(meter.update([37_500, 0, 0], t3), [0, 0, 0]);
    }
}
