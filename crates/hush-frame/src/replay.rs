//! A sliding replay window over SFrame counters, one per KID (RFC 9605 section 9.3 leaves the
//! policy to the application).
//!
//! The window remembers the highest counter accepted and which of the `size` counters below
//! it were seen. A counter above the highest moves the window; one inside it is accepted once;
//! one below it is refused as too old. [`ReplayWindow::check`] only reads, and the window
//! changes only through [`ReplayWindow::accept`], which the decryptor calls after the frame
//! authenticated, so a forged frame can never move it.

use crate::error::KeyError;

/// Default window: 256 counters, about 5 s of 50 fps video reordered at worst.
pub const DEFAULT_REPLAY_WINDOW: u32 = 256;

/// Largest window accepted by [`ReplayWindow::new`].
pub const MAX_REPLAY_WINDOW: u32 = 65536;

/// Replay state for one KID.
#[derive(Clone, Debug)]
pub struct ReplayWindow {
    /// Highest counter accepted, if any.
    top: Option<u64>,
    /// Bit `i` (word `i / 64`) set when counter `top - i` was accepted.
    seen: Vec<u64>,
    size: u64,
}

impl ReplayWindow {
    /// A window of `size` counters (1 to [`MAX_REPLAY_WINDOW`]).
    pub fn new(size: u32) -> Result<Self, KeyError> {
        if size == 0 || size > MAX_REPLAY_WINDOW {
            return Err(KeyError::BadReplayWindow(size));
        }
        Ok(ReplayWindow {
            top: None,
            seen: vec![0; (size as usize).div_ceil(64)],
            size: u64::from(size),
        })
    }

    /// Whether `ctr` would be accepted now.
    pub fn check(&self, ctr: u64) -> bool {
        let Some(top) = self.top else {
            return true;
        };
        if ctr > top {
            return true;
        }
        let age = top - ctr;
        age < self.size && !self.bit(age)
    }

    /// Records `ctr` as accepted; returns false (and changes nothing) if [`Self::check`] fails.
    pub fn accept(&mut self, ctr: u64) -> bool {
        if !self.check(ctr) {
            return false;
        }
        match self.top {
            Some(top) if ctr <= top => self.set(top - ctr),
            Some(top) => {
                self.shift(ctr - top);
                self.top = Some(ctr);
                self.set(0);
            }
            None => {
                self.top = Some(ctr);
                self.set(0);
            }
        }
        true
    }

    fn bit(&self, age: u64) -> bool {
        let (w, b) = ((age / 64) as usize, age % 64);
        self.seen.get(w).is_some_and(|word| word & (1 << b) != 0)
    }

    fn set(&mut self, age: u64) {
        let (w, b) = ((age / 64) as usize, age % 64);
        if let Some(word) = self.seen.get_mut(w) {
            *word |= 1 << b;
        }
    }

    /// Ages every entry by `by` counters.
    fn shift(&mut self, by: u64) {
        if by >= self.size {
            self.seen.fill(0);
            return;
        }
        let words = (by / 64) as usize;
        let bits = (by % 64) as u32;
        let n = self.seen.len();
        for i in (0..n).rev() {
            let hi = if i >= words { self.seen[i - words] } else { 0 };
            let lo = if bits > 0 && i > words {
                self.seen[i - words - 1] >> (64 - bits)
            } else {
                0
            };
            self.seen[i] = (hi << bits) | lo;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_each_counter_once_within_the_window() {
        let mut w = ReplayWindow::new(128).unwrap();
        assert!(w.accept(1000));
        assert!(!w.accept(1000));
        assert!(w.accept(999));
        assert!(w.accept(1001));
        assert!(!w.accept(999));
        assert!(w.accept(1001 - 127));
        assert!(!w.check(1001 - 128), "older than the window");
        assert!(w.accept(5000));
        assert!(!w.check(1001));
        assert!(w.accept(4999));
    }

    #[test]
    fn matches_a_set_model() {
        let size = 200u32;
        let mut w = ReplayWindow::new(size).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        let mut top = 0u64;
        let mut x = 7u64;
        for _ in 0..20_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let ctr = top.saturating_sub(250) + (x >> 33) % 300;
            let model_ok = !seen.contains(&ctr) && (seen.is_empty() || ctr + u64::from(size) > top);
            assert_eq!(w.check(ctr), model_ok, "ctr {ctr} top {top}");
            if w.accept(ctr) {
                seen.insert(ctr);
                top = top.max(ctr);
            }
        }
    }

    #[test]
    fn bad_sizes_are_refused() {
        assert!(ReplayWindow::new(0).is_err());
        assert!(ReplayWindow::new(MAX_REPLAY_WINDOW + 1).is_err());
        assert!(ReplayWindow::new(1).is_ok());
    }
}
