//! Received tracks: one task per forwarded track reassembles RTP packets into frames (VP8 by
//! partition head and marker bit, Opus one packet a frame), decrypts each whole frame and hands
//! the plaintext to the application's [`crate::FrameSink`].

use std::sync::Arc;

use hush_frame::{Codec, Layout};
use rtc::rtp::packetizer::Depacketizer;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use crate::client::{ClientEvent, MediaKind, ReceivedFrame, Shared};
use hush_record::assemble::Assembler;

/// Reassembles one track's frames and decrypts them.
pub(crate) async fn receive_track(track: Arc<dyn TrackRemote>, shared: Arc<Shared>) {
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
