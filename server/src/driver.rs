//! The driver: one tokio task owns the routing core ([`Relay`]), reads the clock, and carries
//! out the core's outputs.
//!
//! Signaling connections and media sessions talk to it through one bounded channel
//! ([`Input`]); it answers through each connection's bounded outgoing queue ([`Outgoing`]) and
//! each participant's media actor ([`crate::media::peer`]). It sleeps until the next input or
//! the core's next timer, whichever comes first.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hush_proto::{SenderIndex, ServerMessage, TrackId, TrackRef};
use tokio::sync::{mpsc, oneshot};

use crate::media::MediaOptions;
use crate::media::fanout::Fanout;
use crate::media::peer::{self, PeerCommand, PeerHandle};
use crate::routing::{Audit, ConnId, Output, Relay};
use crate::time::Now;

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
        reply: oneshot::Sender<ConnId>,
    },
    /// A text message from a connection.
    Text { conn: ConnId, text: String },
    /// The connection closed (socket gone).
    Closed { conn: ConnId },
    /// A subscriber's media asked for a keyframe (RTCP PLI or FIR).
    Keyframe { subscriber: ConnId, track: TrackId },
    /// The connection's media session failed; close the connection.
    MediaFailed { conn: ConnId },
}

/// Something for a signaling connection's writer.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A JSON text message.
    Text(String),
    /// Close the socket (after what was queued before).
    Close,
}

/// A handle to the driver task; cloned into every connection.
#[derive(Clone, Debug)]
pub struct DriverHandle {
    pub(crate) tx: mpsc::Sender<Input>,
}

/// The current time from the real clocks, as the core takes it.
pub fn now() -> Now {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Now::new(Instant::now(), unix)
}

/// Starts the driver on the current tokio runtime.
pub fn spawn(relay: Relay, media: MediaOptions) -> DriverHandle {
    let (tx, rx) = mpsc::channel(INPUT_QUEUE);
    let driver = Driver {
        relay,
        media,
        rx,
        tx: tx.downgrade(),
        conns: HashMap::new(),
        fanouts: HashMap::new(),
    };
    tokio::spawn(driver.run());
    DriverHandle { tx }
}

struct ConnState {
    outgoing: mpsc::Sender<Outgoing>,
    peer: Option<PeerHandle>,
    sender_index: Option<SenderIndex>,
}

struct Driver {
    relay: Relay,
    media: MediaOptions,
    rx: mpsc::Receiver<Input>,
    /// For media actors; weak so that the driver ends when every handle is gone.
    tx: mpsc::WeakSender<Input>,
    conns: HashMap<ConnId, ConnState>,
    /// Published tracks by (publisher, track): track ids are only unique within a room.
    fanouts: HashMap<(ConnId, TrackId), Arc<Fanout>>,
}

impl Driver {
    async fn run(mut self) {
        loop {
            let deadline = self.relay.poll_timeout();
            let input = match deadline {
                Some(at) => {
                    tokio::select! {
                        input = self.rx.recv() => input,
                        () = tokio::time::sleep_until(at.into()) => {
                            self.relay.handle_timeout(now());
                            self.drain();
                            continue;
                        }
                    }
                }
                None => self.rx.recv().await,
            };
            let Some(input) = input else {
                break; // every handle dropped: the server is gone
            };
            self.input(input);
            self.drain();
        }
        for (_, conn) in self.conns.drain() {
            let _ = conn.outgoing.try_send(Outgoing::Close);
        }
    }

    fn input(&mut self, input: Input) {
        match input {
            Input::Open { outgoing, reply } => {
                let conn = self.relay.connect(now());
                self.conns.insert(
                    conn,
                    ConnState {
                        outgoing,
                        peer: None,
                        sender_index: None,
                    },
                );
                if reply.send(conn).is_err() {
                    // The socket went away while waiting.
                    self.conns.remove(&conn);
                    self.relay.disconnected(now(), conn);
                }
            }
            Input::Text { conn, text } => self.relay.handle_text(now(), conn, &text),
            Input::Closed { conn } => {
                if self.conns.remove(&conn).is_some() {
                    self.relay.disconnected(now(), conn);
                }
            }
            Input::Keyframe { subscriber, track } => {
                self.relay.request_keyframe(now(), subscriber, track)
            }
            Input::MediaFailed { conn } => {
                if let Some(state) = self.conns.remove(&conn) {
                    let _ = state.outgoing.try_send(Outgoing::Close);
                    self.relay.disconnected(now(), conn);
                }
            }
        }
    }

