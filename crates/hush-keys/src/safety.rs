//! The safety code users compare to see that nobody sits in the middle of the key exchange, and
//! the commit-then-reveal round that makes it impossible to grind.
//!
//! ## The code
//!
//! `code = SHA-256("hush safety code v2" || u8 len(room) || room || u32 count || for each
//! member sorted by participant id: u8 len(id) || id || identity key (32) || nonce (32))`, where
//! `nonce` is the 32 random bytes that member drew for this membership (below). The first 128
//! bits, reduced modulo 10^25, give **25 decimal digits (83 bits)**, shown in five groups of
//! five; the reduction's bias is below 2^-44.
//!
//! A relay that shows two members different member lists (a ghost, a swapped identity key) gives
//! them different codes, unless it finds lists and nonces whose codes collide. Two lists it
//! fully controlled would take a birthday search, about 2^42 hashes for 83 bits: feasible. So
//! no member's input may be chosen after the other side's is known:
//!
//! ## The round (one per membership change)
//!
//! When a member installs the epoch `E_m` that a membership change `m` (join, leave, removal)
//! started, it draws a fresh 32-byte nonce `r` and sends every member a **commit** carrying
//! `SHA-256("hush code commit v1" || u8 len(room) || room || be64(m) || u8 len(id) || id ||
//! identity key || r)`. Only once it holds a commit from **every** member of `m` does it send its
//! **reveal**, `r` itself. Once every reveal matches its commit, it shows the code. A reveal that
//! does not match its commit is refused ([`crate::EnvelopeError::CommitmentMismatch`]); a second,
//! different commit from a member is refused and the first one kept.
//!
//! So a man in the middle that wants two partitions to show one code must fix its commits in
//! each before the honest members there reveal; each honest member's fresh nonce is then
//! unknown to it when it commits, and the code on each side is a fresh random value: one try per
//! membership change, with a chance of 10^-25 (2^-83). A member that never commits or reveals,
//! or a relay that withholds one message, keeps the code from being shown (the app shows it as
//! pending): a visible denial of service, never a wrong code.
//!
//! Commits and reveals carry a 16-byte HMAC under a key from `E_m` (label `"hush code"`), so
//! only members of `m` can send them, and the relay, which holds no epoch secret, can neither
//! forge one nor compute the code before the reveals it carries.
//!
//! Every member computes the same code; it changes when membership changes and only then (a
//! rekey on a timer or a usage limit starts a new epoch but no new round).

use core::fmt;

use sha2::{Digest, Sha256};

use crate::identity::IdentityPublicKey;
use crate::ids::{ParticipantId, RoomId};

/// The size of a safety-code nonce and of a commitment, in bytes.
pub const NONCE_LEN: usize = 32;

/// What a passive member (a recorder, [`crate::member::Role::Recorder`]) counts with in the code
/// in place of a revealed nonce: it takes no part in the round, yet its id and identity key are
/// in the code, so a recorder nobody was told about changes what users compare.
pub const PASSIVE_NONCE: [u8; NONCE_LEN] = *b"hush passive member: no nonce..!";

const MODULUS: u128 = 10_u128.pow(25);

/// A 25-digit (83-bit) safety code.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SafetyCode(u128);

impl SafetyCode {
    /// The number of digits.
    pub const DIGITS: usize = 25;

    /// Computes the code for `room` from each member's (participant id, identity key, revealed
    /// nonce), in any order. Sessions do this themselves at the end of a round.
    pub fn compute<'a>(
        room: &RoomId,
        members: impl Iterator<
            Item = (
                &'a ParticipantId,
                &'a IdentityPublicKey,
                &'a [u8; NONCE_LEN],
            ),
        >,
    ) -> Self {
        let mut list: alloc::vec::Vec<_> = members.collect();
        list.sort_by(|a, b| a.0.cmp(b.0));
        let mut h = Sha256::new();
        h.update(b"hush safety code v2");
        h.update([room.as_bytes().len() as u8]);
        h.update(room.as_bytes());
        h.update((list.len() as u32).to_be_bytes());
        for (participant, identity, nonce) in list {
            h.update([participant.as_bytes().len() as u8]);
            h.update(participant.as_bytes());
            h.update(identity.as_bytes());
            h.update(nonce);
        }
        let d = h.finalize();
        let mut b = [0u8; 16];
        b.copy_from_slice(&d[..16]);
        Self(u128::from_be_bytes(b) % MODULUS)
    }

    /// The code as a number below 10^25.
    pub fn value(self) -> u128 {
        self.0
    }

    /// The 25 digits, most significant first.
    pub fn digits(self) -> [u8; Self::DIGITS] {
        let mut out = [0u8; Self::DIGITS];
        let mut v = self.0;
        for d in out.iter_mut().rev() {
            *d = (v % 10) as u8;
            v /= 10;
        }
        out
    }
}

