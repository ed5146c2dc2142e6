//! The driver: one tokio task owns the routing core ([`Relay`]), reads the clock, and carries
//! out the core's outputs.
//!
//! Signaling connections, the admin API and media sessions talk to it through one bounded
//! channel (`Input`, in `bus`; the HTTP layer through [`DriverHandle`]'s methods); it
//! answers through each connection's bounded outgoing queue (`Outgoing`) and each participant's
//! media actor (`media::peer`). It sleeps until the next input or the core's next timer,
//! whichever comes first.
//!
//! Around the core it keeps the operations in step ([`DriverOps`]): every output is counted by
//! [`Metrics::observe`] before it is carried out, audit events go to the [`AuditSink`], and a
//! join refused for a token reason counts as an authentication failure of the connection's IP
//! address in the [`IpLimiter`] (a successful join clears its count).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hush_proto::{ErrorCode, SenderIndex, ServerMessage, TrackId, TrackRef};
use tokio::runtime::Handle;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::bus::{INPUT_QUEUE, Input, Outgoing};
use crate::media::MediaOptions;
use crate::media::fanout::Fanout;
use crate::media::peer::{self, PeerCommand, PeerHandle};
use crate::media::threads::MediaThreads;
use crate::ops::audit::AuditSink;
use crate::ops::limits::IpLimiter;
use crate::ops::metrics::{KeyframeOrigin, Metrics, PacketDrop};
use crate::ops::token_store::TokenStore;
use crate::recording::{RecordingOptions, Recordings};
use crate::routing::{AdminCommand, AdminResult, Audit, ConnId, Output, Relay};
use crate::time::Now;

/// What the driver keeps in step with the core: shared with the HTTP handlers.
#[derive(Debug)]
pub struct DriverOps {
    /// Counts every core output, connections, fan-out packets.
    pub metrics: Arc<Metrics>,
    /// Told about authentication failures and successes per IP address.
    pub limiter: Arc<Mutex<IpLimiter>>,
    /// Writes the audit trail.
    pub audit: AuditSink,
    /// Where used token ids are kept beyond the core's memory (the core's
    /// [`crate::routing::RelayConfig::token_store`] must be set with it).
    pub token_store: Option<Arc<TokenStore>>,
}

/// A handle to the driver task; cloned into every connection. Each method returns `None` or
/// `false` once the driver is gone (the server is shutting down).
#[derive(Clone, Debug)]
pub struct DriverHandle {
    tx: mpsc::Sender<Input>,
}

impl DriverHandle {
    /// Opens a core connection whose messages go to `outgoing`; its id, once the driver took it.
    /// `kill` is notified if the driver drops the connection on its own.
    pub(crate) async fn open(
        &self,
        outgoing: mpsc::Sender<Outgoing>,
        kill: Arc<Notify>,
        ip: IpAddr,
    ) -> Option<ConnId> {
        let (reply, conn) = oneshot::channel();
        let open = Input::Open {
            outgoing,
            kill,
            reply,
            ip,
        };
        self.tx.send(open).await.ok()?;
        conn.await.ok()
    }

    /// Hands a text message from `conn` to the core.
    pub(crate) async fn text(&self, conn: ConnId, text: String) -> bool {
        self.tx.send(Input::Text { conn, text }).await.is_ok()
    }

    /// Tells the core that `conn`'s socket is gone.
    pub(crate) async fn closed(&self, conn: ConnId) {
        let _ = self.tx.send(Input::Closed { conn }).await;
    }

    /// Brings the metrics' gauges and fan-out counters up to date; returns when done.
    pub(crate) async fn refresh_metrics(&self) {
        let (done, refreshed) = oneshot::channel();
        if self.tx.send(Input::RefreshMetrics { done }).await.is_ok() {
            let _ = refreshed.await;
        }
    }

    /// Tells every connection the relay is draining and closes them in `drain`.
    pub(crate) async fn draining(&self, drain: std::time::Duration) {
        let _ = self.tx.send(Input::Draining { drain }).await;
    }

