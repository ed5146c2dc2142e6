//! How often one participant id may be admitted to a room. Every admission takes a sender
//! index that is never handed out again (a room has [`super::RelayConfig::max_sender_indexes`]
//! in its life) and, for an id already in the room, replaces its connection, a leave after
//! which the committer seals a fresh epoch to every member. A participant that rejoins in a
//! loop, each time with a new token from the app, would use up the room's indexes (newcomers
//! then get `room_full`) and churn everyone's keys; past
//! [`super::RelayConfig::admissions_per_minute`] it is refused (`rate_limited`) until its
//! minute is over.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hush_proto::ParticipantId;

/// The window admissions are counted in.
pub(super) const WINDOW: Duration = Duration::from_secs(60);

/// Admissions per participant id of one room: when its window started, and how many.
#[derive(Debug, Default)]
pub(super) struct Admissions {
    by_id: HashMap<ParticipantId, (Instant, u32)>,
}

impl Admissions {
    /// Whether `id` may be admitted at `now` under `limit` a [`WINDOW`]; counts it if so.
    /// Ids whose window is over are forgotten first, so the map holds only those admitted in
    /// the last minute.
    pub(super) fn admit(&mut self, id: &ParticipantId, now: Instant, limit: u32) -> bool {
        self.by_id
            .retain(|_, (since, _)| now.saturating_duration_since(*since) < WINDOW);
        let (_, count) = self.by_id.entry(id.clone()).or_insert((now, 0));
        if *count >= limit {
            return false;
        }
        *count += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_gets_its_limit_a_minute_and_others_are_not_held_up() {
        let mut a = Admissions::default();
        let t0 = Instant::now();
        let (eve, bob) = (
            ParticipantId::new("eve").expect("id"),
            ParticipantId::new("bob").expect("id"),
        );
        for i in 0..3 {
            assert!(a.admit(&eve, t0 + Duration::from_secs(i), 3));
        }
        assert!(!a.admit(&eve, t0 + Duration::from_secs(59), 3));
        assert!(a.admit(&bob, t0 + Duration::from_secs(59), 3));
        // Its minute over, eve's count starts again; bob's window is his own.
        assert!(a.admit(&eve, t0 + WINDOW, 3));
        assert_eq!(a.by_id.len(), 2);
        assert!(a.admit(&bob, t0 + WINDOW * 3, 3));
        assert_eq!(a.by_id.len(), 1, "ids past their window are forgotten");
    }
}
