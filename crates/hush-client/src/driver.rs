//! The driver task: owns the WebSocket, the PeerConnection's negotiation (the polite peer of
//! the relay's renegotiations) and the key adapter; the [`crate::Client`] handle talks to it
//! through a bounded command queue.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hush_participant::{Event, Input, Output};
use hush_proto::{ClientMessage, ParticipantId, Publish, ServerMessage, Source, TrackId};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionEventHandler, RTCIceCandidateInit, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, RTCSessionDescription,
};

use crate::client::{ClientEvent, Shared};
use crate::crypto::context_of;
use crate::error::ClientError;
use crate::keys::KeyAgent;
use crate::receive::receive_track;

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What the handle asks of the driver.
pub(crate) enum Command {
    Leave(oneshot::Sender<()>),
    Send(ClientMessage),
    UsageLimitNear(Source),
}

/// What the PeerConnection's handler tells the driver.
pub(crate) enum PcEvent {
    Candidate(RTCIceCandidateInit),
    State(RTCPeerConnectionState),
}

/// The PeerConnection's event handler: candidates and states to the driver, tracks to a
/// receive task each.
pub(crate) struct Handler {
    pub(crate) tx: mpsc::Sender<PcEvent>,
    pub(crate) shared: Arc<Shared>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            let _ = self.tx.try_send(PcEvent::Candidate(init));
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.tx.try_send(PcEvent::State(state));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        tokio::spawn(receive_track(track, self.shared.clone()));
    }
}

/// The driver task's state.
pub(crate) struct Driver {
    ws: Ws,
    pc: Arc<dyn PeerConnection>,
    keys: KeyAgent,
    clock: Clock,
    shared: Arc<Shared>,
    me: ParticipantId,
    /// Tracks of others in the room (for keyframe requests after a key change).
    remote_tracks: BTreeSet<TrackId>,
    /// Our offer is outstanding.
    making_offer: bool,
    /// Remote candidates that arrived before a remote description.
    pending_candidates: VecDeque<RTCIceCandidateInit>,
    /// Sending transceivers, announced with `publish` before the first offer.
    pub(crate) publish: Vec<(Source, Arc<dyn webrtc::rtp_transceiver::RtpTransceiver>)>,
    published: bool,
    /// Received-frame totals at the last `e2ee_stats` report (reports carry deltas).
    reported: hush_frame::DecryptStats,
    /// Frames sealed before the join, as of the previous report.
    reported_before_join: u64,
    /// Frames under another sender's key, as of the previous report.
    reported_wrong_sender: u64,
}

/// How often `e2ee_stats` goes to the relay (it counts at most one per 5 s per connection).
const STATS_INTERVAL: Duration = Duration::from_secs(10);

impl Driver {
    /// The driver of a joined client (publishing nothing until `publish` is filled).
    pub(crate) fn new(
        ws: Ws,
        pc: Arc<dyn PeerConnection>,
        keys: KeyAgent,
        clock: Clock,
        shared: Arc<Shared>,
        joined: &hush_proto::Joined,
    ) -> Self {
        Self {
            ws,
            pc,
            keys,
            clock,
            shared,
            me: joined.you.clone(),
            remote_tracks: joined
                .tracks
                .iter()
                .filter(|t| t.participant != joined.you)
                .map(|t| t.track)
                .collect(),
            making_offer: false,
            pending_candidates: VecDeque::new(),
            publish: Vec::new(),
            published: false,
            reported: hush_frame::DecryptStats::default(),
            reported_before_join: 0,
            reported_wrong_sender: 0,
        }
    }

    /// `e2ee_stats`: frames decrypted and dropped (by reason) since the previous report, and
    /// the sending epoch. For the relay's metrics only (diagnostics; no ids go along).
    fn stats_report(&mut self, last: bool) -> ClientMessage {
        let crypto = self.shared.crypto();
        let mut now = hush_frame::DecryptStats::default();
        let (mut before_join, mut wrong_sender) = (0, 0);
        for r in crypto.stats.received.values() {
            now.add(&r.decrypt);
            before_join += r.before_join;
            wrong_sender += r.wrong_sender;
        }
        let epoch = crypto.stats.sending_epoch;
        drop(crypto);
        let before = &self.reported;
        let mut dropped: std::collections::BTreeMap<String, u64> = now
            .drops()
            .zip(before.drops())
            .filter(|&((_, n), (_, was))| n > was)
            .map(|((reason, n), (_, was))| {
                let wire = hush_proto::E2eeDropReason::from(reason);
                (wire.as_str().to_owned(), n - was)
            })
            .collect();
        for (reason, n, was) in [
            (
                hush_proto::E2eeDropReason::BeforeJoin,
                before_join,
                &mut self.reported_before_join,
            ),
            (
                hush_proto::E2eeDropReason::WrongSender,
                wrong_sender,
                &mut self.reported_wrong_sender,
            ),
        ] {
            if n > *was {
                dropped.insert(reason.as_str().to_owned(), n - *was);
            }
            *was = n;
        }
        let message = ClientMessage::E2eeStats(hush_proto::E2eeStats {
            dropped,
            decrypted: now.decrypted.saturating_sub(before.decrypted),
            epoch,
            last,
        });
        self.reported = now;
        message
    }
}

