//! Member attestations (optional): the app backend signs (room, participant id, identity public
//! key, expiry) with Ed25519 (RFC 8032, `ed25519-dalek`, strict verification). With
//! [`crate::Config::attestation_key`] set, members refuse anyone whose attestation does not
//! verify, so a relay cannot add a ghost member or swap an identity key without the backend's
//! signing key.
//!
//! Signed message: `"hush attestation v1" || u8 len(room) || room || u8 len(participant) ||
//! participant || identity key (32) || be64(expiry, Unix seconds)`; for a recorder
//! ([`Role::Recorder`]) the label is `"hush recorder attestation v1"`, so one role's signature
//! never verifies as the other's.
//!
//! The expiry bounds when a member may *join*: a join event carrying an expired attestation is
//! refused. A member already in the room stays a member when its attestation expires, for
//! those who saw it join and for a newcomer that finds it in its snapshot alike
//! ([`Attestation::verify_signature_as`]), so that every member holds the same list (epoch
//! secrets are bound to it, [`crate::roster`]).

use alloc::vec::Vec;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::error::MembershipError;
use crate::identity::IdentityPublicKey;
use crate::ids::{ParticipantId, RoomId};
use crate::member::Role;
use crate::time::Instant;

const LABEL: &[u8] = b"hush attestation v1";
const RECORDER_LABEL: &[u8] = b"hush recorder attestation v1";

/// The backend's Ed25519 signature over a member's identity, with its expiry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attestation {
    /// Expiry, in Unix seconds; a join with it is refused from this second on.
    pub expires_at: u64,
    /// The Ed25519 signature (64 bytes).
    pub signature: [u8; 64],
}

fn message(
    role: Role,
    room: &RoomId,
    participant: &ParticipantId,
    key: &IdentityPublicKey,
    expires_at: u64,
) -> Vec<u8> {
    let (r, p) = (room.as_bytes(), participant.as_bytes());
    let label = match role {
        Role::Recorder => RECORDER_LABEL,
        _ => LABEL,
    };
    let mut m = Vec::with_capacity(label.len() + 2 + r.len() + p.len() + 40);
    m.extend_from_slice(label);
    // Ids are at most 255 bytes (crate::ids::MAX_ID_LEN), so their length fits one byte.
    m.push(r.len() as u8);
    m.extend_from_slice(r);
    m.push(p.len() as u8);
    m.extend_from_slice(p);
    m.extend_from_slice(key.as_bytes());
    m.extend_from_slice(&expires_at.to_be_bytes());
    m
}

/// Bytes of an attestation on the wire ([`Attestation::to_bytes`]).
pub const ATTESTATION_LEN: usize = 72;

impl Attestation {
    /// The wire form: `be64(expires_at) || signature` (72 bytes), as `join.attestation` and
    /// `participant.attestation` carry it.
    pub fn to_bytes(&self) -> [u8; ATTESTATION_LEN] {
        let mut b = [0u8; ATTESTATION_LEN];
        b[..8].copy_from_slice(&self.expires_at.to_be_bytes());
        b[8..].copy_from_slice(&self.signature);
        b
    }

