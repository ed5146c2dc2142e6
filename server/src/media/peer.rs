//! One participant's PeerConnection, run as an actor task.
//!
//! The driver sends [`PeerCommand`]s; webrtc-rs callbacks and helper tasks send [`PeerEvent`]s.
//! Everything that touches the PeerConnection's negotiation state happens on this one task, so
//! offers, answers and track changes never interleave. A failure here ends this peer only: the
//! client gets a fatal error and the driver closes its connection.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hush_proto::{Candidate, ErrorCode, Sdp, ServerMessage, Source, TrackId};
use rtc::media_stream::MediaStreamTrack;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RTCRtpHeaderExtensionCapability,
    RTCRtpHeaderExtensionParameters, RtpCodecKind,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceCandidateInit, RTCIceCandidateType, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, RTCSessionDescription, Registry, SettingEngineBuilder,
    register_default_interceptors,
};
use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit, RtpSender};

use super::MediaOptions;
use super::fanout::{Fanout, SUBSCRIBER_QUEUE};
use super::feedback::{KeyframeFeedback, is_keyframe_request};
use super::sdp::{Setup, answer_setup, first_mid, role_from_client_answer, with_setup};
use crate::driver::{Input, Outgoing};
use crate::routing::{ConnId, MediaSignal};

/// Header extensions forwarded from publisher to subscriber, their ids mapped per leg. They
/// describe the media itself, not the hop: the AV1 dependency descriptor (frame dependencies and
/// layers; the receiver needs it for SVC) and the camera's orientation. Per-hop extensions are
/// never forwarded: `abs-send-time` and `transport-cc` are about this leg's timing (webrtc-rs
/// writes its own), `sdes:mid`/`rid` name this leg's m-section (webrtc-rs writes its own), and
/// the rest Chromium offers (`toffset`, `playout-delay`, `video-content-type`, `video-timing`,
/// `color-space`, `ssrc-audio-level`) are not negotiated, so publishers do not send them.
/// `ssrc-audio-level` in particular would show the relay who speaks when, in the clear.
const FORWARDED_EXTENSIONS: [&str; 2] = [
    "https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension",
    "urn:3gpp:video-orientation",
];

/// Commands queued per peer before the peer counts as stuck and is closed.
pub(crate) const COMMAND_QUEUE: usize = 256;
/// Callback events queued per peer.
const EVENT_QUEUE: usize = 256;
/// Client candidates kept while no remote description is set.
const MAX_EARLY_CANDIDATES: usize = 64;
/// How long the relay's first offer waits for the client's own first offer.
///
/// A publishing client offers right after `joined`. Answering that first lets the relay adopt
/// the client's header-extension ids (webrtc-rs reuses negotiated ids in later offers); offering
/// first makes webrtc-rs number them itself (`sdes:mid` = 1 where Chromium uses 9), and Chromium
/// then refuses its own next offer ("codec collision") or, after a glare rollback, the relay's
/// ("RTP extension ID reassignment not supported"). It also avoids the glare round trip. A
/// client that publishes nothing never offers and gets the relay's offer after this delay.
const FIRST_OFFER_HOLD: Duration = Duration::from_millis(1000);

/// What the driver asks a peer to do.
pub(crate) enum PeerCommand {
    /// Negotiation from the client.
    Signal(MediaSignal),
    /// One of this peer's tracks was published: its media with `mid` goes to `fanout`.
    Published {
        mid: Option<String>,
        source: Source,
        fanout: Arc<Fanout>,
    },
    /// One of this peer's tracks was unpublished.
    Unpublished { track: TrackId },
    /// Forward another participant's track to this peer.
    AddForward {
        publisher: ConnId,
        fanout: Arc<Fanout>,
    },
    /// Stop forwarding a track to this peer.
    RemoveForward { publisher: ConnId, track: TrackId },
    /// Ask this peer (a publisher) for a keyframe on one of its tracks.
    Keyframe { track: TrackId },
}

/// What webrtc-rs callbacks and helper tasks tell the peer.
enum PeerEvent {
    Track(Arc<dyn TrackRemote>),
    Candidate(RTCIceCandidateInit),
    Failed,
    ForwardReady {
        key: (ConnId, TrackId),
        codec: RTCRtpCodec,
    },
    /// [`FIRST_OFFER_HOLD`] is over.
    HoldOver,
}

/// The driver's handle on a peer actor; dropping it ends the actor.
pub(crate) struct PeerHandle {
    pub(crate) commands: mpsc::Sender<PeerCommand>,
}

