//! This peer's own tracks, coming in: each remote track is matched to the publication the core
//! announced (by mid, or by kind without one; media may arrive before its `publish`), and a
//! receive loop (the pump) hands its packets to the track's fan-out.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hush_proto::{Source, TrackId};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use tokio::task::JoinHandle;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use super::Peer;
use crate::media::ForwardTap;
use crate::media::fanout::Fanout;
use crate::media::feedback;
use crate::media::header::forwarded;
use crate::media::keyframe::{VideoCodec, keyframe_size, starts_keyframe};
use crate::media::layers::{Layer, MAX_LAYERS, layer_of_rid};

/// Remote tracks kept while waiting for their `publish`.
const MAX_UNCLAIMED: usize = 16;

/// A track this peer publishes, as the core named it.
pub(super) struct Publication {
    mid: Option<String>,
    kind: RtpCodecKind,
    fanout: Arc<Fanout>,
    /// The receive loop, once the media arrived.
    pump: Option<(Arc<dyn TrackRemote>, u32, JoinHandle<()>)>,
}

impl Publication {
    /// Ends the track: subscribers' queues close, the receive loop stops.
    pub(super) fn end(self) {
        self.fanout.close();
        if let Some((_, _, pump)) = self.pump {
            pump.abort();
        }
    }
}

impl Peer {
    /// The core published one of this peer's tracks: its media with `mid` goes to `fanout`.
    pub(super) async fn published(
        &mut self,
        mid: Option<String>,
        source: Source,
        fanout: Arc<Fanout>,
    ) {
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
        let found =
            self.unclaimed
                .iter()
                .position(|(mid, kind, _)| match (&publication.mid, mid) {
                    (Some(want), Some(have)) => want == have,
                    (None, _) => *kind == publication.kind,
                    _ => false,
                });
        if let Some(index) = found {
            let (_, _, remote) = self.unclaimed.remove(index);
            self.start_pump(&mut publication, remote).await;
        }
        self.publications.insert(track, publication);
    }

    /// The core unpublished one of this peer's tracks.
    pub(super) fn unpublished(&mut self, track: TrackId) {
        if let Some(publication) = self.publications.remove(&track) {
            publication.end();
        }
    }

