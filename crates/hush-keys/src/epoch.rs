//! Epoch secrets and everything derived from them (DESIGN.md section 3; modelled on RFC 9605
//! section 5.2, with our epoch secret in place of the MLS exporter).
//!
//! All derivations are HKDF-SHA256 (RFC 5869) `Expand` with the 32-byte epoch secret as the PRK:
//!
//! | value | derivation |
//! |---|---|
//! | the epoch a join (or a member's rekey request) starts | `E_s = HKDF-Expand(E_prev, "hush ratchet v3" \|\| be64(s) \|\| roster digest (32), 32)`, `s` the new epoch's number, the digest of the member list after the event ([`crate::roster`]) |
//! | the same in shared-secret mode | `E_s = HKDF-Expand(E_prev, "hush ratchet v2" \|\| be64(s), 32)` (a newcomer recomputes it from `E_0` and has no past member lists) |
//! | base key of (sender, stream) | `HKDF-Expand(E_n, "hush base key v2" \|\| be32(sender index) \|\| u8(context) \|\| sender identity key (32), 32)` |
//! | ack / switch / code-round MAC keys | `HKDF-Expand(E_n, "hush ack" / "hush switch" / "hush code", 32)` |
//!
//! The ratchet is one-way, so a newcomer given `E_s` cannot reach `E_prev`; base keys are one
//! way too, so a frame key never reveals its epoch secret.
//!
//! The ratchet takes the number of the epoch it makes. Members can disagree about a join: a
//! relay that spoils one member's copy of a newcomer's attestation has that member refuse the
//! newcomer, who is admitted by the others and sealed `E_s`. The refusing member installs no
//! epoch `s`, and at the next join ratchets from `E_prev` to its epoch `s + 1`. Without the
//! number, that would be `E_s` again, the secret the newcomer it refused holds; with it, it is
//! a secret nobody else holds (the member is out of step with the room, visibly: its frames
//! do not open), never one a refused participant has.
//!
//! The ratchet also takes the member list. A relay that shows members different rosters at
//! an event (a join to the committer, a rekey point to another member; or a join whose copy
//! one member refuses) so makes them derive different secrets: the member shown the other list
//! is out of step, visibly, and never sends under a secret a member it does not know holds.
//! Fresh secrets get the same binding from the roster digest in their envelope.
//!
//! ## No nonce reuse, whatever the relay says
//!
//! An SFrame nonce is the key's salt XOR the frame counter, and each encryptor's counter starts
//! at 0, so two encryptors under one base key, or one sender that restarts, would reuse
//! (key, nonce) pairs: AES-GCM then leaks the XOR of plaintexts and its authentication key.
//! Every other input of a base key is chosen or replayed by the relay: the epoch number and the
//! sender index (relay event sequence numbers), in shared-secret mode even the epoch secret
//! itself (a ratchet of the room secret and the relay's room instance). A relay could give two
//! members one sender index, or replay the same `joined` to a member that reloads.
//!
//! So each base key also takes the **sender's identity public key**: an X25519 key the sender
//! drew with its own RNG (in the browser, inside its Worker) when its session began, never
//! reused across sessions. Two encryptors under one base key then need one sender session with
//! one (epoch, context); within a session the frame layer keeps one counter per KID that never
//! goes back (the Worker's `sealers`, hush-client's one encryptor per stream). Across sessions,
//! two identity keys collide with probability about 2^-252. A relay that shows a receiver a wrong
//! identity key for a sender only makes that sender's frames undecryptable, which the drop
//! counters show; it gains no key and no nonce repeat.

use core::fmt;

use hkdf::Hkdf;
use hmac::{KeyInit, Mac};
use rand_core::CryptoRng;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::InputError;
use crate::identity::IdentityPublicKey;
use crate::kid::{SenderIndex, StreamContext};
use crate::secret::{FrameKey, SECRET_LEN, Secret32};

/// Label of the join ratchet (followed by the new epoch's number).
const RATCHET: &[u8] = b"hush ratchet v2";
const RATCHET_FOR: &[u8] = b"hush ratchet v3";
const BASE_KEY: &[u8] = b"hush base key v2";
pub(crate) const ACK: &[u8] = b"hush ack";
pub(crate) const SWITCH: &[u8] = b"hush switch";
/// MAC label of safety-code commits and reveals ([`crate::safety`]).
pub(crate) const CODE: &[u8] = b"hush code";

