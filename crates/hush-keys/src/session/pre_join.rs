//! Frames sealed before this member joined: which KIDs name an epoch from before the join
//! ([`crate::Session::predates_join`], [`JoinHorizon`]).

use alloc::collections::BTreeSet;

use crate::kid::{Kid, SenderIndex};
use crate::time::Instant;

/// How many epochs past the join a KID's 8 epoch bits still tell the past from the future.
const HORIZON_EPOCHS: u64 = 128;

/// Whether an epoch whose low 8 bits are `low` precedes the join at `join`, the room being at
/// `applied_seq`: the epoch lies 1 to 128 steps before the join (mod 2^8), and the room is
/// fewer than [`HORIZON_EPOCHS`] epochs past the join (after that, the 8 bits are ambiguous).
pub(super) fn precedes(join: u64, applied_seq: u64, low: u8) -> bool {
    if applied_seq.saturating_sub(join) >= HORIZON_EPOCHS {
        return false;
    }
    // The join's own low byte, minus the KID's: how far back the KID's epoch lies, mod 2^8.
    let back = (join as u8).wrapping_sub(low);
    (1..=HORIZON_EPOCHS).contains(&u64::from(back))
}

/// A snapshot of what tells a frame sealed before this member's join
/// ([`crate::Session::join_horizon`]): the join, how far the room moved on, until when such
/// frames are expected and the other members' sender indexes. Valid until the session's next
/// membership change; the native client refreshes it after every input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinHorizon {
    pub(super) join: u64,
    pub(super) applied_seq: u64,
    pub(super) until: Instant,
    pub(super) senders: BTreeSet<SenderIndex>,
}

impl JoinHorizon {
    /// Until when (the grace period after the join) frames sealed before it are expected.
    pub fn until(&self) -> Instant {
        self.until
    }

    /// [`crate::Session::predates_join`] on this snapshot: `kid` is another member's, under an
    /// epoch before the join, and `now` is within the grace period after it.
    pub fn predates(&self, now: Instant, kid: Kid) -> bool {
        now < self.until && self.predates_kid(kid)
    }

    /// [`JoinHorizon::predates`] without the time check (for a caller that keeps the deadline
    /// on its own clock, from [`JoinHorizon::until`]).
    pub fn predates_kid(&self, kid: Kid) -> bool {
        let Some((_, sender, low)) = Kid::unpack(kid.get()) else {
            return false;
        };
        self.senders.contains(&sender) && precedes(self.join, self.applied_seq, low)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_precedes_the_join_up_to_128_back_and_while_the_room_is_near_it() {
        // Join at 300 (low byte 44).
        assert!(precedes(300, 300, 43), "one back");
        assert!(precedes(300, 300, 44u8.wrapping_sub(128)), "128 back");
        assert!(
            !precedes(300, 300, 44u8.wrapping_sub(129)),
            "129 back reads as the future"
        );
        assert!(!precedes(300, 300, 44), "the join's own epoch");
        assert!(!precedes(300, 300, 45), "the next one");
        // Across the wrap: join at 257 (low byte 1), epoch 255.
        assert!(precedes(257, 257, 255));
        assert!(precedes(300, 427, 43), "127 epochs on");
        assert!(!precedes(300, 428, 43), "128 epochs on: ambiguous");
    }
}
