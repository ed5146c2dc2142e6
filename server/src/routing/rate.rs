//! A token bucket with injected time, in exact integer arithmetic.

use std::time::Instant;

use super::config::RateLimit;

/// One token is this many units; refill is `per_second` units per nanosecond, so no division
/// (and no rounding drift) is needed.
const UNITS_PER_TOKEN: u64 = 1_000_000_000;

/// A token bucket: starts full.
#[derive(Clone, Debug)]
pub(crate) struct TokenBucket {
    units: u64,
    capacity: u64,
    per_second: u64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(limit: RateLimit, now: Instant) -> Self {
        let capacity = u64::from(limit.burst).saturating_mul(UNITS_PER_TOKEN);
        Self {
            units: capacity,
            capacity,
            per_second: u64::from(limit.per_second),
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        let Some(left) = self.units.checked_sub(UNITS_PER_TOKEN) else {
            return false;
        };
        self.units = left;
        true
    }

    /// Whether a token is there now (none is taken).
    pub(crate) fn ready(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.units >= UNITS_PER_TOKEN
    }

    /// Whether the bucket is full now: as good as a new one.
    pub(crate) fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.units >= self.capacity
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_nanos();
        let elapsed = u64::try_from(elapsed).unwrap_or(u64::MAX);
        self.units = self
            .units
            .saturating_add(elapsed.saturating_mul(self.per_second))
            .min(self.capacity);
        if now > self.last {
            self.last = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn bucket(burst: u32, per_second: u32, now: Instant) -> TokenBucket {
        TokenBucket::new(RateLimit { burst, per_second }, now)
    }

    #[test]
    fn burst_then_steady_rate() {
        let t0 = Instant::now();
        let mut b = bucket(3, 10, t0);
        assert!((0..3).all(|_| b.try_take(t0)));
        assert!(!b.try_take(t0));
        // 10 per second: one token per 100 ms, also when asked every 1 ms (no rounding loss).
        let mut granted = 0;
        for ms in 1..=1000 {
            if b.try_take(t0 + Duration::from_millis(ms)) {
                granted += 1;
            }
        }
        assert_eq!(granted, 10);
    }

    #[test]
    fn ready_and_full_take_nothing() {
        let t0 = Instant::now();
        let mut b = bucket(2, 1, t0);
        assert!(b.ready(t0) && b.is_full(t0));
        assert!(b.try_take(t0));
        assert!(b.ready(t0) && !b.is_full(t0));
        assert!(b.try_take(t0) && !b.ready(t0));
        let later = t0 + Duration::from_secs(2);
        assert!(b.is_full(later) && b.ready(later));
    }

    #[test]
    fn refill_is_capped_and_time_going_back_is_harmless() {
        let t0 = Instant::now();
        let mut b = bucket(2, 1, t0);
        let later = t0 + Duration::from_secs(3600);
        assert!(b.try_take(later) && b.try_take(later) && !b.try_take(later));
        assert!(!b.try_take(t0));
    }
}