/// The room's epoch secret `E_n`: 32 bytes, zeroized on drop, never printed, not `Clone`.
///
/// Sessions keep theirs inside; the type is public for tools that hold a recorder identity and
/// open stored envelopes ([`crate::envelope::open`]) to derive frame keys offline.
pub struct EpochSecret(Secret32);

impl fmt::Debug for EpochSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EpochSecret(***)")
    }
}

/// HKDF-Expand with a 32-byte PRK, into a 32-byte output.
fn expand(prk: &[u8; SECRET_LEN], info: &[&[u8]]) -> [u8; SECRET_LEN] {
    let mut out = [0u8; SECRET_LEN];
    // A 32-byte PRK is exactly HashLen for SHA-256, which `from_prk` accepts, and 32 bytes of
    // output is far below the 255 * HashLen limit of `expand`: neither call can fail.
    #[allow(clippy::expect_used)]
    Hkdf::<Sha256>::from_prk(prk)
        .expect("32-byte PRK is HashLen")
        .expand_multi_info(info, &mut out)
        .expect("32 bytes is below the HKDF output limit");
    out
}

impl EpochSecret {
    pub(crate) fn from_array(bytes: [u8; SECRET_LEN]) -> Self {
        Self(Secret32::from_array(bytes))
    }

    /// An epoch secret from its bytes.
    pub fn from_bytes(bytes: [u8; SECRET_LEN]) -> Self {
        Self::from_array(bytes)
    }

    /// The secret bytes. Named so that every use is visible in review.
    pub fn expose_secret(&self) -> &[u8; SECRET_LEN] {
        self.as_array()
    }

    /// A fresh random epoch secret (leave, removal, rekey).
    pub fn random<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut b = Zeroizing::new([0u8; SECRET_LEN]);
        rng.fill_bytes(b.as_mut());
        Self::from_array(*b)
    }

    pub(crate) fn as_array(&self) -> &[u8; SECRET_LEN] {
        self.0.as_array()
    }

    /// The secret of epoch `to`, ratcheted from this one:
    /// `HKDF-Expand(E, "hush ratchet v2" || be64(to), 32)`.
    pub fn ratchet(&self, to: u64) -> Self {
        Self::from_array(expand(self.as_array(), &[RATCHET, &to.to_be_bytes()]))
    }

    /// The secret of epoch `to` for the member list `roster` ([`crate::roster`]), ratcheted from
    /// this one: `HKDF-Expand(E, "hush ratchet v3" || be64(to) || roster, 32)`. What sessions in
    /// exchange mode ratchet with (shared-secret mode uses [`EpochSecret::ratchet`], which a
    /// newcomer recomputes from the start). A member the relay showed another member list
    /// than the committer's (a join swapped for a rekey point, a join spoiled in its copy)
    /// derives another secret, one that nobody it does not know holds.
    pub fn ratchet_for(&self, to: u64, roster: &crate::roster::RosterDigest) -> Self {
        Self::from_array(expand(
            self.as_array(),
            &[RATCHET_FOR, &to.to_be_bytes(), roster],
        ))
    }

    /// The base key of one sending stream in this epoch: the sender's index and stream context,
    /// and its identity key, which the sender drew itself (see the module docs: no relay-chosen
    /// value can make two encryptors share a key).
    pub fn base_key(
        &self,
        sender: SenderIndex,
        context: StreamContext,
        identity: &IdentityPublicKey,
    ) -> FrameKey {
        let idx = sender.get().to_be_bytes();
        FrameKey::from_array(expand(
            self.as_array(),
            &[BASE_KEY, &idx, &[context.0], identity.as_bytes()],
        ))
    }

    /// The MAC key labelled `label` (acks, switch notices, code messages), on its own: what a
    /// holder that must outlive this secret keeps (a safety-code round), so the secret itself
    /// can go.
    pub(crate) fn label_key(&self, label: &'static [u8]) -> LabelKey {
        LabelKey(Secret32::from_array(expand(self.as_array(), &[label])))
    }
}

/// One label's MAC key, derived from an epoch secret ([`EpochSecret::label_key`]); zeroized on
/// drop.
pub(crate) struct LabelKey(Secret32);

