//! Behind a reverse proxy: which address a request comes from. The TCP peer is the proxy; the
//! client is in `Forwarded` (RFC 7239) or `X-Forwarded-For`, which anyone can write. So those
//! headers are read only when the peer is a configured trusted proxy ([`TrustedProxies`]), and
//! then from the right (the hop nearest this relay) leftwards, skipping trusted proxies: the
//! first address that is not one is the client, and what lies further left (written by the
//! client itself) is never believed. Per-IP limits and the authentication backoff then count
//! real clients, not the proxy.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;

/// The most hops read from the headers (more are a sign of abuse; the reading stops there).
pub const MAX_HOPS: usize = 32;

/// The proxies whose forwarding headers are believed (CIDRs). Empty by default: the TCP peer
/// is the client.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses CIDRs (`10.0.0.0/8`, `2001:db8::/32`) or single addresses.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut nets = Vec::new();
        for e in entries {
            let e = e.trim();
            let net = IpNet::from_str(e)
                .or_else(|_| IpAddr::from_str(e).map(IpNet::from))
                .map_err(|_| format!("not a CIDR or an IP address: {e:?}"))?;
            nets.push(net);
        }
        Ok(Self(nets))
    }

    /// Whether any proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client's address for a request from `peer` with these `Forwarded` and
    /// `X-Forwarded-For` header values (each header line one item, in order). `Forwarded` wins
    /// when both are present.
    pub fn client_ip<'a>(
        &self,
        peer: IpAddr,
        forwarded: impl IntoIterator<Item = &'a str>,
        x_forwarded_for: impl IntoIterator<Item = &'a str>,
    ) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut hops: Vec<Option<IpAddr>> = forwarded
            .into_iter()
            .flat_map(|line| line.split(','))
            .filter_map(forwarded_for)
            .take(MAX_HOPS + 1)
            .collect();
        if hops.is_empty() {
            hops = x_forwarded_for
                .into_iter()
                .flat_map(|line| line.split(','))
                .map(|e| parse_node(e.trim()))
                .take(MAX_HOPS + 1)
                .collect();
        }
        if hops.len() > MAX_HOPS {
            // A chain this long is not a proxy chain: trust nothing in it.
            return peer;
        }
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop {
                Some(ip) if self.trusts(*ip) => client = *ip,
                Some(ip) => return canonical(*ip),
                // Unreadable (obfuscated, "unknown", garbage): nothing left of it is believed.
                None => return client,
            }
        }
        client
    }
}

/// The `for=` node of one `Forwarded` element (`None` inside when it is not an address);
/// elements without `for=` are skipped.
fn forwarded_for(element: &str) -> Option<Option<IpAddr>> {
    element.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("for")
            .then(|| parse_node(v.trim().trim_matches('"')))
    })
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]`, `[2001:db8::1]:4711`.
fn parse_node(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = IpAddr::from_str(s) {
        return Some(ip);
    }
    if let Ok(sa) = SocketAddr::from_str(s) {
        return Some(sa.ip());
    }
    let inner = s.strip_prefix('[')?.strip_suffix(']')?;
    IpAddr::from_str(inner).ok()
}

/// IPv4-mapped IPv6 addresses as IPv4, so one client is one address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies() -> TrustedProxies {
        TrustedProxies::parse(["10.0.0.0/8", "::1", "2001:db8:ffff::/48"]).unwrap()
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let p = proxies();
        let spoof = ["198.51.100.9"];
        assert_eq!(p.client_ip(ip("203.0.113.5"), [], spoof), ip("203.0.113.5"));
        let spoof = ["for=198.51.100.9"];
        assert_eq!(p.client_ip(ip("203.0.113.5"), spoof, []), ip("203.0.113.5"));
        // Nothing trusted: the peer, always.
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_ip(ip("10.1.2.3"), [], ["198.51.100.9"]),
            ip("10.1.2.3")
        );
    }

    #[test]
    fn the_first_untrusted_hop_from_the_right_is_the_client() {
        let p = proxies();
        // The client wrote a fake first entry; the proxies appended the real one.
        let xff = ["6.6.6.6, 198.51.100.9", "10.0.0.2"];
        assert_eq!(p.client_ip(ip("10.0.0.1"), [], xff), ip("198.51.100.9"));
        let fwd = [
            r#"for=6.6.6.6, for="[2001:db8::7]:4711";proto=https"#,
            "for=10.0.0.2",
        ];
        assert_eq!(p.client_ip(ip("::1"), fwd, xff), ip("2001:db8::7"));
        // Every hop a trusted proxy: the leftmost.
        assert_eq!(
            p.client_ip(ip("10.0.0.1"), [], ["10.9.9.9, 10.0.0.2"]),
            ip("10.9.9.9")
        );
        // No header at all: the peer.
        assert_eq!(p.client_ip(ip("10.0.0.1"), [], []), ip("10.0.0.1"));
        // Ports and brackets.
        assert_eq!(
            p.client_ip(ip("10.0.0.1"), [], ["198.51.100.9:5555"]),
            ip("198.51.100.9")
        );
        assert_eq!(
            p.client_ip(ip("10.0.0.1"), [], ["[2001:db8::5]"]),
            ip("2001:db8::5")
        );
        // IPv4-mapped addresses are one client with their IPv4 form.
        assert_eq!(
            p.client_ip(ip("10.0.0.1"), [], ["::ffff:198.51.100.9"]),
            ip("198.51.100.9")
        );
    }

    #[test]
    fn an_unreadable_hop_stops_the_reading() {
        let p = proxies();
        let xff = ["198.51.100.9, garbage, 10.0.0.2"];
        assert_eq!(p.client_ip(ip("10.0.0.1"), [], xff), ip("10.0.0.2"));
        let fwd = ["for=198.51.100.9, for=_hidden, for=10.0.0.2"];
        assert_eq!(p.client_ip(ip("10.0.0.1"), fwd, []), ip("10.0.0.2"));
        let unknown = ["for=unknown"];
        assert_eq!(p.client_ip(ip("10.0.0.1"), unknown, []), ip("10.0.0.1"));
    }

    #[test]
    fn a_chain_longer_than_any_proxy_chain_is_not_believed() {
        let p = proxies();
        let long = vec!["10.0.0.3"; MAX_HOPS + 1].join(", ");
        let xff = [long.as_str()];
        assert_eq!(p.client_ip(ip("10.0.0.1"), [], xff), ip("10.0.0.1"));
    }

    #[test]
    fn bad_entries_are_refused_with_the_entry() {
        let e = TrustedProxies::parse(["10.0.0.0/8", "10.0.0.0/33"]).unwrap_err();
        assert!(e.contains("10.0.0.0/33"), "{e}");
        assert!(TrustedProxies::parse(["proxy.example"]).is_err());
        assert!(
            TrustedProxies::parse(["192.0.2.1"])
                .unwrap()
                .trusts(ip("192.0.2.1"))
        );
    }
}
