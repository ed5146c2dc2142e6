//! Which simulcast layer of each forwarded video one subscriber gets, from its bandwidth
//! estimate: a pure state machine (time in milliseconds, rates in bits/s). The fan-out's
//! [`super::layers::LayerSwitch`] carries the choice out at that layer's next keyframe.

use std::time::Duration;

use super::layers::{Layer, MAX_LAYERS};

/// One forwarded video as the allocator sees it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Demand {
    /// Measured bitrate of each layer (bits/s); 0 for a layer the publisher is not sending.
    pub(crate) layer_bps: [u64; MAX_LAYERS],
    /// The highest layer the subscriber wants (from its tile's size).
    pub(crate) max_layer: Layer,
    /// The layer it was given (None: new, not allocated yet). The switch to it may still
    /// wait for its keyframe: see [`Demand::sent`].
    pub(crate) current: Option<Layer>,
    /// The layer being sent now: the one before [`Demand::current`] while that switch waits
    /// for its keyframe.
    pub(crate) sent: Option<Layer>,
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

    /// Whether `layer`, or a higher one, is being sent.
    fn sends(&self, layer: Layer) -> bool {
        self.sent >= Some(layer)
    }

    /// The highest layer this video holds while the budget covers it: the one it was given,
    /// or the one still sent when that is higher (a downgrade waiting for its keyframe is
    /// called off when the estimate recovers), unless `undone` says that layer was a probe
    /// just given up. None for a new video, whatever it is sent.
    fn held(&self, undone: Option<Layer>) -> Option<Layer> {
        let current = self.current?;
        let sent = self.sent.filter(|&s| undone.is_none_or(|u| s < u));
        Some(sent.map_or(current, |s| s.max(current)))
    }
}

/// An upgrade being tried (see [`Allocator`]).
#[derive(Clone, Copy, Debug)]
struct Probe {
    /// The video's index.
    index: usize,
    /// The layer it had.
    before: Layer,
    /// The layer tried.
    tried: Layer,
    /// The estimate when tried.
    estimate: u64,
    /// When it was tried.
    at: u64,
    /// When the watch began: once the tried layer is sent (its keyframe arrived).
    watch_from: Option<u64>,
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
    /// How long a tried upgrade is watched once its layer is sent (its keyframe may take a
    /// while); the estimate falling by more than [`Self::probe_failure_drop`] in that time
    /// undoes it.
    pub(crate) probe_watch: Duration,
    /// How long a tried layer may take to be sent; one not sent by then is undone.
    pub(crate) probe_landing: Duration,
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
            probe_landing: Duration::from_secs(3),
            probe_failure_drop: 0.15,
            probe_backoff_max: Duration::from_secs(60),
        }
    }
}

