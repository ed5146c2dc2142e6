//! Behind a reverse proxy: which address a request comes from. The TCP peer is the proxy; the
//! client is in `X-Forwarded-For` or `Forwarded` (RFC 7239), which anyone can write. So only
//! the one header the operator's proxy appends to is read ([`ProxyHeader`]; a proxy passes the
//! other through as the client wrote it), only when the peer is a configured trusted proxy
//! ([`TrustedProxies`]), and from the right (the hop nearest this relay) leftwards, skipping
//! trusted proxies: the first address that is not one is the client, and what lies further
//! left (written by the client itself) is never believed, however long. Per-IP limits and the
//! authentication backoff then count real clients, not the proxy.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;

/// The most hops read from the right of the header: past them (all trusted proxies), the last
/// one read is taken as the client.
pub const MAX_HOPS: usize = 32;

/// The header the trusted proxies append the client's address to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProxyHeader {
    /// `X-Forwarded-For` (nginx's `$proxy_add_x_forwarded_for`, HAProxy, Envoy, Caddy,
    /// Traefik, cloud load balancers): the default.
    #[default]
    XForwardedFor,
    /// `Forwarded` (RFC 7239), for proxies configured to append to it.
    Forwarded,
}

impl FromStr for ProxyHeader {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(Self::XForwardedFor),
            "forwarded" => Ok(Self::Forwarded),
            other => Err(format!(
                "proxy header {other:?}: expected \"x-forwarded-for\" or \"forwarded\""
            )),
        }
    }
}

/// The proxies whose forwarding header is believed (CIDRs), and which header that is. No
/// proxy by default: the TCP peer is the client.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
    header: ProxyHeader,
}

impl TrustedProxies {
    /// Parses CIDRs (`10.0.0.0/8`, `2001:db8::/32`) or single addresses; the header read is
    /// `X-Forwarded-For` unless [`TrustedProxies::reading`] says otherwise.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut nets = Vec::new();
        for e in entries {
            let e = e.trim();
            let net = IpNet::from_str(e)
                .or_else(|_| IpAddr::from_str(e).map(IpNet::from))
                .map_err(|_| format!("not a CIDR or an IP address: {e:?}"))?;
            nets.push(net);
        }
        Ok(Self {
            nets,
            header: ProxyHeader::default(),
        })
    }

    /// The same proxies, read from `header`.
    pub fn reading(mut self, header: ProxyHeader) -> Self {
        self.header = header;
        self
    }

    /// Whether any proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client's address for a request from `peer` with these `Forwarded` and
    /// `X-Forwarded-For` header values (each header line one item, in order); only the
    /// configured header is read.
    pub fn client_ip<'a>(
        &self,
        peer: IpAddr,
        forwarded: impl IntoIterator<Item = &'a str>,
        x_forwarded_for: impl IntoIterator<Item = &'a str>,
    ) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        // Every entry (the header's size is bounded by the HTTP server), read from the right.
        let hops: Vec<Option<IpAddr>> = match self.header {
            ProxyHeader::Forwarded => forwarded
                .into_iter()
                .flat_map(|line| line.split(','))
                .filter_map(forwarded_for)
                .collect(),
            ProxyHeader::XForwardedFor => x_forwarded_for
                .into_iter()
                .flat_map(|line| line.split(','))
                .map(|e| parse_node(e.trim()))
                .collect(),
        };
        let mut client = peer;
        for hop in hops.iter().rev().take(MAX_HOPS) {
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
        let by_forwarded = p.clone().reading(ProxyHeader::Forwarded);
        assert_eq!(
            by_forwarded.client_ip(ip("::1"), fwd, xff),
            ip("2001:db8::7")
        );
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
        let p = p.reading(ProxyHeader::Forwarded);
        let fwd = ["for=198.51.100.9, for=_hidden, for=10.0.0.2"];
        assert_eq!(p.client_ip(ip("10.0.0.1"), fwd, []), ip("10.0.0.2"));
        let unknown = ["for=unknown"];
        assert_eq!(p.client_ip(ip("10.0.0.1"), unknown, []), ip("10.0.0.1"));
    }

    #[test]
    fn however_long_the_chain_the_client_wrote_the_hop_the_proxy_appended_counts() {
        let p = proxies();
        // 33 made-up entries, then the real address the proxy appended: before, a chain past
        // 32 entries made every such client the proxy itself (and one client's bad tokens then
        // backed off everyone behind the proxy).
        let long = format!("{}, 198.51.100.9", vec!["6.6.6.6"; MAX_HOPS + 1].join(", "));
        assert_eq!(
            p.client_ip(ip("10.0.0.1"), [], [long.as_str()]),
            ip("198.51.100.9")
        );
        // A chain of trusted proxies longer than the reading: the last one read.
        let proxies_only = vec!["10.0.0.3"; MAX_HOPS + 5].join(", ");
        assert_eq!(
            p.client_ip(ip("10.0.0.1"), [], [proxies_only.as_str()]),
            ip("10.0.0.3")
        );
    }

    #[test]
    fn only_the_configured_header_is_read() {
        // nginx appends to X-Forwarded-For and passes a client's own `Forwarded` through: the
        // client must not pick its address (or a victim's) with it.
        let p = proxies();
        let spoofed = ["for=6.6.6.6"];
        let xff = ["198.51.100.9"];
        assert_eq!(
            p.client_ip(ip("10.0.0.1"), spoofed, xff),
            ip("198.51.100.9")
        );
        assert_eq!(p.client_ip(ip("10.0.0.1"), spoofed, []), ip("10.0.0.1"));
        // And the other way round when the proxy appends to `Forwarded`.
        let p = p.reading(ProxyHeader::Forwarded);
        let fwd = ["for=198.51.100.9"];
        assert_eq!(
            p.client_ip(ip("10.0.0.1"), fwd, ["6.6.6.6"]),
            ip("198.51.100.9")
        );
        assert_eq!(p.client_ip(ip("10.0.0.1"), [], ["6.6.6.6"]), ip("10.0.0.1"));
        assert_eq!("Forwarded".parse(), Ok(ProxyHeader::Forwarded));
        assert_eq!("x-forwarded-for".parse(), Ok(ProxyHeader::XForwardedFor));
        assert!("x-real-ip".parse::<ProxyHeader>().is_err());
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
