//! Media through the relay over real sockets on 127.0.0.1: a webrtc-rs client publishes one RTP
//! track, a second one subscribes through the relay's renegotiation, and receives the payloads
//! byte for byte; the forwarding tap saw exactly those payloads.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hush_proto::{Candidate, ClientMessage, Publish, Sdp, ServerMessage, Source};
use hush_testkit::relay::TestRelay;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpEncodingParameters, RtpCodecKind};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceCandidateInit, RTCPeerConnectionIceEvent, RTCSessionDescription,
    Registry, SettingEngineBuilder, register_default_interceptors,
};
use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};

struct Handler {
    out: mpsc::Sender<ClientMessage>,
    tracks: mpsc::Sender<Arc<dyn TrackRemote>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        let init = event.candidate.to_json().unwrap();
        let c = Candidate {
            candidate: init.candidate,
            sdp_mid: None,
            sdp_m_line_index: Some(0),
            username_fragment: None,
        };
        let _ = self.out.try_send(ClientMessage::Candidate(c));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.tracks.try_send(track);
    }
}

struct MediaClient {
    pc: Arc<dyn PeerConnection>,
    tracks: mpsc::Receiver<Arc<dyn TrackRemote>>,
    sender_index: u32,
    /// Track ids announced to this client.
    published: Arc<Mutex<Vec<u64>>>,
}

async fn build_pc(handler: Handler) -> Arc<dyn PeerConnection> {
    let mut media = MediaEngine::default();
    media.register_default_codecs().unwrap();
    let registry = register_default_interceptors(Registry::new(), &mut media).unwrap();
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .with_include_loopback_candidate(true)
        .build();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media)
        .with_setting_engine(settings)
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(handler))
        .with_udp_addrs(vec!["127.0.0.1:0".parse::<SocketAddr>().unwrap()])
        .build()
        .await
        .unwrap();
    Arc::new(pc)
}

/// Joins, builds a PeerConnection, optionally publishes `track` as the camera, and runs the
/// client side of the negotiation contract in a task.
/// Adds `track` to `pc` as a send-only transceiver and sets the offer: its mid and the SDP.
async fn offer_to_send(
    pc: &Arc<dyn PeerConnection>,
    track: Arc<TrackLocalStaticRTP>,
) -> (Option<String>, String) {
    let init = RTCRtpTransceiverInit {
        direction: RTCRtpTransceiverDirection::Sendonly,
        streams: vec![],
        send_encodings: vec![],
    };
    let transceiver = pc
        .add_transceiver_from_track(track as Arc<dyn TrackLocal>, Some(init))
        .await
        .unwrap();
    let offer = pc.create_offer(None).await.unwrap();
    let sdp = offer.sdp.clone();
    pc.set_local_description(offer).await.unwrap();
    (transceiver.mid().await.unwrap(), sdp)
}

async fn media_client(
    relay: &TestRelay,
    sub: &str,
    room: &str,
    publish: Option<Arc<TrackLocalStaticRTP>>,
) -> MediaClient {
    let (client, joined) = relay.join(sub, room).await;
    let (out_tx, mut out_rx) = mpsc::channel::<ClientMessage>(256);
    let (tracks_tx, tracks) = mpsc::channel(16);
    let pc = build_pc(Handler {
        out: out_tx.clone(),
        tracks: tracks_tx,
    })
    .await;
    if let Some(track) = publish {
        let (mid, sdp) = offer_to_send(&pc, track).await;
        out_tx
            .send(ClientMessage::Publish(Publish {
                source: Source::Camera,
                mid,
            }))
            .await
            .unwrap();
        out_tx
            .send(ClientMessage::Offer(Sdp { sdp }))
            .await
            .unwrap();
    }
    let published = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&published);
    let pc2 = Arc::clone(&pc);
    let mut ws = client.into_ws();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                Some(message) = out_rx.recv() => {
                    if ws.send(Message::text(message.encode())).await.is_err() {
                        return;
                    }
                }
                frame = ws.next() => {
                    let Some(Ok(Message::Text(text))) = frame else { return };
                    match ServerMessage::decode(text.as_str()).unwrap() {
                        ServerMessage::Answer(sdp) => {
                            pc2.set_remote_description(RTCSessionDescription::answer(sdp.sdp).unwrap())
                                .await
                                .unwrap();
                        }
                        ServerMessage::Offer(sdp) => {
                            pc2.set_remote_description(RTCSessionDescription::offer(sdp.sdp).unwrap())
                                .await
                                .unwrap();
                            let answer = pc2.create_answer(None).await.unwrap();
                            let sdp = answer.sdp.clone();
                            pc2.set_local_description(answer).await.unwrap();
                            let m = ClientMessage::Answer(Sdp { sdp });
                            if ws.send(Message::text(m.encode())).await.is_err() {
                                return;
                            }
                        }
                        ServerMessage::Candidate(c) => {
                            let init = RTCIceCandidateInit {
                                candidate: c.candidate,
                                sdp_mid: c.sdp_mid,
                                sdp_mline_index: c.sdp_m_line_index,
                                ..Default::default()
                            };
                            let _ = pc2.add_ice_candidate(init).await;
                        }
                        ServerMessage::TrackPublished(t) => seen.lock().unwrap().push(t.track.0),
                        ServerMessage::Error(e) => panic!("relay error: {e:?}"),
                        _ => {}
                    }
                }
            }
        }
    });
    MediaClient {
        pc,
        tracks,
        sender_index: joined.sender_index.0,
        published,
    }
}

