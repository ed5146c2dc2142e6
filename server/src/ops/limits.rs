//! Per-IP protection before a connection costs anything: a connection rate, a cap on
//! concurrent connections and a growing backoff after failed authentications, in a bounded table.
//!
//! Sans-IO like the routing core: time is an argument, nothing is spawned. The HTTP adapter asks
//! [`IpLimiter::try_connect`] when a WebSocket arrives (before the upgrade), calls
//! [`IpLimiter::disconnected`] when it ends, and reports token refusals with
//! [`IpLimiter::auth_failed`] (the core's `Audit::JoinRefused` with a `token_*` code) and
//! successful joins with [`IpLimiter::auth_succeeded`].
//!
//! IPv6 clients are counted per /64 (one host usually owns a whole /64 and can rotate
//! addresses inside it at will); IPv4-mapped IPv6 addresses count as their IPv4 address.
//!
//! The table holds at most [`IpLimits::max_entries`] addresses. When full, the entry seen least
//! recently that has no open connection is evicted (LRU); if every entry has open connections,
//! the new address is refused ([`LimitRefusal::TableFull`]): failing closed beats forgetting
//! counts that still matter.

use core::fmt;
use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use crate::routing::RateLimit;
use crate::routing::rate::TokenBucket;

/// The limits per IP address (per /64 for IPv6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct IpLimits {
    /// New connections: a token bucket.
    pub connect_rate: RateLimit,
    /// Connections open at once.
    pub max_concurrent: u32,
    /// Failed authentications allowed before the backoff starts.
    pub free_auth_failures: u32,
    /// The first backoff; each further failure doubles it.
    pub auth_backoff: Duration,
    /// The longest backoff.
    pub max_auth_backoff: Duration,
    /// After this long without a failure, the failure count starts again from zero.
    pub auth_failure_memory: Duration,
    /// Addresses tracked at once.
    pub max_entries: usize,
}

impl Default for IpLimits {
    fn default() -> Self {
        Self {
            connect_rate: RateLimit {
                burst: 20,
                per_second: 5,
            },
            max_concurrent: 32,
            free_auth_failures: 5,
            auth_backoff: Duration::from_secs(1),
            max_auth_backoff: Duration::from_secs(300),
            auth_failure_memory: Duration::from_secs(600),
            max_entries: 65_536,
        }
    }
}

/// Why a connection is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitRefusal {
    /// Too many new connections from this address.
    ConnectRate,
    /// Too many connections open from this address.
    TooManyConnections,
    /// Too many failed authentications: retry after this long.
    AuthBackoff {
        /// How long until a connection is accepted again.
        retry_after: Duration,
    },
    /// The table is full of addresses with open connections.
    TableFull,
}

impl LimitRefusal {
    /// A short stable name, for metrics labels and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ConnectRate => "connect_rate",
            Self::TooManyConnections => "too_many_connections",
            Self::AuthBackoff { .. } => "auth_backoff",
            Self::TableFull => "table_full",
        }
    }
}

impl fmt::Display for LimitRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AuthBackoff { retry_after } => {
                write!(f, "auth_backoff (retry after {} s)", retry_after.as_secs())
            }
            other => f.write_str(other.as_str()),
        }
    }
}

impl std::error::Error for LimitRefusal {}

/// What the limiter knows about one address.
#[derive(Debug)]
struct Entry {
    bucket: TokenBucket,
    open: u32,
    failures: u32,
    last_failure: Option<Instant>,
    blocked_until: Option<Instant>,
    last_seen: Instant,
    /// Tie-breaker in the LRU index, so two entries seen at the same instant stay distinct.
    stamp: u64,
}

/// The per-IP limiter.
#[derive(Debug)]
pub struct IpLimiter {
    limits: IpLimits,
    entries: HashMap<IpAddr, Entry>,
    /// (last seen, stamp, address) of every entry, oldest first.
    lru: BTreeSet<(Instant, u64, IpAddr)>,
    next_stamp: u64,
}

