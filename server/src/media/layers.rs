//! Simulcast: which encoding of a published video each subscriber gets, and the header rewrite
//! that keeps the subscriber's stream continuous across switches. Pure state machines: time
//! comes in as milliseconds, packets as the few header fields the decisions need.
//!
//! **Why E2EE survives a switch.** A publisher's send transform sees the frames of every
//! encoding and seals them all with one SFrame context (one key, one counter): counters never
//! repeat across encodings, so no (key, nonce) pair is used twice. A subscriber's receiver keeps
//! one replay window per sender key; after a switch it sees counters of the new encoding, which
//! are interleaved with the old one's in the sender's single counter space. Encoders emit the
//! encodings of one captured frame together, before the next capture, so the first frame of the
//! new encoding (a keyframe of a later capture) has a counter above every frame already
//! forwarded, and the window only moves forward; a frame the relay forwarded twice would still
//! be refused as a replay. The relay reads only RTP headers and the clear bytes
//! [`super::keyframe`] lists.

/// A simulcast encoding, 0 the lowest.
pub(crate) type Layer = u8;

/// The most encodings a published track may have.
pub(crate) const MAX_LAYERS: usize = 3;

/// The layer an encoding's RTP stream id names: `q`, `h`, `f` (quarter, half, full: the names
/// the Hush web client and LiveKit use) or `0`..`2`. Other names are not layers the relay knows.
pub(crate) fn layer_of_rid(rid: &str) -> Option<Layer> {
    match rid {
        "q" | "0" => Some(0),
        "h" | "1" => Some(1),
        "f" | "2" => Some(2),
        _ => None,
    }
}

/// What the fan-out does with one packet for one subscriber.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Forward it with this sequence number and timestamp.
    Forward { seq: u16, ts: u32 },
    /// Not this subscriber's layer (or not yet: waiting for a keyframe of it).
    Drop,
}

/// One subscriber's view of one published video: the layer it receives, the one it should
/// receive, and the offsets that turn each layer's sequence numbers and timestamps into one
/// continuous stream.
#[derive(Debug)]
pub(crate) struct LayerSwitch {
    /// Video clock ticks per millisecond (90 for every video codec in WebRTC).
    ticks_per_ms: u32,
    /// `false` for a publication with one encoding: everything is forwarded as it comes,
    /// without waiting for a keyframe (the decoder asks for one itself).
    simulcast: bool,
    target: Layer,
    current: Option<Layer>,
    seq_offset: u16,
    ts_offset: u32,
    /// The highest (out) sequence number and its timestamp and arrival time.
    last: Option<(u16, u32, u64)>,
    /// The (in) sequence number of the keyframe the current layer was switched in at.
    first: Option<u16>,
    switches: u64,
}

impl LayerSwitch {
    /// A subscriber's switch for a publication with `layers` encodings.
    pub(crate) fn new(layers: usize, clock_rate: u32) -> Self {
        Self {
            ticks_per_ms: (clock_rate / 1000).max(1),
            simulcast: layers > 1,
            target: 0,
            current: None,
            seq_offset: 0,
            ts_offset: 0,
            last: None,
            first: None,
            switches: 0,
        }
    }

    /// Becomes a simulcast switch (the publisher's second encoding showed up).
    pub(crate) fn set_simulcast(&mut self) {
        self.simulcast = true;
    }

    /// Asks for `layer` from the next keyframe on. Returns `true` if that needs a keyframe of
    /// `layer` (the caller asks the publisher for one).
    pub(crate) fn set_target(&mut self, layer: Layer) -> bool {
        self.target = layer;
        self.simulcast && self.current != Some(layer)
    }

    /// The layer forwarded now.
    pub(crate) fn current(&self) -> Option<Layer> {
        self.current
    }

    /// The layer asked for.
    pub(crate) fn target(&self) -> Layer {
        self.target
    }

    /// Whether a keyframe of the target is awaited.
    pub(crate) fn pending(&self) -> bool {
        self.simulcast && self.current != Some(self.target)
    }

    /// Layer switches so far.
    pub(crate) fn switches(&self) -> u64 {
        self.switches
    }

    /// Decides one packet of `layer` (`keyframe`: it starts a keyframe), arrived at `now_ms`.
    pub(crate) fn packet(
        &mut self,
        layer: Layer,
        seq: u16,
        ts: u32,
        keyframe: bool,
        now_ms: u64,
    ) -> Verdict {
        if !self.simulcast {
            self.current = Some(layer);
            return self.rewrite(seq, ts, now_ms);
        }
        if self.current != Some(layer) {
            if layer != self.target || !keyframe {
                return Verdict::Drop;
            }
            // Switch: the keyframe continues the subscriber's stream right after the last
            // packet sent, at a timestamp as far on as the time that passed.
            if let Some((last_seq, last_ts, at)) = self.last {
                let elapsed = u32::try_from(now_ms.saturating_sub(at)).unwrap_or(u32::MAX);
                let step = elapsed.saturating_mul(self.ticks_per_ms).max(1);
                self.seq_offset = last_seq.wrapping_add(1).wrapping_sub(seq);
                self.ts_offset = last_ts.wrapping_add(step).wrapping_sub(ts);
            }
            if self.current.is_some() {
                self.switches += 1;
            }
            self.current = Some(layer);
            self.first = Some(seq);
        } else if let Some(first) = self.first
            && seq.wrapping_sub(first) >= 0x8000
        {
            // A packet of this layer from before the keyframe it was switched in at (late, or
            // a retransmission): its number would fall among the previous layer's.
            return Verdict::Drop;
        }
        self.rewrite(seq, ts, now_ms)
    }