/// Starts the actor for `conn`. It builds its PeerConnection itself, so this returns at once.
pub(crate) fn spawn(
    conn: ConnId,
    options: MediaOptions,
    outgoing: mpsc::Sender<Outgoing>,
    driver: mpsc::Sender<Input>,
) -> PeerHandle {
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let failure = driver.clone();
    let actor = tokio::spawn(run(conn, options, outgoing, driver, rx));
    // Supervise: a panic or error inside the actor closes this participant only.
    tokio::spawn(async move {
        let failed = !matches!(actor.await, Ok(Ok(())));
        if failed {
            let _ = failure.send(Input::MediaFailed { conn }).await;
        }
    });
    PeerHandle { commands: tx }
}

struct Handler {
    events: mpsc::Sender<PeerEvent>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            let _ = self.events.try_send(PeerEvent::Candidate(init));
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        tracing::debug!(?state, "peer connection state");
        if state == RTCPeerConnectionState::Failed {
            let _ = self.events.try_send(PeerEvent::Failed);
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.events.try_send(PeerEvent::Track(track));
    }
}

/// Why a peer stopped.
#[derive(Debug)]
struct PeerFailed(&'static str);

/// A track this peer publishes, as the core named it.
struct Publication {
    mid: Option<String>,
    kind: RtpCodecKind,
    fanout: Arc<Fanout>,
    /// The receive loop, once the media arrived.
    pump: Option<(Arc<dyn TrackRemote>, u32, JoinHandle<()>)>,
}

/// A track forwarded to this peer.
struct Forward {
    fanout: Arc<Fanout>,
    sender: Option<Arc<dyn RtpSender>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Forward {
    fn stop(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }
}

struct Peer {
    conn: ConnId,
    options: MediaOptions,
    pc: Arc<dyn PeerConnection>,
    outgoing: mpsc::Sender<Outgoing>,
    driver: mpsc::Sender<Input>,
    events_tx: mpsc::Sender<PeerEvent>,
    publications: HashMap<TrackId, Publication>,
    /// Remote tracks that arrived before their `publish`.
    unclaimed: Vec<(Option<String>, RtpCodecKind, Arc<dyn TrackRemote>)>,
    forwards: HashMap<(ConnId, TrackId), Forward>,
    offer_outstanding: bool,
    needs_offer: bool,
    has_remote: bool,
    early_candidates: Vec<RTCIceCandidateInit>,
    /// The relay's DTLS role, fixed by the first completed exchange (see [`super::sdp`]).
    dtls_role: Option<Setup>,
    /// The mid that names the bundled transport in our candidates.
    bundle_mid: Option<String>,
    /// Our first offer waits for the client's (see [`FIRST_OFFER_HOLD`]).
    hold_first_offer: bool,
    /// Counts completed offer/answer exchanges; forward writers re-read their negotiated
    /// parameters when it moves.
    negotiated: watch::Sender<u64>,
}

async fn run(
    conn: ConnId,
    options: MediaOptions,
    outgoing: mpsc::Sender<Outgoing>,
    driver: mpsc::Sender<Input>,
    mut commands: mpsc::Receiver<PeerCommand>,
) -> Result<(), PeerFailed> {
    let (events_tx, mut events) = mpsc::channel(EVENT_QUEUE);
    let pc = match build_pc(&options, events_tx.clone()).await {
        Ok(pc) => pc,
        Err(err) => {
            tracing::warn!(conn = conn.get(), %err, "cannot create a peer connection");
            let msg = ServerMessage::error(ErrorCode::ServerBusy, "no media port available", true);
            let _ = outgoing.try_send(Outgoing::Text(msg.encode()));
            return Err(PeerFailed("build"));
        }
    };
    let mut peer = Peer {
        conn,
        options,
        pc,
        outgoing,
        driver,
        events_tx,
        publications: HashMap::new(),
        unclaimed: Vec::new(),
        forwards: HashMap::new(),
        offer_outstanding: false,
        needs_offer: false,
        has_remote: false,
        early_candidates: Vec::new(),
        dtls_role: None,
        bundle_mid: None,
        hold_first_offer: true,
        negotiated: watch::Sender::new(0),
    };
    let hold_events = peer.events_tx.clone();
    let hold = tokio::spawn(async move {
        tokio::time::sleep(FIRST_OFFER_HOLD).await;
        let _ = hold_events.send(PeerEvent::HoldOver).await;
    });
    let result = loop {
        let step = tokio::select! {
            command = commands.recv() => match command {
                Some(command) => peer.command(command).await,
                None => break Ok(()),
            },
            Some(event) = events.recv() => peer.event(event).await,
        };
        if let Err(failed) = step {
            let msg = ServerMessage::error(ErrorCode::InternalError, "media session failed", true);
            let _ = peer.outgoing.try_send(Outgoing::Text(msg.encode()));
            tracing::info!(conn = conn.get(), reason = failed.0, "media session failed");
            break Err(failed);
        }
    };
    hold.abort();
    peer.shutdown().await;
    result
}

async fn build_pc(
    options: &MediaOptions,
    events: mpsc::Sender<PeerEvent>,
) -> webrtc::error::Result<Arc<dyn PeerConnection>> {
    let mut media = MediaEngine::default();
    // VP8, VP9, H.264, AV1 and Opus, with the RTCP feedback browsers expect.
    media.register_default_codecs()?;
    for uri in FORWARDED_EXTENSIONS {
        media.register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: uri.to_owned(),
            },
            RtpCodecKind::Video,
            None,
        )?;
    }
    let registry = register_default_interceptors(Registry::new(), &mut media)?
        // Last in the chain (the example `rtcp-processing` uses the same slot): keyframe
        // requests from subscribers reach `rtcp_loop`.
        .with(
            rtc::interceptor::Slot::from(14_000),
            KeyframeFeedback::default(),
        );
    let mut settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .with_include_loopback_candidate(options.udp_ip.is_loopback());
    if let Some(public) = options.public_ip {
        settings = settings.with_nat_1to1_ips(vec![public.to_string()], RTCIceCandidateType::Host);
    }
    let config = RTCConfigurationBuilder::new().build();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(config)
        .with_media_engine(media)
        .with_setting_engine(settings.build())
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(Handler { events }))
        .with_udp_addrs(vec![std::net::SocketAddr::new(options.udp_ip, 0)])
        .build()
        .await?;
    Ok(Arc::new(pc))
}

