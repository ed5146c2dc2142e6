//! The messages between the driver and its adapters: what signaling connections, media actors
//! and the HTTP handlers send the driver ([`Input`]), and what the driver sends a signaling
//! connection's writer ([`Outgoing`]).
//!
//! They live apart from `driver` so that the media adapter can talk to the driver
//! without importing it (the driver starts media actors, so `media` sits below `driver`).

use std::net::IpAddr;
use std::sync::Arc;

use hush_proto::TrackId;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::routing::{AdminCommand, AdminResult, ConnId};

/// Inputs queued for the driver before senders wait.
pub(crate) const INPUT_QUEUE: usize = 4096;
/// Messages queued per signaling connection; a client that does not read them is closed.
pub(crate) const OUTGOING_QUEUE: usize = 256;

/// Something for the driver.
#[derive(Debug)]
pub(crate) enum Input {
    /// A signaling connection opened; the driver answers with its id.
    Open {
        outgoing: mpsc::Sender<Outgoing>,
        /// Notified when the driver drops the connection on its own (a full queue): the socket
        /// task must then close, even if `outgoing` has no room for a close.
        kill: Arc<Notify>,
        reply: oneshot::Sender<ConnId>,
        /// The client's address, for the per-IP authentication-failure backoff.
        ip: IpAddr,
    },
    /// A text message from a connection.
    Text { conn: ConnId, text: String },
    /// The connection closed (socket gone).
    Closed { conn: ConnId },
    /// A subscriber's media asked for a keyframe (RTCP PLI or FIR).
    Keyframe { subscriber: ConnId, track: TrackId },
    /// The token store's answer for a join ([`crate::routing::Output::ClaimToken`]).
    TokenClaimed {
        conn: ConnId,
        claim: crate::routing::TokenClaim,
    },
    /// The connection's media session failed; close the connection.
    MediaFailed { conn: ConnId },
    /// `/metrics` is about to render: bring the gauges and fan-out counters up to date.
    RefreshMetrics { done: oneshot::Sender<()> },
    /// An admin API command: run it in the core, answer through `reply`.
    Admin {
        command: AdminCommand,
        reply: oneshot::Sender<AdminResult>,
    },
    /// The relay is draining (SIGTERM): tell every connection, which closes in `drain`.
    Draining { drain: std::time::Duration },
    /// The drain time is over: close every connection (1001, going away).
    CloseAll { done: oneshot::Sender<()> },
}

/// Something for a signaling connection's writer.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A JSON text message.
    Text(String),
    /// A WebSocket ping (the reader saw nothing for half the idle timeout).
    Ping,
    /// Close the socket (after what was queued before).
    Close,
    /// Close the socket with this close code and reason.
    CloseWith(u16, &'static str),
}
