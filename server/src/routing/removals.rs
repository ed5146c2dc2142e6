//! Removals remembered past the connection. A participant a moderator (or the admin API)
//! removed cannot come straight back: a join of the same id to the same room is refused
//! (`removed`) unless its token was issued after the removal (`iat` later than it), which only
//! the app's backend can decide to mint. Without this a removed user rejoined at once with a
//! second token it already held, or with the same token where it has no `jti`.
//!
//! Tokens are checked against the removal for as long as one issued before it can still be
//! valid: the token policy refuses a token whose `exp - iat` passes the lifetime limit, so a
//! removal is forgotten `max_lifetime + 2 x leeway` after it, and not before: a re-admission
//! (a newer token) does not end it, so tokens held from before stay refused. A token without
//! `iat` cannot show when it was issued: it is refused for as long as the removal is
//! remembered. The memory is bounded: [`MAX_PER_ROOM`] a room (one room's moderator cannot push
//! out the others' removals) and [`MAX_REMEMBERED`] in all; past either, the oldest removal of
//! the room holding the most is forgotten first.

use std::collections::BTreeMap;

use hush_proto::{ParticipantId, RoomId};

/// Removals remembered at most (up to about 400 bytes each with the longest ids).
pub(super) const MAX_REMEMBERED: usize = 4096;
/// Removals remembered at most for one room.
pub(super) const MAX_PER_ROOM: usize = 256;

/// Closed rooms remembered at most (past it, the oldest close is forgotten first).
pub(super) const MAX_CLOSED: usize = 4096;

/// Who was removed from which room, and when (Unix seconds); and which rooms were closed, and
/// when.
#[derive(Debug, Default)]
pub(super) struct Removals {
    at: BTreeMap<(RoomId, ParticipantId), u64>,
    /// A closed room is forgotten by the routing core after `closed_room_retention` (10 min by
    /// default), far sooner than tokens issued before the close expire: those must not open it
    /// again. The same rule as a removal, for everyone: a join then takes a token issued after
    /// the close.
    closed: BTreeMap<RoomId, u64>,
}

impl Removals {
    /// Remembers that `participant` was removed from `room` at `now` (Unix seconds); forgets
    /// removals older than `horizon` seconds first.
    pub(super) fn remember(
        &mut self,
        now: u64,
        horizon: u64,
        room: &RoomId,
        participant: &ParticipantId,
    ) {
        self.at.retain(|_, t| t.saturating_add(horizon) > now);
        let key = (room.clone(), participant.clone());
        let full_room = if self.at.contains_key(&key) {
            None
        } else {
            let mut counts: BTreeMap<&RoomId, usize> = BTreeMap::new();
            for (r, _) in self.at.keys() {
                *counts.entry(r).or_default() += 1;
            }
            if counts.get(room).copied().unwrap_or(0) >= MAX_PER_ROOM {
                Some(room.clone())
            } else if self.at.len() >= MAX_REMEMBERED {
                // The room holding the most removals gives way.
                counts
                    .iter()
                    .max_by_key(|(_, n)| **n)
                    .map(|(r, _)| (*r).clone())
            } else {
                None
            }
        };
        if let Some(full) = full_room
            && let Some(oldest) = self
                .at
                .iter()
                .filter(|((r, _), _)| *r == full)
                .min_by_key(|(_, t)| **t)
                .map(|(k, _)| k.clone())
        {
            self.at.remove(&oldest);
        }
        self.at.insert(key, now);
    }

    /// Whether a join of `participant` to `room` with a token issued at `iat` may go on: yes
    /// unless it was removed from that room within `horizon` seconds and the token was not
    /// issued more than `leeway` seconds after the removal. The token policy accepts an `iat`
    /// up to `leeway` in the relay's future (a backend clock ahead), so a token minted just
    /// before the removal can carry an `iat` up to `leeway` after it: such a token is refused,
    /// and a re-admission takes a token minted more than `leeway` after the removal. A newer
    /// token does not end the memory (older ones stay refused).
    pub(super) fn admits(
        &mut self,
        now: u64,
        horizon: u64,
        leeway: u64,
        room: &RoomId,
        participant: &ParticipantId,
        iat: Option<u64>,
    ) -> bool {
        let key = (room.clone(), participant.clone());
        admits_in(&mut self.at, &key, now, horizon, leeway, iat)
    }

    /// Remembers that `room` was closed at `now` (Unix seconds); forgets closes older than
    /// `horizon` first, and the oldest past [`MAX_CLOSED`].
    pub(super) fn remember_close(&mut self, now: u64, horizon: u64, room: &RoomId) {
        self.closed.retain(|_, t| t.saturating_add(horizon) > now);
        if self.closed.len() >= MAX_CLOSED
            && !self.closed.contains_key(room)
            && let Some(oldest) = self
                .closed
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(r, _)| r.clone())
        {
            self.closed.remove(&oldest);
        }
        self.closed.insert(room.clone(), now);
    }

    /// Whether a join of `room` with a token issued at `iat` may go on as far as a close goes:
    /// yes unless the room was closed within `horizon` seconds and the token was not issued more
    /// than `leeway` seconds after (as [`Removals::admits`]).
    pub(super) fn admits_after_close(
        &mut self,
        now: u64,
        horizon: u64,
        leeway: u64,
        room: &RoomId,
        iat: Option<u64>,
    ) -> bool {
        admits_in(&mut self.closed, room, now, horizon, leeway, iat)
    }

    /// Removals remembered now.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.at.len()
    }
}

