//! `GET /v1/rtc`: one WebSocket per participant, JSON text frames both ways.
//!
//! The reader hands each text frame to the driver as is: the core decodes it and answers with
//! precise error codes (too large, not JSON, unknown version, ...). Frames over
//! [`MAX_FRAME_BYTES`] are refused by the WebSocket layer itself (close code 1009); binary frames
//! are answered with `malformed_message` here, and a client that keeps sending them is closed.
//!
//! Before the upgrade the client's address must pass the per-IP limiter (see [`super`]); the
//! admitted connection holds a [`Slot`] that gives its place back when it ends, however it ends.
//! A connection silent for the idle timeout is closed (after a ping at half of it).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::{SinkExt, StreamExt};
use hush_proto::{ErrorCode, MAX_MESSAGE_BYTES, ServerMessage};
use tokio::sync::{Notify, mpsc};

use super::{AppState, PeerAddr};
use crate::bus::{OUTGOING_QUEUE, Outgoing};
use crate::ops::limits::{IpLimiter, LimitRefusal};
use crate::ops::metrics::Metrics;

/// The largest frame the WebSocket layer accepts. Between [`MAX_MESSAGE_BYTES`] and this, the
/// core answers `message_too_large`; above it the socket is closed with 1009.
pub(crate) const MAX_FRAME_BYTES: usize = 4 * MAX_MESSAGE_BYTES;

/// The WebSocket read buffer. tungstenite's default is 128 KiB, and it zero-fills the whole
/// buffer before each read, so every participant held 128 KiB of resident memory for a channel
/// whose messages are mostly under a kilobyte (measured with heaptrack and `hush-load`). A
/// larger frame, up to [`MAX_FRAME_BYTES`], grows the buffer as it arrives.
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// Binary frames tolerated (each answered with an error) before the connection is closed.
const MAX_BINARY_FRAMES: u32 = 16;

/// The close code of a connection closed for silence ("going away").
pub(crate) const IDLE_CLOSE_CODE: u16 = 1001;

/// A connection's place in the per-IP limiter and the connection gauge, given back on drop.
pub(crate) struct Slot {
    ip: IpAddr,
    limiter: Arc<Mutex<IpLimiter>>,
    metrics: Arc<Metrics>,
}

