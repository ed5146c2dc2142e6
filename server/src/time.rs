//! Time as an input: the core reads no clock.

use std::time::{Duration, Instant};

/// The current time, given by the caller with every input: a monotonic instant for timers and
/// rate limits, and Unix time for token claims (which are in Unix seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time.
    pub instant: Instant,
    /// Time since the Unix epoch.
    pub unix: Duration,
}

impl Now {
    /// A reading of both clocks.
    pub fn new(instant: Instant, unix: Duration) -> Self {
        Self { instant, unix }
    }

    /// Unix time in whole seconds.
    pub fn unix_secs(&self) -> u64 {
        self.unix.as_secs()
    }

    /// This time plus `by` on both clocks (for tests and simulations).
    ///
    /// # Panics
    ///
    /// If the instant overflows, as `Instant + Duration` does (centuries away).
    #[must_use]
    pub fn advance(self, by: Duration) -> Self {
        Self {
            instant: self.instant + by,
            unix: self.unix + by,
        }
    }
}
