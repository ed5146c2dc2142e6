//! The single-use check for token ids (`jti`): a bounded cache of the ids seen, each kept until
//! its token would have expired anyway.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use super::error::TokenError;

/// Token ids seen, with the Unix time after which each may be forgotten.
#[derive(Debug)]
pub(crate) struct ReplayCache {
    capacity: usize,
    seen: BTreeMap<String, u64>,
    /// (forget-after time, id), soonest first.
    expiry: BinaryHeap<Reverse<(u64, String)>>,
}

impl ReplayCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            seen: BTreeMap::new(),
            expiry: BinaryHeap::new(),
        }
    }

    /// Records `jti` as used until `forget_after`, or refuses it if it was used before. When
    /// the cache is full of ids that have not expired, refuses (fail closed).
    pub(crate) fn check_and_record(
        &mut self,
        jti: &str,
        forget_after: u64,
        now: u64,
    ) -> Result<(), TokenError> {
        self.forget_expired(now);
        if self.seen.contains_key(jti) {
            return Err(TokenError::Replayed);
        }
        if self.seen.len() >= self.capacity {
            return Err(TokenError::ReplayCacheFull);
        }
        self.seen.insert(jti.to_owned(), forget_after);
        self.expiry.push(Reverse((forget_after, jti.to_owned())));
        Ok(())
    }

    /// Forgets `jti` before its time: its join was never admitted (the shared store could not
    /// be asked), so the same token may try again.
    pub(crate) fn release(&mut self, jti: &str) {
        self.seen.remove(jti);
    }

    /// Forgets every id whose time has passed.
    pub(crate) fn forget_expired(&mut self, now: u64) {
        while let Some(Reverse((at, _))) = self.expiry.peek() {
            if *at >= now {
                break;
            }
            if let Some(Reverse((at, jti))) = self.expiry.pop()
                && self.seen.get(&jti) == Some(&at)
            {
                // (An id released and recorded again has a later entry of its own.)
                self.seen.remove(&jti);
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_single_use_until_they_expire() {
        let mut cache = ReplayCache::new(10);
        assert_eq!(cache.check_and_record("a", 100, 50), Ok(()));
        assert_eq!(
            cache.check_and_record("a", 100, 60),
            Err(TokenError::Replayed)
        );
        assert_eq!(
            cache.check_and_record("a", 100, 100),
            Err(TokenError::Replayed)
        );
        // After its token expired it is forgotten (the token would be refused as expired).
        assert_eq!(cache.check_and_record("b", 200, 101), Ok(()));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_released_id_may_be_used_again_and_keeps_its_new_time() {
        let mut cache = ReplayCache::new(10);
        cache.check_and_record("a", 100, 0).unwrap();
        cache.release("a");
        assert_eq!(cache.check_and_record("a", 300, 50), Ok(()));
        // The first entry's time passing does not forget the second one.
        cache.forget_expired(150);
        assert_eq!(
            cache.check_and_record("a", 300, 150),
            Err(TokenError::Replayed)
        );
    }

    #[test]
    fn a_full_cache_fails_closed_and_recovers() {
        let mut cache = ReplayCache::new(2);
        cache.check_and_record("a", 100, 0).unwrap();
        cache.check_and_record("b", 150, 0).unwrap();
        assert_eq!(
            cache.check_and_record("c", 100, 0),
            Err(TokenError::ReplayCacheFull)
        );
        assert_eq!(cache.check_and_record("c", 300, 101), Ok(()));
        assert_eq!(
            cache.check_and_record("b", 300, 101),
            Err(TokenError::Replayed)
        );
    }
}
