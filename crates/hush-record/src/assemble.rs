//! Frames from RTP packets: VP8 frames reassembled from their packets (one RTP timestamp, in
//! sequence, from a partition head to the marker bit), as the relay's recorder and the native
//! client need them. A gap drops the whole frame (counted): a partial frame never goes on, to
//! a decryptor or to disk.

/// Largest frame reassembled (a guard against a flood of packets without a marker bit).
pub const MAX_FRAME: usize = 1 << 20;

/// VP8 frame reassembly from depacketized parts; see the [module docs](self).
#[derive(Debug, Default)]
pub struct Assembler {
    buf: Vec<u8>,
    ts: Option<u32>,
    next_seq: u16,
    valid: bool,
    lost: u64,
}

impl Assembler {
    /// Adds one packet's depacketized part (`head`: it starts a partition; `marker`: the RTP
    /// marker bit, the frame's last packet). Returns the frame its last packet completes.
    pub fn push(
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
            return Some(core::mem::take(&mut self.buf));
        }
        None
    }

    /// A packet could not be depacketized: the frame it belongs to is lost.
    pub fn broken(&mut self) {
        if self.valid {
            self.lost += 1;
        }
        self.valid = false;
        self.buf.clear();
    }

    /// Frames lost since the last call.
    pub fn take_lost(&mut self) -> u64 {
        core::mem::take(&mut self.lost)
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

    #[test]
    fn a_frame_past_the_limit_is_dropped_not_grown() {
        let mut a = Assembler::default();
        let big = vec![0u8; MAX_FRAME];
        assert_eq!(a.push(1, 9, true, false, &big), None);
        assert_eq!(a.push(2, 9, false, true, b"x"), None);
        assert_eq!(a.take_lost(), 1);
    }
}