fn summarize(sdp: &str) -> String {
    sdp.lines()
        .filter(|l| {
            l.starts_with("m=")
                || l.starts_with("a=mid")
                || l.starts_with("a=msid")
                || l.starts_with("a=send")
                || l.starts_with("a=recv")
                || l.starts_with("a=inactive")
                || l.starts_with("a=ssrc:") && l.contains("cname")
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

const MAX_PENDING_CANDIDATES: usize = 64;

/// The key core's clock: Unix time (backend attestations expire in Unix seconds) that moves
/// with the monotonic clock, so timers never jump when the wall clock does.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    start: tokio::time::Instant,
    unix_ms: u64,
}

impl Clock {
    /// Starts at the wall clock's now.
    pub(crate) fn start() -> Self {
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Self {
            start: tokio::time::Instant::now(),
            unix_ms,
        }
    }

    /// Now, as the key core counts.
    pub(crate) fn now(&self) -> hush_participant::Instant {
        let elapsed = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        hush_participant::Instant::from_millis(self.unix_ms.saturating_add(elapsed))
    }
}

impl Driver {
    fn now(&self) -> hush_participant::Instant {
        self.clock.now()
    }

    async fn send(&mut self, msg: ClientMessage) -> bool {
        self.ws.send(Message::text(msg.encode())).await.is_ok()
    }

    pub(crate) async fn run(
        &mut self,
        mut cmd: mpsc::Receiver<Command>,
        mut pc_events: mpsc::Receiver<PcEvent>,
    ) {
        if !self.publish.is_empty() && self.offer().await.is_err() {
            tracing::warn!("initial offer failed");
        }
        let start = tokio::time::Instant::now() + STATS_INTERVAL;
        let mut stats_timer = tokio::time::interval_at(start, STATS_INTERVAL);
        stats_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let wake = self.keys.core().next_timeout().map(|t| {
                let now = self.now();
                let wait = t.as_millis().saturating_sub(now.as_millis());
                tokio::time::Instant::now() + Duration::from_millis(wait)
            });
            let sleep = tokio::time::sleep_until(
                wake.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600)),
            );
            tokio::select! {
                msg = self.ws.next() => match msg {
                    Some(Ok(Message::Text(text))) => {
                        if !self.on_server(text.as_str()).await {
                            break;
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
                c = cmd.recv() => match c {
                    None => break,
                    Some(Command::Leave(done)) => {
                        let report = self.stats_report(true);
                        let _ = self.send(report).await;
                        let _ = self.send(ClientMessage::Leave).await;
                        let _ = self.ws.close(None).await;
                        let _ = done.send(());
                        break;
                    }
                    Some(Command::Send(m)) => {
                        if !self.send(m).await {
                            break;
                        }
                    }
                    Some(Command::UsageLimitNear(source)) => {
                        let now = self.now();
                        let input = Input::UsageLimitNear(context_of(source));
                        let _ = self.keys.input(now, input);
                    }
                },
                ev = pc_events.recv() => match ev {
                    Some(PcEvent::Candidate(c)) => {
                        let msg = ClientMessage::Candidate(hush_proto::Candidate {
                            candidate: c.candidate,
                            sdp_mid: c.sdp_mid,
                            sdp_m_line_index: c.sdp_mline_index,
                            username_fragment: c.username_fragment,
                        });
                        if !self.send(msg).await {
                            break;
                        }
                    }
                    Some(PcEvent::State(s)) => self.shared.event(ClientEvent::Connection(s)),
                    None => {}
                },
                () = sleep => {
                    let now = self.now();
                    let _ = self.keys.input(now, Input::Tick);
                }
                _ = stats_timer.tick() => {
                    let report = self.stats_report(false);
                    if !self.send(report).await {
                        break;
                    }
                }
            }
            self.drain_keys().await;
        }
        self.shared.event(ClientEvent::Closed);
        let _ = self.pc.close().await;
    }

    /// Creates and sends an offer (announcing the published sources the first time).
    async fn offer(&mut self) -> Result<(), ClientError> {
        let offer = self.pc.create_offer(None).await?;
        self.pc.set_local_description(offer).await?;
        self.making_offer = true;
        tracing::debug!(published = self.published, "client offer");
        if !self.published {
            self.published = true;
            let publish = self.publish.clone();
            for (source, tr) in publish {
                let mid = tr.mid().await.ok().flatten();
                self.send(ClientMessage::Publish(Publish { source, mid }))
                    .await;
            }
        }
        let sdp = self.local_sdp().await?;
        self.send(ClientMessage::Offer(hush_proto::Sdp { sdp }))
            .await;
        Ok(())
    }

    /// The SDP of the local description just set.
    async fn local_sdp(&self) -> Result<String, ClientError> {
        let desc = self.pc.local_description().await;
        Ok(desc
            .ok_or(ClientError::Protocol("no local description"))?
            .sdp)
    }

    /// The relay's offer: the polite peer rolls its own back, answers, then offers again.
    async fn on_offer(&mut self, sdp: String) -> Result<(), ClientError> {
        let rolled_back = self.making_offer;
        tracing::debug!(rolled_back, sdp = summarize(&sdp).as_str(), "relay offer");
        if rolled_back {
            self.pc
                .set_local_description(RTCSessionDescription::rollback(None)?)
                .await?;
            self.making_offer = false;
        }
        self.pc
            .set_remote_description(RTCSessionDescription::offer(sdp)?)
            .await?;
        self.flush_candidates().await;
        let answer = self.pc.create_answer(None).await?;
        self.pc.set_local_description(answer).await?;
        let sdp = self.local_sdp().await?;
        tracing::debug!(sdp = summarize(&sdp).as_str(), "client answer");
        self.send(ClientMessage::Answer(hush_proto::Sdp { sdp }))
            .await;
        if rolled_back {
            self.offer().await?;
        }
        Ok(())
    }

    async fn flush_candidates(&mut self) {
        while let Some(c) = self.pending_candidates.pop_front() {
            let _ = self.pc.add_ice_candidate(c).await;
        }
    }

    /// Handles one relay message; `false` ends the session.
    async fn on_server(&mut self, text: &str) -> bool {
        let Ok(msg) = ServerMessage::decode(text) else {
            return true; // dropped; the relay's bugs do not end the call
        };
        // Every relay message goes to the key core first; it refuses (and changes nothing for)
        // what is not about keys.
        let now = self.now();
        let _ = self.keys.on_server(now, &msg);
        match msg {
            ServerMessage::Offer(sdp) => {
                if let Err(e) = self.on_offer(sdp.sdp).await {
                    tracing::warn!(error = %e, "answering the relay's offer failed");
                }
            }
            ServerMessage::Answer(sdp) => {
                tracing::debug!(making_offer = self.making_offer, "relay answer");
                if self.making_offer {
                    match RTCSessionDescription::answer(sdp.sdp) {
                        Ok(d) => {
                            if let Err(e) = self.pc.set_remote_description(d).await {
                                tracing::warn!(error = %e, "relay answer refused");
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "relay answer unreadable"),
                    }
                    self.making_offer = false;
                    self.flush_candidates().await;
                }
            }
            ServerMessage::Candidate(c) => {
                let init = RTCIceCandidateInit {
                    candidate: c.candidate,
                    sdp_mid: c.sdp_mid,
                    sdp_mline_index: c.sdp_m_line_index,
                    username_fragment: c.username_fragment,
                    ..Default::default()
                };
                if self.pc.remote_description().await.is_some() {
                    let _ = self.pc.add_ice_candidate(init).await;
                } else if self.pending_candidates.len() < MAX_PENDING_CANDIDATES {
                    self.pending_candidates.push_back(init);
                }
            }
            ServerMessage::TrackPublished(t) => {
                if t.participant != self.me {
                    self.remote_tracks.insert(t.track);
                }
                self.shared.event(ClientEvent::TrackPublished(t));
            }
            ServerMessage::TrackUnpublished(t) => {
                self.remote_tracks.remove(&t.track);
            }
            ServerMessage::Recording(r) => self.shared.event(ClientEvent::Recording(r)),
            ServerMessage::Error(e) => {
                let fatal = e.fatal;
                self.shared.event(ClientEvent::Error {
                    code: e.code,
                    message: e.message,
                    fatal,
                });
                if fatal {
                    return false;
                }
            }
            _ => {}
        }
        true
    }

    /// Carries out the key core's outputs: keys to the frame layer, messages to the relay,
    /// events to the application; a new key also asks every remote track for a keyframe.
    pub(crate) async fn drain_keys(&mut self) {
        let mut out = Vec::new();
        let mut events = Vec::new();
        {
            let mut crypto = self.shared.crypto();
            while let Some(o) = self.keys.poll_output() {
                match o {
                    Output::Send(m) => out.push(m),
                    Output::Key(k) => crypto.apply(k),
                    Output::Event(e) => events.push(e),
                }
            }
            let core = self.keys.core();
            let now = self.clock.now();
            crypto.set_join_horizon(core.session().and_then(|s| s.join_horizon()).map(|h| {
                let left = h.until().as_millis().saturating_sub(now.as_millis());
                let until = std::time::Instant::now() + Duration::from_millis(left);
                (h, until)
            }));
            crypto.stats.sending_epoch = core.sending_epoch();
            crypto.stats.latest_epoch = core.latest_epoch();
            crypto.stats.safety_code = core.safety_code().map(|c| c.value());
            crypto.stats.key_inputs_refused = self.keys.refused();
        }
        if events.contains(&Event::KeyframeWanted) {
            for &track in &self.remote_tracks {
                out.push(ClientMessage::KeyframeRequest(hush_proto::TrackRef {
                    track,
                }));
            }
        }
        for e in events {
            self.shared.event(ClientEvent::Keys(e));
        }
        for m in out {
            if !self.send(m).await {
                break;
            }
        }
    }
}