    /// Reads the wire form; anything but exactly 72 bytes is [`MembershipError::BadAttestation`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MembershipError> {
        let b: &[u8; ATTESTATION_LEN] = bytes
            .try_into()
            .map_err(|_| MembershipError::BadAttestation)?;
        let mut expiry = [0u8; 8];
        expiry.copy_from_slice(&b[..8]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&b[8..]);
        Ok(Self {
            expires_at: u64::from_be_bytes(expiry),
            signature,
        })
    }

    /// Signs a participant's attestation (what the app backend does; also handy in tests).
    pub fn sign(
        backend: &SigningKey,
        room: &RoomId,
        participant: &ParticipantId,
        key: &IdentityPublicKey,
        expires_at: u64,
    ) -> Self {
        Self::sign_as(
            backend,
            Role::Participant,
            room,
            participant,
            key,
            expires_at,
        )
    }

    /// Signs an attestation for a member with `role` (a recorder's, say).
    pub fn sign_as(
        backend: &SigningKey,
        role: Role,
        room: &RoomId,
        participant: &ParticipantId,
        key: &IdentityPublicKey,
        expires_at: u64,
    ) -> Self {
        let sig = backend.sign(&message(role, room, participant, key, expires_at));
        Self {
            expires_at,
            signature: sig.to_bytes(),
        }
    }

    /// Verifies a participant's attestation for this room, participant and key at time `now`
    /// (Unix time).
    pub fn verify(
        &self,
        backend: &VerifyingKey,
        room: &RoomId,
        participant: &ParticipantId,
        key: &IdentityPublicKey,
        now: Instant,
    ) -> Result<(), MembershipError> {
        self.verify_as(backend, Role::Participant, room, participant, key, now)
    }

    /// Verifies the attestation of a member announced with `role`.
    pub fn verify_as(
        &self,
        backend: &VerifyingKey,
        role: Role,
        room: &RoomId,
        participant: &ParticipantId,
        key: &IdentityPublicKey,
        now: Instant,
    ) -> Result<(), MembershipError> {
        if now.as_secs() >= self.expires_at {
            return Err(MembershipError::BadAttestation);
        }
        self.verify_signature_as(backend, role, room, participant, key)
    }

    /// Verifies the signature only, whatever the time: for a member already in the room when
    /// this member joined (a snapshot entry), whose attestation was checked when it joined and
    /// may have expired since; the members who were there keep it, and so must a newcomer, or
    /// the two would hold different member lists ([`crate::roster`]).
    pub fn verify_signature_as(
        &self,
        backend: &VerifyingKey,
        role: Role,
        room: &RoomId,
        participant: &ParticipantId,
        key: &IdentityPublicKey,
    ) -> Result<(), MembershipError> {
        let sig = Signature::from_bytes(&self.signature);
        backend
            .verify_strict(
                &message(role, room, participant, key, self.expires_at),
                &sig,
            )
            .map_err(|_| MembershipError::BadAttestation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_round_trips_and_refuses_other_lengths() {
        let a = Attestation {
            expires_at: 0x0102_0304_0506_0708,
            signature: [9; 64],
        };
        let b = a.to_bytes();
        assert_eq!(&b[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(Attestation::from_bytes(&b), Ok(a));
        for n in [0, 71, 73] {
            assert_eq!(
                Attestation::from_bytes(&vec![0; n]),
                Err(MembershipError::BadAttestation)
            );
        }
    }

    #[test]
    fn verifies_and_refuses_every_other_binding() {
        let sk = SigningKey::from_bytes(&[1u8; 32]);
        let vk = sk.verifying_key();
        let room = RoomId::new("r1").unwrap();
        let p = ParticipantId::new("alice").unwrap();
        let k = IdentityPublicKey::from_bytes([9u8; 32]).unwrap();
        let a = Attestation::sign(&sk, &room, &p, &k, 1000);
        let now = Instant::from_millis(999_000);
        a.verify(&vk, &room, &p, &k, now).unwrap();
        let bad = MembershipError::BadAttestation;
        assert_eq!(
            a.verify(&vk, &room, &p, &k, Instant::from_millis(1_000_000)),
            Err(bad)
        );
        assert_eq!(
            a.verify(&vk, &RoomId::new("r2").unwrap(), &p, &k, now),
            Err(bad)
        );
        assert_eq!(
            a.verify(&vk, &room, &ParticipantId::new("bob").unwrap(), &k, now),
            Err(bad)
        );
        let k2 = IdentityPublicKey::from_bytes([8u8; 32]).unwrap();
        assert_eq!(a.verify(&vk, &room, &p, &k2, now), Err(bad));
        let other = SigningKey::from_bytes(&[2u8; 32]).verifying_key();
        assert_eq!(a.verify(&other, &room, &p, &k, now), Err(bad));
        let mut later = a.clone();
        later.expires_at = 5000;
        assert_eq!(later.verify(&vk, &room, &p, &k, now), Err(bad));
    }

    #[test]
    fn a_role_is_bound_both_ways() {
        let sk = SigningKey::from_bytes(&[1u8; 32]);
        let vk = sk.verifying_key();
        let room = RoomId::new("r1").unwrap();
        let p = ParticipantId::new("rec").unwrap();
        let k = IdentityPublicKey::from_bytes([9u8; 32]).unwrap();
        let now = Instant::from_millis(0);
        let rec = Attestation::sign_as(&sk, Role::Recorder, &room, &p, &k, 1000);
        rec.verify_as(&vk, Role::Recorder, &room, &p, &k, now)
            .unwrap();
        let bad = Err(MembershipError::BadAttestation);
        // A relay announcing the recorder as a participant, or a participant as the recorder.
        assert_eq!(rec.verify(&vk, &room, &p, &k, now), bad);
        let part = Attestation::sign(&sk, &room, &p, &k, 1000);
        assert_eq!(part.verify_as(&vk, Role::Recorder, &room, &p, &k, now), bad);
    }
}
