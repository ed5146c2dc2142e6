//! The messages members exchange through the relay, as opaque bytes: epoch envelopes (HPKE,
//! RFC 9180), acknowledgements and switch notices.
//!
//! All integers are big-endian. Every message starts with a version byte ([`WIRE_VERSION`]) and a
//! kind byte.
//!
//! ```text
//! epoch envelope (131 bytes)
//!   0       version = 1
//!   1       kind = 1
//!   2..10   epoch number (= the sequence number of the relay event it answers)
//!   10..14  sender index of the committer
//!   14..18  sender index of the recipient
//!   18      reason: 0 join, 1 leave, 2 removal, 3 rekey
//!   19..51  roster digest: the committer's member list at this epoch (crate::roster)
//!   51..83  HPKE encapsulated key (DHKEM(X25519, HKDF-SHA256), 32 bytes)
//!   83..131 AES-128-GCM ciphertext of the 32-byte epoch secret, then the 16-byte tag
//!
//! ack (30 bytes)     version, kind = 2, epoch (8), sender index (4), tag (16)
//! switch (30 bytes)  version, kind = 3, epoch (8), sender index (4), tag (16)
//! code commit (62)   version, kind = 4, epoch (8), sender index (4), commitment (32), tag (16)
//! code reveal (62)   version, kind = 5, epoch (8), sender index (4), nonce (32), tag (16)
//! ```
//!
//! **Envelopes** use HPKE Auth mode (RFC 9180 section 5.1.3) with DHKEM(X25519, HKDF-SHA256),
//! HKDF-SHA256 and AES-128-GCM (suite 0x0020, 0x0001, 0x0001), from the `hpke` crate. The sender
//! authenticates with its identity key, so only the holder of the committer's private key can
//! make an envelope that opens under the committer's public key. `info` is
//! `"hush epoch envelope v1" || len(room) || room id`; the AAD is the 51-byte header, so room,
//! epoch, event sequence, sender, recipient, reason and the committer's roster are all bound;
//! the KEM binds both identity keys. A session opens an envelope only when the roster digest is
//! its own (see [`crate::roster`]). **Acks and switch notices** carry a 16-byte HMAC-SHA256 tag under a key derived
//! from the epoch secret they name, over `room || header`: the relay cannot forge one, and an ack
//! proves that its sender holds the epoch. **Code commits and reveals** (the safety-code round,
//! [`crate::safety`]) are tagged the same way over `room ||` everything before the tag, under the
//! label `"hush code"`.

use hpke::aead::AeadTag;
use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use rand_core::CryptoRng;

use crate::epoch::{EpochSecret, LabelKey};
use crate::error::EnvelopeError;
use crate::identity::{IdentityKeyPair, IdentityPublicKey};
use crate::kid::SenderIndex;
use crate::roster::RosterDigest;
use crate::secret::SECRET_LEN;

/// The KEM of epoch envelopes: DHKEM(X25519, HKDF-SHA256).
pub(crate) type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type Aead = hpke::aead::AesGcm128;

/// The first byte of every message.
pub const WIRE_VERSION: u8 = 1;
/// The size of an epoch envelope in bytes.
pub const ENVELOPE_LEN: usize = 131;
/// The size of an ack or a switch notice in bytes.
pub const CONTROL_LEN: usize = 30;
/// The size of a safety-code commit or reveal in bytes.
pub const CODE_LEN: usize = 62;

const KIND_ENVELOPE: u8 = 1;
const KIND_ACK: u8 = 2;
const KIND_SWITCH: u8 = 3;
const KIND_CODE_COMMIT: u8 = 4;
const KIND_CODE_REVEAL: u8 = 5;
const HEADER_LEN: usize = 51;
const INFO_LABEL: &[u8] = b"hush epoch envelope v1";

/// Why an envelope was sent: which relay event it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// A member joined: the ratcheted secret, sent to the newcomer only.
    Join,
    /// A member left: a fresh secret for each remaining member.
    Leave,
    /// A member was removed: a fresh secret for each remaining member.
    Removal,
    /// A relay-sequenced rekey (timer or usage limit): a fresh secret for every member.
    Rekey,
}

impl Reason {
    fn to_byte(self) -> u8 {
        match self {
            Reason::Join => 0,
            Reason::Leave => 1,
            Reason::Removal => 2,
            Reason::Rekey => 3,
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            0 => Reason::Join,
            1 => Reason::Leave,
            2 => Reason::Removal,
            3 => Reason::Rekey,
            _ => return None,
        })
    }
}

