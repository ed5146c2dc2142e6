//! The client: signaling over WebSocket, one webrtc-rs PeerConnection (the polite peer), a
//! hush-keys [`Session`] fed by the relay's membership log, and the frame layer.
//!
//! One driver task owns the WebSocket, the PeerConnection's negotiation and the key session;
//! the application talks to it through a bounded command queue and reads [`ClientEvent`]s from a
//! bounded queue (events that do not fit are dropped and counted). Received tracks each get a
//! task that reassembles frames and decrypts them. Nothing from the network can panic it: every
//! message is decoded into a typed value or dropped and counted.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hush_frame::{CipherSuite, Codec, Layout};
use hush_keys::{
    Change, Config, Destination, IdentityKeyPair, IdentityPublicKey, Input, Member,
    MembershipEvent, Output, Session,
};
use hush_proto::{
    AccessToken, ClientMessage, E2eeTo, ErrorCode, Grants, Join, LeaveReason, OpaqueBytes,
    ParticipantId, ParticipantInfo, Publish, RoomId, ServerMessage, Source, TrackId, TrackInfo,
};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use rtc::ice::mdns::MulticastDnsMode;
use rtc::media::Sample;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use rtc::rtp::packetizer::Depacketizer;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use webrtc::media_stream::MediaStreamTrack;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceCandidateInit, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, RTCSessionDescription, Registry, SettingEngineBuilder,
    register_default_interceptors,
};
use webrtc::rtp_transceiver::RtpSender;

use crate::crypto::{FrameCrypto, Sealed, Stats, context_of};
use crate::error::ClientError;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Called for every frame that decrypted, with the plaintext (tests check its content).
pub type FrameSink = Arc<dyn Fn(&ReceivedFrame<'_>) + Send + Sync>;

/// A decrypted frame, lent to the [`FrameSink`].
#[derive(Debug)]
pub struct ReceivedFrame<'a> {
    /// The sender's index (from the track's stream id `p<index>`).
    pub sender_index: u32,
    /// Audio or video.
    pub kind: MediaKind,
    /// The plaintext frame.
    pub data: &'a [u8],
}

/// Audio or video.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaKind {
    /// Opus.
    Audio,
    /// VP8.
    Video,
}

/// How to connect.
#[derive(Clone)]
pub struct ClientOptions {
    /// Sources to publish (one send transceiver each, added before the first offer): `Camera`
    /// sends VP8, `Microphone` Opus.
    pub publish: Vec<Source>,
    /// The SFrame cipher suite (every member must use the same).
    pub suite: CipherSuite,
    /// The room to name in `join` (the token's room must match); `None` to let the token decide.
    pub room: Option<RoomId>,
    /// Limit for opening the WebSocket and getting `joined`.
    pub connect_timeout: Duration,
    /// Capacity of the event queue.
    pub event_capacity: usize,
    /// Called with every decrypted frame.
    pub frame_sink: Option<FrameSink>,
    /// Local UDP address for media (loopback by default).
    pub udp_addr: String,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            publish: Vec::new(),
            suite: CipherSuite::Aes128GcmSha256_128,
            room: None,
            connect_timeout: Duration::from_secs(10),
            event_capacity: 256,
            frame_sink: None,
            udp_addr: "127.0.0.1:0".to_owned(),
        }
    }
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("publish", &self.publish)
            .field("suite", &self.suite)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

/// What the client tells the application.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// Someone joined.
    ParticipantJoined {
        /// Who.
        participant: ParticipantId,
        /// Their sender index.
        sender_index: u32,
    },
    /// Someone left or was removed.
    ParticipantLeft {
        /// Who.
        participant: ParticipantId,
        /// Why.
        reason: LeaveReason,
    },
    /// A track was published in the room.
    TrackPublished(TrackInfo),
    /// A forwarded track arrived on the PeerConnection.
    TrackReceived {
        /// The publisher's sender index.
        sender_index: u32,
        /// Audio or video.
        kind: MediaKind,
    },
    /// The key layer switched local streams to a new epoch.
    EpochSwitched(u64),
    /// The safety code changed.
    SafetyCode(u64),
    /// The relay refused something; `fatal` ends the session.
    Error {
        /// The code.
        code: ErrorCode,
        /// The relay's message.
        message: String,
        /// Whether the relay closes.
        fatal: bool,
    },
    /// The PeerConnection's state changed.
    Connection(RTCPeerConnectionState),
    /// The signaling connection closed; no more events follow.
    Closed,
}