fn vp8_track(ssrc: u32) -> Arc<TrackLocalStaticRTP> {
    let codec = RTCRtpCodec {
        mime_type: "video/VP8".into(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![],
    };
    let mut encoding = RTCRtpEncodingParameters {
        codec,
        ..Default::default()
    };
    encoding.rtp_coding_parameters.ssrc = Some(ssrc);
    let (stream, track) = ("local-stream".into(), "local-camera".into());
    let track = MediaStreamTrack::new(
        stream,
        track,
        "camera".into(),
        RtpCodecKind::Video,
        vec![encoding],
    );
    Arc::new(TrackLocalStaticRTP::new(track))
}

/// A payload no codec would produce, standing in for SFrame ciphertext.
fn payload(i: u32) -> Vec<u8> {
    let mut p = b"\x90\x80SFRAME-CIPHERTEXT-".to_vec();
    p.extend_from_slice(&i.to_be_bytes());
    p.extend((0..200u32).map(|k| (k.wrapping_mul(31) ^ i) as u8));
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_track_reaches_a_subscriber_byte_for_byte() {
    tokio::time::timeout(Duration::from_secs(60), run())
        .await
        .expect("media test timed out");
}

async fn run() {
    let relay = TestRelay::builder().tap().start().await;

    let ssrc = 0x1234_5678;
    let local = vp8_track(ssrc);
    let publisher = media_client(&relay, "pub", "media", Some(Arc::clone(&local))).await;
    let mut subscriber = media_client(&relay, "sub", "media", None).await;

    // Send until the subscriber has its track and enough packets, or time runs out.
    let sent: Arc<Mutex<HashSet<Vec<u8>>>> = Arc::default();
    let sent_w = Arc::clone(&sent);
    let pc = Arc::clone(&publisher.pc);
    let writer = tokio::spawn(async move {
        let mut pt = None;
        for i in 0..2000u32 {
            if pt.is_none() {
                for sender in pc.get_senders().await {
                    if let Ok(params) = sender.get_parameters().await {
                        pt = params
                            .rtp_parameters
                            .codecs
                            .iter()
                            .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case("video/VP8"))
                            .map(|c| c.payload_type);
                    }
                }
            }
            if let Some(pt) = pt {
                let p = payload(i);
                let packet = rtp::Packet {
                    header: rtp::header::Header {
                        version: 2,
                        marker: true,
                        payload_type: pt,
                        sequence_number: i as u16,
                        timestamp: i * 3000,
                        ssrc,
                        ..Default::default()
                    },
                    payload: p.clone().into(),
                };
                if local.write_rtp(packet).await.is_ok() {
                    sent_w.lock().unwrap().insert(p);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });

    let track = tokio::time::timeout(Duration::from_secs(30), subscriber.tracks.recv())
        .await
        .expect("no forwarded track")
        .unwrap();
    let track_ids = publisher.published.lock().unwrap().clone();
    assert_eq!(
        track.stream_id().await,
        format!("p{}", publisher.sender_index)
    );
    assert_eq!(track.track_id().await, format!("t{}", track_ids[0]));

    let mut received = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while received.len() < 20 && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), track.poll()).await {
            Ok(Some(TrackRemoteEvent::OnRtpPacket(packet))) => {
                received.push(packet.payload.to_vec())
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    writer.abort();
    let _ = publisher.pc.close().await;
    let _ = subscriber.pc.close().await;
    assert!(
        received.len() >= 20,
        "only {} packets arrived",
        received.len()
    );
    let sent = sent.lock().unwrap();
    for p in &received {
        assert!(
            sent.contains(p),
            "a payload arrived that was never sent (or was altered)"
        );
    }
    let tapped = relay.tap().payloads();
    let tapped_payloads: HashSet<&Vec<u8>> = tapped.iter().map(|(_, p)| p).collect();
    assert!(tapped.iter().all(|(t, _)| t.0 == track_ids[0]));
    for p in &received {
        assert!(
            tapped_payloads.contains(p),
            "the tap missed a forwarded payload"
        );
    }
}

/// A client that sends candidate after candidate (each a pair the relay's ICE agent would check
/// with STUN requests to the address it names) is refused past 64 per description: before,
/// every one was taken.
#[tokio::test]
async fn candidates_past_the_cap_are_refused() {
    tokio::time::timeout(Duration::from_secs(60), candidate_flood())
        .await
        .expect("candidate test timed out");
}

async fn candidate_flood() {
    let relay = TestRelay::builder().start().await;
    let (mut client, _) = relay.join("flooder", "media").await;
    let (out, _out_rx) = mpsc::channel(256);
    let (tracks, _tracks_rx) = mpsc::channel(16);
    let pc = build_pc(Handler { out, tracks }).await;
    let (mid, sdp) = offer_to_send(&pc, vp8_track(7)).await;
    client
        .send(&ClientMessage::Publish(Publish {
            source: Source::Camera,
            mid: mid.clone(),
        }))
        .await;
    client.send(&ClientMessage::Offer(Sdp { sdp })).await;
    client
        .recv_until(|m| matches!(m, ServerMessage::Answer(_)))
        .await;
    for port in 0..70u16 {
        let candidate = format!(
            "candidate:{port} 1 udp 2130706431 127.0.0.1 {} typ host",
            40_000 + port
        );
        client
            .send(&ClientMessage::Candidate(Candidate {
                candidate,
                sdp_mid: mid.clone(),
                sdp_m_line_index: Some(0),
                username_fragment: None,
            }))
            .await;
    }
    let refused = client
        .recv_until(|m| matches!(m, ServerMessage::Error(_)))
        .await;
    let ServerMessage::Error(e) = refused else {
        unreachable!()
    };
    assert!(
        e.message.contains("too many candidates") && !e.fatal,
        "{e:?}"
    );
    let _ = pc.close().await;
}