/// The public header of an epoch envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnvelopeHeader {
    /// The epoch number (the sequence number of the relay event it answers).
    pub epoch: u64,
    /// The committer's sender index.
    pub sender: SenderIndex,
    /// The recipient's sender index.
    pub recipient: SenderIndex,
    /// Which event kind it answers.
    pub reason: Reason,
    /// The committer's member list at `epoch` ([`crate::roster::digest`]).
    pub roster: RosterDigest,
}

/// Reads the header of an epoch envelope without opening it (the relay and tools can).
pub fn peek_header(bytes: &[u8]) -> Result<EnvelopeHeader, EnvelopeError> {
    match Message::parse(bytes)? {
        Message::Envelope { header, .. } => Ok(header),
        _ => Err(EnvelopeError::Malformed),
    }
}

impl EnvelopeHeader {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0] = WIRE_VERSION;
        h[1] = KIND_ENVELOPE;
        h[2..10].copy_from_slice(&self.epoch.to_be_bytes());
        h[10..14].copy_from_slice(&self.sender.get().to_be_bytes());
        h[14..18].copy_from_slice(&self.recipient.get().to_be_bytes());
        h[18] = self.reason.to_byte();
        h[19..51].copy_from_slice(&self.roster);
        h
    }
}

/// A parsed message, before any cryptographic check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Message<'a> {
    Envelope {
        header: EnvelopeHeader,
        bytes: &'a [u8],
    },
    Ack {
        epoch: u64,
        sender: SenderIndex,
        bytes: &'a [u8],
    },
    Switch {
        epoch: u64,
        sender: SenderIndex,
        bytes: &'a [u8],
    },
    /// A safety-code commit (`reveal: false`) or reveal: `value` is the commitment or the nonce.
    Code {
        reveal: bool,
        epoch: u64,
        sender: SenderIndex,
        value: [u8; 32],
        bytes: &'a [u8],
    },
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

fn sender_index(b: &[u8]) -> Result<SenderIndex, EnvelopeError> {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    SenderIndex::new(u32::from_be_bytes(a)).ok_or(EnvelopeError::Malformed)
}

impl<'a> Message<'a> {
    /// Parses the public part of a message; checks lengths and field ranges only.
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, EnvelopeError> {
        if bytes.len() < 2 {
            return Err(EnvelopeError::Malformed);
        }
        if bytes[0] != WIRE_VERSION {
            return Err(EnvelopeError::UnsupportedVersion);
        }
        match bytes[1] {
            KIND_ENVELOPE => {
                if bytes.len() != ENVELOPE_LEN {
                    return Err(EnvelopeError::Malformed);
                }
                let header = EnvelopeHeader {
                    epoch: be_u64(&bytes[2..10]),
                    sender: sender_index(&bytes[10..14])?,
                    recipient: sender_index(&bytes[14..18])?,
                    reason: Reason::from_byte(bytes[18]).ok_or(EnvelopeError::Malformed)?,
                    roster: {
                        let mut r = [0u8; 32];
                        r.copy_from_slice(&bytes[19..HEADER_LEN]);
                        r
                    },
                };
                Ok(Message::Envelope { header, bytes })
            }
            KIND_ACK | KIND_SWITCH => {
                if bytes.len() != CONTROL_LEN {
                    return Err(EnvelopeError::Malformed);
                }
                let epoch = be_u64(&bytes[2..10]);
                let sender = sender_index(&bytes[10..14])?;
                Ok(if bytes[1] == KIND_ACK {
                    Message::Ack {
                        epoch,
                        sender,
                        bytes,
                    }
                } else {
                    Message::Switch {
                        epoch,
                        sender,
                        bytes,
                    }
                })
            }
            KIND_CODE_COMMIT | KIND_CODE_REVEAL => {
                if bytes.len() != CODE_LEN {
                    return Err(EnvelopeError::Malformed);
                }
                let mut value = [0u8; 32];
                value.copy_from_slice(&bytes[14..46]);
                Ok(Message::Code {
                    reveal: bytes[1] == KIND_CODE_REVEAL,
                    epoch: be_u64(&bytes[2..10]),
                    sender: sender_index(&bytes[10..14])?,
                    value,
                    bytes,
                })
            }
            _ => Err(EnvelopeError::Malformed),
        }
    }

    /// The epoch and sender index a message names.
    pub(crate) fn epoch_and_sender(&self) -> (u64, SenderIndex) {
        match *self {
            Message::Envelope { header, .. } => (header.epoch, header.sender),
            Message::Ack { epoch, sender, .. }
            | Message::Switch { epoch, sender, .. }
            | Message::Code { epoch, sender, .. } => (epoch, sender),
        }
    }
}