/// State shared by the handle, the driver and the receive tasks. Never held across an await.
struct Shared {
    crypto: Mutex<FrameCrypto>,
    sink: Option<FrameSink>,
    events: mpsc::Sender<ClientEvent>,
}

impl Shared {
    fn crypto(&self) -> MutexGuard<'_, FrameCrypto> {
        // A poisoned lock means a receive task panicked mid-update; the counters stay usable.
        self.crypto.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn event(&self, ev: ClientEvent) {
        if self.events.try_send(ev).is_err() {
            self.crypto().stats.events_dropped += 1;
        }
    }
}

/// A local published track.
struct LocalTrack {
    track: Arc<TrackLocalStaticSample>,
    sender: Arc<dyn RtpSender>,
    ssrc: u32,
    payload_type: Mutex<Option<u8>>,
}

/// What the handle asks of the driver.
enum Command {
    Leave(oneshot::Sender<()>),
    Send(ClientMessage),
    UsageLimitNear(Source),
}

/// What the PeerConnection's handler tells the driver.
enum PcEvent {
    Candidate(RTCIceCandidateInit),
    State(RTCPeerConnectionState),
}

/// What the relay said at join.
#[derive(Clone, Debug)]
pub struct JoinInfo {
    /// This participant's id.
    pub you: ParticipantId,
    /// This participant's sender index.
    pub sender_index: u32,
    /// Its join sequence number.
    pub join_seq: u64,
    /// The room.
    pub room: RoomId,
    /// The grants the token gave.
    pub grants: Grants,
}

/// A connected participant. Dropping it ends the driver; [`Client::leave`] leaves cleanly.
pub struct Client {
    info: JoinInfo,
    shared: Arc<Shared>,
    cmd: mpsc::Sender<Command>,
    events: mpsc::Receiver<ClientEvent>,
    tracks: HashMap<Source, Arc<LocalTrack>>,
    pc: Arc<dyn PeerConnection>,
    driver: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("sender_index", &self.info.sender_index)
            .finish_non_exhaustive()
    }
}

fn io_err(e: impl std::fmt::Display) -> ClientError {
    ClientError::Signaling(e.to_string())
}

fn proto_id(id: &hush_keys::ParticipantId) -> Option<ParticipantId> {
    let s = std::str::from_utf8(id.as_bytes()).ok()?;
    ParticipantId::new(s).ok()
}

fn member_of(p: &ParticipantInfo) -> Option<Member> {
    Some(Member {
        participant: hush_keys::ParticipantId::new(p.id.as_str()).ok()?,
        sender_index: hush_keys::SenderIndex::new(p.sender_index.0)?,
        join_seq: p.join_seq,
        identity: IdentityPublicKey::from_slice(p.identity_key.as_bytes()).ok()?,
        attestation: None,
    })
}

