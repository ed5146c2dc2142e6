//! The safety code users compare to see that nobody sits in the middle of the key exchange.
//!
//! `code = SHA-256("hush safety code v1" || u8 len(room) || room || u32 count || for each member
//! sorted by participant id: u8 len(id) || id || identity key (32) || confirmation)`, where
//! `confirmation = HKDF-Expand(E_m, "hush confirm", 32)` and `E_m` is the secret of the epoch
//! that the last membership change (join, leave, removal) started. The first 64 bits, reduced
//! modulo 10^12, give 12 decimal digits (bias below 2^-24).
//!
//! Every member computes the same code; it changes when membership changes and only then (a
//! rekey on a timer or a usage limit starts a new epoch but not a new membership, so it keeps the
//! code); and the relay, which never holds an epoch secret, cannot compute it. A relay that shows
//! one member a different identity key for another (a man in the middle) gives the two sides
//! different lists, and so different codes; a ghost member it adds shows up in every list.

use core::fmt;

use sha2::{Digest, Sha256};

use crate::epoch::EpochSecret;
use crate::ids::RoomId;
use crate::member::Member;

/// A 12-digit safety code.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SafetyCode(u64);

impl SafetyCode {
    /// The number of digits.
    pub const DIGITS: usize = 12;

    /// Computes the code for `room`, the members (any order) and the secret of the epoch that
    /// the last membership change started. Sessions do this themselves.
    pub fn compute<'a>(
        room: &RoomId,
        members: impl Iterator<Item = &'a Member>,
        epoch: &EpochSecret,
    ) -> Self {
        let mut list: alloc::vec::Vec<&Member> = members.collect();
        list.sort_by(|a, b| a.participant.cmp(&b.participant));
        let mut h = Sha256::new();
        h.update(b"hush safety code v1");
        h.update([room.as_bytes().len() as u8]);
        h.update(room.as_bytes());
        h.update((list.len() as u32).to_be_bytes());
        for m in list {
            h.update([m.participant.as_bytes().len() as u8]);
            h.update(m.participant.as_bytes());
            h.update(m.identity.as_bytes());
        }
        h.update(epoch.confirmation().as_ref());
        let d = h.finalize();
        let mut b = [0u8; 8];
        b.copy_from_slice(&d[..8]);
        Self(u64::from_be_bytes(b) % 1_000_000_000_000)
    }

    /// The code as a number below 10^12.
    pub fn value(self) -> u64 {
        self.0
    }

    /// The 12 digits, most significant first.
    pub fn digits(self) -> [u8; 12] {
        let mut out = [0u8; 12];
        let mut v = self.0;
        for d in out.iter_mut().rev() {
            *d = (v % 10) as u8;
            v /= 10;
        }
        out
    }
}

/// Three groups of four digits: `0123 4567 8901`.
impl fmt::Display for SafetyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        write!(
            f,
            "{:04} {:04} {:04}",
            v / 100_000_000,
            (v / 10_000) % 10_000,
            v % 10_000
        )
    }
}

impl fmt::Debug for SafetyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SafetyCode({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::IdentityPublicKey;
    use crate::ids::ParticipantId;
    use crate::kid::SenderIndex;

    fn m(id: &str, key: u8, idx: u32) -> Member {
        Member {
            participant: ParticipantId::new(id).unwrap(),
            sender_index: SenderIndex::new(idx).unwrap(),
            join_seq: u64::from(idx),
            identity: IdentityPublicKey::from_bytes([key; 32]).unwrap(),
            attestation: None,
        }
    }

    #[test]
    fn order_independent_and_sensitive_to_everything_else() {
        let room = RoomId::new("room").unwrap();
        let e = EpochSecret::from_array([1; 32]);
        let (a, b) = (m("a", 1, 1), m("b", 2, 2));
        let c1 = SafetyCode::compute(&room, [&a, &b].into_iter(), &e);
        let c2 = SafetyCode::compute(&room, [&b, &a].into_iter(), &e);
        assert_eq!(c1, c2);
        // Swapped key, ghost member, other epoch, other room: all different.
        let b2 = m("b", 3, 2);
        assert_ne!(c1, SafetyCode::compute(&room, [&a, &b2].into_iter(), &e));
        let g = m("ghost", 4, 3);
        assert_ne!(c1, SafetyCode::compute(&room, [&a, &b, &g].into_iter(), &e));
        assert_ne!(
            c1,
            SafetyCode::compute(
                &room,
                [&a, &b].into_iter(),
                &EpochSecret::from_array([2; 32])
            )
        );
        assert_ne!(
            c1,
            SafetyCode::compute(&RoomId::new("other").unwrap(), [&a, &b].into_iter(), &e)
        );
        // Sender index and join sequence are the relay's bookkeeping, not identity.
        let b3 = m("b", 2, 9);
        assert_eq!(c1, SafetyCode::compute(&room, [&a, &b3].into_iter(), &e));
    }

    #[test]
    fn formats_as_twelve_digits() {
        let c = SafetyCode(12_345_678_901);
        assert_eq!(c.to_string(), "0123 4567 8901");
        assert_eq!(c.digits(), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
    }
}