impl Slot {
    fn take(state: &AppState, ip: IpAddr) -> Result<Self, LimitRefusal> {
        let now = Instant::now();
        let admitted = state
            .limiter
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .try_connect(now, ip);
        if let Err(refusal) = admitted {
            state.metrics.connection_refused(refusal.as_str());
            return Err(refusal);
        }
        state.metrics.connection_opened();
        Ok(Self {
            ip,
            limiter: Arc::clone(&state.limiter),
            metrics: Arc::clone(&state.metrics),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.limiter
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .disconnected(self.ip);
        self.metrics.connection_closed();
    }
}

/// The HTTP answer to a connection the per-IP limiter refused.
fn refused(refusal: LimitRefusal) -> Response {
    let (status, retry_after) = match refusal {
        LimitRefusal::AuthBackoff { retry_after } => (
            StatusCode::TOO_MANY_REQUESTS,
            // Rounded up: a client that waits this long is let in.
            retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0),
        ),
        LimitRefusal::TableFull => (StatusCode::SERVICE_UNAVAILABLE, 1),
        _ => (StatusCode::TOO_MANY_REQUESTS, 1),
    };
    tracing::debug!(
        reason = refusal.as_str(),
        "connection refused by the per-IP limits"
    );
    let mut response = (
        status,
        Json(serde_json::json!({ "error": refusal.as_str() })),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

pub(crate) async fn upgrade(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<PeerAddr>>>,
    headers: axum::http::HeaderMap,
) -> Response {
    // Without connect info (a router served without it) everyone shares one address: the
    // limits still hold, only more tightly. Behind a trusted proxy: the client it names.
    let peer_ip = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.0.0.0.ip());
    let ip = state.client_ip(peer_ip, &headers);
    if state.draining.load(std::sync::atomic::Ordering::Relaxed) {
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "the relay is shutting down\n",
        )
            .into_response();
    }
    let slot = match Slot::take(&state, ip) {
        Ok(slot) => slot,
        Err(refusal) => return refused(refusal),
    };
    // If the upgrade never completes, the closure (and the slot) is dropped.
    ws.max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .read_buffer_size(READ_BUFFER_BYTES)
        .on_upgrade(move |socket| connection(socket, state, slot))
}

async fn connection(socket: WebSocket, state: AppState, slot: Slot) {
    let _slot = slot;
    let (outgoing_tx, mut outgoing) = mpsc::channel(OUTGOING_QUEUE);
    let kill = Arc::new(Notify::new());
    let Some(conn) = state
        .driver
        .open(outgoing_tx.clone(), Arc::clone(&kill), _slot.ip)
        .await
    else {
        return;
    };
    let (mut sink, mut stream) = socket.split();

    // The writer: everything the driver and the media actor queue for this client.
    let writer = tokio::spawn(async move {
        let mut close = CloseFrame {
            code: 1000,
            reason: "".into(),
        };
        while let Some(item) = outgoing.recv().await {
            let message = match item {
                Outgoing::Text(text) => Message::Text(text.into()),
                Outgoing::Ping => Message::Ping(Default::default()),
                Outgoing::Close => break,
                Outgoing::CloseWith(code, reason) => {
                    close = CloseFrame {
                        code,
                        reason: reason.into(),
                    };
                    break;
                }
            };
            if sink.send(message).await.is_err() {
                return;
            }
        }
        let _ = sink.send(Message::Close(Some(close))).await;
        let _ = sink.close().await;
    });

    let mut writer = writer;
    let mut writer_done = false;
    let mut binary_frames = 0u32;
    let idle = state.idle_timeout;
    let mut last_heard = tokio::time::Instant::now();
    let mut pinged = false;
    loop {
        // Half the timeout of silence brings a ping; the whole of it closes the connection.
        let deadline = if pinged {
            last_heard + idle
        } else {
            last_heard + idle / 2
        };
        let frame = tokio::select! {
            frame = stream.next() => frame,
            _ = &mut writer => {
                writer_done = true; // the driver closed this connection
                break;
            }
            () = kill.notified() => {
                tracing::debug!(conn = conn.get(), "dropped by the driver: closing");
                break; // the driver gave up on it (a full queue): close, even unheard
            }
            () = tokio::time::sleep_until(deadline) => {
                if pinged {
                    tracing::debug!(conn = conn.get(), "idle timeout: closing");
                    let _ = outgoing_tx.try_send(Outgoing::CloseWith(IDLE_CLOSE_CODE, "idle timeout"));
                    break;
                }
                pinged = outgoing_tx.try_send(Outgoing::Ping).is_ok();
                if !pinged {
                    last_heard = tokio::time::Instant::now(); // queue full: try again later
                }
                continue;
            }
        };
        let Some(Ok(frame)) = frame else {
            break; // closed, protocol error, frame too large, or reset
        };
        last_heard = tokio::time::Instant::now();
        pinged = false;
        match frame {
            Message::Text(text) => {
                if !state.driver.text(conn, text.as_str().to_owned()).await {
                    break;
                }
            }
            Message::Binary(_) => {
                binary_frames += 1;
                let fatal = binary_frames > MAX_BINARY_FRAMES;
                let error = ServerMessage::error(
                    ErrorCode::MalformedMessage,
                    "binary frames are not accepted: send JSON text frames",
                    fatal,
                );
                let _ = outgoing_tx.try_send(Outgoing::Text(error.encode()));
                if fatal {
                    let _ = outgoing_tx.try_send(Outgoing::Close);
                    break;
                }
            }
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => {}
        }
    }
    state.driver.closed(conn).await;
    drop(outgoing_tx);
    if !writer_done {
        // Let the writer flush a final error and the close frame, but not forever.
        if tokio::time::timeout(std::time::Duration::from_secs(2), &mut writer)
            .await
            .is_err()
        {
            writer.abort();
        }
    }
}