impl Client {
    /// Opens `url` (`ws://host:port/v1/rtc`), joins with `token`, builds the PeerConnection and
    /// publishes `options.publish`. Returns once `joined` arrived; negotiation goes on in the
    /// background.
    pub async fn connect(
        url: &str,
        token: AccessToken,
        options: ClientOptions,
    ) -> Result<Client, ClientError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|_| ClientError::Media("no OS randomness".into()))?;
        let mut rng = ChaCha20Rng::from_seed(seed);
        let identity = IdentityKeyPair::generate(&mut rng);

        let t = options.connect_timeout;
        let (mut ws, _) = tokio::time::timeout(t, tokio_tungstenite::connect_async(url))
            .await
            .map_err(|_| ClientError::Timeout("websocket"))?
            .map_err(io_err)?;
        let join = ClientMessage::Join(Join {
            token,
            room: options.room.clone(),
            identity_key: OpaqueBytes::new(identity.public().as_bytes().to_vec()),
            attestation: None,
        });
        ws.send(Message::text(join.encode()))
            .await
            .map_err(io_err)?;
        let joined = tokio::time::timeout(t, async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(text))) => match ServerMessage::decode(text.as_str()) {
                        Ok(ServerMessage::Joined(j)) => return Ok(j),
                        Ok(ServerMessage::Error(e)) => {
                            return Err(ClientError::Refused {
                                code: e.code,
                                message: e.message,
                            });
                        }
                        Ok(_) => return Err(ClientError::Protocol("message before joined")),
                        Err(_) => return Err(ClientError::Protocol("undecodable message")),
                    },
                    Some(Ok(Message::Close(_))) | None => return Err(ClientError::Closed),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(io_err(e)),
                }
            }
        })
        .await
        .map_err(|_| ClientError::Timeout("joined"))??;

        let info = JoinInfo {
            you: joined.you.clone(),
            sender_index: joined.sender_index.0,
            join_seq: joined.join_seq,
            room: joined.room.clone(),
            grants: joined.grants.clone(),
        };
        let (ev_tx, ev_rx) = mpsc::channel(options.event_capacity.max(1));
        let shared = Arc::new(Shared {
            crypto: Mutex::new(FrameCrypto::new(options.suite)),
            sink: options.frame_sink.clone(),
            events: ev_tx,
        });

        // The key session, fed the snapshot: the others (oldest first) and this member.
        let room = hush_keys::RoomId::new(joined.room.as_str())
            .map_err(|_| ClientError::Protocol("room id"))?;
        let me = hush_keys::ParticipantId::new(joined.you.as_str())
            .map_err(|_| ClientError::Protocol("participant id"))?;
        let mut members: Vec<Member> = joined.participants.iter().filter_map(member_of).collect();
        members.push(Member {
            participant: me.clone(),
            sender_index: hush_keys::SenderIndex::new(joined.sender_index.0)
                .ok_or(ClientError::Protocol("sender index out of range"))?,
            join_seq: joined.join_seq,
            identity: *identity.public(),
            attestation: None,
        });
        let mut config = Config::new(room);
        config.room_instance = joined.room_instance.map(|i| *i.as_bytes());
        let mut session = Session::new(config, identity, me, rng.clone());
        let clock = tokio::time::Instant::now();
        let now = hush_keys::Instant::from_millis(0);
        session.handle_input(
            now,
            Input::Joined {
                seq: joined.join_seq,
                members,
            },
        )?;

        // The PeerConnection.
        let (pc_tx, pc_rx) = mpsc::channel(256);
        let handler = Arc::new(Handler {
            tx: pc_tx,
            shared: shared.clone(),
        });
        let mut media = MediaEngine::default();
        media.register_default_codecs()?;
        let registry = register_default_interceptors(Registry::new(), &mut media)?;
        let settings = SettingEngineBuilder::new()
            .with_multicast_dns_mode(MulticastDnsMode::Disabled)
            .build();
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings)
            .with_handler(handler)
            .with_udp_addrs(vec![options.udp_addr.clone()])
            .build()
            .await?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);

        let mut tracks = HashMap::new();
        let mut transceivers = Vec::new();
        for &source in &options.publish {
            if tracks.contains_key(&source) {
                continue;
            }
            let (kind, codec) = match source {
                Source::Microphone => (
                    RtpCodecKind::Audio,
                    RTCRtpCodec {
                        mime_type: MIME_TYPE_OPUS.to_owned(),
                        clock_rate: 48_000,
                        channels: 2,
                        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
                        rtcp_feedback: vec![],
                    },
                ),
                _ => (
                    RtpCodecKind::Video,
                    RTCRtpCodec {
                        mime_type: MIME_TYPE_VP8.to_owned(),
                        clock_rate: 90_000,
                        channels: 0,
                        sdp_fmtp_line: String::new(),
                        rtcp_feedback: vec![],
                    },
                ),
            };
            let ssrc = rng.next_u32();
            let track = Arc::new(TrackLocalStaticSample::new(
                std::time::Instant::now(),
                MediaStreamTrack::new(
                    format!("p{}", joined.sender_index.0),
                    source.as_str().to_owned(),
                    source.as_str().to_owned(),
                    kind,
                    vec![RTCRtpEncodingParameters {
                        rtp_coding_parameters: RTCRtpCodingParameters {
                            ssrc: Some(ssrc),
                            ..Default::default()
                        },
                        codec,
                        ..Default::default()
                    }],
                ),
            )?);
            let init = RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Sendonly,
                streams: vec![],
                send_encodings: vec![],
            };
            let tr = pc
                .add_transceiver_from_track(track.clone() as Arc<dyn TrackLocal>, Some(init))
                .await?;
            let sender = tr
                .sender()
                .await?
                .ok_or(ClientError::Media("no sender".into()))?;
            transceivers.push((source, tr));
            tracks.insert(
                source,
                Arc::new(LocalTrack {
                    track,
                    sender,
                    ssrc,
                    payload_type: Mutex::new(None),
                }),
            );
            session.handle_input(now, Input::LocalStreamStarted(context_of(source)))?;
        }

        let (cmd_tx, cmd_rx) = mpsc::channel(256);
        let mut driver = Driver {
            ws,
            pc: pc.clone(),
            session,
            clock,
            shared: shared.clone(),
            me: joined.you.clone(),
            remote_tracks: joined
                .tracks
                .iter()
                .filter(|t| t.participant != joined.you)
                .map(|t| t.track)
                .collect(),
            making_offer: false,
            pending_candidates: VecDeque::new(),
            publish: transceivers,
            published: false,
            reported: Reported::default(),
        };
        driver.drain_session().await;
        let handle = tokio::spawn(async move { driver.run(cmd_rx, pc_rx).await });
        Ok(Client {
            info,
            shared,
            cmd: cmd_tx,
            events: ev_rx,
            tracks,
            pc,
            driver: handle,
        })
    }

    /// What the relay said at join.
    pub fn info(&self) -> &JoinInfo {
        &self.info
    }

    /// The next event, `None` once the client closed.
    pub async fn next_event(&mut self) -> Option<ClientEvent> {
        self.events.recv().await
    }

    /// An event if one is queued.
    pub fn try_event(&mut self) -> Option<ClientEvent> {
        self.events.try_recv().ok()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.shared.crypto().stats.clone()
    }

    /// Encrypts `frame` for `source` and sends it as one sample lasting `duration`. Returns
    /// `Ok(false)` when the frame was dropped (no key yet, not negotiated yet): a frame is
    /// never sent in the clear.
    pub async fn send_frame(
        &self,
        source: Source,
        frame: &[u8],
        duration: Duration,
    ) -> Result<bool, ClientError> {
        let local = self.tracks.get(&source).ok_or(ClientError::NotPublished)?;
        let mut buf = frame.to_vec();
        let sealed = self.shared.crypto().encrypt(source, &mut buf);
        match sealed {
            Sealed::Ok { rotate } => {
                if rotate {
                    let _ = self.cmd.try_send(Command::UsageLimitNear(source));
                }
            }
            Sealed::NoKey | Sealed::Failed => return Ok(false),
        }
        let pt =
            {
                let cached = *local.payload_type.lock().unwrap_or_else(|p| p.into_inner());
                match cached {
                    Some(pt) => Some(pt),
                    None => {
                        let pt =
                            local.sender.get_parameters().await.ok().and_then(|p| {
                                p.rtp_parameters.codecs.first().map(|c| c.payload_type)
                            });
                        if pt.is_some() {
                            *local.payload_type.lock().unwrap_or_else(|p| p.into_inner()) = pt;
                        }
                        pt
                    }
                }
            };
        let written = match pt {
            Some(pt) => {
                let sample = Sample {
                    data: Bytes::from(buf),
                    duration,
                    ..Sample::new(std::time::Instant::now())
                };
                local
                    .track
                    .sample_writer(local.ssrc, pt)
                    .write_sample(&sample)
                    .await
                    .is_ok()
            }
            None => false,
        };
        if !written {
            self.shared
                .crypto()
                .stats
                .sent
                .entry(source)
                .or_default()
                .write_errors += 1;
        }
        Ok(written)
    }

    /// Sends a raw signaling message (moderation, subscribe, ...).
    pub async fn send_message(&self, message: ClientMessage) -> Result<(), ClientError> {
        self.cmd
            .send(Command::Send(message))
            .await
            .map_err(|_| ClientError::Closed)
    }

    /// Runs `f` on the client's decryptor (its current receive keys): for tests that replay
    /// recorded frames.
    pub fn with_decryptor<T>(&self, f: impl FnOnce(&mut hush_frame::Decryptor) -> T) -> T {
        f(self.shared.crypto().decryptor_mut())
    }

    /// Sends `leave`, closes the PeerConnection and the WebSocket, and returns the final
    /// counters. The decryptor keeps the keys it had (see [`Client::with_decryptor`]).
    pub async fn leave(&mut self) -> Stats {
        let (tx, rx) = oneshot::channel();
        if self.cmd.send(Command::Leave(tx)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(3), rx).await;
        }
        let _ = self.pc.close().await;
        self.stats()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// The PeerConnection's event handler: candidates and states to the driver, tracks to a