impl Peer {
    fn send(&self, message: ServerMessage) {
        if self
            .outgoing
            .try_send(Outgoing::Text(message.encode()))
            .is_err()
        {
            tracing::debug!(
                conn = self.conn.get(),
                "signaling queue full: message dropped"
            );
        }
    }

    fn refuse(&self, code: ErrorCode, message: &str) {
        self.send(ServerMessage::error(code, message, false));
    }

    async fn command(&mut self, command: PeerCommand) -> Result<(), PeerFailed> {
        match command {
            PeerCommand::Signal(MediaSignal::Offer(sdp)) => self.client_offer(sdp).await,
            PeerCommand::Signal(MediaSignal::Answer(sdp)) => self.client_answer(sdp).await,
            PeerCommand::Signal(MediaSignal::Candidate(c)) => {
                self.client_candidate(c).await;
                Ok(())
            }
            PeerCommand::Published {
                mid,
                source,
                fanout,
            } => {
                let kind = match source {
                    Source::Microphone => RtpCodecKind::Audio,
                    _ => RtpCodecKind::Video,
                };
                let track = fanout.track;
                let mut publication = Publication {
                    mid,
                    kind,
                    fanout,
                    pump: None,
                };
                // The media may have arrived before the `publish`.
                let found = self.unclaimed.iter().position(|(mid, kind, _)| {
                    match (&publication.mid, mid) {
                        (Some(want), Some(have)) => want == have,
                        (None, _) => *kind == publication.kind,
                        _ => false,
                    }
                });
                if let Some(index) = found {
                    let (_, _, remote) = self.unclaimed.remove(index);
                    self.start_pump(&mut publication, remote).await;
                }
                self.publications.insert(track, publication);
                Ok(())
            }
            PeerCommand::Unpublished { track } => {
                if let Some(publication) = self.publications.remove(&track) {
                    publication.fanout.close();
                    if let Some((_, _, pump)) = publication.pump {
                        pump.abort();
                    }
                }
                Ok(())
            }
            PeerCommand::AddForward { publisher, fanout } => {
                let key = (publisher, fanout.track);
                let mut watch = fanout.codec_watch();
                let events = self.events_tx.clone();
                // Wait (in a task) until the publisher's codec is known: a subscriber can be
                // told about a track before the publisher's first packet arrives.
                let waiter = tokio::spawn(async move {
                    let codec = match watch.wait_for(Option::is_some).await {
                        Ok(codec) => codec.clone(),
                        Err(_) => return, // unpublished before any media
                    };
                    if let Some(codec) = codec {
                        let _ = events.send(PeerEvent::ForwardReady { key, codec }).await;
                    }
                });
                let forward = Forward {
                    fanout,
                    sender: None,
                    tasks: vec![waiter],
                };
                if let Some(mut old) = self.forwards.insert(key, forward) {
                    old.stop();
                }
                Ok(())
            }
            PeerCommand::RemoveForward { publisher, track } => {
                if let Some(mut forward) = self.forwards.remove(&(publisher, track)) {
                    forward.fanout.remove_sink(self.conn);
                    forward.stop();
                    if let Some(sender) = forward.sender {
                        if let Err(err) = self.pc.remove_track(&sender).await {
                            tracing::debug!(%err, "remove_track");
                        }
                        self.negotiate().await?;
                    }
                }
                Ok(())
            }
            PeerCommand::Keyframe { track } => {
                if let Some(Some((remote, ssrc, _))) =
                    self.publications.get(&track).map(|p| p.pump.as_ref())
                {
                    let pli = PictureLossIndication {
                        sender_ssrc: 0,
                        media_ssrc: *ssrc,
                    };
                    let _ = remote.write_rtcp(vec![Box::new(pli)]).await;
                }
                Ok(())
            }
        }
    }

