//! One participant's PeerConnection, run as an actor task.
//!
//! The driver sends [`PeerCommand`]s; webrtc-rs callbacks and helper tasks send [`PeerEvent`]s.
//! Everything that touches the PeerConnection's negotiation state happens on this one task, so
//! offers, answers and track changes never interleave. A failure here ends this peer only: the
//! client gets a fatal error and the driver closes its connection.
//!
//! The actor's work falls along three seams: offer/answer with the client ([`negotiation`]),
//! this peer's own tracks coming in ([`publishing`]), and other participants' tracks going out
//! to it ([`forwarding`]); keyframe feedback both ways is in [`super::feedback`].

mod allocation;
mod forwarding;
mod negotiation;
mod publishing;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use hush_proto::{ErrorCode, ServerMessage, Source, TrackId};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceCandidateInit, RTCIceCandidateType, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, Registry, SettingEngineBuilder, configure_simulcast_extension_headers,
    configure_twcc,
};

use self::allocation::{ALLOCATION_INTERVAL, SharedEstimate};
use self::forwarding::Forward;
use self::publishing::Publication;
use super::MediaOptions;
use super::allocator::{Allocator, AllocatorConfig};
use super::fanout::Fanout;
use super::feedback::KeyframeFeedback;
use super::header::FORWARDED_EXTENSIONS;
use super::ports::PortLease;
use super::retransmit::Retransmitter;
use super::sdp::Setup;
use super::threads::ThreadLease;
use crate::bus::{Input, Outgoing};
use crate::routing::{ConnId, MediaSignal};

/// Commands queued per peer before the peer counts as stuck and is closed.
pub(crate) const COMMAND_QUEUE: usize = 256;
/// Callback events queued per peer.
const EVENT_QUEUE: usize = 256;

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
    /// This peer shows a forwarded track at this size (device pixels).
    VideoSize {
        track: TrackId,
        width: u32,
        height: u32,
    },
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
    /// The first-offer hold ([`MediaOptions::first_offer_hold`]) is over.
    HoldOver,
}

/// The driver's handle on a peer actor; dropping it ends the actor.
pub(crate) struct PeerHandle {
    commands: mpsc::Sender<PeerCommand>,
    /// The session's place on its media thread, given back with the handle.
    _lease: Option<ThreadLease>,
}

impl PeerHandle {
    /// Queues `command` for the actor; `false` if its queue is full (a stuck actor) or it ended.
    pub(crate) fn try_command(&self, command: PeerCommand) -> bool {
        self.commands.try_send(command).is_ok()
    }
}

/// Starts the actor for `conn` on `thread` (its room's media thread, [`super::threads`]; the
/// PeerConnection it builds there runs its webrtc-rs tasks and socket there too). It builds its
/// PeerConnection itself, so this returns at once. `hold_first_offer`: the relay's first offer
/// waits for the client's ([`MediaOptions::first_offer_hold`]); `false` for a client that said
/// it publishes nothing.
pub(crate) fn spawn(
    conn: ConnId,
    options: MediaOptions,
    outgoing: mpsc::Sender<Outgoing>,
    driver: mpsc::Sender<Input>,
    hold_first_offer: bool,
    (thread, lease): (Handle, Option<ThreadLease>),
) -> PeerHandle {
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let failure = driver.clone();
    let actor = thread.spawn(run(conn, options, outgoing, driver, rx, hold_first_offer));
    // Supervise: a panic or error inside the actor closes this participant only.
    tokio::spawn(async move {
        let failed = !matches!(actor.await, Ok(Ok(())));
        if failed {
            let _ = failure.send(Input::MediaFailed { conn }).await;
        }
    });
    PeerHandle {
        commands: tx,
        _lease: lease,
    }
}

