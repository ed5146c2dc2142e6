//! Each member's share of the other members' signaling queues.
//!
//! Key-exchange messages (`e2ee`, `e2ee_broadcast`) go from one member to others through the
//! recipients' signaling queues, which are bounded: a queue that fills closes its connection
//! (a client that does not read would miss membership events). The sender's own key-message
//! bucket ([`super::RelayConfig::key_message_rate`]) is sized for a committer's fan-out to a
//! whole room, more than one recipient's queue holds, so it cannot protect a recipient: one
//! member could fill another's queue and have it disconnected. So every (sender, recipient)
//! pair also has its own bucket ([`super::RelayConfig::pair_key_message_rate`]); a message
//! over it is refused to the sender, and the recipient never sees it.

use std::collections::HashMap;
use std::time::Instant;

use super::config::RateLimit;
use super::output::ConnId;
use super::rate::TokenBucket;

/// One sender's buckets, by recipient connection.
#[derive(Debug, Default)]
pub(super) struct Shares {
    buckets: HashMap<ConnId, TokenBucket>,
}

impl Shares {
    /// Takes one token for each of `recipients`, or, if any of them has none left, takes none
    /// and returns `false`: a broadcast goes to everyone or to no one.
    ///
    /// At most about `max_entries` buckets are kept (a sender only reaches its room's
    /// members); past that, full buckets (as good as new ones, such as those of departed
    /// members) are forgotten.
    pub(super) fn take_all(
        &mut self,
        now: Instant,
        limit: RateLimit,
        max_entries: usize,
        recipients: &[ConnId],
    ) -> bool {
        let ready = recipients
            .iter()
            .all(|r| self.buckets.get_mut(r).is_none_or(|b| b.ready(now)));
        if !ready {
            return false;
        }
        if self.buckets.len().saturating_add(recipients.len()) > max_entries {
            self.buckets.retain(|_, b| !b.is_full(now));
        }
        for r in recipients {
            self.buckets
                .entry(*r)
                .or_insert_with(|| TokenBucket::new(limit, now))
                .try_take(now);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const LIMIT: RateLimit = RateLimit {
        burst: 2,
        per_second: 1,
    };

    #[test]
    fn each_recipient_has_its_own_share_and_a_broadcast_is_all_or_nothing() {
        let t0 = Instant::now();
        let (b, c) = (ConnId(2), ConnId(3));
        let mut s = Shares::default();
        assert!(s.take_all(t0, LIMIT, 8, &[b]));
        assert!(s.take_all(t0, LIMIT, 8, &[b]));
        assert!(!s.take_all(t0, LIMIT, 8, &[b]), "b's share is spent");
        assert!(
            !s.take_all(t0, LIMIT, 8, &[b, c]),
            "so is any broadcast to b"
        );
        // The refused broadcast took nothing from c.
        assert!(s.take_all(t0, LIMIT, 8, &[c]));
        assert!(s.take_all(t0, LIMIT, 8, &[c]));
        assert!(!s.take_all(t0, LIMIT, 8, &[c]));
        let t1 = t0 + Duration::from_secs(1);
        assert!(s.take_all(t1, LIMIT, 8, &[b, c]), "one more each a second");
        assert!(!s.take_all(t1, LIMIT, 8, &[b]));
    }

    #[test]
    fn full_buckets_are_forgotten_past_the_cap_and_spent_ones_are_kept() {
        let t0 = Instant::now();
        let mut s = Shares::default();
        for r in 1..=4 {
            assert!(s.take_all(t0, LIMIT, 4, &[ConnId(r)]));
        }
        assert!(s.take_all(t0, LIMIT, 4, &[ConnId(1)]), "recipient 1 spent");
        // Half a second on, none is full: past the cap nothing is forgotten, and the spent
        // bucket still limits.
        let t1 = t0 + Duration::from_millis(500);
        assert!(s.take_all(t1, LIMIT, 4, &[ConnId(5)]));
        assert_eq!(s.buckets.len(), 5);
        assert!(!s.take_all(t1, LIMIT, 4, &[ConnId(1)]));
        // Ten seconds on, all are full again: the next newcomer clears them.
        let t2 = t0 + Duration::from_secs(10);
        assert!(s.take_all(t2, LIMIT, 4, &[ConnId(6)]));
        assert_eq!(s.buckets.len(), 1);
    }
}
