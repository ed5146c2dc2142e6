//! Requests merged and rate limited: keyframe requests to one track, rekey requests of one room.
//!
//! Every subscriber that joins, loses packets or gets a new key asks for a keyframe; a publisher
//! that answered each one would send little else. Likewise every member of a room may ask for a
//! rekey at about the same time (a shared rotation timer). The gate lets one request through per
//! interval and remembers that more arrived meanwhile, so that exactly one more goes out when the
//! interval ends: nobody waits longer than one interval, and the target sees at most one
//! request per interval. Extra requests are not refused: they are merged.

use std::time::{Duration, Instant};

#[derive(Clone, Debug, Default)]
pub(super) struct MergeGate {
    last_sent: Option<Instant>,
    pending: bool,
}

impl MergeGate {
    fn ready_at(&self, interval: Duration) -> Option<Instant> {
        self.last_sent.and_then(|t| t.checked_add(interval))
    }

    /// A request arrives: whether to send one now (otherwise it is pending).
    pub(super) fn request(&mut self, now: Instant, interval: Duration) -> bool {
        self.pending = true;
        self.poll(now, interval)
    }

    /// A keyframe-style request: as [`MergeGate::request`], except that an `urgent` one is sent
    /// at once (a new subscriber's first keyframe: it decodes nothing until one comes), and
    /// that another one arriving within `grace` of the last one sent is taken as answered by
    /// it (what it asks for is on its way) and dropped.
    pub(super) fn request_with_grace(
        &mut self,
        now: Instant,
        interval: Duration,
        grace: Duration,
        urgent: bool,
    ) -> bool {
        if urgent {
            self.last_sent = Some(now);
            self.pending = false;
            return true;
        }
        let answered = self
            .last_sent
            .is_some_and(|t| now.saturating_duration_since(t) < grace);
        if answered {
            return false;
        }
        self.request(now, interval)
    }

    /// When a pending request is due.
    pub(super) fn deadline(&self, interval: Duration) -> Option<Instant> {
        if self.pending {
            self.ready_at(interval)
        } else {
            None
        }
    }

    /// Whether a pending request is due now (it is then sent). Nothing sent yet: due at once.
    pub(super) fn poll(&mut self, now: Instant, interval: Duration) -> bool {
        let due = self.pending && self.ready_at(interval).is_none_or(|at| now >= at);
        if due {
            self.last_sent = Some(now);
            self.pending = false;
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_per_interval_and_none_lost() {
        let t0 = Instant::now();
        let i = Duration::from_millis(500);
        let mut g = MergeGate::default();
        assert!(g.request(t0, i));
        assert_eq!(g.deadline(i), None);
        assert!(!g.request(t0 + Duration::from_millis(10), i));
        assert!(!g.request(t0 + Duration::from_millis(20), i));
        assert_eq!(g.deadline(i), Some(t0 + i));
        assert!(!g.poll(t0 + Duration::from_millis(499), i));
        assert!(g.poll(t0 + i, i));
        assert!(!g.poll(t0 + i, i), "merged into one");
        assert_eq!(g.deadline(i), None);
    }

    #[test]
    fn requests_within_the_grace_are_answered_and_urgent_ones_skip_the_interval() {
        let t0 = Instant::now();
        let (i, grace) = (Duration::from_millis(500), Duration::from_millis(150));
        let ms = Duration::from_millis;
        let mut g = MergeGate::default();
        assert!(g.request_with_grace(t0, i, grace, true), "first: at once");
        // Subscribers' own requests right after: the keyframe is on its way, nothing pending.
        assert!(!g.request_with_grace(t0 + ms(3), i, grace, false));
        assert!(!g.request_with_grace(t0 + ms(12), i, grace, false));
        assert_eq!(g.deadline(i), None);
        // Another newcomer's first: at once, grace or not.
        assert!(g.request_with_grace(t0 + ms(20), i, grace, true));
        let t0 = t0 + ms(20);
        // After the grace: merged and rate limited as before.
        assert!(!g.request_with_grace(t0 + ms(200), i, grace, false));
        assert_eq!(g.deadline(i), Some(t0 + i));
        // An urgent one (a new subscriber) goes at once, and answers the pending one too.
        assert!(g.request_with_grace(t0 + ms(300), i, grace, true));
        assert_eq!(g.deadline(i), None);
        assert!(!g.poll(t0 + ms(900), i));
    }
}
