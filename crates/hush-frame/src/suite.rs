//! Cipher suites, RFC 9605 section 4.5 (registry in section 8.1).

use crate::error::KeyError;

/// One of the five SFrame cipher suites of RFC 9605 section 4.5.
///
/// The default is [`CipherSuite::Aes128GcmSha256_128`], what browsers' WebCrypto accelerates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CipherSuite {
    /// `AES_128_CTR_HMAC_SHA256_80` (0x0001): AES-128-CTR with an HMAC-SHA256 tag of 10 bytes.
    AesCtr128HmacSha256_80,
    /// `AES_128_CTR_HMAC_SHA256_64` (0x0002): tag of 8 bytes.
    AesCtr128HmacSha256_64,
    /// `AES_128_CTR_HMAC_SHA256_32` (0x0003): tag of 4 bytes (audio only, RFC 9605 section 4.5.1).
    AesCtr128HmacSha256_32,
    /// `AES_128_GCM_SHA256_128` (0x0004): AES-128-GCM, 16-byte tag. The default.
    #[default]
    Aes128GcmSha256_128,
    /// `AES_256_GCM_SHA512_128` (0x0005): AES-256-GCM, 16-byte tag, HKDF-SHA512.
    Aes256GcmSha512_128,
}

/// Length of every suite's nonce (`Nn`), in bytes.
pub const NONCE_LEN: usize = 12;

/// The largest tag of any suite, in bytes.
pub const MAX_TAG_LEN: usize = 16;

/// Frames one key may seal before the encryptor refuses to go on (see [`CipherSuite::usage_limit`]).
const FRAMES_PER_KEY: u64 = 1 << 32;

/// AES blocks one key may process before the encryptor refuses to go on.
const BLOCKS_PER_KEY: u64 = 1 << 34;

impl CipherSuite {
    /// All suites, in registry order.
    pub const ALL: [CipherSuite; 5] = [
        CipherSuite::AesCtr128HmacSha256_80,
        CipherSuite::AesCtr128HmacSha256_64,
        CipherSuite::AesCtr128HmacSha256_32,
        CipherSuite::Aes128GcmSha256_128,
        CipherSuite::Aes256GcmSha512_128,
    ];

    /// The suite's 16-bit identifier from the IANA registry.
    pub const fn id(self) -> u16 {
        match self {
            CipherSuite::AesCtr128HmacSha256_80 => 1,
            CipherSuite::AesCtr128HmacSha256_64 => 2,
            CipherSuite::AesCtr128HmacSha256_32 => 3,
            CipherSuite::Aes128GcmSha256_128 => 4,
            CipherSuite::Aes256GcmSha512_128 => 5,
        }
    }

    /// The suite for a registry identifier.
    pub fn from_id(id: u16) -> Result<Self, KeyError> {
        Self::ALL
            .into_iter()
            .find(|s| s.id() == id)
            .ok_or(KeyError::UnknownSuite(id))
    }

    /// `Nk`: length of the AEAD key. For the CTR+HMAC suites it is the AES key followed by the
    /// HMAC key (16 + 32 bytes).
    pub const fn key_len(self) -> usize {
        match self {
            CipherSuite::AesCtr128HmacSha256_80
            | CipherSuite::AesCtr128HmacSha256_64
            | CipherSuite::AesCtr128HmacSha256_32 => 48,
            CipherSuite::Aes128GcmSha256_128 => 16,
            CipherSuite::Aes256GcmSha512_128 => 32,
        }
    }

    /// `Nt`: length of the authentication tag.
    pub const fn tag_len(self) -> usize {
        match self {
            CipherSuite::AesCtr128HmacSha256_80 => 10,
            CipherSuite::AesCtr128HmacSha256_64 => 8,
            CipherSuite::AesCtr128HmacSha256_32 => 4,
            CipherSuite::Aes128GcmSha256_128 | CipherSuite::Aes256GcmSha512_128 => 16,
        }
    }

    /// Whether the suite is one of the AES-GCM suites (the ones WebCrypto can run).
    pub const fn is_gcm(self) -> bool {
        matches!(
            self,
            CipherSuite::Aes128GcmSha256_128 | CipherSuite::Aes256GcmSha512_128
        )
    }

    /// How many frames one key may seal, and how many AES blocks in all, before it must be
    /// replaced: `(frames, blocks)`.
    ///
    /// RFC 9605 section 9 leaves the numbers to the AEAD's own limits. For AES (both GCM and
    /// CTR) the binding one is confidentiality: the distinguishing advantage after `B` 16-byte
    /// blocks under one key is about `B^2 / 2^129`, so `B = 2^34` blocks (256 GiB) keeps it
    /// below `2^-61`, tighter than TLS 1.3's `2^-57` (RFC 8446 section 5.5,
    /// draft-irtf-cfrg-aead-limits). The frame bound `2^32` keeps the integrity bound of the
    /// GCM suites (`q * l / 2^128`) and the counter far from any wrap. A 2 Mbit/s video stream
    /// reaches the block limit after about 12 days and the frame limit after 2.7 years at
    /// 50 fps; the key schedule rotates long before.
    pub const fn usage_limit(self) -> (u64, u64) {
        (FRAMES_PER_KEY, BLOCKS_PER_KEY)
    }
}
