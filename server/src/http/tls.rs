//! HTTPS and WSS: an axum [`Listener`] that completes TLS handshakes (configured by
//! [`crate::ops::tls::server_config`]) before handing connections to the router.
//!
//! Handshakes run in their own tasks, each bounded by [`HANDSHAKE_TIMEOUT`], so a slow or
//! silent client never holds up the others; at most [`MAX_PENDING_HANDSHAKES`] run at once, at
//! most [`super::accept::MAX_HANDSHAKES_PER_IP`] per client address, and every connection
//! counts against its address's [`super::accept::MAX_TCP_PER_IP`] for as long as it is open:
//! one address cannot take the handshake slots from the others.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::Listener;
use tokio::net::TcpListener;

use super::accept::{Gate, Gated, MAX_HANDSHAKES_PER_IP, accept_gated};
use crate::ops::metrics::Metrics;
use crate::ops::proxy::TrustedProxies;
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;

/// How long a client has to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Handshakes in progress at once; further connections wait in the kernel's accept queue.
pub const MAX_PENDING_HANDSHAKES: usize = 256;

/// A TCP listener that yields only connections whose TLS handshake completed.
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<Gated>, SocketAddr)>,
}

impl TlsListener {
    /// Accepts on `listener` with `config` (starts the accept task on the current runtime),
    /// at most `tcp_cap` connections per address ([`super::accept::tcp_cap`]).
    pub fn new(
        listener: TcpListener,
        config: Arc<ServerConfig>,
        metrics: Arc<Metrics>,
        tcp_cap: u32,
        proxies: TrustedProxies,
    ) -> io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
        let permits = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
        let connections = Gate::new(tcp_cap, proxies.clone());
        let handshakes = Gate::new(MAX_HANDSHAKES_PER_IP, proxies);
        tokio::spawn(async move {
            loop {
                let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                    return;
                };
                let (tcp, peer) = accept_gated(&listener, &connections, &metrics).await;
                if tx.is_closed() {
                    return;
                }
                let Some(handshaking) = handshakes.enter(peer.ip()) else {
                    metrics.connection_refused("handshakes_per_ip");
                    continue;
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _handshaking = handshaking;
                    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
                    match handshake.await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(err)) => tracing::debug!(%err, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                    drop(permit);
                });
            }
        });
        Ok(Self { local, ready })
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<Gated>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            if let Some(accepted) = self.ready.recv().await {
                return accepted;
            }
            // The accept task ended (it never does while the runtime runs): wait, don't spin.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