struct Handler {
    events: mpsc::Sender<PeerEvent>,
    /// Whether the connection is connected now (ICE and DTLS up): forwards wait for it before
    /// they ask a publisher for the subscriber's first keyframe.
    connected: Arc<watch::Sender<bool>>,
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
        self.connected
            .send_replace(state == RTCPeerConnectionState::Connected);
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

struct Peer {
    conn: ConnId,
    /// The media port leased from [`MediaOptions::udp_ports`], given back when the peer ends.
    _port: Option<PortLease>,
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
    /// Client candidates taken since the last remote description
    /// ([`negotiation::MAX_REMOTE_CANDIDATES`]).
    remote_candidates: usize,
    /// The relay's DTLS role, fixed by the first completed exchange (see [`super::sdp`]).
    dtls_role: Option<Setup>,
    /// The mid that names the bundled transport in our candidates.
    bundle_mid: Option<String>,
    /// Our first offer waits for the client's (see [`MediaOptions::first_offer_hold`]).
    hold_first_offer: bool,
    /// Counts completed offer/answer exchanges; forwards re-read their negotiated parameters
    /// when it moves.
    negotiated: watch::Sender<u64>,
    /// Whether the connection is connected (set by [`Handler`]).
    connected: Arc<watch::Sender<bool>>,
    /// The downlink bandwidth estimate (bits/s as `f64` bits; see [`allocation`]).
    estimate: Arc<AtomicU64>,
    /// Splits it among the forwarded videos.
    allocator: Allocator,
    /// The allocator's clock starts here.
    started: Instant,
    /// The layers chosen last (for the log).
    last_allocation: Vec<Option<u8>>,
}

async fn run(
    conn: ConnId,
    options: MediaOptions,
    outgoing: mpsc::Sender<Outgoing>,
    driver: mpsc::Sender<Input>,
    mut commands: mpsc::Receiver<PeerCommand>,
    hold_first_offer: bool,
) -> Result<(), PeerFailed> {
    let (events_tx, mut events) = mpsc::channel(EVENT_QUEUE);
    let connected = Arc::new(watch::Sender::new(false));
    let built = bind_pc(&options, &events_tx, &connected).await;
    let (pc, estimate, port) = match built {
        Ok(built) => built,
        Err(err) => {
            tracing::warn!(conn = conn.get(), %err, "cannot create a peer connection");
            let msg = ServerMessage::error(ErrorCode::ServerBusy, "no media port available", true);
            let _ = outgoing.try_send(Outgoing::Text(msg.encode()));
            return Err(PeerFailed("build"));
        }
    };
    let mut peer = Peer {
        conn,
        _port: port,
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
        remote_candidates: 0,
        dtls_role: None,
        bundle_mid: None,
        hold_first_offer,
        negotiated: watch::Sender::new(0),
        connected,
        estimate,
        allocator: Allocator::new(AllocatorConfig::default(), 0),
        started: Instant::now(),
        last_allocation: Vec::new(),
    };
    let mut allocation = tokio::time::interval(ALLOCATION_INTERVAL);
    allocation.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let hold_events = peer.events_tx.clone();
    let hold_for = peer.options.first_offer_hold;
    let hold = tokio::spawn(async move {
        if hold_first_offer {
            tokio::time::sleep(hold_for).await;
            let _ = hold_events.send(PeerEvent::HoldOver).await;
        }
    });
    let result = loop {
        let step = tokio::select! {
            command = commands.recv() => match command {
                Some(command) => peer.command(command).await,
                None => break Ok(()),
            },
            Some(event) = events.recv() => peer.event(event).await,
            _ = allocation.tick() => {
                peer.allocate();
                Ok(())
            }
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

/// Tries so many leases of [`MediaOptions::udp_ports`] when ports are taken by other programs.
const PORT_TRIES: usize = 8;

/// Builds the peer connection on a leased port (the next lease when one does not bind), or
/// on any free port without a range.
async fn bind_pc(
    options: &MediaOptions,
    events: &mpsc::Sender<PeerEvent>,
    connected: &Arc<watch::Sender<bool>>,
) -> Result<(Arc<dyn PeerConnection>, Arc<AtomicU64>, Option<PortLease>), String> {
    let Some(range) = &options.udp_ports else {
        return build_pc(options, 0, events.clone(), Arc::clone(connected))
            .await
            .map(|(pc, estimate)| (pc, estimate, None))
            .map_err(|e| e.to_string());
    };
    let mut last = "every media port is in use".to_owned();
    for _ in 0..PORT_TRIES.min(range.len()) {
        let Some(lease) = range.lease() else { break };
        // webrtc-rs logs a socket that does not bind and goes on without it: try it first.
        if let Err(e) = std::net::UdpSocket::bind((options.udp_ip, lease.port())) {
            last = format!("port {}: {e}", lease.port());
            continue;
        }
        match build_pc(options, lease.port(), events.clone(), Arc::clone(connected)).await {
            Ok((pc, estimate)) => return Ok((pc, estimate, Some(lease))),
            Err(e) => last = format!("port {}: {e}", lease.port()),
        }
    }
    Err(last)
}

async fn build_pc(
    options: &MediaOptions,
    port: u16,
    events: mpsc::Sender<PeerEvent>,
    connected: Arc<watch::Sender<bool>>,
) -> webrtc::error::Result<(Arc<dyn PeerConnection>, Arc<AtomicU64>)> {
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
    // webrtc-rs's default interceptors (NACK, RTCP reports, simulcast header extensions), with
    // transport-wide congestion control both ways: its feedback to publishers drives their
    // browsers' estimates (and so which simulcast layers they send), and the feedback
    // subscribers send back drives this leg's estimate (`allocation`). No pacer: forwarded
    // media leaves as it arrives (a pacer at the estimate would hold every keyframe back),
    // and the allocator keeps the rate under the estimate by choosing layers.
    //
    // Sender reports only, no receiver reports. A browser sends the `mid` and `rid` header
    // extensions on a simulcast encoding until a receiver report acknowledges its SSRC, and
    // webrtc-rs 0.21 forgets which SSRC carries which `rid` at every renegotiation
    // (`start_rtp` rebuilds the receive codings from the SDP); a publisher's encodings that no
    // longer name their `rid` are then dropped for the rest of the call. Without receiver
    // reports the browser keeps naming them (about 8 bytes a packet), and a renegotiation,
    // which happens whenever anyone joins, costs nothing. The publisher's estimate does not
    // need them: transport-wide feedback carries loss and delay.
    //
    // NACK both ways: webrtc-rs's generator asks publishers for what the relay lost, and
    // `Retransmitter` (instead of webrtc-rs's responder: a short history and a budget) answers
    // subscribers.
    let (estimator, estimate) = SharedEstimate::new();
    for parameter in ["", "pli"] {
        media.register_feedback(
            RTCPFeedback {
                typ: "nack".to_owned(),
                parameter: parameter.to_owned(),
            },
            RtpCodecKind::Video,
        );
    }
    let registry = Registry::new()
        .with(
            rtc::interceptor::Slot::NackGenerator,
            rtc::interceptor::NackGeneratorBuilder::new().build(),
        )
        .with(
            rtc::interceptor::Slot::NackResponder,
            Retransmitter::new(
                Arc::clone(&estimate),
                Arc::clone(&options.retransmits_refused),
            ),
        )
        .with(
            rtc::interceptor::Slot::SenderReport,
            rtc::interceptor::SenderReportBuilder::new().build(),
        );
    configure_simulcast_extension_headers(&mut media)?;
    let registry = configure_twcc(registry, &mut media)?
        .with(
            rtc::interceptor::Slot::CongestionControl,
            rtc::interceptor::CongestionControlBuilder::new(estimator).build(),
        )
        // Last in the chain (the example `rtcp-processing` uses the same slot): keyframe
        // requests from subscribers reach `rtcp_loop`.
        .with(
            rtc::interceptor::Slot::from(14_000),
            KeyframeFeedback::default(),
        );
    let mut settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .with_include_loopback_candidate(options.udp_ip.is_loopback())
        // When the relay offers first it is the controlling ICE agent, and webrtc-rs waits
        // before nominating a pair whose remote side is peer-reflexive (1 s) or
        // server-reflexive (0.5 s), counted from the start of checks: a browser's address is
        // usually learnt from its first check (peer-reflexive) before its trickled candidate
        // arrives, so every such join waited a second. A pair whose check succeeded is a path
        // that works; the relay has one address per family, so there is no better pair to wait
        // for. TURN pairs keep webrtc-rs's wait, so a direct path is preferred when one exists.
        .with_host_acceptance_min_wait(Some(Duration::ZERO))
        .with_srflx_acceptance_min_wait(Some(Duration::ZERO))
        .with_prflx_acceptance_min_wait(Some(Duration::ZERO));
    if let Some(public) = options.public_ip {
        settings = settings.with_nat_1to1_ips(vec![public.to_string()], RTCIceCandidateType::Host);
    }
    let config = RTCConfigurationBuilder::new().build();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(config)
        .with_media_engine(media)
        .with_setting_engine(settings.build())
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(Handler { events, connected }))
        .with_udp_addrs(vec![std::net::SocketAddr::new(options.udp_ip, port)])
        .build()
        .await?;
    Ok((Arc::new(pc), estimate))
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
                self.published(mid, source, fanout).await;
                Ok(())
            }
            PeerCommand::Unpublished { track } => {
                self.unpublished(track);
                Ok(())
            }
            PeerCommand::AddForward { publisher, fanout } => {
                self.add_forward(publisher, fanout);
                Ok(())
            }
            PeerCommand::RemoveForward { publisher, track } => {
                self.remove_forward(publisher, track).await
            }
            PeerCommand::Keyframe { track } => {
                self.request_keyframe(track).await;
                Ok(())
            }
            PeerCommand::VideoSize {
                track,
                width,
                height,
            } => {
                self.video_size(track, width, height);
                Ok(())
            }
        }
    }

    async fn event(&mut self, event: PeerEvent) -> Result<(), PeerFailed> {
        match event {
            PeerEvent::Candidate(init) => {
                self.local_candidate(init);
                Ok(())
            }
            PeerEvent::Failed => Err(PeerFailed("ice or dtls failed")),
            PeerEvent::Track(remote) => {
                self.remote_track(remote).await;
                Ok(())
            }
            PeerEvent::ForwardReady { key, codec } => self.add_forward_track(key, codec).await,
            PeerEvent::HoldOver => self.hold_over().await,
        }
    }

    async fn shutdown(&mut self) {
        for (_, forward) in self.forwards.drain() {
            forward.end(self.conn);
        }
        for (_, publication) in self.publications.drain() {
            publication.end();
        }
        let _ = self.pc.close().await;
    }
}