impl LabelKey {
    /// A 16-byte tag over `parts` (HMAC-SHA256, truncated).
    pub(crate) fn mac(&self, parts: &[&[u8]]) -> [u8; 16] {
        // HMAC takes keys of any length: cannot fail.
        #[allow(clippy::expect_used)]
        let mut m = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(self.0.as_array())
            .expect("HMAC accepts any key length");
        for p in parts {
            m.update(p);
        }
        let full = m.finalize().into_bytes();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }

    /// Whether `tag` is [`Self::mac`] of `parts` (constant-time comparison).
    pub(crate) fn verify(&self, parts: &[&[u8]], tag: &[u8; 16]) -> bool {
        use subtle::ConstantTimeEq;
        self.mac(parts).ct_eq(tag).into()
    }
}

/// The shortest secret [`SharedSecret::new`] accepts, in bytes.
pub const MIN_SHARED_SECRET_LEN: usize = 32;

/// An app-supplied room secret for shared-secret mode (see [`crate::KeyMode::SharedSecret`]).
///
/// Must hold at least 128 bits of entropy; this crate cannot measure entropy, so it refuses
/// anything shorter than [`MIN_SHARED_SECRET_LEN`] bytes and trusts the app for the rest (a
/// random 32-byte value, never a passphrase).
pub struct SharedSecret(Zeroizing<alloc::vec::Vec<u8>>);

impl SharedSecret {
    /// Takes a copy of `secret`; refuses one shorter than [`MIN_SHARED_SECRET_LEN`] bytes or
    /// made of a single repeated byte.
    pub fn new(secret: &[u8]) -> Result<Self, InputError> {
        if secret.len() < MIN_SHARED_SECRET_LEN {
            return Err(InputError::SharedSecretTooShort);
        }
        if secret.iter().all(|b| *b == secret[0]) {
            return Err(InputError::SharedSecretTooShort);
        }
        Ok(Self(Zeroizing::new(secret.to_vec())))
    }

    /// `E_0 = HKDF-Extract(salt = "hush shared secret" || u16be(len(room)) || room [|| instance],
    /// secret)`: the relay's 16-byte room-instance nonce, when it sends one, makes each life of a
    /// room distinct. The length prefix keeps every (room, instance) pair's salt unique.
    pub(crate) fn epoch_zero(&self, room: &[u8], instance: Option<[u8; 16]>) -> EpochSecret {
        let mut salt = Zeroizing::new(alloc::vec::Vec::with_capacity(18 + 2 + room.len() + 16));
        salt.extend_from_slice(b"hush shared secret");
        // Room ids are at most a few hundred bytes (`ids::check_len`).
        let len = u16::try_from(room.len()).unwrap_or(u16::MAX);
        salt.extend_from_slice(&len.to_be_bytes());
        salt.extend_from_slice(room);
        if let Some(instance) = instance {
            salt.extend_from_slice(&instance);
        }
        let (prk, _) = Hkdf::<Sha256>::extract(Some(&salt), &self.0);
        let mut b = [0u8; SECRET_LEN];
        b.copy_from_slice(&prk);
        EpochSecret::from_array(b)
    }
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedSecret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_instance_changes_epoch_zero() {
        let s = SharedSecret::new(b"correct horse battery staple, 32+").unwrap();
        let plain = s.epoch_zero(b"room", None);
        let first = s.epoch_zero(b"room", Some([1; 16]));
        let second = s.epoch_zero(b"room", Some([2; 16]));
        assert_ne!(plain.expose_secret(), first.expose_secret());
        assert_ne!(first.expose_secret(), second.expose_secret());
        assert_eq!(
            first.expose_secret(),
            s.epoch_zero(b"room", Some([1; 16])).expose_secret()
        );
    }

