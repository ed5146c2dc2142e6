//! The client's published tracks: one send-only transceiver per source, VP8 or Opus, with one
//! encoding or (the camera, [`crate::ClientOptions::simulcast_layers`]) up to three simulcast
//! encodings named by `rid` as browsers name them (`q`, `h`, `f`, lowest first). Frames arrive
//! here sealed; this module only packetizes and writes them.
//!
//! A simulcast encoding's packets carry the `mid` and `rid` header extensions, as a browser's do
//! while no receiver report has acknowledged their SSRC: that is how the relay tells the
//! encodings of one track apart (the SDP names the rids, not their SSRCs).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hush_proto::Source;
use rtc::media::Sample;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use rtc::rtp::extension::HeaderExtension;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sdp::extmap::{SDES_MID_URI, SDES_RTP_STREAM_ID_URI};
use rtc::shared::marshal::{Marshal, MarshalSize};
use webrtc::media_stream::MediaStreamTrack;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::peer_connection::PeerConnection;
use webrtc::rtp_transceiver::{RtpSender, RtpTransceiver};

use crate::error::ClientError;

/// The most simulcast encodings a track sends (as the relay forwards at most three).
pub const MAX_SIMULCAST_LAYERS: u8 = 3;

/// The rids of the simulcast encodings, lowest first (what browsers use).
const RIDS: [&str; MAX_SIMULCAST_LAYERS as usize] = ["q", "h", "f"];

/// A published track and what writing to it needs.
pub(crate) struct LocalTrack {
    track: Arc<TrackLocalStaticSample>,
    sender: Arc<dyn RtpSender>,
    transceiver: Arc<dyn RtpTransceiver>,
    /// One SSRC per encoding, lowest first.
    ssrcs: Vec<u32>,
    /// Whether packets carry `mid` and `rid` (more than one encoding).
    simulcast: bool,
    /// The negotiated payload type and (simulcast) `mid`, once known.
    negotiated: Mutex<Option<(u8, Option<Bytes>)>>,
}

impl LocalTrack {
    /// Adds a send-only transceiver for `source` to `pc` with `layers` encodings (1: plain; 2
    /// or 3: simulcast, the camera only).
    pub(crate) async fn add(
        pc: &Arc<dyn PeerConnection>,
        source: Source,
        sender_index: u32,
        layers: u8,
    ) -> Result<(Self, Arc<dyn RtpTransceiver>), ClientError> {
        let (kind, codec) = codec_of(source);
        let layers = if kind == RtpCodecKind::Video {
            layers
        } else {
            1
        };
        if !(1..=MAX_SIMULCAST_LAYERS).contains(&layers) {
            return Err(ClientError::Media(format!(
                "simulcast layers must be 1 to {MAX_SIMULCAST_LAYERS}, not {layers}"
            )));
        }
        let mut ssrcs = Vec::new();
        let mut encodings = Vec::new();
        for rid in &RIDS[..usize::from(layers)] {
            let ssrc =
                getrandom::u32().map_err(|_| ClientError::Media("no OS randomness".into()))?;
            ssrcs.push(ssrc);
            encodings.push(RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    rid: if layers > 1 {
                        (*rid).to_owned()
                    } else {
                        String::new()
                    },
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: codec.clone(),
                ..Default::default()
            });
        }
        let track = Arc::new(TrackLocalStaticSample::new(
            std::time::Instant::now(),
            MediaStreamTrack::new(
                format!("p{sender_index}"),
                source.as_str().to_owned(),
                source.as_str().to_owned(),
                kind,
                encodings,
            ),
        )?);
        let init = RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Sendonly,
            streams: vec![],
            send_encodings: vec![],
        };
        let transceiver = pc
            .add_transceiver_from_track(track.clone() as Arc<dyn TrackLocal>, Some(init))
            .await?;
        let sender = transceiver
            .sender()
            .await?
            .ok_or(ClientError::Media("no sender".into()))?;
        let local = Self {
            track,
            sender,
            transceiver: Arc::clone(&transceiver),
            ssrcs,
            simulcast: layers > 1,
            negotiated: Mutex::new(None),
        };
        Ok((local, transceiver))
    }

    /// How many encodings the track sends.
    pub(crate) fn layers(&self) -> usize {
        self.ssrcs.len()
    }

    /// Writes the sealed frame `data` on encoding `layer` as one sample lasting `duration`;
    /// `false` when it could not be (not negotiated yet, no such encoding, a write error).
    pub(crate) async fn write(&self, layer: usize, data: Vec<u8>, duration: Duration) -> bool {
        let Some(&ssrc) = self.ssrcs.get(layer) else {
            return false;
        };
        let Some((pt, mid)) = self.negotiated().await else {
            return false;
        };
        let mut writer = self.track.sample_writer(ssrc, pt);
        if self.simulcast {
            let Some(mid) = mid else { return false };
            writer = writer
                .with_extension(sdes(SDES_MID_URI, mid))
                .with_extension(sdes(
                    SDES_RTP_STREAM_ID_URI,
                    Bytes::from_static(RIDS[layer].as_bytes()),
                ));
        }
        let sample = Sample {
            data: Bytes::from(data),
            duration,
            ..Sample::new(std::time::Instant::now())
        };
        writer.write_sample(&sample).await.is_ok()
    }

    /// The negotiated payload type and `mid` (looked up once, after negotiation).
    async fn negotiated(&self) -> Option<(u8, Option<Bytes>)> {
        let cached = self
            .negotiated
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if cached.is_some() {
            return cached;
        }
        let pt = self
            .sender
            .get_parameters()
            .await
            .ok()?
            .rtp_parameters
            .codecs
            .first()
            .map(|c| c.payload_type)?;
        let mid = self.transceiver.mid().await.ok().flatten().map(Bytes::from);
        if self.simulcast && mid.is_none() {
            return None;
        }
        let found = Some((pt, mid));
        *self.negotiated.lock().unwrap_or_else(|p| p.into_inner()) = found.clone();
        found
    }
}

/// The codec a source sends: VP8 for video, Opus for the microphone.
fn codec_of(source: Source) -> (RtpCodecKind, RTCRtpCodec) {
    match source {
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
    }
}

/// An SDES header extension (`mid`, `rid`): its value's bytes as they are.
fn sdes(uri: &'static str, value: Bytes) -> HeaderExtension {
    HeaderExtension::Custom {
        uri: uri.into(),
        extension: Box::new(SdesValue(value)),
    }
}

/// The value of an SDES header extension (RFC 8852: the bytes of the string, no terminator).
struct SdesValue(Bytes);

impl MarshalSize for SdesValue {
    fn marshal_size(&self) -> usize {
        self.0.len()
    }
}

impl Marshal for SdesValue {
    fn marshal_to(&self, buf: &mut [u8]) -> Result<usize, rtc::shared::error::Error> {
        let n = self.0.len();
        let out = buf
            .get_mut(..n)
            .ok_or(rtc::shared::error::Error::BufferTooShort)?;
        out.copy_from_slice(&self.0);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdes_values_are_their_bytes_and_refuse_a_short_buffer() {
        let v = SdesValue(Bytes::from_static(b"mid7"));
        assert_eq!(v.marshal_size(), 4);
        let mut buf = [0u8; 6];
        assert_eq!(v.marshal_to(&mut buf).ok(), Some(4));
        assert_eq!(&buf[..4], b"mid7");
        assert!(v.marshal_to(&mut [0u8; 3]).is_err());
    }
}
