//! # hush-frame: SFrame (RFC 9605) for every media frame of a Hush call
//!
//! This crate turns one encoded audio or video frame into an SFrame ciphertext and back, in
//! place, with no I/O, no clock and no randomness of its own (SFrame derives its nonces). The
//! same code runs natively, in the relay's recording tools and in the browser through wasm.
//!
//! - [`header`]: the SFrame header (RFC 9605 section 4.3).
//! - [`suite`]: the five cipher suites (section 4.5) and their usage limits (section 9).
//! - [`key`]: base keys and the key schedule (section 4.4.2).
//! - [`aead`]: AES-GCM and the AES-CTR + HMAC construction (section 4.5.1).
//! - [`codec`]: media mode, the codec-aware clear prefix, with the rule and reason per codec.
//! - [`escape`]: start-code emulation prevention for H.264/H.265.
//! - [`replay`]: the per-KID replay window.
//! - [`DropReason`]: the stable name of every drop, the one vocabulary of every layer above.
//! - [`Encryptor`] and [`Decryptor`]: plan / seal-open / commit, so a host can run the AEAD;
//!   [`plan`]: where a planned frame's parts sit.
//!
//! ```
//! use hush_frame::{BaseKey, CipherSuite, Codec, Decryptor, Encryptor, Layout};
//!
//! let key = BaseKey::new(&[7u8; 16])?;
//! let suite = CipherSuite::Aes128GcmSha256_128;
//! let mut tx = Encryptor::new(suite, 42, &key);
//! let mut rx = Decryptor::new(suite);
//! rx.add_key(42, &key)?;
//!
//! let layout = Layout::Media(Codec::Opus);
//! let mut frame = b"\x78opus payload".to_vec();
//! tx.encrypt(layout, &mut frame)?;
//! assert_eq!(frame[0], 0x78); // the Opus TOC byte stays in the clear
//! rx.decrypt(layout, &mut frame)?;
//! assert_eq!(frame, b"\x78opus payload");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod aead;
pub mod codec;
mod decryptor;
mod encryptor;
pub mod error;
pub mod escape;
pub mod header;
pub mod key;
pub mod plan;
pub mod replay;
mod stats;
pub mod suite;

pub use codec::{Codec, Layout};
pub use decryptor::{Decryptor, OpenPlan};
pub use encryptor::{DETACHED_HEAD, Encryptor, SealPlan};
pub use error::{DecryptError, DropReason, EncryptError, HeaderError, KeyError};
pub use header::Header;
pub use key::BaseKey;
pub use stats::{DecryptStats, EncryptStats};
pub use suite::CipherSuite;

/// Largest frame either side accepts: 16 MiB, far above any real encoded frame.
pub const MAX_FRAME_LEN: usize = 16 << 20;
