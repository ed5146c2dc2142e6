//! The relay's reading of `Forwarded` / `X-Forwarded-For` (`hush_relay::ops::proxy`): the
//! header values come from clients through a trusted proxy. Never a panic; a request from an
//! untrusted peer is always that peer; the answer is the peer or an address the headers named.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use hush_relay::ops::proxy::{ProxyHeader, TrustedProxies};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (forwarded, xff) = text.split_once('\n').unwrap_or((text, ""));
    let proxies = TrustedProxies::parse(["10.0.0.0/8", "fd00::/8"]).expect("valid CIDRs");
    let proxy = IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3));
    let stranger = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let fwd: Vec<&str> = forwarded.split('\r').collect();
    let xff: Vec<&str> = xff.split('\r').collect();
    assert_eq!(
        proxies.client_ip(stranger, fwd.iter().copied(), xff.iter().copied()),
        stranger
    );
    for proxies in [proxies.clone().reading(ProxyHeader::Forwarded), proxies] {
        let client = proxies.client_ip(proxy, fwd.iter().copied(), xff.iter().copied());
        // A named address is printed in the headers (possibly in another spelling): only check
        // that an answer other than the peer came from somewhere in them when it is IPv4.
        if client != proxy
            && let IpAddr::V4(v4) = client
        {
            assert!(text.contains(&v4.to_string()) || text.contains("::"), "{client}");
        }
    }
    // Also a TrustedProxies list parsed from the input never panics.
    let _ = TrustedProxies::parse(text.split(','));
});
