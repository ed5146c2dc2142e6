//! This peer's own tracks, coming in: each remote track is matched to the publication the core
//! announced (by mid, or by kind without one; media may arrive before its `publish`), and a
//! receive loop (the pump) hands its packets to the track's fan-out.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use hush_proto::{Source, TrackId};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use tokio::task::JoinHandle;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use super::Peer;
use crate::media::fanout::Fanout;
use crate::media::feedback;
use crate::media::header::forwarded;

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

    /// Asks this peer, a publisher, for a keyframe on `track`.
    pub(super) async fn request_keyframe(&self, track: TrackId) {
        if let Some(Some((remote, ssrc, _))) =
            self.publications.get(&track).map(|p| p.pump.as_ref())
        {
            feedback::ask_publisher(remote, *ssrc).await;
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
}