    async fn event(&mut self, event: PeerEvent) -> Result<(), PeerFailed> {
        match event {
            PeerEvent::Candidate(init) => {
                // webrtc-rs reports "" for every candidate's mid, which browsers refuse; with
                // BUNDLE the first m-section stands for the whole transport. Before any
                // description the mid is unknown and the index alone says it.
                self.send(ServerMessage::Candidate(Candidate {
                    candidate: init.candidate,
                    sdp_mid: self.bundle_mid.clone(),
                    sdp_m_line_index: Some(0),
                    username_fragment: None,
                }));
                Ok(())
            }
            PeerEvent::Failed => Err(PeerFailed("ice or dtls failed")),
            PeerEvent::Track(remote) => {
                let mid = self.mid_of(&remote).await;
                let kind = remote.kind().await;
                let found = self.publications.iter().find_map(|(&track, p)| {
                    let matches = p.pump.is_none()
                        && match (&p.mid, &mid) {
                            (Some(want), Some(have)) => want == have,
                            (None, _) => p.kind == kind,
                            _ => false,
                        };
                    matches.then_some(track)
                });
                match found {
                    Some(track) => {
                        if let Some(mut publication) = self.publications.remove(&track) {
                            self.start_pump(&mut publication, remote).await;
                            self.publications.insert(track, publication);
                        }
                    }
                    None if self.unclaimed.len() < 16 => self.unclaimed.push((mid, kind, remote)),
                    None => {}
                }
                Ok(())
            }
            PeerEvent::ForwardReady { key, codec } => self.add_forward_track(key, codec).await,
            PeerEvent::HoldOver => {
                self.hold_first_offer = false;
                if self.needs_offer {
                    self.negotiate().await?;
                }
                Ok(())
            }
        }
    }

    /// The `mid` of the transceiver that receives `remote`.
    async fn mid_of(&self, remote: &Arc<dyn TrackRemote>) -> Option<String> {
        for transceiver in self.pc.get_transceivers().await {
            if let Ok(Some(receiver)) = transceiver.receiver().await
                && Arc::ptr_eq(receiver.track(), remote)
            {
                return transceiver.mid().await.ok().flatten();
            }
        }
        None
    }

    /// The publisher leg's ids of the forwarded header extensions `remote` negotiated.
    async fn forwarded_extensions_of(&self, remote: &Arc<dyn TrackRemote>) -> Vec<(String, u8)> {
        for transceiver in self.pc.get_transceivers().await {
            if let Ok(Some(receiver)) = transceiver.receiver().await
                && Arc::ptr_eq(receiver.track(), remote)
            {
                return match receiver.get_parameters().await {
                    Ok(params) => forwarded(&params.rtp_parameters.header_extensions),
                    Err(_) => Vec::new(),
                };
            }
        }
        Vec::new()
    }

