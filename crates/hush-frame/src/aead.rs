//! The AEADs of the five suites: AES-GCM (RustCrypto `aes-gcm`) and the AES-CTR + HMAC-SHA256
//! construction of RFC 9605 section 4.5.1.
//!
//! Every operation is in place with a detached tag, so that the frame layer controls the
//! buffer layout and never allocates.

use aes::Aes128;
use aes_gcm::aead::consts::{U12, U16};
use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm, Nonce, Tag};
use ctr::cipher::{KeyIvInit, StreamCipher};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use crate::error::KeyError;
use crate::suite::{CipherSuite, NONCE_LEN};

/// AES-CTR with the 32-bit big-endian block counter of section 4.5.1 (`nonce || 0x00000000`).
type Aes128Ctr = ctr::Ctr32BE<Aes128>;

/// The authentication failed. Deliberately carries nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthError;

/// A keyed AEAD for one of the suites.
pub enum SuiteAead {
    /// Suite 4.
    Gcm128(Box<Aes128Gcm>),
    /// Suite 5.
    Gcm256(Box<Aes256Gcm>),
    /// Suites 1 to 3.
    CtrHmac {
        /// AES-128 key for the CTR keystream (`enc_key`).
        enc_key: [u8; 16],
        /// HMAC-SHA256 keyed with `auth_key`, cloned per frame.
        mac: Box<Hmac<Sha256>>,
        /// `Nt`.
        tag_len: usize,
    },
}

impl SuiteAead {
    /// Keys the suite's AEAD with a raw `Nk`-byte key (`sframe_key`).
    pub fn new(suite: CipherSuite, key: &[u8]) -> Result<Self, KeyError> {
        if key.len() != suite.key_len() {
            return Err(KeyError::BadAeadKeyLength {
                expected: suite.key_len(),
                got: key.len(),
            });
        }
        let mut padded = [0u8; 48];
        padded[..key.len()].copy_from_slice(key);
        let aead = Self::from_padded(suite, &padded);
        padded.zeroize();
        Ok(aead)
    }

    /// Keys the AEAD from the first `Nk` bytes of `key`.
    pub(crate) fn from_padded(suite: CipherSuite, key: &[u8; 48]) -> Self {
        match suite {
            CipherSuite::Aes128GcmSha256_128 => {
                let mut k = [0u8; 16];
                k.copy_from_slice(&key[..16]);
                let aead = Aes128Gcm::new(&k.into());
                k.zeroize();
                SuiteAead::Gcm128(Box::new(aead))
            }
            CipherSuite::Aes256GcmSha512_128 => {
                let mut k = [0u8; 32];
                k.copy_from_slice(&key[..32]);
                let aead = Aes256Gcm::new(&k.into());
                k.zeroize();
                SuiteAead::Gcm256(Box::new(aead))
            }
            ctr_suite => {
                let mut enc_key = [0u8; 16];
                enc_key.copy_from_slice(&key[..16]);
                let mut auth = [0u8; 32];
                auth.copy_from_slice(&key[16..48]);
                // HMAC accepts keys of any length; 32 bytes cannot be refused.
                let mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&auth)
                    .unwrap_or_else(|_| <Hmac<Sha256> as hmac::KeyInit>::new(&Default::default()));
                auth.zeroize();
                SuiteAead::CtrHmac {
                    enc_key,
                    mac: Box::new(mac),
                    tag_len: ctr_suite.tag_len(),
                }
            }
        }
    }

    /// `Nt` for this AEAD.
    pub fn tag_len(&self) -> usize {
        match self {
            SuiteAead::Gcm128(_) | SuiteAead::Gcm256(_) => 16,
            SuiteAead::CtrHmac { tag_len, .. } => *tag_len,
        }
    }

    /// Encrypts `payload` in place and writes the tag into `tag` (`tag.len()` must be `Nt`).
    pub fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        payload: &mut [u8],
        tag: &mut [u8],
    ) -> Result<(), AuthError> {
        if tag.len() != self.tag_len() {
            return Err(AuthError);
        }
        match self {
            SuiteAead::Gcm128(a) => gcm_seal(&**a, nonce, aad, payload, tag),
            SuiteAead::Gcm256(a) => gcm_seal(&**a, nonce, aad, payload, tag),
            SuiteAead::CtrHmac { enc_key, mac, .. } => {
                keystream(enc_key, nonce, payload)?;
                let full = ctr_hmac_tag(mac, nonce, aad, payload, tag.len());
                tag.copy_from_slice(&full[..tag.len()]);
                Ok(())
            }
        }
    }

    /// Checks `tag` and, only if it is valid, decrypts `payload` in place.
    pub fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        payload: &mut [u8],
        tag: &[u8],
    ) -> Result<(), AuthError> {
        if tag.len() != self.tag_len() {
            return Err(AuthError);
        }
        match self {
            SuiteAead::Gcm128(a) => gcm_open(&**a, nonce, aad, payload, tag),
            SuiteAead::Gcm256(a) => gcm_open(&**a, nonce, aad, payload, tag),
            SuiteAead::CtrHmac { enc_key, mac, .. } => {
                let full = ctr_hmac_tag(mac, nonce, aad, payload, tag.len());
                if !bool::from(full[..tag.len()].ct_eq(tag)) {
                    return Err(AuthError);
                }
                keystream(enc_key, nonce, payload)
            }
        }
    }
}

