//! A configured range of UDP ports for media (`media_ports = "50000-50999"`), so a firewall
//! opens exactly that range: each participant's media session leases one port and gives it
//! back when it ends. (webrtc-rs 0.21 has no ICE UDP mux for one port shared by all sessions.)
//!
//! Ports are handed out round robin, so a port just given back is not reused at once (a late
//! packet of the last session never reaches the next). A port some other program holds fails
//! to bind: the session tries the next lease (`peer`).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

/// The ports media sessions may bind, and which are leased.
#[derive(Debug)]
pub struct PortRange {
    first: u16,
    last: u16,
    state: Mutex<Leases>,
}

#[derive(Debug)]
struct Leases {
    leased: BTreeSet<u16>,
    /// Where the next search starts.
    next: u16,
}

/// One leased port, given back when dropped.
#[derive(Debug)]
pub struct PortLease {
    range: Arc<PortRange>,
    port: u16,
}

impl PortLease {
    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        self.range.leases().leased.remove(&self.port);
    }
}

impl PortRange {
    /// Ports `first..=last` (`first` at least 1, not above `last`).
    pub fn new(first: u16, last: u16) -> Result<Self, String> {
        if first == 0 || first > last {
            return Err(format!(
                "media ports {first}-{last}: need 1 <= first <= last"
            ));
        }
        Ok(Self {
            first,
            last,
            state: Mutex::new(Leases {
                leased: BTreeSet::new(),
                next: first,
            }),
        })
    }

    /// How many ports the range has.
    pub fn len(&self) -> usize {
        usize::from(self.last - self.first) + 1
    }

    /// Always false: a range has at least one port.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// How many are leased now.
    pub fn leased(&self) -> usize {
        self.leases().leased.len()
    }

    /// The next free port, round robin; `None` when every port is leased.
    pub fn lease(self: &Arc<Self>) -> Option<PortLease> {
        let mut state = self.leases();
        let mut port = state.next;
        for _ in 0..self.len() {
            let after = if port == self.last {
                self.first
            } else {
                port + 1
            };
            if state.leased.insert(port) {
                state.next = after;
                return Some(PortLease {
                    range: Arc::clone(self),
                    port,
                });
            }
            port = after;
        }
        None
    }

    fn leases(&self) -> std::sync::MutexGuard<'_, Leases> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl FromStr for PortRange {
    type Err = String;

    /// `"50000-50999"`, or one port.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let port = |p: &str| {
            p.trim()
                .parse::<u16>()
                .map_err(|_| format!("media ports {s:?}: not a port number"))
        };
        match s.split_once('-') {
            Some((first, last)) => Self::new(port(first)?, port(last)?),
            None => {
                let p = port(s)?;
                Self::new(p, p)
            }
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_distinct_given_back_on_drop_and_round_robin() {
        let range = Arc::new("40000-40002".parse::<PortRange>().unwrap());
        let a = range.lease().unwrap();
        let b = range.lease().unwrap();
        let c = range.lease().unwrap();
        assert_eq!([a.port(), b.port(), c.port()], [40000, 40001, 40002]);
        assert!(range.lease().is_none(), "all three leased");
        drop(b);
        assert_eq!(range.leased(), 2);
        let again = range.lease().unwrap();
        assert_eq!(again.port(), 40001);
        drop(a);
        drop(c);
        // Round robin: the search goes on after the last lease, not back to the lowest port.
        let next = range.lease().unwrap();
        assert_eq!(next.port(), 40002);
    }

    #[test]
    fn bad_ranges_are_refused_with_their_text() {
        for bad in ["", "0-10", "10-5", "a-b", "70000", "1-2-3"] {
            let err = bad.parse::<PortRange>().unwrap_err();
            assert!(err.contains("media ports"), "{bad}: {err}");
        }
        assert_eq!("5000".parse::<PortRange>().unwrap().len(), 1);
        assert_eq!(" 1 - 65535 ".parse::<PortRange>().unwrap().len(), 65535);
    }
}
