//! Accepting TCP connections with per-address caps, before any byte is read: at most
//! [`MAX_TCP_PER_IP`] connections open per client address, and (over TLS) at most
//! [`MAX_HANDSHAKES_PER_IP`] handshakes in progress per address, each cut after
//! [`super::tls::HANDSHAKE_TIMEOUT`]. A connection over a cap is closed at once and counted
//! (`hush_connections_refused_total{reason}`), so one address opening a thousand connections
//! that never speak holds a bounded share of the relay, and everyone else still gets in.
//! Addresses are counted as the per-IP limits count them (IPv6 per /64,
//! [`crate::ops::limits::limit_key`]), and trusted reverse proxies not at all: every client
//! behind one shares its address, and is counted by the address the proxy names, once the
//! request is read ([`crate::ops::proxy`]).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::ops::limits::limit_key;
use crate::ops::metrics::Metrics;
use crate::ops::proxy::TrustedProxies;

/// TCP connections one address may hold open at once (WebSockets, HTTP keep-alive, and
/// connections that never send anything), at the default limits: see [`tcp_cap`].
pub const MAX_TCP_PER_IP: u32 = 64;

/// The TCP cap per address for a WebSocket limit of `max_websockets` per address
/// ([`crate::ops::limits::IpLimits::max_concurrent`]): twice that (room for page loads and
/// connections being set up beside the WebSockets), never below [`MAX_TCP_PER_IP`]. An operator
/// who raises `ip_max_connections` (a load test from one host, a NAT) raises both.
pub fn tcp_cap(max_websockets: u32) -> u32 {
    MAX_TCP_PER_IP.max(max_websockets.saturating_mul(2))
}

/// TLS handshakes one address may have in progress at once.
pub const MAX_HANDSHAKES_PER_IP: u32 = 8;

/// Addresses tracked at once; past it new addresses are refused until some close.
const MAX_ADDRESSES: usize = 65_536;

/// Counts something per address, up to a cap ([`Gate::enter`]).
#[derive(Debug)]
pub(crate) struct Gate {
    cap: u32,
    open: Mutex<HashMap<IpAddr, u32>>,
    /// Not counted: every client behind them shares their address.
    proxies: TrustedProxies,
}

/// One place taken in a [`Gate`], given back on drop (none for a trusted proxy).
#[derive(Debug)]
pub(crate) struct Pass {
    gate: Arc<Gate>,
    ip: Option<IpAddr>,
}

impl Gate {
    pub(crate) fn new(cap: u32, proxies: TrustedProxies) -> Arc<Self> {
        Arc::new(Self {
            cap,
            open: Mutex::new(HashMap::new()),
            proxies,
        })
    }

    /// A place for `ip` (its /64 for IPv6), or `None` when it holds `cap` already (or the table
    /// is full). A trusted proxy always gets one, uncounted.
    pub(crate) fn enter(self: &Arc<Self>, ip: IpAddr) -> Option<Pass> {
        if self.proxies.trusts(ip) {
            return Some(Pass {
                gate: Arc::clone(self),
                ip: None,
            });
        }
        let ip = limit_key(ip);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if !open.contains_key(&ip) && open.len() >= MAX_ADDRESSES {
            return None;
        }
        let n = open.entry(ip).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(Pass {
            gate: Arc::clone(self),
            ip: Some(ip),
        })
    }

    #[cfg(test)]
    fn held(&self, ip: IpAddr) -> u32 {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(&limit_key(ip)).copied().unwrap_or(0)
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        let Some(ip) = self.ip else { return };
        let mut open = self
            .gate
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&ip);
            }
        }
    }
}

/// A TCP stream that holds its address's place until it is dropped.
#[derive(Debug)]
pub struct Gated {
    stream: TcpStream,
    _pass: Pass,
}

impl AsyncRead for Gated {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Gated {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Accepts the next connection its address may open: those over [`MAX_TCP_PER_IP`] are closed
/// at once and counted.
pub(crate) async fn accept_gated(
    listener: &TcpListener,
    gate: &Arc<Gate>,
    metrics: &Metrics,
) -> (Gated, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => match gate.enter(peer.ip()) {
                Some(pass) => {
                    let _ = stream.set_nodelay(true);
                    return (
                        Gated {
                            stream,
                            _pass: pass,
                        },
                        peer,
                    );
                }
                None => {
                    metrics.connection_refused("tcp_per_ip");
                    drop(stream);
                }
            },
            Err(err) => {
                // Out of file descriptors, say: wait instead of spinning.
                tracing::debug!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The plain-HTTP listener with the per-address cap.
pub struct GatedListener {
    listener: TcpListener,
    gate: Arc<Gate>,
    metrics: Arc<Metrics>,
}

impl GatedListener {
    /// Caps `listener` at `cap` connections per address ([`tcp_cap`]), trusted `proxies`
    /// aside.
    pub fn new(
        listener: TcpListener,
        metrics: Arc<Metrics>,
        cap: u32,
        proxies: TrustedProxies,
    ) -> Self {
        Self {
            listener,
            gate: Gate::new(cap, proxies),
            metrics,
        }
    }
}

impl Listener for GatedListener {
    type Io = Gated;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        accept_gated(&self.listener, &self.gate, &self.metrics).await
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_has_its_own_cap_and_places_come_back() {
        let gate = Gate::new(2, TrustedProxies::default());
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let first = gate.enter(a).unwrap();
        let _second = gate.enter(a).unwrap();
        assert!(gate.enter(a).is_none(), "a third place for one address");
        let _other = gate.enter(b).unwrap();
        drop(first);
        assert_eq!(gate.held(a), 1);
        assert!(gate.enter(a).is_some());
    }

    #[test]
    fn ipv6_counts_per_64_and_trusted_proxies_are_not_counted() {
        let proxies = TrustedProxies::parse(["10.0.0.0/8"]).unwrap();
        let gate = Gate::new(2, proxies);
        // One host rotating addresses in its /64 is one address.
        let (a, b, c): (IpAddr, IpAddr, IpAddr) = (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
            "2001:db8::3".parse().unwrap(),
        );
        let _a = gate.enter(a).unwrap();
        let _b = gate.enter(b).unwrap();
        assert!(gate.enter(c).is_none(), "a third from one /64");
        assert!(gate.enter("2001:db8:0:1::1".parse().unwrap()).is_some());
        // Behind a proxy, every client comes from its address: seventy connections pass.
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let held: Vec<Pass> = (0..70).filter_map(|_| gate.enter(proxy)).collect();
        assert_eq!(held.len(), 70);
        assert_eq!(gate.held(proxy), 0, "not counted");
    }
}