fn info(room: &[u8]) -> alloc::vec::Vec<u8> {
    let mut v = alloc::vec::Vec::with_capacity(INFO_LABEL.len() + 2 + room.len());
    v.extend_from_slice(INFO_LABEL);
    // Room ids are at most 255 bytes (crate::ids::MAX_ID_LEN).
    v.extend_from_slice(&(room.len() as u16).to_be_bytes());
    v.extend_from_slice(room);
    v
}

/// Seals `secret` to `recipient_pk` in HPKE Auth mode under `sender`'s identity: the envelope a
/// committer sends. Sessions call this themselves; it is public for tools and tests.
pub fn seal<R: CryptoRng + ?Sized>(
    rng: &mut R,
    room: &[u8],
    header: &EnvelopeHeader,
    sender: &IdentityKeyPair,
    recipient_pk: &IdentityPublicKey,
    secret: &EpochSecret,
) -> Result<alloc::vec::Vec<u8>, EnvelopeError> {
    let pk_r = recipient_pk
        .to_hpke()
        .map_err(|_| EnvelopeError::BadRecipientKey)?;
    let aad = header.encode();
    let mut out = alloc::vec::Vec::with_capacity(ENVELOPE_LEN);
    out.extend_from_slice(&aad);
    let mut buf = zeroize::Zeroizing::new(*secret.as_array());
    let mode = OpModeS::<Kem>::Auth(sender.hpke_pair());
    let mut rng = RngRef(rng);
    let (enc, tag) = hpke::single_shot_seal_inout_detached_with_rng::<Aead, Kdf, Kem>(
        &mode,
        &pk_r,
        &info(room),
        buf.as_mut_slice().into(),
        &aad,
        &mut rng,
    )
    .map_err(|_| EnvelopeError::BadRecipientKey)?;
    out.extend_from_slice(&enc.to_bytes());
    out.extend_from_slice(buf.as_slice());
    out.extend_from_slice(&tag.to_bytes());
    debug_assert_eq!(out.len(), ENVELOPE_LEN);
    Ok(out)
}

/// Opens an envelope made by [`seal`]: authenticates the sender's identity key, the header and
/// the room. Sessions add the acceptance rules on top; tools (a recording's offline opener) can
/// call it directly.
pub fn open(
    room: &[u8],
    bytes: &[u8],
    recipient: &IdentityKeyPair,
    sender_pk: &IdentityPublicKey,
) -> Result<EpochSecret, EnvelopeError> {
    if bytes.len() != ENVELOPE_LEN {
        return Err(EnvelopeError::Malformed);
    }
    let pk_s = sender_pk.to_hpke().map_err(|_| EnvelopeError::Forged)?;
    let aad = &bytes[..HEADER_LEN];
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&bytes[HEADER_LEN..HEADER_LEN + 32])
        .map_err(|_| EnvelopeError::Forged)?;
    let ct = &bytes[HEADER_LEN + 32..HEADER_LEN + 32 + SECRET_LEN];
    let tag = AeadTag::<Aead>::from_bytes(&bytes[HEADER_LEN + 32 + SECRET_LEN..])
        .map_err(|_| EnvelopeError::Forged)?;
    let mut buf = zeroize::Zeroizing::new([0u8; SECRET_LEN]);
    buf.copy_from_slice(ct);
    hpke::single_shot_open_inout_detached::<Aead, Kdf, Kem>(
        &OpModeR::Auth(pk_s),
        recipient.hpke_sk(),
        &enc,
        &info(room),
        buf.as_mut_slice().into(),
        aad,
        &tag,
    )
    .map_err(|_| EnvelopeError::Forged)?;
    Ok(EpochSecret::from_array(*buf))
}

/// The MAC label of a tagged control message kind.
fn control_label(kind: u8) -> Option<&'static [u8]> {
    match kind {
        KIND_ACK => Some(crate::epoch::ACK),
        KIND_SWITCH => Some(crate::epoch::SWITCH),
        KIND_CODE_COMMIT | KIND_CODE_REVEAL => Some(crate::epoch::CODE),
        _ => None,
    }
}

/// `version, kind, epoch, sender, body`, then the tag over `room ||` all of that.
fn control(
    kind: u8,
    room: &[u8],
    epoch: u64,
    sender: SenderIndex,
    body: &[u8],
    secret: &EpochSecret,
) -> alloc::vec::Vec<u8> {
    let label = control_label(kind).unwrap_or(crate::epoch::ACK);
    signed(kind, room, epoch, sender, body, &secret.label_key(label))
}

