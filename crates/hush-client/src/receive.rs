//! Received tracks: one task per forwarded track reassembles RTP packets into frames (VP8 by
//! partition head and marker bit, Opus one packet a frame), decrypts each whole frame and hands
//! the plaintext to the application's [`crate::FrameSink`].

use std::sync::Arc;

use hush_frame::{Codec, Layout};
use rtc::rtp::packetizer::Depacketizer;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use crate::client::{ClientEvent, MediaKind, ReceivedFrame, Shared};

/// Largest frame reassembled from RTP (a guard against a flood of packets without a marker).
const MAX_FRAME: usize = 1 << 20;

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