/// Splits one subscriber's bandwidth estimate among the videos it receives.
///
/// Every video gets its lowest active layer (a frozen tile is worse than a blurry one); a new
/// video then goes up round-robin, one layer at a time, while it fits with headroom, and a
/// video being sent keeps its layer while the estimate covers it (the layer it was given, or a
/// higher one still sent while a downgrade waits for its keyframe). Going up from a layer being
/// sent is a probe: a send-side estimate on a leg that sends less than it could runs ahead of
/// what the path carries (webrtc-rs's GCC does not cap its increase at the acknowledged rate),
/// so an estimate alone is not trusted to carry more. After the estimate has held for
/// [`AllocatorConfig::probe_after`], the cheapest one-layer upgrade that fits the estimate is
/// tried; it is undone, and the next try waits twice as long, if the estimate falls while it is
/// watched or no longer carries it when the watch ends. The watch begins once the tried layer
/// is sent, so a probe is judged by what the path carried, not before its keyframe arrived. (With no padding to probe with, the
/// upgrade is the probe: a subscriber on a link that cannot carry it sees a short freeze, less
/// and less often.)
#[derive(Debug)]
pub(crate) struct Allocator {
    config: AllocatorConfig,
    /// Since when the estimate has not fallen.
    steady_since: u64,
    last_estimate: u64,
    /// The tried upgrade.
    probe: Option<Probe>,
    /// A probe given up: (video index, layer tried), until that layer is no longer sent.
    undone: Option<(usize, Layer)>,
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
            undone: None,
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
        if let Some((index, tried)) = self.undone
            && videos.get(index).is_none_or(|d| !d.sends(tried))
        {
            self.undone = None;
        }
        let undone = |i: usize| self.undone.filter(|&(u, _)| u == i).map(|(_, l)| l);

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
                let limit = match demand.held(undone(i)) {
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
        if let Some(mut probe) = self.probe {
            let Probe {
                index,
                before,
                tried,
                ..
            } = probe;
            let floor = (probe.estimate as f64 * (1.0 - self.config.probe_failure_drop)) as u64;
            let fell = estimate < floor;
            let landed = videos.get(index).is_some_and(|d| d.sends(tried));
            if landed && probe.watch_from.is_none() {
                probe.watch_from = Some(now_ms);
            }
            let over = match probe.watch_from {
                Some(from) => now_ms.saturating_sub(from) >= millis(self.config.probe_watch),
                // Never sent: given up after the landing time.
                None => now_ms.saturating_sub(probe.at) >= millis(self.config.probe_landing),
            };
            let slot = layers.get_mut(index);
            if fell || over {
                self.probe = None;
                let carried = slot.as_ref().is_some_and(|l| **l >= Some(tried));
                if !fell && carried && landed {
                    self.backoff = self.config.probe_after;
                } else {
                    self.failed_probes += 1;
                    self.backoff = (self.backoff * 2).min(self.config.probe_backoff_max);
                    self.steady_since = now_ms;
                    self.undone = Some((index, tried));
                    if let Some(slot) = slot {
                        *slot = (*slot).min(Some(before));
                    }
                }
            } else {
                self.probe = Some(probe);
                if let Some(slot) = slot {
                    // Hold the tried layer while it is watched.
                    *slot = (*slot).max(Some(tried));
                }
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
            if let Some((_, index, before, tried)) = candidate {
                layers[index] = Some(tried);
                self.probe = Some(Probe {
                    index,
                    before,
                    tried,
                    estimate,
                    at: now_ms,
                    watch_from: None,
                });
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

    /// A video given `current`, and sent it.
    fn demand(q: u64, h: u64, f: u64, current: Option<Layer>) -> Demand {
        Demand {
            layer_bps: [q, h, f],
            max_layer: F,
            current,
            sent: current,
        }
    }

    /// A video given `current` while `sent` is still sent (the switch waits for a keyframe).
    fn switching(current: Layer, sent: Layer) -> Demand {
        Demand {
            sent: Some(sent),
            ..demand(100_000, 400_000, 1_200_000, Some(current))
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
        // The estimate sags 7 % (not a fall) but no longer carries h at the end of the watch
        // (2 s from when h was first sent).
        assert_eq!(a.allocate(390_000, 0, &at_h, 9_000), vec![Some(H)]);
        assert_eq!(a.allocate(390_000, 0, &at_h, 10_000), vec![Some(H)]);
        assert_eq!(a.allocate(390_000, 0, &at_h, 11_000), vec![Some(Q)]);
        assert_eq!(a.failed_probes, 1);
        // An estimate that cannot carry the next layer is never probed beyond, however steady.
        let two = [
            demand(100_000, 400_000, 1_200_000, Some(Q)),
            demand(100_000, 400_000, 1_200_000, Some(Q)),
        ];
        for t in (12_000..120_000).step_by(500) {
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
    fn a_downgrade_waiting_for_its_keyframe_is_called_off_when_the_estimate_recovers() {
        let mut a = Allocator::new(quiet(), 0);
        // f is sent and given; a dip gives h (the switch waits for h's keyframe).
        assert_eq!(
            a.allocate(1_500_000, 0, &[switching(F, F)], 0),
            vec![Some(F)]
        );
        assert_eq!(
            a.allocate(1_000_000, 0, &[switching(F, F)], 500),
            vec![Some(H)]
        );
        // The estimate is back before h's keyframe: f, still sent, is kept (before: h, and f
        // again only by a probe, seconds later).
        assert_eq!(
            a.allocate(1_500_000, 0, &[switching(H, F)], 1_000),
            vec![Some(F)]
        );
        // Once h is sent, going back up to f is a probe as ever.
        assert_eq!(
            a.allocate(1_000_000, 0, &[switching(F, F)], 1_500),
            vec![Some(H)]
        );
        assert_eq!(
            a.allocate(1_500_000, 0, &[switching(H, H)], 2_000),
            vec![Some(H)]
        );
        // A new video is new whatever is sent to it meanwhile: it starts as high as fits.
        let new = Demand {
            sent: Some(Q),
            ..demand(100_000, 400_000, 1_200_000, None)
        };
        assert_eq!(a.allocate(5_000_000, 0, &[new], 2_500), vec![Some(F)]);
    }

    #[test]
    fn a_probe_is_judged_from_when_its_layer_is_sent_and_one_never_sent_is_undone() {
        let mut a = Allocator::new(AllocatorConfig::default(), 0);
        let at_q = [demand(100_000, 400_000, 1_200_000, Some(Q))];
        assert_eq!(a.allocate(450_000, 0, &at_q, 0), vec![Some(Q)]);
        assert_eq!(a.allocate(450_000, 0, &at_q, 8_000), vec![Some(H)]);
        // h's keyframe takes 1.5 s: the watch (2 s) starts when h is sent, so the probe is
        // not kept at 10 s on an estimate that never saw h's rate.
        for t in [8_500, 9_000] {
            assert_eq!(a.allocate(450_000, 0, &[switching(H, Q)], t), vec![Some(H)]);
        }
        for t in [9_500, 10_000, 11_000] {
            assert_eq!(
                a.allocate(450_000, 0, &[switching(H, H)], t),
                vec![Some(H)],
                "{t}"
            );
        }
        assert_eq!(a.failed_probes, 0);
        // The path does not carry h: undone at the end of its watch (11.5 s); q is given,
        // and h, still sent until q's keyframe, is not held on to.
        assert_eq!(
            a.allocate(390_000, 0, &[switching(H, H)], 11_500),
            vec![Some(Q)]
        );
        assert_eq!(a.failed_probes, 1);
        assert_eq!(
            a.allocate(450_000, 0, &[switching(Q, H)], 12_000),
            vec![Some(Q)]
        );
        // Another probe (16 s later) whose layer is never sent is undone after 3 s.
        assert_eq!(a.allocate(450_000, 0, &at_q, 27_500), vec![Some(H)]);
        assert_eq!(
            a.allocate(450_000, 0, &[switching(H, Q)], 30_000),
            vec![Some(H)]
        );
        assert_eq!(
            a.allocate(450_000, 0, &[switching(H, Q)], 30_500),
            vec![Some(Q)]
        );
        assert_eq!(a.failed_probes, 2);
    }
}