/// [`control`] under one label's key.
fn signed(
    kind: u8,
    room: &[u8],
    epoch: u64,
    sender: SenderIndex,
    body: &[u8],
    key: &LabelKey,
) -> alloc::vec::Vec<u8> {
    let mut out = alloc::vec::Vec::with_capacity(14 + body.len() + 16);
    out.push(WIRE_VERSION);
    out.push(kind);
    out.extend_from_slice(&epoch.to_be_bytes());
    out.extend_from_slice(&sender.get().to_be_bytes());
    out.extend_from_slice(body);
    let tag = key.mac(&[room, &out]);
    out.extend_from_slice(&tag);
    out
}

/// An ack of `epoch` by `sender`.
pub(crate) fn ack(
    room: &[u8],
    epoch: u64,
    sender: SenderIndex,
    secret: &EpochSecret,
) -> alloc::vec::Vec<u8> {
    control(KIND_ACK, room, epoch, sender, &[], secret)
}

/// A switch notice for `epoch` from the committer `sender`.
pub(crate) fn switch(
    room: &[u8],
    epoch: u64,
    sender: SenderIndex,
    secret: &EpochSecret,
) -> alloc::vec::Vec<u8> {
    control(KIND_SWITCH, room, epoch, sender, &[], secret)
}

/// A safety-code commit (`reveal: false`, `value` the commitment) or reveal (`value` the
/// nonce) for the round of membership epoch `epoch`, tagged under that epoch's code key
/// ([`code_key`]).
pub(crate) fn code(
    reveal: bool,
    room: &[u8],
    epoch: u64,
    sender: SenderIndex,
    value: &[u8; 32],
    key: &LabelKey,
) -> alloc::vec::Vec<u8> {
    let kind = if reveal {
        KIND_CODE_REVEAL
    } else {
        KIND_CODE_COMMIT
    };
    signed(kind, room, epoch, sender, value, key)
}

/// The key that tags an epoch's safety-code commits and reveals: what a round keeps instead
/// of the epoch secret, which may be retired before the round ends.
pub(crate) fn code_key(secret: &EpochSecret) -> LabelKey {
    secret.label_key(crate::epoch::CODE)
}

/// Checks the tag of a code commit or reveal (`bytes` as parsed by [`Message::parse`]) under
/// the round's [`code_key`].
pub(crate) fn verify_code(room: &[u8], bytes: &[u8], key: &LabelKey) -> Result<(), EnvelopeError> {
    match bytes.get(1).copied() {
        Some(KIND_CODE_COMMIT | KIND_CODE_REVEAL) => check_tag(room, bytes, CODE_LEN, key),
        _ => Err(EnvelopeError::Malformed),
    }
}

/// Checks the tag of an ack, switch notice, code commit or reveal (`bytes` as parsed by
/// [`Message::parse`]).
pub(crate) fn verify_control(
    room: &[u8],
    bytes: &[u8],
    secret: &EpochSecret,
) -> Result<(), EnvelopeError> {
    let kind = bytes.get(1).copied().ok_or(EnvelopeError::Malformed)?;
    let len = match kind {
        KIND_ACK | KIND_SWITCH => CONTROL_LEN,
        KIND_CODE_COMMIT | KIND_CODE_REVEAL => CODE_LEN,
        _ => return Err(EnvelopeError::Malformed),
    };
    let label = control_label(kind).ok_or(EnvelopeError::Malformed)?;
    check_tag(room, bytes, len, &secret.label_key(label))
}

/// Checks that `bytes` is `len` long and ends in the tag of the rest under `key`.
fn check_tag(room: &[u8], bytes: &[u8], len: usize, key: &LabelKey) -> Result<(), EnvelopeError> {
    if bytes.len() != len {
        return Err(EnvelopeError::Malformed);
    }
    let mut tag = [0u8; 16];
    tag.copy_from_slice(&bytes[len - 16..]);
    if key.verify(&[room, &bytes[..len - 16]], &tag) {
        Ok(())
    } else {
        Err(EnvelopeError::Forged)
    }
}

/// Adapts `&mut R` (possibly unsized) to the sized `impl CryptoRng` that `hpke` takes.
struct RngRef<'a, R: ?Sized>(&'a mut R);

impl<R: CryptoRng + ?Sized> rand_core::TryRng for RngRef<'_, R> {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(self.0.next_u32())
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(self.0.next_u64())
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.0.fill_bytes(dst);
        Ok(())
    }
}

