//! `GET /v1/rtc`: one WebSocket per participant, JSON text frames both ways.
//!
//! The reader hands each text frame to the driver as is: the core decodes it and answers with
//! precise error codes (too large, not JSON, unknown version, ...). Frames over
//! [`MAX_FRAME_BYTES`] are refused by the WebSocket layer itself (close code 1009); binary frames
//! are answered with `malformed_message` here, and a client that keeps sending them is closed.

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use hush_proto::{ErrorCode, MAX_MESSAGE_BYTES, ServerMessage};
use tokio::sync::{mpsc, oneshot};

use super::AppState;
use crate::driver::{Input, OUTGOING_QUEUE, Outgoing};

/// The largest frame the WebSocket layer accepts. Between [`MAX_MESSAGE_BYTES`] and this, the
/// core answers `message_too_large`; above it the socket is closed with 1009.
pub(crate) const MAX_FRAME_BYTES: usize = 4 * MAX_MESSAGE_BYTES;

/// Binary frames tolerated (each answered with an error) before the connection is closed.
const MAX_BINARY_FRAMES: u32 = 16;

pub(crate) async fn upgrade(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    ws.max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| connection(socket, state))
}

async fn connection(socket: WebSocket, state: AppState) {
    let (outgoing_tx, mut outgoing) = mpsc::channel(OUTGOING_QUEUE);
    let (reply_tx, reply_rx) = oneshot::channel();
    let open = Input::Open {
        outgoing: outgoing_tx.clone(),
        reply: reply_tx,
    };
    if state.driver.tx.send(open).await.is_err() {
        return;
    }
    let Ok(conn) = reply_rx.await else {
        return;
    };
    let (mut sink, mut stream) = socket.split();

    // The writer: everything the driver and the media actor queue for this client.
    let writer = tokio::spawn(async move {
        while let Some(item) = outgoing.recv().await {
            match item {
                Outgoing::Text(text) => {
                    if sink.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
                Outgoing::Close => break,
            }
        }
        let close = CloseFrame {
            code: 1000,
            reason: "".into(),
        };
        let _ = sink.send(Message::Close(Some(close))).await;
        let _ = sink.close().await;
    });

    let mut writer = writer;
    let mut writer_done = false;
    let mut binary_frames = 0u32;
    loop {
        let frame = tokio::select! {
            frame = stream.next() => frame,
            _ = &mut writer => {
                writer_done = true; // the driver closed this connection
                break;
            }
        };
        let Some(Ok(frame)) = frame else {
            break; // closed, protocol error, frame too large, or reset
        };
        match frame {
            Message::Text(text) => {
                let input = Input::Text {
                    conn,
                    text: text.as_str().to_owned(),
                };
                if state.driver.tx.send(input).await.is_err() {
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
    let _ = state.driver.tx.send(Input::Closed { conn }).await;
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
