//! One published track's fan-out: the publisher's receive loop hands each RTP packet to every
//! subscriber's [`Outlet`] without waiting. A subscriber's leg writes it straight into the
//! subscriber's connection (see `peer::forwarding`), a recording tap queues it; an outlet that
//! cannot take a packet now drops it (a slow subscriber loses packets, it never makes the
//! relay buffer more, nor holds up the others).
//!
//! A simulcast publication sends up to [`MAX_LAYERS`] encodings on one track. Each subscriber's
//! [`LayerSwitch`] picks the packets of the layer its allocator chose (see
//! [`super::layers`]) and renumbers them into one continuous stream, here, on the publisher's
//! receive path, so an outlet only ever gets what it will be sent.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use hush_proto::{SenderIndex, TrackId};
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::RTCRtpCodec;
use tokio::sync::{mpsc, watch};

use super::layers::{Layer, LayerSwitch, MAX_LAYERS, Verdict};
use crate::routing::ConnId;

/// Packets queued per queued outlet (a recording tap) before new ones are dropped: about a
/// second of 720p video, a few seconds of audio.
pub(crate) const SUBSCRIBER_QUEUE: usize = 512;

/// What became of a packet offered to an [`Outlet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offered {
    /// Taken: counted as forwarded.
    Taken,
    /// The outlet is full: dropped and counted.
    Full,
    /// The outlet is not ready to send (its leg is not negotiated yet): dropped, not counted.
    NotReady,
}

/// Where the fan-out hands one subscriber's packets. `offer` must not wait: it runs on the
/// publisher's receive loop, once per packet per subscriber.
pub(crate) trait Outlet: Send + Sync {
    /// Takes `packet` now, or refuses it.
    fn offer(&self, packet: rtp::Packet) -> Offered;
}

/// A shared outlet (a leg its header keeper also holds).
impl<T: Outlet + ?Sized> Outlet for std::sync::Arc<T> {
    fn offer(&self, packet: rtp::Packet) -> Offered {
        (**self).offer(packet)
    }
}

/// A bounded queue (a recording tap's, a test's): full drops.
impl Outlet for mpsc::Sender<rtp::Packet> {
    fn offer(&self, packet: rtp::Packet) -> Offered {
        match self.try_send(packet) {
            Ok(()) => Offered::Taken,
            Err(_) => Offered::Full,
        }
    }
}

/// How long a subscriber waits for the keyframe of a layer it switches to before the relay asks
/// the publisher again.
const KEYFRAME_RETRY_MS: u64 = 1_000;

/// No layer (in [`SinkControl`]).
pub(crate) const NO_LAYER: u8 = u8::MAX;

/// What a subscriber's allocator and its switch share: the layer asked for and the one sent.
#[derive(Debug)]
pub(crate) struct SinkControl {
    target: AtomicU8,
    current: AtomicU8,
    switches: AtomicU64,
}

impl Default for SinkControl {
    fn default() -> Self {
        Self {
            target: AtomicU8::new(NO_LAYER),
            current: AtomicU8::new(NO_LAYER),
            switches: AtomicU64::new(0),
        }
    }
}

impl SinkControl {
    /// Asks for `layer` from its next keyframe on.
    pub(crate) fn set_target(&self, layer: Layer) {
        self.target.store(layer, Ordering::Relaxed);
    }

    /// The layer being sent, if any.
    pub(crate) fn current(&self) -> Option<Layer> {
        Some(self.current.load(Ordering::Relaxed)).filter(|&l| l != NO_LAYER)
    }

    /// The layer this subscriber was given: the one asked for once the allocator chose (the
    /// switch to it waits for its keyframe, and meanwhile the subscriber still gets the old
    /// one), else the one being sent.
    pub(crate) fn assigned(&self) -> Option<Layer> {
        Some(self.target.load(Ordering::Relaxed))
            .filter(|&l| l != NO_LAYER)
            .or_else(|| self.current())
    }

    /// Layer switches so far.
    pub(crate) fn switches(&self) -> u64 {
        self.switches.load(Ordering::Relaxed)
    }
}

