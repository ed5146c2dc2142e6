//! The client handle: [`Client::connect`] joins a room (WebSocket signaling, one webrtc-rs
//! PeerConnection, the key adapter), then the application sends frames and reads
//! [`ClientEvent`]s while the driver task ([`crate::driver`]) runs the connection and the
//! receive tasks ([`crate::receive`]) decrypt what arrives. Nothing from the network can panic
//! it: every message is decoded into a typed value or dropped and counted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hush_frame::CipherSuite;
use hush_keys::ed25519_dalek::VerifyingKey;
use hush_participant::{Input, Membership};
use hush_proto::{
    AccessToken, ClientMessage, ErrorCode, Grants, Join, OpaqueBytes, ParticipantId, RoomId,
    ServerMessage, Source, TrackInfo,
};
use rtc::ice::mdns::MulticastDnsMode;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, RTCConfiguration, RTCConfigurationBuilder,
    RTCIceServer, RTCIceTransportPolicy, RTCPeerConnectionState, Registry, SettingEngineBuilder,
    configure_simulcast_extension_headers, register_default_interceptors,
};

use crate::crypto::{FrameCrypto, Sealed, Stats, context_of};
use crate::driver::{Clock, Command, Driver, Handler};
use crate::error::ClientError;
use crate::keys::KeyAgent;
use crate::publish::LocalTrack;

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
    /// Who this client admits to the key exchange. With [`Membership::VouchedBy`] (the product
    /// path) it refuses any member the app backend did not vouch for.
    pub membership: Membership,
    /// Whether the client sends RTCP (default true). Off: no receiver report, NACK, congestion
    /// feedback or keyframe request ever leaves it (counted in
    /// [`ClientOptions::rtcp_dropped`]): tests of a subscriber that never acknowledges.
    pub send_rtcp: bool,
    /// RTCP packets dropped because [`ClientOptions::send_rtcp`] is off.
    pub rtcp_dropped: Arc<std::sync::atomic::AtomicU64>,
    /// Media only through the TURN servers the relay hands out in `joined` (a browser's
    /// `iceTransportPolicy: "relay"`); default false: every candidate, TURN among them.
    pub relay_only: bool,
    /// Encodings the camera sends (default 1): 2 or 3 send simulcast, rids `q`, `h`, `f`
    /// lowest first; [`Client::send_layer_frame`] writes each.
    pub simulcast_layers: u8,
}

impl ClientOptions {
    /// Options for a client that admits only members vouched for by the app backend's
    /// `backend_key` (the product path), publishing nothing.
    pub fn vouched_by(backend_key: VerifyingKey) -> Self {
        Self::with_membership(Membership::VouchedBy(backend_key))
    }

    /// Options for a client that admits whoever the relay announces, so that the relay can add
    /// a member of its own: tests and tools only ([`Membership::Unauthenticated`]).
    pub fn unauthenticated() -> Self {
        Self::with_membership(Membership::Unauthenticated)
    }

    fn with_membership(membership: Membership) -> Self {
        Self {
            membership,
            publish: Vec::new(),
            suite: CipherSuite::Aes128GcmSha256_128,
            room: None,
            connect_timeout: Duration::from_secs(10),
            event_capacity: 256,
            frame_sink: None,
            udp_addr: "127.0.0.1:0".to_owned(),
            send_rtcp: true,
            rtcp_dropped: Arc::default(),
            relay_only: false,
            simulcast_layers: 1,
        }
    }
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("membership", &self.membership)
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
    /// The key exchange: members joined, left or refused, epochs, the safety code, removal
    /// (the participant core's one vocabulary).
    Keys(hush_participant::Event),
    /// A track was published in the room.
    TrackPublished(TrackInfo),
    /// A forwarded track arrived on the PeerConnection.
    TrackReceived {
        /// The publisher's sender index.
        sender_index: u32,
        /// Audio or video.
        kind: MediaKind,
    },
    /// The relay refused something; `fatal` ends the session.
    Error {
        /// The code.
        code: ErrorCode,
        /// The relay's message.
        message: String,
        /// Whether the relay closes.
        fatal: bool,
    },
    /// The relay says the room's recording started or stopped, who asked and why it ended
    /// (what the key exchange admitted is [`hush_participant::Event::Recording`]).
    Recording(hush_proto::RecordingStatus),
    /// The PeerConnection's state changed.
    Connection(RTCPeerConnectionState),
    /// The signaling connection closed; no more events follow.
    Closed,
}

/// State shared by the handle, the driver and the receive tasks. Never held across an await.
pub(crate) struct Shared {
    pub(crate) crypto: Mutex<FrameCrypto>,
    pub(crate) sink: Option<FrameSink>,
    pub(crate) events: mpsc::Sender<ClientEvent>,
}

impl Shared {
    pub(crate) fn crypto(&self) -> MutexGuard<'_, FrameCrypto> {
        // A poisoned lock means a receive task panicked mid-update; the counters stay usable.
        self.crypto.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn event(&self, ev: ClientEvent) {
        if self.events.try_send(ev).is_err() {
            self.crypto().stats.events_dropped += 1;
        }
    }
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

pub(crate) fn io_err(e: impl std::fmt::Display) -> ClientError {
    ClientError::Signaling(e.to_string())
}

impl Client {
    /// [`Client::join`] with a fresh identity nobody vouched for: fine with
    /// [`Membership::Unauthenticated`]; in a vouched room the others refuse this client.
    pub async fn connect(
        url: &str,
        token: AccessToken,
        options: ClientOptions,
    ) -> Result<Client, ClientError> {
        let keys = KeyAgent::new(options.membership.clone())?;
        Self::join(url, token, keys, options).await
    }

