//! Identity keys: each participant's X25519 key pair (`x25519-dalek`), used as the HPKE sender
//! and recipient keys of epoch envelopes (RFC 9180 Auth mode).

use core::fmt;

use hpke::{Deserializable, Kem as _};
use rand_core::CryptoRng;
use x25519_dalek::{PublicKey, StaticSecret};

use crate::envelope::Kem;
use crate::error::InputError;

/// A participant's X25519 identity key pair. The private half is zeroized on drop and never
/// printed.
pub struct IdentityKeyPair {
    secret: StaticSecret,
    public: IdentityPublicKey,
    hpke_sk: <Kem as hpke::Kem>::PrivateKey,
    hpke_pk: <Kem as hpke::Kem>::PublicKey,
}

impl IdentityKeyPair {
    /// A fresh key pair from the caller's RNG.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self::from_secret(StaticSecret::random_from_rng(rng))
    }

    /// The key pair with this private key (for apps that keep one across calls).
    pub fn from_secret_bytes(secret: [u8; 32]) -> Self {
        Self::from_secret(StaticSecret::from(secret))
    }

    fn from_secret(secret: StaticSecret) -> Self {
        let public = IdentityPublicKey(PublicKey::from(&secret).to_bytes());
        // RFC 9180 section 7.1.2: DeriveKeyPair is for seeds; a raw X25519 scalar is the private
        // key itself (hpke clamps it, as x25519-dalek does), so both libraries agree on the
        // public key.
        let (hpke_sk, hpke_pk) = hpke_pair(&secret);
        Self {
            secret,
            public,
            hpke_sk,
            hpke_pk,
        }
    }

    /// The public half, as members and the relay see it.
    pub fn public(&self) -> &IdentityPublicKey {
        &self.public
    }

    /// The private key bytes, for an app that stores the identity.
    pub fn secret_bytes(&self) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(self.secret.to_bytes())
    }

    pub(crate) fn hpke_pair(
        &self,
    ) -> (
        <Kem as hpke::Kem>::PrivateKey,
        <Kem as hpke::Kem>::PublicKey,
    ) {
        (self.hpke_sk.clone(), self.hpke_pk.clone())
    }

    pub(crate) fn hpke_sk(&self) -> &<Kem as hpke::Kem>::PrivateKey {
        &self.hpke_sk
    }

    /// True when `other` is not one of the X25519 points of small order (whose Diffie-Hellman
    /// output is fixed whatever the private key): the check libsodium's `has_small_order` makes,
    /// a few comparisons instead of a scalar multiplication per join.
    pub(crate) fn agrees_with(&self, other: &IdentityPublicKey) -> bool {
        !other.has_small_order()
    }
}

fn hpke_pair(
    secret: &StaticSecret,
) -> (
    <Kem as hpke::Kem>::PrivateKey,
    <Kem as hpke::Kem>::PublicKey,
) {
    match <Kem as hpke::Kem>::PrivateKey::from_bytes(secret.as_bytes()) {
        Ok(sk) => {
            let pk = <Kem as hpke::Kem>::sk_to_pk(&sk);
            (sk, pk)
        }
        // X25519 private keys are any 32 bytes, so `from_bytes` cannot refuse a 32-byte input;
        // deriving from the bytes keeps the code total without a panic path.
        Err(_) => Kem::derive_keypair(secret.as_bytes()),
    }
}

impl fmt::Debug for IdentityKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityKeyPair")
            .field("public", &self.public)
            .field("secret", &"***")
            .finish()
    }
}

/// A participant's X25519 identity public key (32 bytes).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IdentityPublicKey([u8; 32]);

impl IdentityPublicKey {
    /// The key from its 32 bytes; refuses the all-zero key.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, InputError> {
        if bytes == [0u8; 32] {
            return Err(InputError::BadIdentityKey);
        }
        Ok(Self(bytes))
    }

    /// The key from a slice (must be 32 bytes).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, InputError> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| InputError::BadIdentityKey)?;
        Self::from_bytes(arr)
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn has_small_order(&self) -> bool {
        const P_MINUS_1: [u8; 32] = {
            let mut a = [0xff; 32];
            a[0] = 0xec;
            a[31] = 0x7f;
            a
        };
        const SMALL: [[u8; 32]; 4] = [
            [0; 32],
            {
                let mut a = [0; 32];
                a[0] = 1;
                a
            },
            [
                0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f,
                0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16,
                0x5f, 0x49, 0xb8, 0x00,
            ],
            [
                0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83,
                0xef, 0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd,
                0xd0, 0x9f, 0x11, 0x57,
            ],
        ];
        // X25519 ignores the top bit of the u-coordinate.
        let mut u = self.0;
        u[31] &= 0x7f;
        if SMALL.contains(&u) {
            return true;
        }
        // p - 1, p and p + 1 (non-canonical encodings of 0, 1 and -1).
        let mut x = P_MINUS_1;
        for _ in 0..3 {
            if u == x {
                return true;
            }
            x[0] += 1;
        }
        false
    }

    pub(crate) fn to_hpke(self) -> Result<<Kem as hpke::Kem>::PublicKey, InputError> {
        <Kem as hpke::Kem>::PublicKey::from_bytes(&self.0).map_err(|_| InputError::BadIdentityKey)
    }
}

impl fmt::Debug for IdentityPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityPublicKey(")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hpke::Serializable;

    #[test]
    fn hpke_and_dalek_agree_on_the_public_key() {
        let kp = IdentityKeyPair::from_secret_bytes([0x42; 32]);
        let (_, pk) = kp.hpke_pair();
        assert_eq!(pk.to_bytes().as_slice(), kp.public().as_bytes());
        assert!(format!("{kp:?}").contains("***"));
        assert!(!format!("{kp:?}").contains("4242"));
    }

    #[test]
    fn low_order_keys_are_not_contributory() {
        let kp = IdentityKeyPair::from_secret_bytes([0x42; 32]);
        let mut one = [0u8; 32];
        one[0] = 1; // the point of order 4 with u = 1
        assert!(!kp.agrees_with(&IdentityPublicKey::from_bytes(one).unwrap()));
        let other = IdentityKeyPair::from_secret_bytes([0x43; 32]);
        assert!(kp.agrees_with(other.public()));
        // The same answer as a real Diffie-Hellman's contributory check, on every listed point.
        let mut p = [0xffu8; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        let mut top = one;
        top[31] |= 0x80;
        for u in [one, p, top] {
            let k = IdentityPublicKey::from_bytes(u).unwrap();
            assert!(!kp.agrees_with(&k));
            let dh = kp.secret.diffie_hellman(&PublicKey::from(u));
            assert!(!dh.was_contributory());
        }
        assert!(IdentityPublicKey::from_bytes([0; 32]).is_err());
    }
}