/// The key an address is counted under: IPv4 as is (also when IPv4-mapped), IPv6 per /64.
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl IpLimiter {
    /// An empty limiter.
    pub fn new(limits: IpLimits) -> Self {
        Self {
            limits,
            entries: HashMap::new(),
            lru: BTreeSet::new(),
            next_stamp: 0,
        }
    }

    /// The limits.
    pub fn limits(&self) -> &IpLimits {
        &self.limits
    }

    /// How many addresses are tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no address is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A new connection from `ip`: counted as open if allowed (pair it with
    /// [`IpLimiter::disconnected`]).
    pub fn try_connect(&mut self, now: Instant, ip: IpAddr) -> Result<(), LimitRefusal> {
        let limits = self.limits;
        let entry = self.admit(now, ip)?;
        if entry.open >= limits.max_concurrent {
            return Err(LimitRefusal::TooManyConnections);
        }
        if !entry.bucket.try_take(now) {
            return Err(LimitRefusal::ConnectRate);
        }
        entry.open += 1;
        Ok(())
    }

    /// The address's entry (made, evicting the least recently seen idle one, if new), touched,
    /// with old failures forgotten; refused while the address is backing off after failed
    /// authentications. Shared by [`IpLimiter::try_connect`] and
    /// [`IpLimiter::try_authenticate`].
    fn admit(&mut self, now: Instant, ip: IpAddr) -> Result<&mut Entry, LimitRefusal> {
        let key = limit_key(ip);
        if !self.entries.contains_key(&key) {
            self.make_room()?;
            let entry = Entry {
                bucket: TokenBucket::new(self.limits.connect_rate, now),
                open: 0,
                failures: 0,
                last_failure: None,
                blocked_until: None,
                last_seen: now,
                stamp: self.stamp(),
            };
            self.lru.insert((entry.last_seen, entry.stamp, key));
            self.entries.insert(key, entry);
        }
        self.touch(now, key);
        let limits = self.limits;
        let Some(entry) = self.entries.get_mut(&key) else {
            return Err(LimitRefusal::TableFull); // just inserted; cannot happen
        };
        forget_old_failures(entry, now, &limits);
        if let Some(until) = entry.blocked_until.filter(|&until| now < until) {
            return Err(LimitRefusal::AuthBackoff {
                retry_after: until.saturating_duration_since(now),
            });
        }
        Ok(entry)
    }

    /// A connection from `ip` that [`IpLimiter::try_connect`] allowed has ended.
    pub fn disconnected(&mut self, ip: IpAddr) {
        if let Some(entry) = self.entries.get_mut(&limit_key(ip)) {
            entry.open = entry.open.saturating_sub(1);
        }
    }

    /// A connection from `ip` failed to authenticate (a refused token). Returns the backoff now
    /// in force, if any.
    pub fn auth_failed(&mut self, now: Instant, ip: IpAddr) -> Option<Duration> {
        let key = limit_key(ip);
        let limits = self.limits;
        let entry = self.entries.get_mut(&key)?;
        forget_old_failures(entry, now, &limits);
        entry.failures = entry.failures.saturating_add(1);
        entry.last_failure = Some(now);
        let over = entry.failures.checked_sub(limits.free_auth_failures)?;
        if over == 0 {
            return None;
        }
        // 1, 2, 4, ... times the base, capped (the shift is capped well below overflow).
        let factor = 1u32 << (over - 1).min(20);
        let backoff = limits
            .auth_backoff
            .saturating_mul(factor)
            .min(limits.max_auth_backoff);
        entry.blocked_until = now.checked_add(backoff);
        self.touch(now, key);
        Some(backoff)
    }

    /// An authentication that opens no connection (the admin API's bearer token): refused
    /// while `ip` is backing off, and otherwise tracked so that a failure that follows counts
    /// in [`IpLimiter::auth_failed`]. Takes nothing from the connection rate.
    pub fn try_authenticate(&mut self, now: Instant, ip: IpAddr) -> Result<(), LimitRefusal> {
        self.admit(now, ip).map(|_| ())
    }

    /// A connection from `ip` authenticated: its failure count starts again.
    pub fn auth_succeeded(&mut self, ip: IpAddr) {
        if let Some(entry) = self.entries.get_mut(&limit_key(ip)) {
            entry.failures = 0;
            entry.last_failure = None;
            entry.blocked_until = None;
        }
    }

    fn stamp(&mut self) -> u64 {
        self.next_stamp += 1;
        self.next_stamp
    }

    fn touch(&mut self, now: Instant, key: IpAddr) {
        let stamp = self.stamp();
        if let Some(entry) = self.entries.get_mut(&key) {
            self.lru.remove(&(entry.last_seen, entry.stamp, key));
            entry.last_seen = entry.last_seen.max(now);
            entry.stamp = stamp;
            self.lru.insert((entry.last_seen, entry.stamp, key));
        }
    }

    /// Evicts the least recently seen entry without open connections if the table is full.
    fn make_room(&mut self) -> Result<(), LimitRefusal> {
        if self.entries.len() < self.limits.max_entries {
            return Ok(());
        }
        let victim = self
            .lru
            .iter()
            .find(|(_, _, ip)| self.entries.get(ip).is_some_and(|e| e.open == 0))
            .copied();
        let Some(victim) = victim else {
            return Err(LimitRefusal::TableFull);
        };
        self.lru.remove(&victim);
        self.entries.remove(&victim.2);
        Ok(())
    }
}

