//! Other participants' tracks, going out to this peer: each forward gets its own send-only
//! transceiver once the publisher's codec is known, a [`Leg`] through which the track's
//! fan-out writes each packet straight into this peer's connection with its header rewritten
//! for this leg ([`crate::media::header`]), a task that keeps the leg's negotiated header
//! current, and a reader for this subscriber's keyframe requests
//! ([`crate::media::feedback`]).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use hush_proto::TrackId;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit, RtpSender};

use super::allocation::LayerMeter;
use super::{Peer, PeerEvent, PeerFailed};
use crate::bus::Input;
use crate::media::fanout::{Fanout, Offered, Outlet, SinkControl};
use crate::media::feedback::rtcp_loop;
use crate::media::header::{
    forwarded, map_extension_ids, negotiated_payload_type, rewrite_extensions,
};
use crate::routing::ConnId;

/// A track forwarded to this peer.
pub(super) struct Forward {
    pub(super) fanout: Arc<Fanout>,
    sender: Option<Arc<dyn RtpSender>>,
    tasks: Vec<JoinHandle<()>>,
    /// The layer this peer's allocator chose and the one sent (see [`super::allocation`]).
    pub(super) control: Arc<SinkControl>,
    /// Whether it is video (audio is never traded for video), once the codec is known.
    pub(super) video: Option<bool>,
    /// The publisher's per-layer bitrates as this peer last measured them.
    pub(super) meter: LayerMeter,
}

impl Forward {
    fn stop(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }

    /// Stops the forward to `subscriber` (the peer is going away).
    pub(super) fn end(mut self, subscriber: ConnId) {
        self.fanout.remove_sink(subscriber);
        self.stop();
    }
}

impl Peer {
    /// Forwards `publisher`'s track (its `fanout`) to this peer, once its codec is known.
    pub(super) fn add_forward(&mut self, publisher: ConnId, fanout: Arc<Fanout>) {
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
            control: Arc::new(SinkControl::default()),
            video: None,
            meter: LayerMeter::default(),
        };
        if let Some(mut old) = self.forwards.insert(key, forward) {
            old.stop();
        }
    }

    /// Stops forwarding `publisher`'s `track` to this peer.
    pub(super) async fn remove_forward(
        &mut self,
        publisher: ConnId,
        track: TrackId,
    ) -> Result<(), PeerFailed> {
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

    /// The publisher's codec is known: add a local track to this peer and renegotiate.
    pub(super) async fn add_forward_track(
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
        let control = Arc::clone(&forward.control);
        let kind = if codec.mime_type.to_ascii_lowercase().starts_with("audio/") {
            RtpCodecKind::Audio
        } else {
            RtpCodecKind::Video
        };
        let ssrc = random_ssrc();
        let clock_rate = codec.clock_rate;
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
        let leg = Arc::new(Leg::new(Arc::clone(&local), ssrc));
        let keeper = tokio::spawn(keep_header(
            Arc::clone(&leg),
            HeaderInputs {
                sender: Arc::clone(&sender),
                codec,
                publisher_extensions: fanout.extensions(),
                negotiated: self.negotiated.subscribe(),
                connected: self.connected.subscribe(),
                ask: KeyframeAsk {
                    driver: self.driver.clone(),
                    subscriber: self.conn,
                    track: key.1,
                },
            },
        ));
        let rtcp = tokio::spawn(rtcp_loop(local, self.driver.clone(), self.conn, key.1));
        fanout.add_sink(self.conn, leg, control, clock_rate);
        if let Some(forward) = self.forwards.get_mut(&key) {
            forward.video = Some(kind == RtpCodecKind::Video);
            forward.sender = Some(sender);
            forward.tasks.push(keeper);
            forward.tasks.push(rtcp);
        }
        self.negotiate().await
    }
}

/// One forward's way into its subscriber's connection: the fan-out offers each packet on the
/// publisher's receive loop, and it is written at once with this leg's header (SSRC, payload
/// type, the [`crate::media::header::FORWARDED_EXTENSIONS`] under this leg's ids; every other
/// header extension dropped: its id was negotiated on the publisher's leg and means nothing
/// here). Payloads are untouched. No task and no queue sit between: webrtc-rs's own event
/// queue to the connection's driver is the subscriber's buffer, and a packet it cannot take
/// now is dropped and counted ([`Offered::Full`]), so a stalled subscriber never holds up the
/// publisher or the others.
pub(super) struct Leg {
    local: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    /// The negotiated header; `None` before the first completed exchange after the track was
    /// added (webrtc-rs's defaults are not what the subscriber negotiated, and it drops, later
    /// and silently, a packet with an extension id the leg did not negotiate), and after a
    /// write failed, until [`keep_header`] has read it again.
    header: Mutex<Option<LegHeader>>,
    /// Asks [`keep_header`] to read the negotiated parameters again (a write failed).
    reread: Notify,
}

/// A leg's negotiated header: the payload type of the publisher's codec and the extension
/// ids (publisher leg's id, this leg's id).
#[derive(Debug, Clone)]
struct LegHeader {
    payload_type: u8,
    extension_ids: Vec<(u8, u8)>,
}

