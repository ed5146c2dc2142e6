//! The roster digest: the member list an epoch envelope was sealed for.
//!
//! A committer puts the digest of the members it has admitted at the envelope's epoch into the
//! envelope's header, which is HPKE's associated data. A recipient opens an envelope only when
//! its own member list at that epoch gives the same digest
//! ([`crate::EnvelopeError::RosterMismatch`] otherwise). So a relay that shows members different
//! rosters — a member the committer admitted but the recipient refused, or a member left out of
//! a newcomer's snapshot — gets no member to send under a secret that someone it does not know
//! holds: the member waits (and after a departure stops sending, see
//! [`crate::Config::stall_timeout`]) and says why.
//!
//! ```text
//! SHA-256( "hush roster v1" || len(room) || room || be32(count)
//!          || for each member, in join order (by join seq):
//!             be32(sender index) || be64(join seq) || len(id) || id || identity key (32)
//!             || role (0 participant, 1 recorder) )
//! ```

use sha2::{Digest, Sha256};

use crate::ids::RoomId;
use crate::member::{Member, Role};

/// A roster digest (SHA-256, 32 bytes).
pub type RosterDigest = [u8; 32];

const LABEL: &[u8] = b"hush roster v1";

/// The digest of `members` in `room`. `members` come in join order (ascending join seq, as
/// [`crate::Session::members`] gives them); a list in another order has another digest.
pub fn digest<'a>(
    room: &RoomId,
    members: impl ExactSizeIterator<Item = &'a Member>,
) -> RosterDigest {
    let mut h = Sha256::new();
    h.update(LABEL);
    // Ids are at most 255 bytes (crate::ids::MAX_ID_LEN).
    h.update([room.as_bytes().len() as u8]);
    h.update(room.as_bytes());
    h.update((members.len() as u32).to_be_bytes());
    for m in members {
        h.update(m.sender_index.get().to_be_bytes());
        h.update(m.join_seq.to_be_bytes());
        h.update([m.participant.as_bytes().len() as u8]);
        h.update(m.participant.as_bytes());
        h.update(m.identity.as_bytes());
        h.update([match m.role {
            Role::Participant => 0,
            Role::Recorder => 1,
        }]);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::IdentityPublicKey;
    use crate::ids::ParticipantId;
    use crate::kid::SenderIndex;

    fn member(id: &str, index: u32, seq: u64, key: u8) -> Member {
        Member {
            participant: ParticipantId::new(id).unwrap(),
            sender_index: SenderIndex::new(index).unwrap(),
            join_seq: seq,
            identity: IdentityPublicKey::from_bytes([key; 32]).unwrap(),
            attestation: None,
            role: Role::Participant,
        }
    }

    #[test]
    fn sensitive_to_every_field_and_the_order() {
        let room = RoomId::new("room").unwrap();
        let a = member("alice", 1, 1, 9);
        let b = member("bob", 2, 2, 10);
        let d = digest(&room, [&a, &b].into_iter());
        let mut changed = alloc::vec![
            digest(&room, [&b, &a].into_iter()),
            digest(&room, [&a].into_iter()),
            digest(&RoomId::new("other").unwrap(), [&a, &b].into_iter()),
        ];
        for f in 0..5 {
            let mut x = b.clone();
            match f {
                0 => x.participant = ParticipantId::new("bobby").unwrap(),
                1 => x.sender_index = SenderIndex::new(3).unwrap(),
                2 => x.join_seq = 3,
                3 => x.identity = IdentityPublicKey::from_bytes([11; 32]).unwrap(),
                _ => x.role = Role::Recorder,
            }
            changed.push(digest(&room, [&a, &x].into_iter()));
        }
        for (i, c) in changed.iter().enumerate() {
            assert_ne!(*c, d, "change {i} kept the digest");
        }
        // The attestation is not part of it (members verify it; it carries nothing more).
        let mut y = b.clone();
        y.attestation = Some(crate::attest::Attestation {
            expires_at: 7,
            signature: [1; 64],
        });
        assert_eq!(digest(&room, [&a, &y].into_iter()), d);
    }
}