    /// Closes every connection (1001); returns once the driver has queued the closes.
    pub(crate) async fn close_all(&self) {
        let (done, closed) = oneshot::channel();
        if self.tx.send(Input::CloseAll { done }).await.is_ok() {
            let _ = closed.await;
        }
    }

    /// Runs an admin command in the core ([`Relay::admin`]) and returns its answer.
    pub(crate) async fn admin(&self, command: AdminCommand) -> Option<AdminResult> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Input::Admin { command, reply }).await.ok()?;
        answer.await.ok()
    }
}

/// The current time from the real clocks, as the core takes it.
pub fn now() -> Now {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Now::new(Instant::now(), unix)
}

/// Starts the driver on the current tokio runtime.
pub fn spawn(
    relay: Relay,
    media: MediaOptions,
    recording: Option<RecordingOptions>,
    ops: DriverOps,
) -> DriverHandle {
    let (tx, rx) = mpsc::channel(INPUT_QUEUE);
    let (recordings, recording_failures) = Recordings::new(recording, Arc::clone(&ops.metrics));
    let threads = MediaThreads::start(media.threads)
        .inspect_err(|e| {
            tracing::warn!(error = %e, "media threads could not start: media runs on the main runtime");
        })
        .ok();
    let driver = Driver {
        relay,
        media,
        rx,
        tx: tx.downgrade(),
        conns: HashMap::new(),
        fanouts: HashMap::new(),
        ops,
        fanout_totals: FanoutTotals::default(),
        recordings,
        recording_failures,
        threads,
    };
    tokio::spawn(driver.run());
    DriverHandle { tx }
}

struct ConnState {
    outgoing: mpsc::Sender<Outgoing>,
    /// Tells the socket task to close ([`Driver::drop_conn`]).
    kill: Arc<Notify>,
    peer: Option<PeerHandle>,
    sender_index: Option<SenderIndex>,
    ip: IpAddr,
}

/// One set of fan-out packet counters.
#[derive(Clone, Copy, Default)]
struct FanoutCounts {
    forwarded: u64,
    forwarded_bytes: u64,
    dropped: u64,
    switches: u64,
}

impl FanoutCounts {
    fn of(fanout: &Fanout) -> Self {
        Self {
            forwarded: fanout.forwarded.load(Ordering::Relaxed),
            forwarded_bytes: fanout.forwarded_bytes.load(Ordering::Relaxed),
            dropped: fanout.dropped.load(Ordering::Relaxed),
            switches: fanout.switches.load(Ordering::Relaxed),
        }
    }

    fn plus(self, o: Self) -> Self {
        Self {
            forwarded: self.forwarded.saturating_add(o.forwarded),
            forwarded_bytes: self.forwarded_bytes.saturating_add(o.forwarded_bytes),
            dropped: self.dropped.saturating_add(o.dropped),
            switches: self.switches.saturating_add(o.switches),
        }
    }

    /// What grew from `before` to `self` (nothing for a count that shrank).
    fn since(self, before: Self) -> Self {
        Self {
            forwarded: self.forwarded.saturating_sub(before.forwarded),
            forwarded_bytes: self.forwarded_bytes.saturating_sub(before.forwarded_bytes),
            dropped: self.dropped.saturating_sub(before.dropped),
            switches: self.switches.saturating_sub(before.switches),
        }
    }

    fn max(self, o: Self) -> Self {
        Self {
            forwarded: self.forwarded.max(o.forwarded),
            forwarded_bytes: self.forwarded_bytes.max(o.forwarded_bytes),
            dropped: self.dropped.max(o.dropped),
            switches: self.switches.max(o.switches),
        }
    }
}

/// Fan-out packet counters: those of unpublished tracks, and what was already exported.
#[derive(Default)]
struct FanoutTotals {
    retired: FanoutCounts,
    exported: FanoutCounts,
    exported_retransmits_refused: u64,
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
    ops: DriverOps,
    fanout_totals: FanoutTotals,
    /// Recordings in progress: recorders' connections, written to disk.
    recordings: Recordings,
    /// Recordings' writers report here that they could not go on.
    recording_failures: mpsc::Receiver<(ConnId, hush_proto::RecordingEnd)>,
    /// Where rooms' media run (`None`: the threads could not start; media runs on this
    /// runtime).
    threads: Option<MediaThreads>,
}

