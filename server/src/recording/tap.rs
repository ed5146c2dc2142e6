//! One recorded track: a sink on the track's fan-out like any subscriber's, whose packets are
//! reassembled into frames (Opus: one packet a frame; VP8: from the partition head to the
//! marker bit) and handed to the recording's writer. Frames stay SFrame ciphertext: nothing
//! here can open them. The top simulcast layer is recorded.

use std::sync::Arc;

use std::time::{Duration, Instant};

use hush_proto::TrackId;
use hush_record::assemble::Assembler;
use hush_record::{FrameRecord, TrackInfo, TrackKind};
use rtc::rtp;
use rtc::rtp::packetizer::Depacketizer;
use tokio::sync::mpsc;

use super::queue::{NotQueued, Queue};
use super::writer::Item;
use crate::bus::Input;
use crate::media::fanout::{Fanout, SUBSCRIBER_QUEUE, SinkControl};
use crate::media::keyframe::{VideoCodec, starts_keyframe};
use crate::ops::metrics::Metrics;
use crate::routing::ConnId;

/// When the recorder asks for keyframes after it starts receiving a track: at once, and
/// again later in case the sender's move to the recorder's epoch went unseen. The move itself
/// is seen: the first video frame under a new KID (the SFrame header is in the clear) that is
/// not a keyframe asks for one at once, since frames before it are under a key the recorder
/// was never given and a decoder needs a keyframe under the new one.
const KEYFRAME_ASKS: [Duration; 2] = [Duration::ZERO, Duration::from_millis(3000)];

/// What a tap needs to know about its recording.
pub(super) struct TapContext {
    pub(super) recorder: ConnId,
    pub(super) track: TrackId,
    pub(super) participant: String,
    pub(super) file: String,
    pub(super) started: Instant,
    pub(super) writer: Queue,
    pub(super) driver: mpsc::WeakSender<Input>,
    pub(super) metrics: Arc<Metrics>,
}

/// The codecs a recording can hold: (kind, name) by MIME type.
fn recordable(mime: &str) -> Option<(TrackKind, &'static str)> {
    match mime.to_ascii_lowercase().as_str() {
        "audio/opus" => Some((TrackKind::Audio, "opus")),
        "video/vp8" => Some((TrackKind::Video, "vp8")),
        _ => None,
    }
}

/// Records `fanout`'s track until the sink is removed (its queue closes).
pub(super) async fn run(fanout: Arc<Fanout>, cx: TapContext) {
    let mut codec_watch = fanout.codec_watch();
    let codec = loop {
        if let Some(c) = codec_watch.borrow().clone() {
            break c;
        }
        if codec_watch.changed().await.is_err() {
            return;
        }
    };
    let Some((kind, name)) = recordable(&codec.mime_type) else {
        tracing::info!(
            codec = codec.mime_type.as_str(),
            "a track in a codec recordings do not hold yet is left out"
        );
        cx.metrics.recording_dropped("codec", 1);
        return;
    };
    let info = TrackInfo {
        file: cx.file.clone(),
        track_id: cx.track.0.to_string(),
        participant: cx.participant.clone(),
        sender_index: fanout.sender_index.0,
        kind,
        codec: name.to_owned(),
        clock_rate: codec.clock_rate,
        added_at_ms: super::unix_ms(),
    };
    if cx.writer.control(Item::Track(info)).is_err() {
        cx.metrics.recording_dropped("queue_full", 1);
        return;
    }
    let (tx, mut rx) = mpsc::channel::<rtp::Packet>(SUBSCRIBER_QUEUE);
    let control = Arc::new(SinkControl::default());
    let top = |f: &Fanout| u8::try_from(f.layer_count().saturating_sub(1)).unwrap_or(0);
    control.set_target(top(&fanout));
    fanout.add_sink(cx.recorder, tx, Arc::clone(&control), codec.clock_rate);
    let asks = tokio::spawn(ask_keyframes(cx.driver.clone(), cx.recorder, cx.track));
    let file: Arc<str> = Arc::from(cx.file.as_str());
    let video = (kind == TrackKind::Video).then_some(VideoCodec::Vp8);
    let mut vp8 = rtc::rtp::codec::vp8::Vp8Packet::default();
    let mut asm = Assembler::default();
    let mut keyframe = false;
    let mut gap = false;
    let mut last_kid: Option<u64> = None;
    let mut asked_at_switch = false;
    let layout = hush_frame::Layout::Media(hush_frame::Codec::Vp8);
    while let Some(pkt) = rx.recv().await {
        control.set_target(top(&fanout));
        let frame = match video {
            None => Some(pkt.payload.to_vec()),
            Some(codec) => {
                let head = vp8.is_partition_head(&pkt.payload);
                if head {
                    keyframe = starts_keyframe(codec, &pkt.payload);
                }
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
        let lost = asm.take_lost();
        if lost > 0 {
            gap = true;
            cx.metrics.recording_dropped("incomplete", lost);
        }
        let Some(data) = frame.filter(|d| !d.is_empty()) else {
            continue;
        };
        if video.is_some() {
            let kid = layout.header(&data).map(|h| h.kid);
            if last_kid.is_some() && kid != last_kid && !keyframe && !asked_at_switch {
                asked_at_switch = true;
                // After the core's keyframe grace (150 ms): an ask that close to the first one
                // (made when the sink was added, under the old epoch) counts as answered by it.
                let (driver, subscriber, track) = (cx.driver.clone(), cx.recorder, cx.track);
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if let Some(tx) = driver.upgrade() {
                        let _ = tx.send(Input::Keyframe { subscriber, track }).await;
                    }
                });
            }
            last_kid = kid.or(last_kid);
        }
        let at_us = u64::try_from(cx.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let record = FrameRecord {
            at_us,
            rtp_timestamp: pkt.header.timestamp,
            keyframe: std::mem::take(&mut keyframe),
            gap: std::mem::take(&mut gap),
            data,
        };
        match cx.writer.frame(Arc::clone(&file), record) {
            Ok(()) => {}
            Err(NotQueued::Full) => {
                // Bounded: a disk slower than the media loses frames, never memory.
                gap = true;
                cx.metrics.recording_dropped("queue_full", 1);
            }
            Err(NotQueued::Closed) => break,
        }
    }
    asks.abort();
    fanout.remove_sink(cx.recorder);
}

async fn ask_keyframes(driver: mpsc::WeakSender<Input>, subscriber: ConnId, track: TrackId) {
    let start = tokio::time::Instant::now();
    for after in KEYFRAME_ASKS {
        tokio::time::sleep_until(start + after).await;
        let Some(tx) = driver.upgrade() else { return };
        let _ = tx.send(Input::Keyframe { subscriber, track }).await;
    }
}