    async fn start_pump(&mut self, publication: &mut Publication, remote: Arc<dyn TrackRemote>) {
        let ssrc = remote.ssrcs().await.first().copied().unwrap_or(0);
        let extensions = self.forwarded_extensions_of(&remote).await;
        publication.fanout.set_extensions(extensions);
        if let Some(codec) = remote.codec(ssrc).await {
            publication.fanout.set_codec(codec);
        }
        let fanout = Arc::clone(&publication.fanout);
        let tap = self.options.forward_tap.clone();
        let reader = Arc::clone(&remote);
        let pump = tokio::spawn(async move {
            let track = fanout.track;
            // The payload type of the codec subscribers were offered: the first packet's (repair
            // streams only start after losses). Subscribers get one codec per forwarded track,
            // so a packet of another payload type (RTX or FEC that reached us unrepaired, RED,
            // a codec switched mid-call) cannot be relabelled into it: it is dropped and
            // counted instead of reaching a decoder as the wrong format.
            let mut primary: Option<u8> = None;
            while let Some(event) = reader.poll().await {
                match event {
                    TrackRemoteEvent::OnRtpPacket(packet) => {
                        let pt = packet.header.payload_type;
                        if *primary.get_or_insert(pt) != pt {
                            fanout.other_payload.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        if let Some(tap) = &tap {
                            tap(track, &packet.payload);
                        }
                        fanout.forward(&packet);
                    }
                    TrackRemoteEvent::OnEnded => break,
                    _ => {}
                }
            }
        });
        publication.pump = Some((remote, ssrc, pump));
    }

    /// The publisher's codec is known: add a local track to this peer and renegotiate.
    async fn add_forward_track(
        &mut self,
        key: (ConnId, TrackId),
        codec: RTCRtpCodec,
    ) -> Result<(), PeerFailed> {
        let Some(forward) = self.forwards.get(&key) else {
            return Ok(()); // removed meanwhile
        };
        if forward.sender.is_some() {
            return Ok(());
        }
        let fanout = Arc::clone(&forward.fanout);
        let kind = if codec.mime_type.to_ascii_lowercase().starts_with("audio/") {
            RtpCodecKind::Audio
        } else {
            RtpCodecKind::Video
        };
        let ssrc = random_ssrc();
        let stream_id = format!("p{}", fanout.sender_index.0);
        let track_id = format!("t{}", fanout.track.0);
        let local = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            stream_id,
            track_id.clone(),
            track_id,
            kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: codec.clone(),
                ..Default::default()
            }],
        )));
        // A new send-only transceiver per forwarded track. `add_track` would reuse any
        // transceiver of the same kind that has no sender, including the client's own send-only
        // camera or microphone m-line, and the client would never see the track.
        let init = RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Sendonly,
            streams: vec![],
            send_encodings: vec![],
        };
        let added = self
            .pc
            .add_transceiver_from_track(Arc::clone(&local) as Arc<dyn TrackLocal>, Some(init))
            .await;
        let sender = match added {
            Ok(transceiver) => match transceiver.sender().await {
                Ok(Some(sender)) => sender,
                _ => return Err(PeerFailed("forward transceiver has no sender")),
            },
            Err(err) => {
                // A codec this client did not negotiate, say: this track only is skipped.
                tracing::info!(%err, "cannot forward a track to this peer");
                return Ok(());
            }
        };
        let (sink_tx, sink_rx) = mpsc::channel(SUBSCRIBER_QUEUE);
        let writer = tokio::spawn(write_loop(
            sink_rx,
            Writer {
                local: Arc::clone(&local),
                sender: Arc::clone(&sender),
                codec,
                publisher_extensions: fanout.extensions(),
                negotiated: self.negotiated.subscribe(),
                ssrc,
                ask: KeyframeAsk {
                    driver: self.driver.clone(),
                    subscriber: self.conn,
                    track: key.1,
                },
            },
        ));
        let rtcp = tokio::spawn(rtcp_loop(local, self.driver.clone(), self.conn, key.1));
        fanout.add_sink(self.conn, sink_tx);
        if let Some(forward) = self.forwards.get_mut(&key) {
            forward.sender = Some(sender);
            forward.tasks.push(writer);
            forward.tasks.push(rtcp);
        }
        self.negotiate().await
    }

    /// Offers if the connection is stable, else remembers to offer after the current exchange.
    async fn negotiate(&mut self) -> Result<(), PeerFailed> {
        if self.offer_outstanding || (self.hold_first_offer && !self.has_remote) {
            self.needs_offer = true;
            return Ok(());
        }
        self.needs_offer = false;
        let offer = self
            .pc
            .create_offer(None)
            .await
            .map_err(|_| PeerFailed("create_offer"))?;
        let sdp = offer.sdp.clone();
        self.pc
            .set_local_description(offer)
            .await
            .map_err(|_| PeerFailed("set_local_description(offer)"))?;
        self.offer_outstanding = true;
        self.note_bundle_mid(&sdp);
        self.send(ServerMessage::Offer(Sdp { sdp }));
        Ok(())
    }

    /// Remembers the first m-section's mid of the first description: it names the bundled
    /// transport for the rest of the session.
    fn note_bundle_mid(&mut self, sdp: &str) {
        if self.bundle_mid.is_none() {
            self.bundle_mid = first_mid(sdp);
        }
    }

    async fn client_offer(&mut self, sdp: Sdp) -> Result<(), PeerFailed> {
        self.hold_first_offer = false;
        if self.offer_outstanding {
            // Glare: the relay is impolite; the client rolls back, answers ours, offers again.
            return Ok(());
        }
        let Ok(offer) = RTCSessionDescription::offer(sdp.sdp) else {
            self.refuse(ErrorCode::MalformedMessage, "offer: not a valid SDP offer");
            return Ok(());
        };
        if let Err(err) = self.pc.set_remote_description(offer).await {
            tracing::debug!(%err, "client offer refused");
            self.refuse(ErrorCode::MalformedMessage, "offer: not a valid SDP offer");
            return Ok(());
        }
        self.has_remote = true;
        self.flush_early_candidates().await;
        let answer = self
            .pc
            .create_answer(None)
            .await
            .map_err(|_| PeerFailed("create_answer"))?;
        let mut sdp = answer.sdp.clone();
        self.pc
            .set_local_description(answer)
            .await
            .map_err(|_| PeerFailed("set_local_description(answer)"))?;
        match self.dtls_role {
            // A renegotiation: the client gets the role the transport runs with. Only the copy
            // we send is corrected: webrtc-rs takes no SDP but the one it created as its local
            // answer, and it reads the role only on the first exchange (see `super::sdp`).
            Some(role) if answer_setup(&sdp) != Some(role) => sdp = with_setup(&sdp, role),
            Some(_) => {}
            None => self.dtls_role = answer_setup(&sdp),
        }
        self.note_bundle_mid(&sdp);
        self.negotiated.send_modify(|n| *n += 1);
        self.send(ServerMessage::Answer(Sdp { sdp }));
        if self.needs_offer {
            self.negotiate().await?;
        }
        Ok(())
    }

    async fn client_answer(&mut self, sdp: Sdp) -> Result<(), PeerFailed> {
        if !self.offer_outstanding {
            self.refuse(
                ErrorCode::MalformedMessage,
                "answer: no offer is outstanding",
            );
            return Ok(());
        }
        let client_role = role_from_client_answer(&sdp.sdp);
        let Ok(answer) = RTCSessionDescription::answer(sdp.sdp) else {
            self.refuse(
                ErrorCode::MalformedMessage,
                "answer: not a valid SDP answer",
            );
            return Ok(());
        };
        if let Err(err) = self.pc.set_remote_description(answer).await {
            tracing::debug!(%err, "client answer refused");
            self.refuse(
                ErrorCode::MalformedMessage,
                "answer: not a valid SDP answer",
            );
            return Ok(());
        }
        self.offer_outstanding = false;
        self.has_remote = true;
        if self.dtls_role.is_none() {
            self.dtls_role = client_role;
        }
        self.negotiated.send_modify(|n| *n += 1);
        self.flush_early_candidates().await;
        if self.needs_offer {
            self.negotiate().await?;
        }
        Ok(())
    }

    async fn client_candidate(&mut self, c: Candidate) {
        if c.candidate.is_empty() {
            return; // end of candidates
        }
        let init = RTCIceCandidateInit {
            candidate: c.candidate,
            sdp_mid: c.sdp_mid,
            sdp_mline_index: c.sdp_m_line_index,
            username_fragment: c.username_fragment,
            ..Default::default()
        };
        if !self.has_remote {
            if self.early_candidates.len() < MAX_EARLY_CANDIDATES {
                self.early_candidates.push(init);
            }
            return;
        }
        if let Err(err) = self.pc.add_ice_candidate(init).await {
            tracing::debug!(%err, "client candidate refused");
            self.refuse(
                ErrorCode::MalformedMessage,
                "candidate: not a valid ICE candidate",
            );
        }
    }

    async fn flush_early_candidates(&mut self) {
        for init in std::mem::take(&mut self.early_candidates) {
            let _ = self.pc.add_ice_candidate(init).await;
        }
    }

    async fn shutdown(&mut self) {
        for (_, mut forward) in self.forwards.drain() {
            forward.fanout.remove_sink(self.conn);
            forward.stop();
        }
        for (_, publication) in self.publications.drain() {
            publication.fanout.close();
            if let Some((_, _, pump)) = publication.pump {
                pump.abort();
            }
        }
        let _ = self.pc.close().await;
    }
}

