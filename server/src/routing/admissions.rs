//! How often one participant id may be admitted to a room. Every admission takes a sender
//! index that is never handed out again (a room has [`super::RelayConfig::max_sender_indexes`]
//! in its life) and, for an id already in the room, replaces its connection, a leave after
//! which the committer seals a fresh epoch to every member. A participant that rejoins in a
//! loop, each time with a new token from the app, would use up the room's indexes (newcomers
//! then get `room_full`) and churn everyone's keys. Each id has a bucket of
//! [`super::RelayConfig::admissions_per_minute`] admissions, given back one at a time over a
//! minute; past it a join is refused (`rate_limited`), and a client that retries a few
//! seconds later gets in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hush_proto::ParticipantId;

/// The time a full bucket takes to refill.
pub(super) const REFILL: Duration = Duration::from_secs(60);

/// One id's bucket: admissions left, and when the next one comes back.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    left: u32,
    since: Instant,
}

/// Admissions per participant id of one room.
#[derive(Debug, Default)]
pub(super) struct Admissions {
    by_id: HashMap<ParticipantId, Bucket>,
}

impl Admissions {
    /// Whether `id` may be admitted at `now` with `limit` admissions a minute (one given back
    /// every minute / `limit`); counts it if so. Ids whose bucket is full again are forgotten,
    /// so the map holds only those admitted within the last minute.
    pub(super) fn admit(&mut self, id: &ParticipantId, now: Instant, limit: u32) -> bool {
        let limit = limit.max(1);
        let period = REFILL / limit;
        let refill = |b: &mut Bucket| {
            let elapsed = now.saturating_duration_since(b.since);
            let back =
                u32::try_from(elapsed.as_nanos() / period.as_nanos().max(1)).unwrap_or(u32::MAX);
            // `period * back` is at most `elapsed`: `since` never passes `now`. A bucket full
            // again is dropped below, so where it would start again does not matter.
            if back > 0 {
                b.left = b.left.saturating_add(back).min(limit);
                b.since += period * back;
            }
        };
        self.by_id.retain(|_, b| {
            refill(b);
            b.left < limit
        });
        let b = self.by_id.entry(id.clone()).or_insert(Bucket {
            left: limit,
            since: now,
        });
        if b.left == 0 {
            return false;
        }
        b.left -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_gets_its_burst_then_one_admission_per_period_and_others_are_not_held_up() {
        let mut a = Admissions::default();
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let (eve, bob) = (
            ParticipantId::new("eve").expect("id"),
            ParticipantId::new("bob").expect("id"),
        );
        // 3 a minute: one comes back every 20 s.
        for i in 0..3 {
            assert!(a.admit(&eve, at(i), 3));
        }
        assert!(!a.admit(&eve, at(10_000), 3));
        assert!(a.admit(&bob, at(10_000), 3), "another id is not held up");
        assert!(!a.admit(&eve, at(19_999), 3));
        assert!(a.admit(&eve, at(20_000), 3), "one back after 20 s");
        assert!(!a.admit(&eve, at(20_001), 3));
        assert!(a.admit(&eve, at(40_000), 3));
        // Full again after a quiet minute: the whole burst, and forgotten meanwhile.
        assert!(a.admit(&bob, at(200_000), 3));
        assert_eq!(
            a.by_id.len(),
            1,
            "ids whose bucket is full again are forgotten"
        );
        for i in 0..3 {
            assert!(a.admit(&eve, at(200_000 + i), 3));
        }
        assert!(!a.admit(&eve, at(200_010), 3));
    }
}