/// receive task each.
struct Handler {
    tx: mpsc::Sender<PcEvent>,
    shared: Arc<Shared>,
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

/// Largest frame reassembled from RTP (a guard against a flood of packets without a marker).
const MAX_FRAME: usize = 1 << 20;

/// Reassembles one track's frames and decrypts them.
async fn receive_track(track: Arc<dyn TrackRemote>, shared: Arc<Shared>) {
    let stream = track.stream_id().await;
    let track_id = track.track_id().await;
    tracing::debug!(
        stream = stream.as_str(),
        track = track_id.as_str(),
        "remote track"
    );
    let sender = stream.strip_prefix('p').and_then(|s| s.parse::<u32>().ok());
    let kind = match track.kind().await {
        RtpCodecKind::Audio => MediaKind::Audio,
        _ => MediaKind::Video,
    };
    if let Some(sender_index) = sender {
        shared.event(ClientEvent::TrackReceived { sender_index, kind });
    }
    let layout = match kind {
        MediaKind::Audio => Layout::Media(Codec::Opus),
        MediaKind::Video => Layout::Media(Codec::Vp8),
    };
    let mut vp8 = rtc::rtp::codec::vp8::Vp8Packet::default();
    let mut asm = Assembler::default();
    while let Some(ev) = track.poll().await {
        let pkt = match ev {
            TrackRemoteEvent::OnRtpPacket(pkt) => pkt,
            TrackRemoteEvent::OnEnded => break,
            _ => continue,
        };
        let Some(sender) = sender else {
            shared.crypto().stats.unmapped_packets += 1;
            continue;
        };
        let frame = match kind {
            MediaKind::Audio => Some(pkt.payload.to_vec()),
            MediaKind::Video => {
                let head = vp8.is_partition_head(&pkt.payload);
                match vp8.depacketize(&pkt.payload) {
                    Ok(part) => asm.push(
                        pkt.header.sequence_number,
                        pkt.header.timestamp,
                        head,
                        pkt.header.marker,
                        &part,
                    ),
                    Err(_) => {
                        asm.broken();
                        None
                    }
                }
            }
        };
        let mut crypto = shared.crypto();
        let rs = crypto.stats.received.entry(sender).or_default();
        rs.packets += 1;
        rs.incomplete += asm.take_lost();
        let Some(mut frame) = frame else { continue };
        if crypto.decrypt(sender, layout, &mut frame) {
            drop(crypto);
            if let Some(sink) = &shared.sink {
                sink(&ReceivedFrame {
                    sender_index: sender,
                    kind,
                    data: &frame,
                });
            }
        }
    }
}

/// VP8 frame reassembly: packets of one RTP timestamp, in sequence, from a partition head to
/// the marker bit. A gap drops the frame (counted), never a partial frame to the decryptor.
#[derive(Default)]
struct Assembler {
    buf: Vec<u8>,
    ts: Option<u32>,
    next_seq: u16,
    valid: bool,
    lost: u64,
}

impl Assembler {
    fn push(
        &mut self,
        seq: u16,
        ts: u32,
        head: bool,
        marker: bool,
        part: &[u8],
    ) -> Option<Vec<u8>> {
        if head && (self.ts != Some(ts) || !self.valid) {
            if self.valid && !self.buf.is_empty() {
                self.lost += 1;
            }
            self.buf.clear();
            self.ts = Some(ts);
            self.valid = true;
        } else if self.ts != Some(ts) || seq != self.next_seq {
            if self.valid {
                self.lost += 1;
            }
            self.valid = false;
            self.buf.clear();
            self.ts = Some(ts);
        }
        self.next_seq = seq.wrapping_add(1);
        if !self.valid {
            return None;
        }
        if self.buf.len() + part.len() > MAX_FRAME {
            self.broken();
            return None;
        }
        self.buf.extend_from_slice(part);
        if marker {
            self.valid = false;
            return Some(std::mem::take(&mut self.buf));
        }
        None
    }