impl Driver {
    async fn run(mut self) {
        loop {
            let deadline = self.relay.poll_timeout();
            let input = match deadline {
                Some(at) => {
                    tokio::select! {
                        input = self.rx.recv() => input,
                        Some((conn, end)) = self.recording_failures.recv() => {
                            self.relay.recording_failed(now(), conn, end);
                            self.drain();
                            continue;
                        }
                        () = tokio::time::sleep_until(at.into()) => {
                            self.relay.handle_timeout(now());
                            self.drain();
                            continue;
                        }
                    }
                }
                None => tokio::select! {
                    input = self.rx.recv() => input,
                    Some((conn, end)) = self.recording_failures.recv() => {
                        self.relay.recording_failed(now(), conn, end);
                        self.drain();
                        continue;
                    }
                },
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
        self.stop_recordings();
    }

    /// Asks the token store about a join's token id, off the driver's task; the answer comes
    /// back as an input. Without a store (a core configured for one by mistake) the join is
    /// refused.
    fn claim_token(&mut self, conn: ConnId, jti: String, forget_after: u64) {
        let (Some(store), Some(tx)) = (self.ops.token_store.clone(), self.tx.upgrade()) else {
            tracing::error!("a token claim without a token store");
            let claim = crate::routing::TokenClaim::Unavailable;
            self.relay.token_claimed(now(), conn, claim);
            return;
        };
        tokio::spawn(async move {
            let claim = store.claim(&jti, forget_after).await;
            let _ = tx.send(Input::TokenClaimed { conn, claim }).await;
        });
    }

    /// Shutdown: every recording ends (`shutdown`) and its files are closed.
    fn stop_recordings(&mut self) {
        let fanouts: Vec<Arc<Fanout>> = self.fanouts.values().cloned().collect();
        self.recordings
            .stop_all(hush_proto::RecordingEnd::Shutdown, &fanouts);
    }

    /// A new connection: known to the core, not yet joined, without media.
    fn open(&mut self, outgoing: mpsc::Sender<Outgoing>, kill: Arc<Notify>, ip: IpAddr) -> ConnId {
        let conn = self.relay.connect(now());
        let state = ConnState {
            outgoing,
            kill,
            peer: None,
            sender_index: None,
            ip,
        };
        self.conns.insert(conn, state);
        conn
    }

    fn input(&mut self, input: Input) {
        match input {
            Input::Open {
                outgoing,
                kill,
                reply,
                ip,
            } => {
                let conn = self.open(outgoing, kill, ip);
                if reply.send(conn).is_err() {
                    // The socket went away while waiting.
                    self.conns.remove(&conn);
                    self.relay.disconnected(now(), conn);
                }
            }
            Input::Text { conn, text } => {
                let type_name = self.relay.handle_text(now(), conn, &text);
                self.ops.metrics.message_in(type_name);
            }
            Input::Closed { conn } => {
                if self.conns.remove(&conn).is_some() {
                    self.relay.disconnected(now(), conn);
                }
            }
            Input::Keyframe { subscriber, track } => {
                tracing::debug!(
                    subscriber = subscriber.get(),
                    track = track.0,
                    "keyframe request"
                );
                self.ops.metrics.keyframe_request(KeyframeOrigin::Rtcp);
                self.relay.request_keyframe(now(), subscriber, track)
            }
            Input::TokenClaimed { conn, claim } => {
                self.ops.metrics.token_claim(claim);
                self.relay.token_claimed(now(), conn, claim);
            }
            Input::MediaFailed { conn } => {
                if let Some(state) = self.conns.remove(&conn) {
                    let _ = state.outgoing.try_send(Outgoing::Close);
                    self.relay.disconnected(now(), conn);
                }
            }
            Input::RefreshMetrics { done } => {
                self.refresh_metrics();
                let _ = done.send(());
            }
            Input::Admin { command, reply } => {
                // The outputs (closes, broadcasts, audit) are carried out by `drain` next.
                let _ = reply.send(self.relay.admin(now(), command));
            }
            Input::Draining { drain } => {
                let message = ServerMessage::error(
                    ErrorCode::ServerShuttingDown,
                    format!(
                        "the relay is shutting down: this connection closes in {} s; rejoin",
                        drain.as_secs()
                    ),
                    false,
                )
                .encode();
                for state in self.conns.values() {
                    let _ = state.outgoing.try_send(Outgoing::Text(message.clone()));
                }
            }
            Input::CloseAll { done } => {
                self.stop_recordings();
                for (conn, state) in self.conns.drain() {
                    let _ = state
                        .outgoing
                        .try_send(Outgoing::CloseWith(1001, "relay shutting down"));
                    self.relay.disconnected(now(), conn);
                }
                let _ = done.send(());
            }
        }
    }

    /// Sets the room and participant gauges and adds what the fan-outs counted since the last
    /// refresh (counters only grow: unpublished tracks' counts were kept in `fanout_totals`).
    fn refresh_metrics(&mut self) {
        self.ops
            .metrics
            .set_rooms(self.relay.room_count(), self.relay.participant_total());
        if let Some(threads) = &self.threads {
            self.ops
                .metrics
                .set_media_thread_sessions(&threads.sessions());
        }
        let totals = &mut self.fanout_totals;
        let now = self
            .fanouts
            .values()
            .fold(totals.retired, |sum, f| sum.plus(FanoutCounts::of(f)));
        let new = now.since(totals.exported);
        let refused = self.media.retransmits_refused.load(Ordering::Relaxed);
        let metrics = &self.ops.metrics;
        metrics.add_forwarded_packets(new.forwarded, new.forwarded_bytes);
        metrics.add_dropped(PacketDrop::QueueFull, new.dropped);
        metrics.add_layer_switches(new.switches);
        metrics.add_dropped(
            PacketDrop::RetransmitBudget,
            refused.saturating_sub(totals.exported_retransmits_refused),
        );
        totals.exported = totals.exported.max(now);
        totals.exported_retransmits_refused = totals.exported_retransmits_refused.max(refused);
    }

    /// Keeps an unpublished track's packet counts for [`Driver::refresh_metrics`].
    fn retire(&mut self, fanout: &Fanout) {
        let totals = &mut self.fanout_totals;
        totals.retired = totals.retired.plus(FanoutCounts::of(fanout));
    }

    /// Carries out every output of the core.
    fn drain(&mut self) {
        while let Some(output) = self.relay.poll_output() {
            self.output(output);
        }
    }

    fn output(&mut self, output: Output) {
        self.ops.metrics.observe(&output);
        match output {
            Output::ClaimToken {
                conn,
                jti,
                forget_after,
            } => self.claim_token(conn, jti, forget_after),
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
                    self.retire(&fanout);
                }
                self.command_existing_peer(publisher, PeerCommand::Unpublished { track });
            }
            Output::StartForward {
                publisher,
                track,
                subscriber,
            } if self.recordings.is_recording(subscriber) => {
                if let Some(fanout) = self.fanouts.get(&(publisher, track)) {
                    let participant = self
                        .relay
                        .track_publisher(publisher, track)
                        .map(|p| p.as_str().to_owned())
                        .unwrap_or_default();
                    self.recordings.add_track(
                        subscriber,
                        publisher,
                        participant,
                        Arc::clone(fanout),
                        self.tx.clone(),
                    );
                }
            }
            Output::StopForward {
                publisher,
                track,
                subscriber,
            } if self.recordings.is_recording(subscriber) => {
                self.recordings.remove_track(subscriber, publisher, track);
                if let Some(fanout) = self.fanouts.get(&(publisher, track)) {
                    fanout.remove_sink(subscriber);
                }
            }
            Output::RecordingStarted {
                room,
                conn,
                recorder,
                identity_key,
            } => {
                if let Err(end) = self.recordings.start(&room, conn, &recorder, &identity_key) {
                    self.ops.metrics.recording_failed(end);
                    // The core ends it at once: the recorder leaves again.
                    self.relay.recording_failed(now(), conn, end);
                }
            }
            Output::RecordingStopped { conn, end } => {
                let fanouts: Vec<Arc<Fanout>> = self.fanouts.values().cloned().collect();
                self.recordings.stop(conn, end, &fanouts);
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
                tracing::debug!(
                    publisher = publisher.get(),
                    track = track.0,
                    "keyframe asked"
                );
                // A PLI for browsers; the message for clients that make keyframes on request.
                self.command_existing_peer(publisher, PeerCommand::Keyframe { track });
                self.send(
                    publisher,
                    ServerMessage::KeyframeRequest(TrackRef { track }),
                );
            }
            Output::VideoSize {
                subscriber,
                track,
                width,
                height,
            } => self.command_existing_peer(
                subscriber,
                PeerCommand::VideoSize {
                    track,
                    width,
                    height,
                },
            ),
            Output::Audit(audit) => self.audit(&audit),
            // Client-reported E2EE health only feeds the metrics (`observe` above).
            Output::E2eeHealth(_) => {}
        }
    }