/// AES-GCM of either key size: encrypts `payload` in place and writes the 16-byte tag.
fn gcm_seal<A: AeadInOut<NonceSize = U12, TagSize = U16>>(
    aead: &A,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    payload: &mut [u8],
    tag: &mut [u8],
) -> Result<(), AuthError> {
    let t = aead
        .encrypt_inout_detached(&Nonce::from(*nonce), aad, payload.into())
        .map_err(|_| AuthError)?;
    tag.copy_from_slice(&t);
    Ok(())
}

/// AES-GCM of either key size: checks the 16-byte `tag`, then decrypts `payload` in place.
fn gcm_open<A: AeadInOut<NonceSize = U12, TagSize = U16>>(
    aead: &A,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    payload: &mut [u8],
    tag: &[u8],
) -> Result<(), AuthError> {
    let t = Tag::try_from(tag).map_err(|_| AuthError)?;
    aead.decrypt_inout_detached(&Nonce::from(*nonce), aad, payload.into(), &t)
        .map_err(|_| AuthError)
}

/// XORs the AES-CTR keystream for `nonce || 0x00000000` into `data`.
fn keystream(key: &[u8; 16], nonce: &[u8; NONCE_LEN], data: &mut [u8]) -> Result<(), AuthError> {
    let mut iv = [0u8; 16];
    iv[..NONCE_LEN].copy_from_slice(nonce);
    let mut c = Aes128Ctr::new(key.into(), &iv.into());
    // Fails only past 2^32 blocks (64 GiB), far above MAX_FRAME_LEN.
    c.try_apply_keystream(data).map_err(|_| AuthError)
}

/// `compute_tag` of section 4.5.1: HMAC over the lengths, nonce, AAD and ciphertext.
fn ctr_hmac_tag(
    mac: &Hmac<Sha256>,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    ct: &[u8],
    tag_len: usize,
) -> [u8; 32] {
    let mut m = mac.clone();
    m.update(&(aad.len() as u64).to_be_bytes());
    m.update(&(ct.len() as u64).to_be_bytes());
    m.update(&(tag_len as u64).to_be_bytes());
    m.update(nonce);
    m.update(aad);
    m.update(ct);
    m.finalize().into_bytes().into()
}

impl Drop for SuiteAead {
    fn drop(&mut self) {
        if let SuiteAead::CtrHmac { enc_key, .. } = self {
            enc_key.zeroize();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_tag_length_and_wrong_tag_are_refused() {
        for suite in CipherSuite::ALL {
            let a = SuiteAead::new(suite, &vec![1u8; suite.key_len()]).unwrap();
            let nonce = [2u8; NONCE_LEN];
            let mut data = *b"hello world";
            let mut tag = vec![0u8; suite.tag_len()];
            a.seal(&nonce, b"aad", &mut data, &mut tag).unwrap();
            assert_ne!(&data, b"hello world");
            let mut bad = tag.clone();
            bad[0] ^= 1;
            let mut copy = data;
            assert_eq!(a.open(&nonce, b"aad", &mut copy, &bad), Err(AuthError));
            assert_eq!(copy, data, "a failed open must not touch the ciphertext");
            assert_eq!(a.open(&nonce, b"aaX", &mut copy, &tag), Err(AuthError));
            assert_eq!(a.open(&nonce, b"aad", &mut copy, &tag[1..]), Err(AuthError));
            a.open(&nonce, b"aad", &mut copy, &tag).unwrap();
            assert_eq!(&copy, b"hello world");
        }
        assert!(SuiteAead::new(CipherSuite::default(), &[0; 15]).is_err());
    }
}

#[cfg(test)]
mod wiped {
    /// HMAC-SHA256/512 (the CTR suites' authentication key, HKDF's PRK) keeps its state in the
    /// hash's cores, which wipe themselves on drop only with sha2's `zeroize` feature (`Hmac`
    /// itself has no marker). Fails to compile without the feature.
    #[test]
    fn the_hash_states_hmac_keeps_are_zeroized_on_drop() {
        fn wiped<T: zeroize::ZeroizeOnDrop>() {}
        wiped::<sha2::Sha256>();
        wiped::<sha2::Sha512>();
    }
}
