//! Base keys and the SFrame key schedule, RFC 9605 section 4.4.2.
//!
//! ```text
//! sframe_secret = HKDF-Extract("", base_key)
//! sframe_key    = HKDF-Expand(sframe_secret, "SFrame 1.0 Secret key "  || KID || suite, Nk)
//! sframe_salt   = HKDF-Expand(sframe_secret, "SFrame 1.0 Secret salt " || KID || suite, Nn)
//! ```
//! with `KID` as 8 big-endian bytes and `suite` as 2. The hash is SHA-256, or SHA-512 for
//! suite 5. The nonce of a frame is `sframe_salt XOR CTR` (CTR big-endian, left-padded to `Nn`).

use core::fmt;

use hkdf::Hkdf;
use sha2::{Sha256, Sha512};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::aead::SuiteAead;
use crate::error::KeyError;
use crate::suite::{CipherSuite, NONCE_LEN};

/// Prefix of the key label.
const KEY_LABEL: &[u8] = b"SFrame 1.0 Secret key ";
/// Prefix of the salt label.
const SALT_LABEL: &[u8] = b"SFrame 1.0 Secret salt ";
/// Longest label: salt prefix, 8-byte KID, 2-byte suite.
const MAX_LABEL_LEN: usize = 23 + 8 + 2;

/// A base key: the secret from which one KID's AEAD key and salt are derived.
///
/// 16 to 64 bytes; zeroized on drop; `Debug` prints `***`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct BaseKey {
    bytes: [u8; 64],
    len: u8,
}

impl BaseKey {
    /// Copies a base key. Refuses lengths outside 16..=64 bytes.
    pub fn new(bytes: &[u8]) -> Result<Self, KeyError> {
        if !(16..=64).contains(&bytes.len()) {
            return Err(KeyError::BadBaseKeyLength(bytes.len()));
        }
        let mut out = BaseKey {
            bytes: [0; 64],
            len: bytes.len() as u8,
        };
        out.bytes[..bytes.len()].copy_from_slice(bytes);
        Ok(out)
    }

    /// The key bytes. Named so that every use is visible in review.
    pub fn expose_secret(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl fmt::Debug for BaseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BaseKey(***)")
    }
}

/// Builds the HKDF label for `prefix`, `kid` and `suite`; returns it and its length.
fn label(prefix: &[u8], kid: u64, suite: CipherSuite) -> ([u8; MAX_LABEL_LEN], usize) {
    let mut out = [0u8; MAX_LABEL_LEN];
    let n = prefix.len();
    out[..n].copy_from_slice(prefix);
    out[n..n + 8].copy_from_slice(&kid.to_be_bytes());
    out[n + 8..n + 10].copy_from_slice(&suite.id().to_be_bytes());
    (out, n + 10)
}

/// The key label `"SFrame 1.0 Secret key " || KID || suite` (exposed for the RFC vectors).
pub fn key_label(kid: u64, suite: CipherSuite) -> Vec<u8> {
    let (l, n) = label(KEY_LABEL, kid, suite);
    l[..n].to_vec()
}

/// The salt label `"SFrame 1.0 Secret salt " || KID || suite` (exposed for the RFC vectors).
pub fn salt_label(kid: u64, suite: CipherSuite) -> Vec<u8> {
    let (l, n) = label(SALT_LABEL, kid, suite);
    l[..n].to_vec()
}

/// Everything section 4.4.2 derives for one KID, exposed for known-answer tests and for hosts
/// that import the AEAD key into their own crypto (WebCrypto).
pub struct DerivedKey {
    suite: CipherSuite,
    secret: Zeroizing<[u8; 64]>,
    key: Zeroizing<[u8; 48]>,
    salt: Zeroizing<[u8; NONCE_LEN]>,
}

