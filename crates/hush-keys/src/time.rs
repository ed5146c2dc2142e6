//! Time, as the caller tells it: this crate never reads a clock.

use core::time::Duration;

/// A point in time in milliseconds, supplied by the driver with every input.
///
/// The crate only compares and adds instants, so any millisecond clock works for timers. Member
/// attestations carry an expiry in Unix seconds, so a driver that uses attestations passes Unix
/// time in milliseconds (`Date.now()` in a browser, `SystemTime` natively). A clock that steps
/// backwards only delays timers; it never fires one early.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The instant `ms` milliseconds after the clock's origin.
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the clock's origin.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Seconds since the clock's origin (Unix seconds when the clock is Unix time).
    pub const fn as_secs(self) -> u64 {
        self.0 / 1000
    }

    /// `self + d`, saturating at the end of time.
    pub fn saturating_add(self, d: Duration) -> Self {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self(self.0.saturating_add(ms))
    }

    /// `self - earlier`, or zero when `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}