    fn rewrite(&mut self, seq: u16, ts: u32, now_ms: u64) -> Verdict {
        let out_seq = seq.wrapping_add(self.seq_offset);
        let out_ts = ts.wrapping_add(self.ts_offset);
        let newer = match self.last {
            None => true,
            Some((last, _, _)) => {
                let ahead = out_seq.wrapping_sub(last);
                ahead != 0 && ahead < 0x8000
            }
        };
        if newer {
            self.last = Some((out_seq, out_ts, now_ms));
        }
        Verdict::Forward {
            seq: out_seq,
            ts: out_ts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: Layer = 0;
    const H: Layer = 1;
    const F: Layer = 2;

    fn forward(switch: &mut LayerSwitch, layer: Layer, seq: u16, ts: u32, key: bool, now: u64) {
        let verdict = switch.packet(layer, seq, ts, key, now);
        assert!(matches!(verdict, Verdict::Forward { .. }), "{verdict:?}");
    }

    #[test]
    fn a_switch_waits_for_a_keyframe_of_the_target_and_keeps_the_stream_continuous() {
        let mut s = LayerSwitch::new(3, 90_000);
        assert!(s.set_target(F));
        // Nothing until a keyframe of the target: delta frames of f, anything of q.
        assert_eq!(s.packet(F, 100, 9_000, false, 0), Verdict::Drop);
        assert_eq!(s.packet(Q, 500, 9_000, true, 0), Verdict::Drop);
        assert_eq!(
            s.packet(F, 101, 12_000, true, 33),
            Verdict::Forward {
                seq: 101,
                ts: 12_000
            }
        );
        forward(&mut s, F, 102, 12_000, false, 34);
        forward(&mut s, F, 103, 15_000, false, 66);
        assert_eq!(s.current(), Some(F));
        assert!(!s.pending());

        // Down to q: f keeps flowing until q's keyframe; then q continues f's numbering.
        assert!(s.set_target(Q));
        assert!(s.pending());
        assert_eq!(s.packet(Q, 7_000, 1_000_000, false, 80), Verdict::Drop);
        forward(&mut s, F, 104, 18_000, false, 99);
        assert_eq!(
            s.packet(Q, 7_001, 1_003_000, true, 132),
            Verdict::Forward {
                seq: 105,
                ts: 18_000 + 33 * 90
            }
        );
        // A late q packet from before the keyframe would collide with f's numbers: dropped.
        assert_eq!(s.packet(Q, 7_000, 1_000_000, false, 133), Verdict::Drop);
        // f's packets after the switch are dropped, q's follow with the same offsets.
        assert_eq!(s.packet(F, 105, 21_000, false, 133), Verdict::Drop);
        assert_eq!(
            s.packet(Q, 7_002, 1_006_000, false, 165),
            Verdict::Forward {
                seq: 106,
                ts: 18_000 + 33 * 90 + 3_000
            }
        );
        assert_eq!(s.switches(), 1);
    }

    #[test]
    fn the_rewrite_wraps_and_tolerates_reordering() {
        let mut s = LayerSwitch::new(2, 90_000);
        s.set_target(H);
        forward(&mut s, H, 65_534, u32::MAX - 10, true, 0);
        forward(&mut s, H, 0, 2_990, false, 33);
        // A late packet is forwarded with its own (older) number, and does not move `last`;
        // one from before the keyframe is dropped.
        assert_eq!(
            s.packet(H, 65_535, u32::MAX - 10, false, 40),
            Verdict::Forward {
                seq: 65_535,
                ts: u32::MAX - 10
            }
        );
        assert_eq!(
            s.packet(H, 65_533, u32::MAX - 3_010, false, 40),
            Verdict::Drop
        );
        s.set_target(Q);
        assert_eq!(
            s.packet(Q, 10, 50, true, 66),
            Verdict::Forward {
                seq: 1,
                ts: 2_990 + 33 * 90
            }
        );
    }

    #[test]
    fn a_single_encoding_is_forwarded_untouched_without_waiting_for_a_keyframe() {
        let mut s = LayerSwitch::new(1, 90_000);
        assert!(!s.set_target(Q));
        assert_eq!(
            s.packet(Q, 7, 70, false, 0),
            Verdict::Forward { seq: 7, ts: 70 }
        );
        assert!(!s.pending());
    }

    #[test]
    fn rids_name_layers() {
        assert_eq!(layer_of_rid("q"), Some(0));
        assert_eq!(layer_of_rid("f"), Some(2));
        assert_eq!(layer_of_rid("1"), Some(1));
        assert_eq!(layer_of_rid("x"), None);
    }
}