impl Leg {
    fn new(local: Arc<TrackLocalStaticRTP>, ssrc: u32) -> Self {
        Self {
            local,
            ssrc,
            header: Mutex::new(None),
            reread: Notify::new(),
        }
    }

    fn set_header(&self, header: Option<LegHeader>) {
        if let Ok(mut slot) = self.header.lock() {
            *slot = header;
        }
    }
}

/// The fan-out's handle on a leg: rewrites the packet's header and writes it without waiting.
impl Outlet for Leg {
    fn offer(&self, mut packet: rtp::Packet) -> Offered {
        {
            let Ok(header) = self.header.lock() else {
                return Offered::NotReady;
            };
            let Some(header) = header.as_ref() else {
                return Offered::NotReady; // not negotiated yet: dropped
            };
            packet.header.ssrc = self.ssrc;
            packet.header.payload_type = header.payload_type;
            rewrite_extensions(&mut packet.header, &header.extension_ids);
        }
        // Polled once, outside tokio's cooperative budget (which could refuse a ready channel
        // after a burst): `Pending` means the driver's queue is full (or the track is being
        // bound), and the packet is dropped with the future.
        let mut write = tokio::task::unconstrained(self.local.write_rtp(packet));
        match Pin::new(&mut write).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Ok(())) => Offered::Taken,
            Poll::Ready(Err(_)) => {
                // Not bound, or renegotiated: read the parameters again.
                self.set_header(None);
                self.reread.notify_one();
                Offered::NotReady
            }
            Poll::Pending => Offered::Full,
        }
    }
}

/// Keeps `leg`'s header the one negotiated: read after every completed exchange on the
/// subscriber's connection and after a failed write. Also asks for the first keyframe.
async fn keep_header(leg: Arc<Leg>, inputs: HeaderInputs) {
    let HeaderInputs {
        sender,
        codec,
        publisher_extensions,
        mut negotiated,
        mut connected,
        ask,
    } = inputs;
    // `negotiated` was subscribed when the track was added, so an exchange that completes
    // before this task first runs still counts (with a room's media on one thread, the peer's
    // actor often handles the client's answer before this task is first polled: marking the
    // receiver unchanged here would lose that exchange, and the subscriber would get nothing).
    let mut bound = false;
    // The subscriber joined a stream in progress: it needs a keyframe to start decoding. Ask
    // once the forward is negotiated while the connection is up, without waiting for the
    // subscriber's own PLI. Asked before the connection is up, the
    // keyframe would be written into a transport that cannot carry it yet, and the next request
    // (the subscriber's PLI) would wait out the publisher's keyframe interval: that cost joins
    // about half a second. Asked again after a reconnection.
    // Audio has no keyframes to ask for.
    let is_audio = !codec.mime_type.to_ascii_lowercase().starts_with("video/");
    let mut asked = is_audio;
    loop {
        let read = tokio::select! {
            changed = connected.changed() => {
                if changed.is_err() {
                    break; // the peer is gone
                }
                if !*connected.borrow() {
                    asked = is_audio; // asked again after a reconnection
                }
                false
            }
            changed = negotiated.changed() => {
                if changed.is_err() {
                    break;
                }
                bound = true;
                true
            }
            () = leg.reread.notified(), if bound => true,
        };
        if read {
            let params = sender.get_parameters().await.ok();
            let payload_type = params
                .as_ref()
                .and_then(|p| negotiated_payload_type(&p.rtp_parameters.codecs, &codec));
            let ours = params
                .map(|p| forwarded(&p.rtp_parameters.header_extensions))
                .unwrap_or_default();
            leg.set_header(payload_type.map(|payload_type| LegHeader {
                payload_type,
                extension_ids: map_extension_ids(&publisher_extensions, &ours),
            }));
        }
        // The first keyframe: asked as soon as the forward is negotiated and the connection
        // up, not when a first packet goes out: a simulcast forward sends nothing before a
        // keyframe.
        if !asked && bound && *connected.borrow() {
            asked = true;
            let _ = ask.driver.try_send(Input::Keyframe {
                subscriber: ask.subscriber,
                track: ask.track,
            });
        }
    }
}

/// What a forward's [`keep_header`] reads the negotiated header with.
struct HeaderInputs {
    /// The subscriber leg's sender, for the negotiated parameters.
    sender: Arc<dyn RtpSender>,
    /// The publisher's codec.
    codec: RTCRtpCodec,
    /// The publisher leg's ids of the forwarded header extensions.
    publisher_extensions: Vec<(String, u8)>,
    /// Moves after each completed exchange on the subscriber's connection.
    negotiated: watch::Receiver<u64>,
    /// Whether the subscriber's connection is connected.
    connected: watch::Receiver<bool>,
    ask: KeyframeAsk,
}

/// Where a forward's writer sends its first keyframe request.
struct KeyframeAsk {
    driver: mpsc::Sender<Input>,
    subscriber: ConnId,
    track: TrackId,
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