/// The commitment to `nonce` that a member sends before it reveals it (see the module docs).
pub fn commitment(
    room: &RoomId,
    epoch: u64,
    participant: &ParticipantId,
    identity: &IdentityPublicKey,
    nonce: &[u8; NONCE_LEN],
) -> [u8; NONCE_LEN] {
    let mut h = Sha256::new();
    h.update(b"hush code commit v1");
    h.update([room.as_bytes().len() as u8]);
    h.update(room.as_bytes());
    h.update(epoch.to_be_bytes());
    h.update([participant.as_bytes().len() as u8]);
    h.update(participant.as_bytes());
    h.update(identity.as_bytes());
    h.update(nonce);
    h.finalize().into()
}

/// Five groups of five digits: `01234 56789 01234 56789 01234`.
impl fmt::Display for SafetyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.digits();
        for (i, group) in d.chunks(5).enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            for x in group {
                write!(f, "{x}")?;
            }
        }
        Ok(())
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

    fn p(id: &str) -> ParticipantId {
        ParticipantId::new(id).unwrap()
    }

    fn k(b: u8) -> IdentityPublicKey {
        IdentityPublicKey::from_bytes([b; 32]).unwrap()
    }

    #[test]
    fn order_independent_and_sensitive_to_everything_else() {
        let room = RoomId::new("room").unwrap();
        let (a, b, g) = (p("a"), p("b"), p("ghost"));
        let (ka, kb, kb2, kg) = (k(1), k(2), k(3), k(4));
        let (na, nb, ng) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        let code = |l: &[(&ParticipantId, &IdentityPublicKey, &[u8; 32])]| {
            SafetyCode::compute(&room, l.iter().copied())
        };
        let c1 = code(&[(&a, &ka, &na), (&b, &kb, &nb)]);
        assert_eq!(c1, code(&[(&b, &kb, &nb), (&a, &ka, &na)]));
        // Swapped key, ghost member, another nonce, another room: all different.
        assert_ne!(c1, code(&[(&a, &ka, &na), (&b, &kb2, &nb)]));
        assert_ne!(c1, code(&[(&a, &ka, &na), (&b, &kb, &nb), (&g, &kg, &ng)]));
        assert_ne!(c1, code(&[(&a, &ka, &na), (&b, &kb, &ng)]));
        let other = RoomId::new("other").unwrap();
        assert_ne!(
            c1,
            SafetyCode::compute(&other, [(&a, &ka, &na), (&b, &kb, &nb)].into_iter())
        );
    }

    #[test]
    fn commitments_bind_room_epoch_member_key_and_nonce() {
        let room = RoomId::new("room").unwrap();
        let c = commitment(&room, 7, &p("a"), &k(1), &[9; 32]);
        assert_eq!(c, commitment(&room, 7, &p("a"), &k(1), &[9; 32]));
        assert_ne!(c, commitment(&room, 8, &p("a"), &k(1), &[9; 32]));
        assert_ne!(c, commitment(&room, 7, &p("b"), &k(1), &[9; 32]));
        assert_ne!(c, commitment(&room, 7, &p("a"), &k(2), &[9; 32]));
        assert_ne!(c, commitment(&room, 7, &p("a"), &k(1), &[8; 32]));
        let other = RoomId::new("other").unwrap();
        assert_ne!(c, commitment(&other, 7, &p("a"), &k(1), &[9; 32]));
    }

    #[test]
    fn formats_as_five_groups_of_five_digits() {
        let c = SafetyCode(1_234_567_890_123_456_789_012_345);
        assert_eq!(c.to_string(), "12345 67890 12345 67890 12345");
        assert_eq!(SafetyCode(0).to_string(), "00000 00000 00000 00000 00000");
        assert_eq!(
            SafetyCode(MODULUS - 1).to_string(),
            "99999 99999 99999 99999 99999"
        );
        let d = SafetyCode(1_234_567_890_123_456_789_012_345).digits();
        assert_eq!(d[0], 1);
        assert_eq!(d[24], 5);
    }
}