/// Writes a subscriber's queued packets to its local track, rewriting only the header: this
/// leg's SSRC and payload type, and the [`FORWARDED_EXTENSIONS`] under this leg's ids (all other
/// header extensions are dropped: their ids were negotiated on the publisher's leg and mean
/// nothing here). Payloads are untouched.
async fn write_loop(mut packets: mpsc::Receiver<rtp::Packet>, writer: Writer) {
    let Writer {
        local,
        sender,
        codec,
        publisher_extensions,
        mut negotiated,
        ssrc,
        ask,
    } = writer;
    // Until an exchange completes after this track was added, the sender's parameters are
    // webrtc-rs's own defaults, not what the subscriber negotiated (its payload types and
    // extension ids may differ: Firefox numbers VP8 120), and webrtc-rs drops, later and
    // silently, a packet with an extension id the leg did not negotiate. So nothing is written
    // before that, and the parameters are read again after every exchange.
    negotiated.mark_unchanged();
    let mut bound = false;
    let mut payload_type: Option<u8> = None;
    let mut extension_ids: Vec<(u8, u8)> = Vec::new();
    // The subscriber joined a stream in progress: it needs a keyframe to start decoding. Ask
    // once the first packet went out (the forward is negotiated and bound), without waiting
    // for the subscriber's own PLI.
    let mut asked = false;
    while let Some(mut packet) = packets.recv().await {
        if negotiated.has_changed().unwrap_or(false) {
            negotiated.mark_unchanged();
            bound = true;
            payload_type = None;
        }
        if !bound {
            continue; // not negotiated yet: drop
        }
        if payload_type.is_none() {
            let params = sender.get_parameters().await.ok();
            payload_type = params
                .as_ref()
                .and_then(|p| negotiated_payload_type(&p.rtp_parameters.codecs, &codec));
            let ours = params
                .map(|p| forwarded(&p.rtp_parameters.header_extensions))
                .unwrap_or_default();
            extension_ids = map_extension_ids(&publisher_extensions, &ours);
        }
        let Some(pt) = payload_type else {
            continue; // not negotiated yet: drop
        };
        packet.header.ssrc = ssrc;
        packet.header.payload_type = pt;
        rewrite_extensions(&mut packet.header, &extension_ids);
        if local.write_rtp(packet).await.is_err() {
            // Not bound yet, or renegotiated: look the payload type up again.
            payload_type = None;
        } else if !asked {
            asked = true;
            let _ = ask.driver.try_send(Input::Keyframe {
                subscriber: ask.subscriber,
                track: ask.track,
            });
        }
    }
}