impl<R: CryptoRng + ?Sized> rand_core::TryCryptoRng for RngRef<'_, R> {}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) struct TestRng(u64);
    impl rand_core::TryRng for TestRng {
        type Error = core::convert::Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            Ok(self.try_next_u64()? as u32)
        }
        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            // splitmix64: deterministic, test only.
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            Ok(z ^ (z >> 31))
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
            for c in dst.chunks_mut(8) {
                let v = self.try_next_u64()?.to_le_bytes();
                c.copy_from_slice(&v[..c.len()]);
            }
            Ok(())
        }
    }
    impl rand_core::TryCryptoRng for TestRng {}

    fn setup() -> (
        TestRng,
        IdentityKeyPair,
        IdentityKeyPair,
        EnvelopeHeader,
        EpochSecret,
    ) {
        let mut rng = TestRng(1);
        let a = IdentityKeyPair::generate(&mut rng);
        let b = IdentityKeyPair::generate(&mut rng);
        let h = EnvelopeHeader {
            epoch: 7,
            sender: SenderIndex::new(1).unwrap(),
            recipient: SenderIndex::new(2).unwrap(),
            reason: Reason::Leave,
            roster: [4; 32],
        };
        (rng, a, b, h, EpochSecret::from_array([9; 32]))
    }

    #[test]
    fn round_trip() {
        let (mut rng, a, b, h, e) = setup();
        let env = seal(&mut rng, b"room", &h, &a, b.public(), &e).unwrap();
        assert_eq!(env.len(), ENVELOPE_LEN);
        assert_eq!(
            Message::parse(&env).unwrap(),
            Message::Envelope {
                header: h,
                bytes: &env
            }
        );
        let got = open(b"room", &env, &b, a.public()).unwrap();
        assert_eq!(got.as_array(), e.as_array());
        // The secret is not in the clear.
        assert!(!env.windows(32).any(|w| w == e.as_array()));
    }

    #[test]
    fn every_binding_is_checked() {
        let (mut rng, a, b, h, e) = setup();
        let env = seal(&mut rng, b"room", &h, &a, b.public(), &e).unwrap();
        let c = IdentityKeyPair::generate(&mut rng);
        // Other room.
        assert_eq!(
            open(b"other", &env, &b, a.public()).unwrap_err(),
            EnvelopeError::Forged
        );
        // Other claimed sender identity.
        assert_eq!(
            open(b"room", &env, &b, c.public()).unwrap_err(),
            EnvelopeError::Forged
        );
        // Other recipient.
        assert_eq!(
            open(b"room", &env, &c, a.public()).unwrap_err(),
            EnvelopeError::Forged
        );
        // Any flipped byte: header (epoch, sender, recipient, reason, roster), enc, ciphertext,
        // tag.
        for i in 2..ENVELOPE_LEN {
            let mut t = env.clone();
            t[i] ^= 1;
            assert!(open(b"room", &t, &b, a.public()).is_err(), "byte {i}");
        }
        assert_eq!(
            Message::parse(&env[..ENVELOPE_LEN - 1]).unwrap_err(),
            EnvelopeError::Malformed
        );
        let mut v = env.clone();
        v[0] = 2;
        assert_eq!(
            Message::parse(&v).unwrap_err(),
            EnvelopeError::UnsupportedVersion
        );
    }

    #[test]
    fn control_messages_are_tagged() {
        let e = EpochSecret::from_array([5; 32]);
        let s = SenderIndex::new(3).unwrap();
        let m = ack(b"room", 4, s, &e);
        assert_eq!(m.len(), CONTROL_LEN);
        assert!(matches!(
            Message::parse(&m).unwrap(),
            Message::Ack { epoch: 4, .. }
        ));
        verify_control(b"room", &m, &e).unwrap();
        assert_eq!(
            verify_control(b"roon", &m, &e).unwrap_err(),
            EnvelopeError::Forged
        );
        let other = EpochSecret::from_array([6; 32]);
        assert_eq!(
            verify_control(b"room", &m, &other).unwrap_err(),
            EnvelopeError::Forged
        );
        // An ack is not a switch.
        let mut sw = m.clone();
        sw[1] = KIND_SWITCH;
        assert_eq!(
            verify_control(b"room", &sw, &e).unwrap_err(),
            EnvelopeError::Forged
        );
        let sw = switch(b"room", 4, s, &e);
        verify_control(b"room", &sw, &e).unwrap();
    }
}