struct Sink {
    conn: ConnId,
    outlet: Box<dyn Outlet>,
    switch: LayerSwitch,
    control: std::sync::Arc<SinkControl>,
    /// The layer a keyframe was last asked for, and when.
    asked: Option<Layer>,
    asked_at: u64,
}

/// A published track, shared by its publisher's receive loop and its subscribers' forwards.
pub(crate) struct Fanout {
    /// The room-local track id.
    pub(crate) track: TrackId,
    /// The publisher's sender index (the forwarded stream's id is `p<sender_index>`).
    pub(crate) sender_index: SenderIndex,
    /// The publisher's codec, once its first packet arrived.
    codec: watch::Sender<Option<RTCRtpCodec>>,
    sinks: Mutex<Vec<Sink>>,
    /// Packets dropped because a subscriber's outlet was full.
    pub(crate) dropped: AtomicU64,
    /// Packets forwarded (counted once per subscriber).
    pub(crate) forwarded: AtomicU64,
    /// Their RTP bytes (payload and the 12-byte fixed header; before SRTP and header
    /// extensions).
    pub(crate) forwarded_bytes: AtomicU64,
    /// Publisher packets not forwarded because their payload type is not the track's codec.
    pub(crate) other_payload: AtomicU64,
    /// Layer switches made for this track's subscribers.
    pub(crate) switches: AtomicU64,
    /// The publisher leg's ids of the header extensions that are forwarded (URI, id).
    extensions: Mutex<Vec<(String, u8)>>,
    /// Bytes received per layer (payloads), for the subscribers' allocators.
    layer_bytes: [AtomicU64; MAX_LAYERS],
    /// Each layer's SSRC on the publisher's leg (0: not seen).
    layer_ssrc: [AtomicU32; MAX_LAYERS],
    /// Each layer's frame size, `width << 16 | height`, as its keyframes give it (VP8; 0:
    /// unknown).
    layer_size: [AtomicU32; MAX_LAYERS],
    /// The clock the layer switches read (milliseconds since this fan-out was made).
    started: Instant,
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
            forwarded_bytes: AtomicU64::new(0),
            other_payload: AtomicU64::new(0),
            switches: AtomicU64::new(0),
            extensions: Mutex::new(Vec::new()),
            layer_bytes: Default::default(),
            layer_ssrc: Default::default(),
            layer_size: Default::default(),
            started: Instant::now(),
        }
    }

    /// Records the publisher's codec; subscribers waiting for it add their tracks.
    pub(crate) fn set_codec(&self, codec: RTCRtpCodec) {
        self.codec.send_replace(Some(codec));
    }

    /// Whether the codec is known.
    pub(crate) fn has_codec(&self) -> bool {
        self.codec.borrow().is_some()
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

    /// Records that `layer` arrives with `ssrc` on the publisher's leg.
    pub(crate) fn set_layer_ssrc(&self, layer: Layer, ssrc: u32) {
        if let Some(slot) = self.layer_ssrc.get(usize::from(layer)) {
            slot.store(ssrc, Ordering::Relaxed);
        }
    }

    /// The publisher leg's SSRC of `layer`, once seen.
    pub(crate) fn layer_ssrc(&self, layer: Layer) -> Option<u32> {
        let ssrc = self
            .layer_ssrc
            .get(usize::from(layer))?
            .load(Ordering::Relaxed);
        (ssrc != 0).then_some(ssrc)
    }

    /// Records `layer`'s frame size (from one of its keyframes).
    pub(crate) fn set_layer_size(&self, layer: Layer, width: u16, height: u16) {
        if let Some(slot) = self.layer_size.get(usize::from(layer)) {
            slot.store(
                u32::from(width) << 16 | u32::from(height),
                Ordering::Relaxed,
            );
        }
    }

    /// The layer to send a subscriber that shows this video at `width` x `height`: the lowest
    /// whose frames are at least about that size (80 %), or the largest known; every layer
    /// when no size is known (codecs whose size the relay cannot read), the lowest for a video
    /// not shown (0 x 0).
    pub(crate) fn layer_for(&self, width: u32, height: u32) -> Layer {
        if width == 0 || height == 0 {
            return 0;
        }
        let sizes: Vec<(Layer, u32, u32)> = (0..MAX_LAYERS as Layer)
            .filter_map(|l| {
                let packed = self.layer_size[usize::from(l)].load(Ordering::Relaxed);
                (packed != 0).then_some((l, packed >> 16, packed & 0xffff))
            })
            .collect();
        let Some(&(largest, _, _)) = sizes.last() else {
            return (MAX_LAYERS - 1) as Layer;
        };
        sizes
            .iter()
            .find(|&&(_, w, h)| w * 5 >= width * 4 && h * 5 >= height * 4)
            .map_or(largest, |&(l, _, _)| l)
    }

    /// How many layers have been seen.
    pub(crate) fn layer_count(&self) -> usize {
        self.layer_ssrc
            .iter()
            .filter(|s| s.load(Ordering::Relaxed) != 0)
            .count()
    }

    /// Payload bytes received so far on each layer.
    pub(crate) fn layer_bytes(&self) -> [u64; MAX_LAYERS] {
        std::array::from_fn(|i| self.layer_bytes[i].load(Ordering::Relaxed))
    }

    /// Milliseconds since this fan-out was made (the switches' clock).
    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Adds a subscriber: its outlet, the control its allocator sets, and the codec's clock
    /// rate.
    pub(crate) fn add_sink(
        &self,
        subscriber: ConnId,
        outlet: impl Outlet + 'static,
        control: std::sync::Arc<SinkControl>,
        clock_rate: u32,
    ) {
        let switch = LayerSwitch::new(self.layer_count(), clock_rate);
        let now = self.now_ms();
        if let Ok(mut sinks) = self.sinks.lock() {
            sinks.retain(|s| s.conn != subscriber);
            sinks.push(Sink {
                conn: subscriber,
                outlet: Box::new(outlet),
                switch,
                control,
                asked: None,
                asked_at: now,
            });
        }
    }

    pub(crate) fn remove_sink(&self, subscriber: ConnId) {
        if let Ok(mut sinks) = self.sinks.lock() {
            sinks.retain(|s| s.conn != subscriber);
        }
    }

    /// Drops every subscriber (the track was unpublished).
    pub(crate) fn close(&self) {
        if let Ok(mut sinks) = self.sinks.lock() {
            sinks.clear();
        }
    }

    /// Hands a packet of `layer` (`keyframe`: it starts a keyframe) to every subscriber whose
    /// switch takes it, without waiting. Returns the layers a keyframe is needed of (bit `l`
    /// for layer `l`): a subscriber switches to them.
    pub(crate) fn forward(&self, packet: &rtp::Packet, layer: Layer, keyframe: bool) -> u8 {
        if let Some(bytes) = self.layer_bytes.get(usize::from(layer)) {
            bytes.fetch_add(packet.payload.len() as u64, Ordering::Relaxed);
        }
        let Ok(mut sinks) = self.sinks.lock() else {
            return 0;
        };
        let now = self.now_ms();
        let simulcast = self.layer_count() > 1;
        let bytes = packet.payload.len() as u64 + 12;
        let mut asks = 0u8;
        for sink in sinks.iter_mut() {
            if simulcast {
                sink.switch.set_simulcast();
            }
            let target = sink.control.target.load(Ordering::Relaxed);
            if target != NO_LAYER && target != sink.switch.target() {
                sink.switch.set_target(target);
            }
            // A switch asks for the new layer's keyframe at once; the first keyframe is asked
            // for by the subscriber's forward once its connection can carry it (an earlier one
            // would be lost), and either is asked again after a second without it.
            let want = sink.switch.target();
            let switching = sink.switch.current().is_some() && sink.asked != Some(want);
            if sink.switch.pending()
                && (switching || now.saturating_sub(sink.asked_at) >= KEYFRAME_RETRY_MS)
            {
                asks |= 1 << want;
                sink.asked = Some(want);
                sink.asked_at = now;
            }
            let seq = packet.header.sequence_number;
            let ts = packet.header.timestamp;
            let Verdict::Forward { seq, ts } = sink.switch.packet(layer, seq, ts, keyframe, now)
            else {
                continue;
            };
            let current = sink.switch.current().unwrap_or(NO_LAYER);
            sink.control.current.store(current, Ordering::Relaxed);
            let switches = sink.switch.switches();
            let before = sink.control.switches.swap(switches, Ordering::Relaxed);
            self.switches
                .fetch_add(switches.saturating_sub(before), Ordering::Relaxed);
            // `Packet` clones share the payload bytes.
            let mut out = packet.clone();
            out.header.sequence_number = seq;
            out.header.timestamp = ts;
            match sink.outlet.offer(out) {
                Offered::Taken => {
                    self.forwarded.fetch_add(1, Ordering::Relaxed);
                    self.forwarded_bytes.fetch_add(bytes, Ordering::Relaxed);
                }
                Offered::Full => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
                Offered::NotReady => {}
            }
        }
        asks
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn packet(ssrc: u32, seq: u16, ts: u32) -> rtp::Packet {
        let mut p = rtp::Packet::default();
        p.header.ssrc = ssrc;
        p.header.sequence_number = seq;
        p.header.timestamp = ts;
        p.payload = bytes::Bytes::from_static(&[0u8; 100]);
        p
    }

    #[test]
    fn each_subscriber_gets_only_its_layer_renumbered_and_asks_for_the_keyframe_it_needs() {
        let fanout = Fanout::new(TrackId(1), SenderIndex(1));
        fanout.set_layer_ssrc(0, 10);
        fanout.set_layer_ssrc(2, 30);
        let (slow_tx, mut slow) = mpsc::channel(16);
        let (fast_tx, mut fast) = mpsc::channel(16);
        let slow_control = Arc::new(SinkControl::default());
        let fast_control = Arc::new(SinkControl::default());
        fanout.add_sink(ConnId(1), slow_tx, Arc::clone(&slow_control), 90_000);
        fanout.add_sink(ConnId(2), fast_tx, Arc::clone(&fast_control), 90_000);
        slow_control.set_target(0);
        fast_control.set_target(2);
        // The first keyframes are the forwards' to ask for (when their connections are up)...
        assert_eq!(fanout.forward(&packet(10, 1, 100), 0, false), 0);
        assert_eq!(fanout.forward(&packet(30, 1, 100), 2, false), 0);
        // ...and nothing is forwarded before them.
        assert!(slow.try_recv().is_err() && fast.try_recv().is_err());
        assert_eq!(fanout.forward(&packet(10, 2, 3_100), 0, true), 0);
        assert_eq!(fanout.forward(&packet(30, 2, 3_100), 2, true), 0);
        assert_eq!(fanout.forward(&packet(30, 3, 3_100), 2, false), 0);
        let got = slow.try_recv().expect("slow got q's keyframe");
        assert_eq!(got.header.ssrc, 10);
        assert!(slow.try_recv().is_err(), "slow got only q");
        assert_eq!(
            fast.try_recv().map(|p| p.header.sequence_number).ok(),
            Some(2)
        );
        assert_eq!(
            fast.try_recv().map(|p| p.header.sequence_number).ok(),
            Some(3)
        );
        assert_eq!(slow_control.current(), Some(0));
        assert_eq!(fast_control.current(), Some(2));
        assert_eq!(fanout.layer_bytes(), [200, 0, 300]);
        assert_eq!(fanout.forwarded.load(Ordering::Relaxed), 3);
        // The fast subscriber drops to q: its next packet is q's keyframe, numbered after 3.
        fast_control.set_target(0);
        assert_eq!(fanout.forward(&packet(30, 4, 6_100), 2, false), 0b001);
        assert_eq!(fanout.forward(&packet(10, 3, 6_100), 0, true), 0);
        assert_eq!(
            fast.try_recv().map(|p| p.header.sequence_number).ok(),
            Some(4)
        );
        assert_eq!(
            fast.try_recv().map(|p| p.header.sequence_number).ok(),
            Some(5)
        );
        assert_eq!(fast_control.switches(), 1);
        assert_eq!(fanout.switches.load(Ordering::Relaxed), 1);
        assert_eq!(fanout.layer_ssrc(2), Some(30));
        assert_eq!(fanout.layer_ssrc(1), None);
    }

    #[test]
    fn the_layer_for_a_tile_is_the_lowest_about_as_large() {
        let fanout = Fanout::new(TrackId(1), SenderIndex(1));
        // Nothing known: no cap.
        assert_eq!(fanout.layer_for(320, 180), 2);
        fanout.set_layer_size(0, 240, 135);
        fanout.set_layer_size(1, 480, 270);
        fanout.set_layer_size(2, 960, 540);
        assert_eq!(fanout.layer_for(200, 112), 0);
        assert_eq!(fanout.layer_for(300, 168), 0); // 240x135 is 80 % of it
        assert_eq!(fanout.layer_for(320, 180), 1);
        assert_eq!(fanout.layer_for(1920, 1080), 2);
        assert_eq!(fanout.layer_for(0, 0), 0);
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let fanout = Fanout::new(TrackId(1), SenderIndex(1));
        fanout.set_layer_ssrc(0, 10);
        let (tx, _rx) = mpsc::channel(1);
        fanout.add_sink(ConnId(1), tx, Arc::new(SinkControl::default()), 48_000);
        for seq in 0..3 {
            fanout.forward(&packet(10, seq, 0), 0, false);
        }
        assert_eq!(fanout.forwarded.load(Ordering::Relaxed), 1);
        assert_eq!(fanout.dropped.load(Ordering::Relaxed), 2);
    }

    /// An outlet that answers with `answer` and counts what it was offered.
    struct Fixed {
        answer: Offered,
        offered: Arc<AtomicU64>,
    }

    impl Outlet for Fixed {
        fn offer(&self, _packet: rtp::Packet) -> Offered {
            self.offered.fetch_add(1, Ordering::Relaxed);
            self.answer
        }
    }

    #[test]
    fn a_full_or_unready_outlet_holds_up_no_other_and_only_full_counts_as_dropped() {
        let fanout = Fanout::new(TrackId(1), SenderIndex(1));
        fanout.set_layer_ssrc(0, 10);
        let counts: Vec<Arc<AtomicU64>> = (0..3).map(|_| Arc::new(AtomicU64::new(0))).collect();
        for (conn, answer) in [Offered::Full, Offered::NotReady, Offered::Taken]
            .into_iter()
            .enumerate()
        {
            let outlet = Fixed {
                answer,
                offered: Arc::clone(&counts[conn]),
            };
            let conn = ConnId(conn as u64);
            fanout.add_sink(conn, outlet, Arc::new(SinkControl::default()), 48_000);
        }
        for seq in 0..5 {
            fanout.forward(&packet(10, seq, 0), 0, false);
        }
        let offered: Vec<u64> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        assert_eq!(offered, [5, 5, 5], "every outlet is offered every packet");
        assert_eq!(
            fanout.forwarded.load(Ordering::Relaxed),
            5,
            "the ready one's"
        );
        assert_eq!(
            fanout.forwarded_bytes.load(Ordering::Relaxed),
            5 * 112,
            "payload and fixed header"
        );
        assert_eq!(
            fanout.dropped.load(Ordering::Relaxed),
            5,
            "the full one's only"
        );
        // A removed subscriber is offered nothing more.
        fanout.remove_sink(ConnId(0));
        fanout.forward(&packet(10, 5, 0), 0, false);
        assert_eq!(counts[0].load(Ordering::Relaxed), 5);
        assert_eq!(fanout.dropped.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn a_subscriber_is_on_the_layer_it_was_given_while_the_switch_waits() {
        let c = SinkControl::default();
        assert_eq!(c.assigned(), None, "nothing chosen, nothing sent");
        c.current.store(0, Ordering::Relaxed);
        assert_eq!(c.assigned(), Some(0), "what is sent, before any choice");
        c.set_target(2);
        assert_eq!(
            c.current(),
            Some(0),
            "the switch waits for layer 2's keyframe"
        );
        assert_eq!(c.assigned(), Some(2));
    }
}