/// What a forward's [`write_loop`] writes with.
struct Writer {
    /// The subscriber leg's track.
    local: Arc<TrackLocalStaticRTP>,
    /// Its sender, for the negotiated parameters.
    sender: Arc<dyn RtpSender>,
    /// The publisher's codec.
    codec: RTCRtpCodec,
    /// The publisher leg's ids of the forwarded header extensions.
    publisher_extensions: Vec<(String, u8)>,
    /// Moves after each completed exchange on the subscriber's connection.
    negotiated: watch::Receiver<u64>,
    /// This leg's SSRC.
    ssrc: u32,
    ask: KeyframeAsk,
}

/// Where a forward's writer sends its first keyframe request.
struct KeyframeAsk {
    driver: mpsc::Sender<Input>,
    subscriber: ConnId,
    track: TrackId,
}

/// The payload type the subscriber leg's negotiated `codecs` give the publisher's `codec`.
fn negotiated_payload_type(
    codecs: &[rtc::rtp_transceiver::rtp_sender::RTCRtpCodecParameters],
    codec: &RTCRtpCodec,
) -> Option<u8> {
    let same_mime = |c: &&rtc::rtp_transceiver::rtp_sender::RTCRtpCodecParameters| {
        c.rtp_codec.mime_type.eq_ignore_ascii_case(&codec.mime_type)
    };
    codecs
        .iter()
        .filter(same_mime)
        .find(|c| c.rtp_codec.sdp_fmtp_line == codec.sdp_fmtp_line)
        .or_else(|| codecs.iter().find(same_mime))
        .map(|c| c.payload_type)
}

/// The (URI, id) of each [`FORWARDED_EXTENSIONS`] entry among `negotiated`.
fn forwarded(negotiated: &[RTCRtpHeaderExtensionParameters]) -> Vec<(String, u8)> {
    negotiated
        .iter()
        .filter(|e| FORWARDED_EXTENSIONS.contains(&e.uri.as_str()))
        .filter_map(|e| Some((e.uri.clone(), u8::try_from(e.id).ok()?)))
        .collect()
}

/// (publisher id, subscriber id) for each extension both legs negotiated.
fn map_extension_ids(publisher: &[(String, u8)], subscriber: &[(String, u8)]) -> Vec<(u8, u8)> {
    publisher
        .iter()
        .filter_map(|(uri, from)| {
            let (_, to) = subscriber.iter().find(|(u, _)| u == uri)?;
            Some((*from, *to))
        })
        .collect()
}

/// Keeps only the extensions in `ids` (publisher id, subscriber id), renumbered; drops the rest.
/// Uses the two-byte form (RFC 8285) when one value is over 16 bytes, as the dependency
/// descriptor's template structure on keyframes often is.
fn rewrite_extensions(header: &mut rtp::header::Header, ids: &[(u8, u8)]) {
    let kept: Vec<(u8, bytes::Bytes)> = ids
        .iter()
        .filter_map(|&(from, to)| header.get_extension(from).map(|value| (to, value)))
        .collect();
    header.extension = false;
    header.extension_profile = 0;
    header.extensions.clear();
    header.extensions_padding = 0;
    if kept.is_empty() {
        return;
    }
    let two_byte = kept
        .iter()
        .any(|(id, value)| *id > 14 || value.is_empty() || value.len() > 16);
    header.extension = true;
    header.extension_profile = if two_byte {
        rtp::header::EXTENSION_PROFILE_TWO_BYTE
    } else {
        rtp::header::EXTENSION_PROFILE_ONE_BYTE
    };
    for (id, value) in kept {
        // Too long even for two bytes: that extension alone is left out.
        let _ = header.set_extension(id, value);
    }
}