/// The rule [`Removals::admits`] and [`Removals::admits_after_close`] share, for the time
/// `map` holds for `key`: none, or past `horizon` (then forgotten), admits; else only a token
/// issued more than `leeway` after it.
fn admits_in<K: Ord>(
    map: &mut BTreeMap<K, u64>,
    key: &K,
    now: u64,
    horizon: u64,
    leeway: u64,
    iat: Option<u64>,
) -> bool {
    let Some(&at) = map.get(key) else {
        return true;
    };
    if at.saturating_add(horizon) <= now {
        map.remove(key);
        return true;
    }
    iat.is_some_and(|i| i > at.saturating_add(leeway))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(r: &str, p: &str) -> (RoomId, ParticipantId) {
        (RoomId::new(r).unwrap(), ParticipantId::new(p).unwrap())
    }

    #[test]
    fn a_token_issued_before_the_removal_is_refused_a_later_one_admitted() {
        let mut m = Removals::default();
        let (room, eve) = ids("r", "eve");
        m.remember(1_000, 3_600, &room, &eve);
        assert!(!m.admits(1_001, 3_600, 0, &room, &eve, Some(999)));
        assert!(
            !m.admits(1_001, 3_600, 0, &room, &eve, Some(1_000)),
            "same second"
        );
        assert!(!m.admits(1_001, 3_600, 0, &room, &eve, None), "no iat");
        // Another room, another id: not concerned.
        let (other, bob) = ids("other", "bob");
        assert!(m.admits(1_001, 3_600, 0, &other, &eve, Some(1)));
        assert!(m.admits(1_001, 3_600, 0, &room, &bob, Some(1)));
        // The backend re-admits with a newer token; older ones stay refused.
        assert!(m.admits(1_002, 3_600, 0, &room, &eve, Some(1_001)));
        assert!(!m.admits(1_003, 3_600, 0, &room, &eve, Some(5)));
        assert!(!m.admits(1_003, 3_600, 0, &room, &eve, None));
        assert_eq!(m.len(), 1);
    }

    /// A backend clock 10 s ahead minted eve's token just before the removal: its `iat` is
    /// after the removal by the relay's clock, within the 30 s the token policy allows. It is
    /// refused; a token issued more than the leeway after the removal is admitted.
    #[test]
    fn a_token_within_the_clock_leeway_of_the_removal_is_refused() {
        let mut m = Removals::default();
        let (room, eve) = ids("r", "eve");
        m.remember(1_000, 3_600, &room, &eve);
        assert!(!m.admits(1_001, 3_600, 30, &room, &eve, Some(1_010)));
        assert!(!m.admits(1_031, 3_600, 30, &room, &eve, Some(1_030)));
        assert!(m.admits(1_031, 3_600, 30, &room, &eve, Some(1_031)));
    }

    #[test]
    fn forgotten_past_the_horizon_and_bounded() {
        let mut m = Removals::default();
        let (room, eve) = ids("r", "eve");
        m.remember(1_000, 3_600, &room, &eve);
        assert!(!m.admits(4_599, 3_600, 0, &room, &eve, None));
        assert!(m.admits(4_600, 3_600, 0, &room, &eve, None));
        const LONG: u64 = 1_000_000;
        // One room's moderator removes many: its own oldest go, not the others' removals.
        let other = RoomId::new("other").unwrap();
        m.remember(9_000, LONG, &other, &eve);
        for i in 0..MAX_PER_ROOM + 10 {
            let p = ParticipantId::new(format!("p{i}")).unwrap();
            m.remember(10_000 + i as u64, LONG, &room, &p);
        }
        assert_eq!(m.len(), MAX_PER_ROOM + 1);
        let first = ParticipantId::new("p0").unwrap();
        let last = ParticipantId::new(format!("p{}", MAX_PER_ROOM + 9)).unwrap();
        assert!(m.admits(20_000, LONG, 0, &room, &first, None));
        assert!(!m.admits(20_000, LONG, 0, &room, &last, None));
        assert!(
            !m.admits(20_000, LONG, 0, &other, &eve, None),
            "the other room's removal stays"
        );
        // Many rooms: the total holds, and the room holding the most gives way.
        for r in 0..MAX_REMEMBERED {
            let room = RoomId::new(format!("r{r}")).unwrap();
            m.remember(30_000 + r as u64, LONG, &room, &eve);
        }
        assert_eq!(m.len(), MAX_REMEMBERED);
        assert!(
            !m.admits(40_000, LONG, 0, &other, &eve, None),
            "one of one: kept"
        );
    }

    #[test]
    fn closes_are_remembered_until_the_horizon_and_bounded() {
        let mut m = Removals::default();
        let (room, _) = ids("r", "eve");
        m.remember_close(1_000, 3_600, &room);
        assert!(!m.admits_after_close(1_001, 3_600, 30, &room, Some(1_030)));
        assert!(!m.admits_after_close(1_001, 3_600, 30, &room, None));
        assert!(m.admits_after_close(1_031, 3_600, 30, &room, Some(1_031)));
        assert!(m.admits_after_close(4_600, 3_600, 30, &room, None));
        for r in 0..MAX_CLOSED + 5 {
            let room = RoomId::new(format!("r{r}")).unwrap();
            m.remember_close(10_000 + r as u64, 1_000_000, &room);
        }
        assert_eq!(m.closed.len(), MAX_CLOSED);
        let first = RoomId::new("r0").unwrap();
        assert!(
            m.admits_after_close(20_000, 1_000_000, 0, &first, None),
            "oldest forgotten"
        );
    }
}