    /// Opens `url` (`ws://host:port/v1/rtc`), joins with `token` as `keys`' identity (with its
    /// attestation, if the backend vouched for it), builds the PeerConnection and publishes
    /// `options.publish`. Returns once `joined` arrived; negotiation goes on in the background.
    /// `keys` decides membership; `options.membership` is what [`Client::connect`] uses.
    pub async fn join(
        url: &str,
        token: AccessToken,
        mut keys: KeyAgent,
        options: ClientOptions,
    ) -> Result<Client, ClientError> {
        let t = options.connect_timeout;
        let (mut ws, _) = tokio::time::timeout(t, tokio_tungstenite::connect_async(url))
            .await
            .map_err(|_| ClientError::Timeout("websocket"))?
            .map_err(io_err)?;
        // The room we set out to join: a `joined` for another is refused by the key core.
        if let Some(room) = options.room.clone().or_else(|| token.room()) {
            keys.expect_room(room.as_str()).map_err(ClientError::Keys)?;
        }
        let join = ClientMessage::Join(Join {
            token,
            room: options.room.clone(),
            identity_key: OpaqueBytes::new(keys.identity_key().to_vec()),
            attestation: keys.attestation().map(|a| OpaqueBytes::new(a.to_vec())),
            // A publisher offers right after `joined`; a subscriber gets the relay's offer at once.
            offers_first: Some(!options.publish.is_empty()),
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

        // The key core, fed the snapshot.
        let clock = Clock::start();
        let now = clock.now();
        keys.on_server(now, &ServerMessage::Joined(joined.clone()))
            .map_err(ClientError::Keys)?;

        // The PeerConnection.
        let (pc_tx, pc_rx) = mpsc::channel(256);
        let handler = Arc::new(Handler {
            tx: pc_tx,
            shared: shared.clone(),
        });
        let mut media = MediaEngine::default();
        media.register_default_codecs()?;
        if options.simulcast_layers > 1 {
            // `mid` and `rid` on the packets of simulcast encodings (`publish`).
            configure_simulcast_extension_headers(&mut media)?;
        }
        let mut registry = register_default_interceptors(Registry::new(), &mut media)?;
        if !options.send_rtcp {
            // Nearest the wire: whatever the others write, no RTCP leaves.
            let silent = crate::silent_rtcp::SilentRtcp::new(Arc::clone(&options.rtcp_dropped));
            registry = registry.with(rtc::interceptor::Slot::from(1), silent);
        }
        let settings = SettingEngineBuilder::new()
            .with_multicast_dns_mode(MulticastDnsMode::Disabled)
            .build();
        let pc = PeerConnectionBuilder::new()
            .with_configuration(ice_configuration(&joined.ice_servers, options.relay_only))
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
            let layers = if source == Source::Camera {
                options.simulcast_layers
            } else {
                1
            };
            let (local, tr) = LocalTrack::add(&pc, source, joined.sender_index.0, layers).await?;
            transceivers.push((source, tr));
            tracks.insert(source, Arc::new(local));
            keys.input(now, Input::LocalStreamStarted(context_of(source)))
                .map_err(ClientError::Keys)?;
        }

        let (cmd_tx, cmd_rx) = mpsc::channel(256);
        let mut driver = Driver::new(ws, pc.clone(), keys, clock, shared.clone(), &joined);
        driver.publish = transceivers;
        driver.drain_keys().await;
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

    /// Encrypts `frame` for `source` and sends it as one sample lasting `duration` (on a
    /// simulcast camera, on its lowest encoding). Returns `Ok(false)` when the frame was
    /// dropped (no key yet, not negotiated yet): a frame is never sent in the clear.
    pub async fn send_frame(
        &self,
        source: Source,
        frame: &[u8],
        duration: Duration,
    ) -> Result<bool, ClientError> {
        self.send_layer_frame(source, 0, frame, duration).await
    }

    /// [`Client::send_frame`] on simulcast encoding `layer` (0 the lowest, as many as
    /// [`ClientOptions::simulcast_layers`]): each encoding's frames are sealed on their own,
    /// under the source's key, as a browser's sender transform seals them.
    pub async fn send_layer_frame(
        &self,
        source: Source,
        layer: usize,
        frame: &[u8],
        duration: Duration,
    ) -> Result<bool, ClientError> {
        let local = self.tracks.get(&source).ok_or(ClientError::NotPublished)?;
        if layer >= local.layers() {
            return Err(ClientError::NotPublished);
        }
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
        let written = local.write(layer, buf, duration).await;
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

/// The PeerConnection's ICE configuration: the TURN (and STUN) servers the relay handed out in
/// `joined`, with their short-lived credentials; `relay_only`: no other candidates.
fn ice_configuration(servers: &[hush_proto::IceServer], relay_only: bool) -> RTCConfiguration {
    let servers = servers
        .iter()
        .map(|s| RTCIceServer {
            urls: s.urls.clone(),
            username: s.username.clone().unwrap_or_default(),
            credential: s.credential.clone().unwrap_or_default(),
        })
        .collect();
    let policy = if relay_only {
        RTCIceTransportPolicy::Relay
    } else {
        RTCIceTransportPolicy::All
    };
    RTCConfigurationBuilder::new()
        .with_ice_servers(servers)
        .with_ice_transport_policy(policy)
        .build()
}