    fn broken(&mut self) {
        if self.valid {
            self.lost += 1;
        }
        self.valid = false;
        self.buf.clear();
    }

    fn take_lost(&mut self) -> u64 {
        std::mem::take(&mut self.lost)
    }
}

/// The driver task's state.
struct Driver {
    ws: Ws,
    pc: Arc<dyn PeerConnection>,
    session: Session<ChaCha20Rng>,
    clock: tokio::time::Instant,
    shared: Arc<Shared>,
    me: ParticipantId,
    /// Tracks of others in the room (for keyframe requests after a key change).
    remote_tracks: BTreeSet<TrackId>,
    /// Our offer is outstanding.
    making_offer: bool,
    /// Remote candidates that arrived before a remote description.
    pending_candidates: VecDeque<RTCIceCandidateInit>,
    /// Sending transceivers, announced with `publish` before the first offer.
    publish: Vec<(Source, Arc<dyn webrtc::rtp_transceiver::RtpTransceiver>)>,
    published: bool,
    /// Received-frame totals at the last `e2ee_stats` report (reports carry deltas).
    reported: Reported,
}

/// How often `e2ee_stats` goes to the relay (it counts at most one per 5 s per connection).
const STATS_INTERVAL: Duration = Duration::from_secs(10);

/// Totals already reported in `e2ee_stats`.
#[derive(Default)]
struct Reported {
    decrypted: u64,
    dropped: crate::crypto::DropCounts,
}

impl Driver {
    /// `e2ee_stats`: frames decrypted and dropped (by reason) since the previous report, and
    /// the sending epoch. For the relay's metrics only (diagnostics; no ids go along).
    fn stats_report(&mut self, last: bool) -> ClientMessage {
        let crypto = self.shared.crypto();
        let mut decrypted = 0u64;
        let mut d = crate::crypto::DropCounts::default();
        for r in crypto.stats.received.values() {
            decrypted = decrypted.saturating_add(r.decrypted);
            let x = &r.dropped;
            for (sum, n) in [
                (&mut d.unencrypted, x.unencrypted),
                (&mut d.malformed_header, x.malformed_header),
                (&mut d.truncated, x.truncated),
                (&mut d.unknown_kid, x.unknown_kid),
                (&mut d.replayed, x.replayed),
                (&mut d.auth_failed, x.auth_failed),
                (&mut d.too_large, x.too_large),
                (&mut d.other, x.other),
            ] {
                *sum = sum.saturating_add(n);
            }
        }
        let epoch = crypto.stats.sending_epoch;
        drop(crypto);
        let old = &self.reported.dropped;
        let dropped = [
            ("unencrypted", d.unencrypted, old.unencrypted),
            ("malformed_header", d.malformed_header, old.malformed_header),
            ("truncated", d.truncated, old.truncated),
            ("unknown_kid", d.unknown_kid, old.unknown_kid),
            ("replayed", d.replayed, old.replayed),
            ("auth_failed", d.auth_failed, old.auth_failed),
            ("too_large", d.too_large, old.too_large),
            ("other", d.other, old.other),
        ]
        .into_iter()
        .filter(|&(_, now, before)| now > before)
        .map(|(reason, now, before)| (reason.to_owned(), now - before))
        .collect();
        let message = ClientMessage::E2eeStats(hush_proto::E2eeStats {
            dropped,
            decrypted: decrypted.saturating_sub(self.reported.decrypted),
            epoch,
            last,
        });
        self.reported = Reported {
            decrypted,
            dropped: d,
        };
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

impl Driver {
    fn now(&self) -> hush_keys::Instant {
        let ms = u64::try_from(self.clock.elapsed().as_millis()).unwrap_or(u64::MAX);
        hush_keys::Instant::from_millis(ms)
    }

    async fn send(&mut self, msg: ClientMessage) -> bool {
        self.ws.send(Message::text(msg.encode())).await.is_ok()
    }

    async fn run(
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
            let wake = self.session.next_timeout().map(|t| {
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
                        let _ = self.session.handle_input(now, input);
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
                    let _ = self.session.handle_input(now, Input::Tick);
                }
                _ = stats_timer.tick() => {
                    let report = self.stats_report(false);
                    if !self.send(report).await {
                        break;
                    }
                }
            }
            self.drain_session().await;
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
        let sdp = self
            .pc
            .local_description()
            .await
            .ok_or(ClientError::Protocol("no local description"))?
            .sdp;
        self.send(ClientMessage::Offer(hush_proto::Sdp { sdp }))
            .await;
        Ok(())
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
        let sdp = self
            .pc
            .local_description()
            .await
            .ok_or(ClientError::Protocol("no local description"))?
            .sdp;
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
        let now = self.now();
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
            ServerMessage::ParticipantJoined(p) => {
                self.shared.event(ClientEvent::ParticipantJoined {
                    participant: p.participant.id.clone(),
                    sender_index: p.participant.sender_index.0,
                });
                match member_of(&p.participant) {
                    Some(m) => {
                        let ev = MembershipEvent {
                            seq: p.seq,
                            change: Change::Join(m),
                        };
                        self.key_input(now, Input::Membership(ev));
                    }
                    None => self.shared.crypto().stats.key_inputs_refused += 1,
                }
            }
            ServerMessage::ParticipantLeft(p) => {
                self.shared.event(ClientEvent::ParticipantLeft {
                    participant: p.participant.clone(),
                    reason: p.reason,
                });
                if let Ok(id) = hush_keys::ParticipantId::new(p.participant.as_str()) {
                    let change = match p.reason {
                        LeaveReason::Removed => Change::Remove(id),
                        _ => Change::Leave(id),
                    };
                    self.key_input(
                        now,
                        Input::Membership(MembershipEvent { seq: p.seq, change }),
                    );
                }
            }
            ServerMessage::Rekey(r) => {
                let ev = MembershipEvent {
                    seq: r.seq,
                    change: Change::Rekey,
                };
                self.key_input(now, Input::Membership(ev));
            }
            ServerMessage::E2ee(e) => self.key_input(now, Input::Message(e.payload.as_bytes())),
            ServerMessage::TrackPublished(t) => {
                if t.participant != self.me {
                    self.remote_tracks.insert(t.track);
                }
                self.shared.event(ClientEvent::TrackPublished(t));
            }
            ServerMessage::TrackUnpublished(t) => {
                self.remote_tracks.remove(&t.track);
            }
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

    fn key_input(&mut self, now: hush_keys::Instant, input: Input<'_>) {
        if self.session.handle_input(now, input).is_err() {
            self.shared.crypto().stats.key_inputs_refused += 1;
        }
    }

    /// Carries out the key session's outputs.
    async fn drain_session(&mut self) {
        let mut out = Vec::new();
        let mut keyframes = false;
        {
            let mut crypto = self.shared.crypto();
            while let Some(o) = self.session.poll_output() {
                match o {
                    Output::Key(k) => crypto.apply(k),
                    Output::Transmit(t) => match t.to {
                        Destination::Member(p) => {
                            if let Some(to) = proto_id(&p) {
                                let payload = OpaqueBytes::new(t.payload);
                                out.push(ClientMessage::E2ee(E2eeTo { to, payload }));
                            }
                        }
                        Destination::AllMembers => {
                            let me = self.session.sender_index();
                            for m in self.session.members() {
                                if Some(m.sender_index) == me {
                                    continue;
                                }
                                if let Some(to) = proto_id(&m.participant) {
                                    let payload = OpaqueBytes::new(t.payload.clone());
                                    out.push(ClientMessage::E2ee(E2eeTo { to, payload }));
                                }
                            }
                        }
                    },
                    Output::RequestRekey(reason) => {
                        let reason = match reason {
                            hush_keys::RekeyReason::Timer => hush_proto::RekeyReason::Timer,
                            _ => hush_proto::RekeyReason::UsageLimit,
                        };
                        out.push(ClientMessage::Rekey(hush_proto::RekeyRequest {
                            reason: Some(reason),
                        }));
                    }
                    Output::Event(hush_keys::Event::KeyframeWanted) => keyframes = true,
                    Output::Event(hush_keys::Event::Switched { epoch }) => {
                        let _ = self
                            .shared
                            .events
                            .try_send(ClientEvent::EpochSwitched(epoch));
                    }
                    Output::Event(hush_keys::Event::SafetyCodeChanged(code)) => {
                        let _ = self
                            .shared
                            .events
                            .try_send(ClientEvent::SafetyCode(code.value()));
                    }
                    _ => {}
                }
            }
            crypto.stats.sending_epoch = self.session.sending_epoch();
            crypto.stats.latest_epoch = self.session.latest_epoch();
            crypto.stats.safety_code = self.session.safety_code().map(|c| c.value());
        }
        if keyframes {
            for &track in &self.remote_tracks {
                out.push(ClientMessage::KeyframeRequest(hush_proto::TrackRef {
                    track,
                }));
            }
        }
        for m in out {
            if !self.send(m).await {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assembler_joins_in_order_fragments_and_drops_gaps() {
        let mut a = Assembler::default();
        assert_eq!(a.push(10, 1, true, false, b"ab"), None);
        assert_eq!(a.push(11, 1, false, false, b"cd"), None);
        assert_eq!(a.push(12, 1, false, true, b"ef"), Some(b"abcdef".to_vec()));
        // A gap (13 missing) drops frame 2, and frame 3 still comes through.
        assert_eq!(a.push(14, 2, true, false, b"xx"), None);
        assert_eq!(a.push(16, 2, false, true, b"yy"), None);
        assert_eq!(a.take_lost(), 1);
        assert_eq!(a.push(17, 3, true, true, b"zz"), Some(b"zz".to_vec()));
        // A frame without a head is never delivered.
        assert_eq!(a.push(19, 4, false, true, b"qq"), None);
        // Sequence numbers wrap.
        assert_eq!(a.push(u16::MAX, 5, true, false, b"1"), None);
        assert_eq!(a.push(0, 5, false, true, b"2"), Some(b"12".to_vec()));
    }
}