fn forget_old_failures(entry: &mut Entry, now: Instant, limits: &IpLimits) {
    let quiet = entry
        .last_failure
        .and_then(|at| at.checked_add(limits.auth_failure_memory))
        .is_some_and(|forget_at| now >= forget_at);
    if quiet && entry.blocked_until.is_none_or(|until| now >= until) {
        entry.failures = 0;
        entry.last_failure = None;
        entry.blocked_until = None;
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    fn limits() -> IpLimits {
        IpLimits {
            connect_rate: RateLimit {
                burst: 3,
                per_second: 1,
            },
            max_concurrent: 2,
            free_auth_failures: 2,
            auth_backoff: Duration::from_secs(1),
            max_auth_backoff: Duration::from_secs(8),
            auth_failure_memory: Duration::from_secs(60),
            max_entries: 3,
        }
    }

    #[test]
    fn connection_rate_is_a_bucket_per_address() {
        let t0 = Instant::now();
        let mut l = IpLimiter::new(limits());
        for _ in 0..3 {
            assert_eq!(l.try_connect(t0, ip(1)), Ok(()));
            l.disconnected(ip(1));
        }
        assert_eq!(l.try_connect(t0, ip(1)), Err(LimitRefusal::ConnectRate));
        // Another address is not affected.
        assert_eq!(l.try_connect(t0, ip(2)), Ok(()));
        // One token per second comes back.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(l.try_connect(t1, ip(1)), Ok(()));
        assert_eq!(l.try_connect(t1, ip(1)), Err(LimitRefusal::ConnectRate));
    }

    #[test]
    fn concurrent_connections_are_capped_until_one_closes() {
        let t0 = Instant::now();
        let mut l = IpLimiter::new(limits());
        assert_eq!(l.try_connect(t0, ip(1)), Ok(()));
        assert_eq!(l.try_connect(t0, ip(1)), Ok(()));
        assert_eq!(
            l.try_connect(t0, ip(1)),
            Err(LimitRefusal::TooManyConnections)
        );
        l.disconnected(ip(1));
        assert_eq!(l.try_connect(t0, ip(1)), Ok(()));
        // More disconnects than connects do not go below zero or grant extra slots.
        for _ in 0..5 {
            l.disconnected(ip(1));
        }
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(l.try_connect(t1, ip(1)), Ok(()));
        assert_eq!(l.try_connect(t1, ip(1)), Ok(()));
        assert_eq!(
            l.try_connect(t1, ip(1)),
            Err(LimitRefusal::TooManyConnections)
        );
    }

    #[test]
    fn auth_failures_bring_a_doubling_capped_backoff() {
        let t0 = Instant::now();
        let mut l = IpLimiter::new(IpLimits {
            connect_rate: RateLimit {
                burst: 1000,
                per_second: 1000,
            },
            max_concurrent: 1000,
            ..limits()
        });
        let mut now = t0;
        let mut backoffs = Vec::new();
        for _ in 0..8 {
            l.try_connect(now, ip(1)).unwrap();
            backoffs.push(l.auth_failed(now, ip(1)).map(|d| d.as_secs()));
            l.disconnected(ip(1));
            // Blocked for exactly the backoff.
            if let Some(secs) = backoffs.last().copied().flatten() {
                let retry = Duration::from_secs(secs);
                assert_eq!(
                    l.try_connect(now, ip(1)),
                    Err(LimitRefusal::AuthBackoff { retry_after: retry })
                );
                now += retry - Duration::from_millis(1);
                assert!(matches!(
                    l.try_connect(now, ip(1)),
                    Err(LimitRefusal::AuthBackoff { .. })
                ));
                now += Duration::from_millis(1);
            }
        }
        let expected = [
            None,
            None,
            Some(1),
            Some(2),
            Some(4),
            Some(8),
            Some(8),
            Some(8),
        ];
        assert_eq!(backoffs, expected);
        // Others are not blocked.
        assert_eq!(l.try_connect(now, ip(2)), Ok(()));
        // A success clears the count.
        l.auth_succeeded(ip(1));
        l.try_connect(now, ip(1)).unwrap();
        assert_eq!(l.auth_failed(now, ip(1)), None);
    }

    #[test]
    fn failures_are_forgotten_after_a_quiet_period() {
        let t0 = Instant::now();
        let mut l = IpLimiter::new(limits());
        l.try_connect(t0, ip(1)).unwrap();
        assert_eq!(l.auth_failed(t0, ip(1)), None);
        assert_eq!(l.auth_failed(t0, ip(1)), None);
        assert_eq!(l.auth_failed(t0, ip(1)), Some(Duration::from_secs(1)));
        let later = t0 + Duration::from_secs(61);
        l.disconnected(ip(1));
        assert_eq!(l.try_connect(later, ip(1)), Ok(()));
        assert_eq!(l.auth_failed(later, ip(1)), None, "the count started again");
    }

    #[test]
    fn the_table_evicts_the_oldest_idle_address_and_fails_closed_when_all_are_busy() {
        let t0 = Instant::now();
        let mut l = IpLimiter::new(limits());
        // Three addresses; 1 and 3 keep a connection open, 2 is idle.
        l.try_connect(t0, ip(1)).unwrap();
        l.try_connect(t0 + Duration::from_secs(1), ip(2)).unwrap();
        l.disconnected(ip(2));
        l.try_connect(t0 + Duration::from_secs(2), ip(3)).unwrap();
        let t3 = t0 + Duration::from_secs(3);
        assert_eq!(l.len(), 3);
        // A fourth evicts the oldest idle one (2), not 1 (older, but busy).
        l.try_connect(t3, ip(4)).unwrap();
        assert_eq!(l.len(), 3);
        assert!(l.entries.contains_key(&ip(1)) && !l.entries.contains_key(&ip(2)));
        // Now 1, 3 and 4 are all busy: a fifth is refused, the table does not grow.
        assert_eq!(l.try_connect(t3, ip(5)), Err(LimitRefusal::TableFull));
        assert_eq!(l.len(), 3);
        // Once one closes, room again (the least recently seen idle one goes).
        l.disconnected(ip(3));
        assert_eq!(l.try_connect(t3, ip(5)), Ok(()));
        assert!(!l.entries.contains_key(&ip(3)));
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let t0 = Instant::now();
        let mut l = IpLimiter::new(limits());
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:eeee:dddd:cccc".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        l.try_connect(t0, a).unwrap();
        l.try_connect(t0, b).unwrap();
        assert_eq!(l.try_connect(t0, a), Err(LimitRefusal::TooManyConnections));
        assert_eq!(l.try_connect(t0, other), Ok(()));
        let mapped: IpAddr = "::ffff:192.0.2.9".parse().unwrap();
        assert_eq!(limit_key(mapped), ip(9));
    }
}
