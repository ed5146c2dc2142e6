//! SFrame key ids: how (stream context, sender index, epoch) pack into one KID.
//!
//! The layout follows RFC 9605 section 5.2 ("SFrame with MLS"), with [`EPOCH_BITS`] `E = 8` and
//! [`SENDER_INDEX_BITS`] `S = 24`:
//!
//! ```text
//!  bit 63 .. 32         31 .. 8            7 .. 0
//! +--------------------+------------------+-------------+
//! | stream context     | sender index     | epoch mod   |
//! | (8 bits used)      | (24 bits)        | 2^8         |
//! +--------------------+------------------+-------------+
//! KID = (context << 32) | (sender_index << 8) | (epoch mod 256)
//! ```
//!
//! - **Senders per room**: sender indexes are assigned by the relay and never reused within a
//!   room, so a room can see `2^24 - 1` (16.7 million) joins over its lifetime. A join with a
//!   larger index is refused ([`crate::MembershipError::SenderIndexOutOfRange`]); the room must
//!   then be closed and opened again under a new id.
//! - **Streams per sender**: [`StreamContext`] is a `u8`: up to 256 encoded transforms per
//!   participant (microphone, camera, screen, screen audio ...). Each owns its KID, so each owns
//!   its SFrame counter, and no two ever share a nonce.
//! - **Epochs in flight**: a receiver holds the current epoch, possibly newer ones waiting for the
//!   switch, and older ones for the grace period (10 s). Epoch numbers are relay event sequence
//!   numbers (see [`crate::manual`]), so 256 distinct KIDs per sender and context cover any room
//!   with fewer than 256 membership events in 10 s; the relay's join rate limits keep rooms far
//!   below that. **At wrap**, when a new epoch's KIDs collide with an older epoch still held, the
//!   older epoch's keys are retired first ([`crate::KeyUpdate::RetireReceive`]), so the frame
//!   layer always holds exactly one key per KID; frames still in flight on the old epoch are then
//!   dropped (never decrypted with the wrong key).
//! - **Size on the wire**: the SFrame header stores the KID in as few bytes as it needs: for
//!   context 0 (the microphone) and sender index below 256, two bytes; any sender index, four;
//!   contexts 1 to 255, five.

use core::fmt;

/// Bits of the epoch number stored in a KID (`E` in RFC 9605 section 5.2).
pub const EPOCH_BITS: u32 = 8;
/// Bits of the sender index stored in a KID (`S` in RFC 9605 section 5.2).
pub const SENDER_INDEX_BITS: u32 = 24;

/// A participant's sender index: assigned by the relay, unique and never reused within a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SenderIndex(u32);

impl SenderIndex {
    /// The largest sender index a KID can carry (`2^24 - 1`).
    pub const MAX: u32 = (1 << SENDER_INDEX_BITS) - 1;

    /// A sender index; `None` above [`SenderIndex::MAX`].
    pub const fn new(index: u32) -> Option<Self> {
        if index <= Self::MAX {
            Some(Self(index))
        } else {
            None
        }
    }

    /// The index as a number.
    pub const fn get(self) -> u32 {
        self.0
    }
}

/// Which of a participant's streams (one encoded transform each) a key belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamContext(pub u8);

impl StreamContext {
    /// The microphone track (shortest KIDs: use it for the stream with the most frames).
    pub const MICROPHONE: Self = Self(0);
    /// The camera track.
    pub const CAMERA: Self = Self(1);
    /// Screen share video.
    pub const SCREEN: Self = Self(2);
    /// Screen share audio.
    pub const SCREEN_AUDIO: Self = Self(3);
}

/// An SFrame key id built from (context, sender index, epoch).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Kid(u64);

impl Kid {
    /// Packs a KID (see the module docs for the layout).
    pub const fn new(context: StreamContext, sender: SenderIndex, epoch: u64) -> Self {
        let e = epoch & ((1 << EPOCH_BITS) - 1);
        Self(
            ((context.0 as u64) << (EPOCH_BITS + SENDER_INDEX_BITS))
                | ((sender.0 as u64) << EPOCH_BITS)
                | e,
        )
    }

    /// The KID as the frame layer takes it.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// Unpacks a KID into (context, sender index, epoch mod 2^E); `None` if it cannot come from
    /// [`Kid::new`].
    pub const fn unpack(kid: u64) -> Option<(StreamContext, SenderIndex, u8)> {
        let ctx = kid >> (EPOCH_BITS + SENDER_INDEX_BITS);
        if ctx > u8::MAX as u64 {
            return None;
        }
        let sender = ((kid >> EPOCH_BITS) & ((1 << SENDER_INDEX_BITS) - 1)) as u32;
        let epoch = (kid & ((1 << EPOCH_BITS) - 1)) as u8;
        Some((StreamContext(ctx as u8), SenderIndex(sender), epoch))
    }
}

impl fmt::Debug for Kid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kid({:#x})", self.0)
    }
}

impl fmt::Display for Kid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_round_trips_and_matches_the_documented_bits() {
        let s = SenderIndex::new(0x12_3456).unwrap();
        let kid = Kid::new(StreamContext(0xab), s, 0x1_0203);
        assert_eq!(kid.get(), 0x00ab_1234_5603);
        assert_eq!(Kid::unpack(kid.get()), Some((StreamContext(0xab), s, 0x03)));
        assert_eq!(
            Kid::new(StreamContext::MICROPHONE, SenderIndex::new(5).unwrap(), 7).get(),
            0x507
        );
        assert!(SenderIndex::new(1 << 24).is_none());
        assert!(Kid::unpack(1 << 40).is_none());
    }

    #[test]
    fn epochs_wrap_after_two_to_the_e() {
        let s = SenderIndex::new(1).unwrap();
        let c = StreamContext::CAMERA;
        assert_eq!(Kid::new(c, s, 3), Kid::new(c, s, 3 + 256));
        assert_ne!(Kid::new(c, s, 3), Kid::new(c, s, 4));
    }
}
