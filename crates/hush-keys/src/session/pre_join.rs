//! Frames sealed before this member joined: which KIDs name an epoch from before the join
//! ([`crate::Session::predates_join`], [`JoinHorizon`]).

use alloc::collections::BTreeSet;

use crate::kid::{Kid, SenderIndex};
use crate::time::Instant;

/// How many epochs before the join a frame sealed before it may be under. The others switch
/// to the join's epoch once they hold its envelope; until then they seal under the one before,
/// or a few older ones after a burst of membership changes they are still catching up with.
/// Frames from further back are no honest sender's, and a narrow window keeps the other 240
/// values of a KID's 8 epoch bits for the epochs after the join.
const BACK_EPOCHS: u8 = 16;

/// How far the room may move past the join while the 8 epoch bits still tell an epoch up to
/// [`BACK_EPOCHS`] before the join from one after it: the first epoch after the join that
/// shares the low byte of one before it is `join + 256 - BACK_EPOCHS`.
const AHEAD_EPOCHS: u64 = 256 - BACK_EPOCHS as u64;

/// Whether an epoch whose low 8 bits are `low` precedes the join at `join`, the newest
/// membership event this member knows of (applied or waiting) being `newest`: the epoch lies
/// 1 to [`BACK_EPOCHS`] steps before the join (mod 2^8), and no epoch the room reached since
/// the join shares its low byte.
pub(super) fn precedes(join: u64, newest: u64, low: u8) -> bool {
    if newest.saturating_sub(join) >= AHEAD_EPOCHS {
        return false;
    }
    // The join's own low byte, minus the KID's: how far back the KID's epoch lies, mod 2^8.
    let back = (join as u8).wrapping_sub(low);
    (1..=BACK_EPOCHS).contains(&back)
}

/// A snapshot of what tells a frame sealed before this member's join
/// ([`crate::Session::join_horizon`]): the join, how far the room moved on, until when such
/// frames are expected and the sender indexes of the members who joined before this one.
/// Valid until the session's next input; the native client refreshes it after every input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinHorizon {
    pub(super) join: u64,
    pub(super) newest: u64,
    pub(super) until: Instant,
    pub(super) senders: BTreeSet<SenderIndex>,
}

impl JoinHorizon {
    /// Until when (the grace period after the join) frames sealed before it are expected.
    pub fn until(&self) -> Instant {
        self.until
    }

    /// [`crate::Session::predates_join`] on this snapshot: `kid` is that of a member who joined
    /// earlier, under an epoch shortly before the join, and `now` is within the grace period after it.
    pub fn predates(&self, now: Instant, kid: Kid) -> bool {
        now < self.until && self.predates_kid(kid)
    }

    /// [`JoinHorizon::predates`] without the time check (for a caller that keeps the deadline
    /// on its own clock, from [`JoinHorizon::until`]).
    pub fn predates_kid(&self, kid: Kid) -> bool {
        let Some((_, sender, low)) = Kid::unpack(kid.get()) else {
            return false;
        };
        self.senders.contains(&sender) && precedes(self.join, self.newest, low)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_precedes_the_join_up_to_16_back_and_while_the_room_is_near_it() {
        // Join at 300 (low byte 44).
        assert!(precedes(300, 300, 43), "one back");
        assert!(precedes(300, 300, 44 - 16), "16 back");
        assert!(!precedes(300, 300, 44 - 17), "17 back: no honest sender's");
        assert!(
            !precedes(300, 300, 44u8.wrapping_sub(128)),
            "128 back (before: counted)"
        );
        assert!(!precedes(300, 300, 44), "the join's own epoch");
        assert!(!precedes(300, 300, 45), "the next one");
        // Across the wrap: join at 257 (low byte 1), epoch 255.
        assert!(precedes(257, 257, 255));
        // Epoch 540 = 300 + 240 has the low byte of 284 = 300 - 16.
        assert!(precedes(300, 539, 43), "239 epochs on, one back");
        assert!(precedes(300, 539, 28), "239 epochs on, 16 back");
        assert!(
            !precedes(300, 540, 43),
            "240 epochs on: 16 back reads as 540"
        );
    }
}