    /// Writes the audit line and keeps the per-IP authentication count.
    fn audit(&mut self, audit: &Audit) {
        self.ops.audit.record(audit);
        let (conn, failed) = match audit {
            Audit::JoinRefused { conn, code, .. } if code.is_token_error() => (*conn, true),
            Audit::Joined { conn, .. } => (*conn, false),
            _ => return,
        };
        let Some(ip) = self.conns.get(&conn).map(|c| c.ip) else {
            return;
        };
        let mut limiter = self
            .ops
            .limiter
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if failed {
            if let Some(backoff) = limiter.auth_failed(Instant::now(), ip) {
                tracing::info!(
                    conn = conn.get(),
                    backoff_s = backoff.as_secs(),
                    "repeated token failures: backing off this address"
                );
            }
        } else {
            limiter.auth_succeeded(ip);
        }
    }

    fn send(&mut self, conn: ConnId, mut message: ServerMessage) {
        if self.recordings.is_recording(conn) {
            self.recordings.event(conn, &message);
            return;
        }
        let Some(state) = self.conns.get_mut(&conn) else {
            return;
        };
        if let ServerMessage::Joined(joined) = &mut message {
            state.sender_index = Some(joined.sender_index);
            // TURN credentials are minted here, per participant, with the shared secret the
            // routing core never holds.
            if let Some(turn) = &self.media.turn {
                joined.ice_servers = vec![turn.ice_server(now().unix_secs(), &joined.you)];
            }
        }
        if state
            .outgoing
            .try_send(Outgoing::Text(message.encode()))
            .is_err()
        {
            // A client that does not read its messages would miss membership events: close it.
            tracing::info!(conn = conn.get(), "signaling queue full: closing");
            self.drop_conn(conn);
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
            // A client that said it publishes nothing gets the relay's offer at once.
            let hold = self.relay.offers_first(conn) != Some(false);
            let place = match (&self.threads, self.relay.room_of(conn)) {
                (Some(threads), Some(room)) => {
                    let (thread, lease) = threads.place(room);
                    (thread, Some(lease))
                }
                _ => (Handle::current(), None),
            };
            let handle = peer::spawn(
                conn,
                self.media.clone(),
                state.outgoing.clone(),
                driver,
                hold,
                place,
            );
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
        if !peer.try_command(command) {
            // A stuck media actor: this participant goes, nobody else notices.
            tracing::warn!(conn = conn.get(), "media queue full: closing");
            self.drop_conn(conn);
        }
    }

    /// Drops a connection the driver gave up on: it leaves its room, and its socket task is
    /// told to close (its queue may have no room for a close).
    fn drop_conn(&mut self, conn: ConnId) {
        if let Some(state) = self.conns.remove(&conn) {
            let _ = state.outgoing.try_send(Outgoing::Close);
            state.kill.notify_one();
        }
        self.relay.disconnected(now(), conn);
    }
}

#[cfg(test)]
mod tests;
