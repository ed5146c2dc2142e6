//! Serving HTTP/1 connections with a deadline for each request's head.
//!
//! `axum::serve` runs hyper without a timer, and hyper's header-read timeout (30 s by default)
//! needs one: a connection that never sends a request, or sends one a byte at a time, was held
//! for ever, its descriptor with it. Here each connection is served by hyper with tokio's
//! timer and [`RelayOptions::header_timeout`](super::RelayOptions::header_timeout): a request's
//! head must arrive within it, and a keep-alive connection idle between requests is closed
//! after it. A WebSocket is past its head once upgraded; its own idle timeout then applies
//! (`ws`). Each request carries the client's address as axum's connect info ([`PeerAddr`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tower::ServiceExt;

use super::PeerAddr;

/// The default [`RelayOptions::header_timeout`](super::RelayOptions::header_timeout): hyper's
/// own default for the head of a request.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Accepts connections from `listener` for ever and serves `router` on each, in a task of its
/// own, with `header_timeout` for each request's head. When this future is dropped (the relay
/// stops serving), every connection it started finishes the request in progress and closes,
/// as `axum::serve` did; a WebSocket already upgraded is the relay's to close.
pub(crate) async fn serve<L>(
    mut listener: L,
    router: Router,
    header_timeout: Duration,
) -> Infallible
where
    L: Listener<Addr = SocketAddr>,
{
    // Dropped with this future: each connection's `changed()` then returns.
    let (_serving, stopped) = tokio::sync::watch::channel(());
    loop {
        let (io, peer) = listener.accept().await;
        let router = router.clone();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(PeerAddr(peer)));
                    router.clone().oneshot(request.map(Body::new))
                });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades();
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = stopped.changed() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(err) = result {
                tracing::trace!(%err, "connection ended with an error");
            }
        });
    }
}