impl DerivedKey {
    /// Runs the key schedule for `kid` under `suite`.
    pub fn derive(suite: CipherSuite, kid: u64, base_key: &BaseKey) -> Self {
        let ikm = base_key.expose_secret();
        let (kl, kn) = label(KEY_LABEL, kid, suite);
        let (sl, sn) = label(SALT_LABEL, kid, suite);
        let mut out = DerivedKey {
            suite,
            secret: Zeroizing::new([0u8; 64]),
            key: Zeroizing::new([0u8; 48]),
            salt: Zeroizing::new([0u8; NONCE_LEN]),
        };
        let nk = suite.key_len();
        // HKDF-Expand fails only for outputs over 255 hash lengths; ours are at most 48 bytes,
        // so the results are ignored.
        if suite == CipherSuite::Aes256GcmSha512_128 {
            let (mut prk, hk) = Hkdf::<Sha512>::extract(Some(&[]), ikm);
            out.secret[..64].copy_from_slice(&prk);
            prk.as_mut_slice().zeroize();
            let _ = hk.expand(&kl[..kn], &mut out.key[..nk]);
            let _ = hk.expand(&sl[..sn], &mut out.salt[..]);
        } else {
            let (mut prk, hk) = Hkdf::<Sha256>::extract(Some(&[]), ikm);
            out.secret[..32].copy_from_slice(&prk);
            prk.as_mut_slice().zeroize();
            let _ = hk.expand(&kl[..kn], &mut out.key[..nk]);
            let _ = hk.expand(&sl[..sn], &mut out.salt[..]);
        }
        out
    }

    /// `sframe_secret` (the HKDF-Extract output: 32 bytes, 64 for suite 5).
    pub fn expose_secret(&self) -> &[u8] {
        let n = if self.suite == CipherSuite::Aes256GcmSha512_128 {
            64
        } else {
            32
        };
        &self.secret[..n]
    }

    /// `sframe_key`: the AEAD key, `Nk` bytes.
    pub fn expose_key(&self) -> &[u8] {
        &self.key[..self.suite.key_len()]
    }

    /// `sframe_salt`: `Nn` bytes, XORed with the counter to make each nonce.
    pub fn salt(&self) -> &[u8; NONCE_LEN] {
        &self.salt
    }
}

impl fmt::Debug for DerivedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DerivedKey(***)")
    }
}

/// A ready-to-use frame cipher: the suite's AEAD keyed with a KID's derived key, and its
/// salt. (The key *handed* to this crate is a [`BaseKey`]; hush-keys calls it a `FrameKey`.)
pub struct FrameCipher {
    suite: CipherSuite,
    aead: SuiteAead,
    salt: Zeroizing<[u8; NONCE_LEN]>,
}

impl FrameCipher {
    /// Derives the key for `kid` from `base_key` (RFC 9605 section 4.4.2).
    pub fn derive(suite: CipherSuite, kid: u64, base_key: &BaseKey) -> Self {
        let d = DerivedKey::derive(suite, kid, base_key);
        FrameCipher {
            suite,
            aead: SuiteAead::from_padded(suite, &d.key),
            salt: d.salt,
        }
    }

    /// The suite this key is for.
    pub fn suite(&self) -> CipherSuite {
        self.suite
    }

    /// The nonce for counter `ctr`: `salt XOR CTR` (RFC 9605 section 4.4.3).
    pub fn nonce(&self, ctr: u64) -> [u8; NONCE_LEN] {
        let mut n = *self.salt;
        for (b, c) in n[NONCE_LEN - 8..].iter_mut().zip(ctr.to_be_bytes()) {
            *b ^= c;
        }
        n
    }

    /// The keyed AEAD.
    pub fn aead(&self) -> &SuiteAead {
        &self.aead
    }
}

impl fmt::Debug for FrameCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameCipher")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_key_length_is_checked_and_debug_redacts() {
        assert_eq!(
            BaseKey::new(&[0; 15]).err(),
            Some(KeyError::BadBaseKeyLength(15))
        );
        assert!(BaseKey::new(&[0; 65]).is_err());
        let k = BaseKey::new(&[0xab; 16]).unwrap();
        assert_eq!(format!("{k:?}"), "BaseKey(***)");
        let f = FrameCipher::derive(CipherSuite::default(), 1, &k);
        assert!(!format!("{f:?}").contains("ab"));
    }

    #[test]
    fn kid_and_suite_separate_keys() {
        let k = BaseKey::new(&[7; 16]).unwrap();
        let a = DerivedKey::derive(CipherSuite::Aes128GcmSha256_128, 1, &k);
        let b = DerivedKey::derive(CipherSuite::Aes128GcmSha256_128, 2, &k);
        let c = DerivedKey::derive(CipherSuite::AesCtr128HmacSha256_80, 1, &k);
        assert_ne!(a.expose_key(), b.expose_key());
        assert_ne!(a.salt(), b.salt());
        assert_ne!(a.expose_key(), &c.expose_key()[..16]);
    }
}
