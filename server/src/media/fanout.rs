//! One published track's fan-out: the publisher's receive loop hands each RTP packet to every
//! subscriber's bounded queue; a full queue drops the packet (a slow subscriber loses packets,
//! it never makes the relay buffer more).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use hush_proto::{SenderIndex, TrackId};
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::RTCRtpCodec;
use tokio::sync::{mpsc, watch};

use crate::routing::ConnId;

/// Packets queued per subscriber of one track before new ones are dropped: about a second of
/// 720p video, a few seconds of audio.
pub(crate) const SUBSCRIBER_QUEUE: usize = 512;

/// A published track, shared by its publisher's receive loop and its subscribers' writers.
pub(crate) struct Fanout {
    /// The room-local track id.
    pub(crate) track: TrackId,
    /// The publisher's sender index (the forwarded stream's id is `p<sender_index>`).
    pub(crate) sender_index: SenderIndex,
    /// The publisher's codec, once its first packet arrived.
    codec: watch::Sender<Option<RTCRtpCodec>>,
    sinks: Mutex<Vec<(ConnId, mpsc::Sender<rtp::Packet>)>>,
    /// Packets dropped because a subscriber's queue was full.
    pub(crate) dropped: AtomicU64,
    /// Packets forwarded (counted once per subscriber).
    pub(crate) forwarded: AtomicU64,
    /// Publisher packets not forwarded because their payload type is not the track's codec.
    pub(crate) other_payload: AtomicU64,
    /// The publisher leg's ids of the header extensions that are forwarded (URI, id).
    extensions: Mutex<Vec<(String, u8)>>,
}

impl Fanout {
    pub(crate) fn new(track: TrackId, sender_index: SenderIndex) -> Self {
        Self {
            track,
            sender_index,
            codec: watch::Sender::new(None),
            sinks: Mutex::new(Vec::new()),
            dropped: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            other_payload: AtomicU64::new(0),
            extensions: Mutex::new(Vec::new()),
        }
    }

    /// Records the publisher's codec; subscribers waiting for it add their tracks.
    pub(crate) fn set_codec(&self, codec: RTCRtpCodec) {
        self.codec.send_replace(Some(codec));
    }

    /// Records the publisher leg's ids of the forwarded header extensions; call before
    /// [`Self::set_codec`], which releases the subscribers.
    pub(crate) fn set_extensions(&self, extensions: Vec<(String, u8)>) {
        if let Ok(mut ids) = self.extensions.lock() {
            *ids = extensions;
        }
    }

    /// The publisher leg's (URI, id) of each forwarded header extension it negotiated.
    pub(crate) fn extensions(&self) -> Vec<(String, u8)> {
        self.extensions
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default()
    }

    /// Waits until the codec is known.
    pub(crate) fn codec_watch(&self) -> watch::Receiver<Option<RTCRtpCodec>> {
        self.codec.subscribe()
    }

    pub(crate) fn add_sink(&self, subscriber: ConnId, sink: mpsc::Sender<rtp::Packet>) {
        if let Ok(mut sinks) = self.sinks.lock() {
            sinks.retain(|(c, _)| *c != subscriber);
            sinks.push((subscriber, sink));
        }
    }

    pub(crate) fn remove_sink(&self, subscriber: ConnId) {
        if let Ok(mut sinks) = self.sinks.lock() {
            sinks.retain(|(c, _)| *c != subscriber);
        }
    }

    /// Drops every subscriber (the track was unpublished).
    pub(crate) fn close(&self) {
        if let Ok(mut sinks) = self.sinks.lock() {
            sinks.clear();
        }
    }

    /// Hands `packet` to every subscriber without waiting.
    pub(crate) fn forward(&self, packet: &rtp::Packet) {
        let Ok(sinks) = self.sinks.lock() else {
            return;
        };
        for (_, sink) in sinks.iter() {
            // `Packet` clones share the payload bytes.
            match sink.try_send(packet.clone()) {
                Ok(()) => {
                    self.forwarded.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}