    #[test]
    fn ratchet_is_hkdf_expand_with_the_documented_label() {
        // Independent computation with the hkdf crate's one-call API.
        let e = EpochSecret::from_array([7u8; 32]);
        let mut want = [0u8; 32];
        Hkdf::<Sha256>::from_prk(&[7u8; 32])
            .unwrap()
            .expand(b"hush ratchet v2\0\0\0\0\0\0\0\x05", &mut want)
            .unwrap();
        assert_eq!(e.ratchet(5).as_array(), &want);
        assert_ne!(e.ratchet(5).as_array(), e.as_array());
        // Another epoch number, another secret.
        assert_ne!(e.ratchet(5).as_array(), e.ratchet(6).as_array());
        // Bound to a member list: the documented label, number and digest.
        let roster = [3u8; 32];
        let mut info = b"hush ratchet v3\0\0\0\0\0\0\0\x05".to_vec();
        info.extend_from_slice(&roster);
        Hkdf::<Sha256>::from_prk(&[7u8; 32])
            .unwrap()
            .expand(&info, &mut want)
            .unwrap();
        assert_eq!(e.ratchet_for(5, &roster).as_array(), &want);
        assert_ne!(
            e.ratchet_for(5, &roster).as_array(),
            e.ratchet_for(5, &[4u8; 32]).as_array()
        );
    }

    #[test]
    fn base_keys_differ_per_sender_context_and_epoch() {
        let e = EpochSecret::from_array([1u8; 32]);
        let s1 = SenderIndex::new(1).unwrap();
        let s2 = SenderIndex::new(2).unwrap();
        let id = IdentityPublicKey::from_bytes([9u8; 32]).unwrap();
        let k = |e: &EpochSecret, s, c| *e.base_key(s, c, &id).as_bytes();
        assert_ne!(k(&e, s1, StreamContext(0)), k(&e, s2, StreamContext(0)));
        assert_ne!(k(&e, s1, StreamContext(0)), k(&e, s1, StreamContext(1)));
        assert_ne!(
            k(&e, s1, StreamContext(0)),
            k(&e.ratchet(1), s1, StreamContext(0))
        );
        assert_eq!(k(&e, s1, StreamContext(0)), k(&e, s1, StreamContext(0)));
        // Same epoch, index and context, another sender's identity key: another key.
        let other = IdentityPublicKey::from_bytes([10u8; 32]).unwrap();
        assert_ne!(
            k(&e, s1, StreamContext(0)),
            *e.base_key(s1, StreamContext(0), &other).as_bytes()
        );
    }

    #[test]
    fn base_key_is_hkdf_expand_with_the_documented_info() {
        let e = EpochSecret::from_array([5u8; 32]);
        let id = IdentityPublicKey::from_bytes([6u8; 32]).unwrap();
        let mut info = b"hush base key v2".to_vec();
        info.extend_from_slice(&[0, 2, 3, 4]);
        info.push(3);
        info.extend_from_slice(&[6u8; 32]);
        let mut want = [0u8; 32];
        Hkdf::<Sha256>::from_prk(&[5u8; 32])
            .unwrap()
            .expand(&info, &mut want)
            .unwrap();
        let got = e.base_key(SenderIndex::new(0x02_0304).unwrap(), StreamContext(3), &id);
        assert_eq!(got.as_bytes(), &want);
    }

    #[test]
    fn short_or_constant_shared_secrets_are_refused() {
        assert_eq!(
            SharedSecret::new(&[9u8; 31]).unwrap_err(),
            InputError::SharedSecretTooShort
        );
        assert_eq!(
            SharedSecret::new(&[9u8; 64]).unwrap_err(),
            InputError::SharedSecretTooShort
        );
        let mut s = [0u8; 32];
        s[5] = 1;
        assert!(SharedSecret::new(&s).is_ok());
    }

    #[test]
    fn mac_verifies_and_rejects_other_labels() {
        let e = EpochSecret::from_array([3u8; 32]);
        let t = e.label_key(ACK).mac(&[b"x"]);
        assert!(e.label_key(ACK).verify(&[b"x"], &t));
        assert!(!e.label_key(SWITCH).verify(&[b"x"], &t));
        assert!(!e.label_key(ACK).verify(&[b"y"], &t));
    }

    #[test]
    fn debug_is_redacted() {
        let e = EpochSecret::from_array([0x41u8; 32]);
        assert_eq!(alloc::format!("{e:?}"), "EpochSecret(***)");
        let id = IdentityPublicKey::from_bytes([9u8; 32]).unwrap();
        let k = e.base_key(SenderIndex::new(0).unwrap(), StreamContext(0), &id);
        assert_eq!(alloc::format!("{k:?}"), "FrameKey(***)");
    }
}