    /// A remote track arrived: it feeds its publication, or waits for one.
    pub(super) async fn remote_track(&mut self, remote: Arc<dyn TrackRemote>) {
        let mid = self.mid_of(&remote).await;
        let kind = remote.kind().await;
        tracing::debug!(?mid, ?kind, "remote track");
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
            None if self.unclaimed.len() < MAX_UNCLAIMED => {
                self.unclaimed.push((mid, kind, remote))
            }
            None => {}
        }
    }

    /// Asks this peer, a publisher, for a keyframe on `track` (on every simulcast layer).
    pub(super) async fn request_keyframe(&self, track: TrackId) {
        let Some(publication) = self.publications.get(&track) else {
            return;
        };
        if let Some((remote, ssrc, _)) = &publication.pump {
            let mut asked = false;
            for layer in 0..MAX_LAYERS as Layer {
                if let Some(ssrc) = publication.fanout.layer_ssrc(layer) {
                    feedback::ask_publisher(remote, ssrc).await;
                    asked = true;
                }
            }
            if !asked {
                feedback::ask_publisher(remote, *ssrc).await;
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
        let pump = tokio::spawn(pump(reader, fanout, tap));
        publication.pump = Some((remote, ssrc, pump));
    }
}

/// Keyframe requests for a layer switch, per layer, at most this often.
const LAYER_KEYFRAME_INTERVAL: Duration = Duration::from_millis(300);

/// The receive loop of one published track: each packet goes to the fan-out with its
/// simulcast layer and whether it starts a keyframe; the fan-out's subscribers say which
/// layers they need a keyframe of, and the publisher is asked for them.
async fn pump(reader: Arc<dyn TrackRemote>, fanout: Arc<Fanout>, tap: Option<ForwardTap>) {
    let track = fanout.track;
    // The payload type of the codec subscribers were offered: the first packet's (repair
    // streams only start after losses). Subscribers get one codec per forwarded track, so a
    // packet of another payload type (RTX or FEC that reached us unrepaired, RED, a codec
    // switched mid-call) cannot be relabelled into it: it is dropped and counted instead of
    // reaching a decoder as the wrong format. Every simulcast encoding has this payload type.
    let mut primary: Option<u8> = None;
    // Each encoding's SSRC and layer.
    let mut layers: Vec<(u32, Layer)> = Vec::new();
    // The codec whose keyframes the switches look for, once known.
    let mut codec: Option<Option<VideoCodec>> = None;
    let mut asked_at: [Option<Instant>; MAX_LAYERS] = [None; MAX_LAYERS];
    while let Some(event) = reader.poll().await {
        let packet = match event {
            TrackRemoteEvent::OnRtpPacket(packet) => packet,
            TrackRemoteEvent::OnEnded => break,
            _ => continue,
        };
        let pt = packet.header.payload_type;
        if *primary.get_or_insert(pt) != pt {
            fanout.other_payload.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let ssrc = packet.header.ssrc;
        let layer = match layers.iter().find(|(s, _)| *s == ssrc) {
            Some(&(_, layer)) => layer,
            None => match new_layer(&reader, &fanout, &layers, ssrc).await {
                Some(layer) => {
                    layers.push((ssrc, layer));
                    layer
                }
                None => {
                    fanout.other_payload.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            },
        };
        if let Some(tap) = &tap {
            tap(track, &packet.payload);
        }
        if codec.is_none() && fanout.has_codec() {
            let mime = fanout
                .codec_watch()
                .borrow()
                .as_ref()
                .map(|c| c.mime_type.clone());
            codec = Some(mime.as_deref().and_then(VideoCodec::from_mime));
        }
        let keyframe = codec
            .flatten()
            .is_some_and(|c| starts_keyframe(c, &packet.payload));
        if keyframe
            && let Some((width, height)) = codec
                .flatten()
                .and_then(|c| keyframe_size(c, &packet.payload))
        {
            fanout.set_layer_size(layer, width, height);
        }
        let asks = fanout.forward(&packet, layer, keyframe);
        for (layer, at) in asked_at.iter_mut().enumerate() {
            let due = at.is_none_or(|t| t.elapsed() >= LAYER_KEYFRAME_INTERVAL);
            if asks & (1 << layer) == 0 || !due {
                continue;
            }
            if let Some(ssrc) = u8::try_from(layer).ok().and_then(|l| fanout.layer_ssrc(l)) {
                *at = Some(Instant::now());
                tracing::debug!(track = track.0, layer, ssrc, "keyframe for a layer switch");
                // Not awaited here: this task is the track's only reader, and writing RTCP
                // can wait on the connection's driver, which may be waiting for this reader.
                let reader = Arc::clone(&reader);
                tokio::spawn(async move { feedback::ask_publisher(&reader, ssrc).await });
            }
        }
    }
}

/// The layer of a new encoding `ssrc` on `reader`: named by its RTP stream id, or the first
/// free layer; `None` when every layer is taken. Records its SSRC (and the codec, for a
/// simulcast track whose codec was unknown when it arrived).
async fn new_layer(
    reader: &Arc<dyn TrackRemote>,
    fanout: &Fanout,
    known: &[(u32, Layer)],
    ssrc: u32,
) -> Option<Layer> {
    let taken = |l: Layer| known.iter().any(|&(_, k)| k == l);
    let named = reader.rid(ssrc).await.as_deref().and_then(layer_of_rid);
    let layer = match named {
        Some(layer) if !taken(layer) => layer,
        _ => (0..MAX_LAYERS as Layer).find(|&l| !taken(l))?,
    };
    if !fanout.has_codec()
        && let Some(codec) = reader.codec(ssrc).await
    {
        fanout.set_codec(codec);
    }
    fanout.set_layer_ssrc(layer, ssrc);
    tracing::debug!(track = fanout.track.0, ssrc, layer, rid = ?named, "encoding");
    Some(layer)
}
