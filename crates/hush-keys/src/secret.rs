//! Secret byte strings: fixed size, zeroized on drop, never printed.

use core::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// The length of every secret this crate hands out or keeps: epoch secrets and frame base keys.
pub const SECRET_LEN: usize = 32;

/// 32 secret bytes, zeroized on drop; `Debug` prints `***`.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct Secret32([u8; SECRET_LEN]);

impl Secret32 {
    pub(crate) fn from_array(bytes: [u8; SECRET_LEN]) -> Self {
        Self(bytes)
    }

    pub(crate) fn as_array(&self) -> &[u8; SECRET_LEN] {
        &self.0
    }
}

impl fmt::Debug for Secret32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A base key for one KID, to install into the frame layer (`hush_frame::BaseKey::new`).
///
/// 32 bytes (RFC 9605 section 4.4.2 extracts the SFrame key and salt from it, whatever the
/// suite). Zeroized on drop, redacted in `Debug`, not `Clone`: hand it to the frame layer and drop
/// it.
pub struct FrameKey(Secret32);

impl FrameKey {
    pub(crate) fn from_array(bytes: [u8; SECRET_LEN]) -> Self {
        Self(Secret32::from_array(bytes))
    }

    /// The key bytes, for the frame layer.
    pub fn as_bytes(&self) -> &[u8; SECRET_LEN] {
        self.0.as_array()
    }
}

impl fmt::Debug for FrameKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FrameKey(***)")
    }
}