    /// Carries out every output of the core.
    fn drain(&mut self) {
        while let Some(output) = self.relay.poll_output() {
            self.output(output);
        }
    }

    fn output(&mut self, output: Output) {
        match output {
            Output::Send { conn, message } => self.send(conn, message),
            Output::Close { conn } => {
                if let Some(state) = self.conns.remove(&conn) {
                    let _ = state.outgoing.try_send(Outgoing::Close);
                    // Dropping the peer handle ends the media actor.
                }
            }
            Output::Media { conn, signal } => self.command_peer(conn, PeerCommand::Signal(signal)),
            Output::Published {
                publisher,
                track,
                source,
                mid,
            } => {
                let sender_index = self
                    .conns
                    .get(&publisher)
                    .and_then(|c| c.sender_index)
                    .unwrap_or(SenderIndex(0));
                let fanout = Arc::new(Fanout::new(track, sender_index));
                self.fanouts.insert((publisher, track), Arc::clone(&fanout));
                self.command_peer(
                    publisher,
                    PeerCommand::Published {
                        mid,
                        source,
                        fanout,
                    },
                );
            }
            Output::Unpublished { publisher, track } => {
                if let Some(fanout) = self.fanouts.remove(&(publisher, track)) {
                    fanout.close();
                }
                self.command_existing_peer(publisher, PeerCommand::Unpublished { track });
            }
            Output::StartForward {
                publisher,
                track,
                subscriber,
            } => {
                if let Some(fanout) = self.fanouts.get(&(publisher, track)) {
                    let fanout = Arc::clone(fanout);
                    self.command_peer(subscriber, PeerCommand::AddForward { publisher, fanout });
                }
            }
            Output::StopForward {
                publisher,
                track,
                subscriber,
            } => self
                .command_existing_peer(subscriber, PeerCommand::RemoveForward { publisher, track }),
            Output::RequestKeyframe { publisher, track } => {
                // A PLI for browsers; the message for clients that make keyframes on request.
                self.command_existing_peer(publisher, PeerCommand::Keyframe { track });
                self.send(
                    publisher,
                    ServerMessage::KeyframeRequest(TrackRef { track }),
                );
            }
            Output::Audit(audit) => audit_log(&audit),
        }
    }

    fn send(&mut self, conn: ConnId, message: ServerMessage) {
        let Some(state) = self.conns.get_mut(&conn) else {
            return;
        };
        if let ServerMessage::Joined(joined) = &message {
            state.sender_index = Some(joined.sender_index);
        }
        if state
            .outgoing
            .try_send(Outgoing::Text(message.encode()))
            .is_err()
        {
            // A client that does not read its messages would miss membership events: close it.
            tracing::info!(conn = conn.get(), "signaling queue full: closing");
            self.conns.remove(&conn);
            self.relay.disconnected(now(), conn);
        }
    }

    /// Hands a command to the connection's media actor, starting it if needed.
    fn command_peer(&mut self, conn: ConnId, command: PeerCommand) {
        let Some(state) = self.conns.get_mut(&conn) else {
            return;
        };
        if state.peer.is_none() {
            let Some(driver) = self.tx.upgrade() else {
                return;
            };
            let handle = peer::spawn(conn, self.media.clone(), state.outgoing.clone(), driver);
            state.peer = Some(handle);
        }
        self.deliver(conn, command);
    }

    /// Hands a command to the media actor only if the connection has one.
    fn command_existing_peer(&mut self, conn: ConnId, command: PeerCommand) {
        if self.conns.get(&conn).is_some_and(|c| c.peer.is_some()) {
            self.deliver(conn, command);
        }
    }

    fn deliver(&mut self, conn: ConnId, command: PeerCommand) {
        let Some(peer) = self.conns.get(&conn).and_then(|c| c.peer.as_ref()) else {
            return;
        };
        if peer.commands.try_send(command).is_err() {
            // A stuck media actor: this participant goes, nobody else notices.
            tracing::warn!(conn = conn.get(), "media queue full: closing");
            if let Some(state) = self.conns.remove(&conn) {
                let _ = state.outgoing.try_send(Outgoing::Close);
            }
            self.relay.disconnected(now(), conn);
        }
    }
}

/// Writes an audit record. Ids are redacted by their `Debug`; codes and reasons are kept.
fn audit_log(audit: &Audit) {
    tracing::info!(target: "hush_relay::audit", ?audit);
}