/// Reads RTCP from the subscriber about a forwarded track: PLI and FIR become keyframe requests
/// for the core (which rate limits them). The track yields nothing until negotiation binds it,
/// so this polls, slowly, until then; it ends when the forward is removed (aborted).
async fn rtcp_loop(
    local: Arc<TrackLocalStaticRTP>,
    driver: mpsc::Sender<Input>,
    subscriber: ConnId,
    track: TrackId,
) {
    loop {
        match local.poll().await {
            Some(TrackLocalEvent::OnRtcpPacket(packets)) => {
                if packets.iter().any(|p| is_keyframe_request(p.as_ref())) {
                    let _ = driver.try_send(Input::Keyframe { subscriber, track });
                }
            }
            Some(_) => {}
            None => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// A random SSRC for a forwarded track.
fn random_ssrc() -> u32 {
    let mut bytes = [0u8; 4];
    if getrandom::fill(&mut bytes).is_err() {
        // The OS RNG failed: any value works, SSRCs need only be unique per connection.
        return 0x4855_5348;
    }
    u32::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use rtc::shared::marshal::{Marshal, Unmarshal};
    use rtp::header::{EXTENSION_PROFILE_ONE_BYTE, EXTENSION_PROFILE_TWO_BYTE, Header};

    /// A publisher's header with two-byte extensions: a 30-byte dependency descriptor (5),
    /// abs-send-time (2) and the camera orientation (7).
    fn publisher_header() -> Header {
        let mut h = Header {
            version: 2,
            payload_type: 96,
            sequence_number: 7,
            timestamp: 9,
            ssrc: 1,
            extension: true,
            extension_profile: EXTENSION_PROFILE_TWO_BYTE,
            ..Default::default()
        };
        h.set_extension(5, Bytes::from(vec![0xd0; 30])).unwrap();
        h.set_extension(2, Bytes::from_static(&[1, 2, 3])).unwrap();
        h.set_extension(7, Bytes::from_static(&[1])).unwrap();
        h
    }

    fn round_trip(h: &Header) -> Header {
        let raw = h.marshal().unwrap();
        Header::unmarshal(&mut raw.freeze()).unwrap()
    }

    #[test]
    fn forwarded_extensions_are_renumbered_and_the_rest_dropped() {
        let mut h = publisher_header();
        rewrite_extensions(&mut h, &[(5, 12), (7, 13)]);
        let back = round_trip(&h);
        assert_eq!(
            back.extension_profile, EXTENSION_PROFILE_TWO_BYTE,
            "30 bytes need two"
        );
        assert_eq!(back.get_extension(12).unwrap().as_ref(), &[0xd0; 30][..]);
        assert_eq!(back.get_extension(13).unwrap().as_ref(), &[1]);
        for gone in [2, 5, 7] {
            assert!(back.get_extension(gone).is_none(), "id {gone} left over");
        }
    }

    #[test]
    fn short_values_use_the_one_byte_form() {
        let mut h = publisher_header();
        rewrite_extensions(&mut h, &[(7, 3)]);
        let back = round_trip(&h);
        assert_eq!(back.extension_profile, EXTENSION_PROFILE_ONE_BYTE);
        assert_eq!(back.get_extension(3).unwrap().as_ref(), &[1]);
        assert_eq!(back.extensions.len(), 1);
    }

    #[test]
    fn nothing_mapped_means_no_extension_block() {
        let mut h = publisher_header();
        rewrite_extensions(&mut h, &[]);
        assert!(!h.extension);
        assert_eq!(round_trip(&h).marshal().unwrap().len(), 12);
        // A mapping for an extension this packet does not carry changes nothing either.
        let mut h = publisher_header();
        rewrite_extensions(&mut h, &[(9, 4)]);
        assert!(!round_trip(&h).extension);
    }

    #[test]
    fn only_extensions_both_legs_negotiated_are_mapped() {
        let dd = FORWARDED_EXTENSIONS[0].to_owned();
        let cvo = FORWARDED_EXTENSIONS[1].to_owned();
        let publisher = vec![(dd.clone(), 5), (cvo.clone(), 7)];
        let subscriber = vec![(cvo, 13)];
        assert_eq!(map_extension_ids(&publisher, &subscriber), vec![(7, 13)]);
        assert!(map_extension_ids(&[], &subscriber).is_empty());
        let negotiated = vec![
            RTCRtpHeaderExtensionParameters {
                uri: dd,
                id: 11,
                ..Default::default()
            },
            RTCRtpHeaderExtensionParameters {
                uri: "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time".into(),
                id: 2,
                ..Default::default()
            },
        ];
        assert_eq!(
            forwarded(&negotiated).len(),
            1,
            "per-hop extensions never forwarded"
        );
    }

    #[test]
    fn payload_type_follows_the_subscribers_numbering() {
        use rtc::rtp_transceiver::rtp_sender::RTCRtpCodecParameters;
        let vp8 = |pt| RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: "video/VP8".into(),
                clock_rate: 90_000,
                ..Default::default()
            },
            payload_type: pt,
        };
        let publisher = vp8(96).rtp_codec;
        assert_eq!(negotiated_payload_type(&[vp8(120)], &publisher), Some(120));
        let h264 = RTCRtpCodec {
            mime_type: "video/H264".into(),
            ..Default::default()
        };
        assert_eq!(
            negotiated_payload_type(&[vp8(120)], &h264),
            None,
            "not negotiated"
        );
    }
}
