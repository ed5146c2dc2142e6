//! Where a frame's parts sit in the buffer: the plan both sides hand out between their steps
//! ([`crate::SealPlan`] from the [`crate::Encryptor`], [`crate::OpenPlan`] from the
//! [`crate::Decryptor`]).

use core::marker::PhantomData;
use core::ops::Range;

use crate::codec::Layout;
use crate::suite::NONCE_LEN;

/// Marks a [`FramePlan`] of the sending side ([`crate::SealPlan`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seal {}

/// Marks a [`FramePlan`] of the receiving side ([`crate::OpenPlan`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Open {}

/// Where a frame's parts sit in the buffer, `[prefix][framing][header][payload][tag]`, and its
/// nonce. `Side` ([`Seal`] or [`Open`]) only keeps one side's plans from being handed to the
/// other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FramePlan<Side> {
    pub(crate) layout: Layout,
    pub(crate) kid: u64,
    pub(crate) ctr: u64,
    pub(crate) nonce: [u8; NONCE_LEN],
    pub(crate) prefix_len: usize,
    pub(crate) framing_len: usize,
    pub(crate) header_len: usize,
    pub(crate) payload_len: usize,
    pub(crate) tag_len: usize,
    pub(crate) side: PhantomData<Side>,
}

impl<Side> FramePlan<Side> {
    /// The frame's KID: the one it is sealed under, or the one its header names.
    pub fn kid(&self) -> u64 {
        self.kid
    }

    /// The frame's counter.
    pub fn ctr(&self) -> u64 {
        self.ctr
    }

    /// The AEAD nonce (`salt XOR CTR`).
    pub fn nonce(&self) -> &[u8; NONCE_LEN] {
        &self.nonce
    }

    /// The payload: the bytes encrypted, or decrypted, in place.
    pub fn payload_range(&self) -> Range<usize> {
        let start = self.header_at() + self.header_len;
        start..start + self.payload_len
    }

    /// Length of the clear prefix: the bytes at the start of the frame that stay as they were.
    /// Sent, the plaintext is the rest of the frame given to [`crate::Encryptor::plan`];
    /// received, the decrypted frame is `prefix || plaintext`.
    pub fn prefix_len(&self) -> usize {
        self.prefix_len
    }

    /// Length of the framing between the clear prefix and the SFrame header: AV1's carrier OBU
    /// header and size ([`crate::codec::av1`]); 0 for every other layout. The sender inserts
    /// it; the receiver removes it with the header and tag.
    pub fn framing_len(&self) -> usize {
        self.framing_len
    }

    /// Length of the SFrame header.
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// The tag, right after the payload.
    pub fn tag_range(&self) -> Range<usize> {
        let start = self.payload_range().end;
        start..start + self.tag_len
    }

    /// Where the SFrame header starts: after the clear prefix and the framing.
    fn header_at(&self) -> usize {
        self.prefix_len + self.framing_len
    }

    /// Writes the AAD of the laid-out `frame` into `out`: `header || metadata || extra`.
    pub(crate) fn write_aad(&self, out: &mut Vec<u8>, frame: &[u8], extra: &[u8]) {
        build_aad(
            out,
            self.layout,
            frame,
            self.header_at(),
            self.header_len,
            extra,
        );
    }

    /// The payload and the tag of the laid-out `frame`, for the AEAD. `frame` must reach the
    /// end of the tag.
    pub(crate) fn payload_and_tag<'a>(&self, frame: &'a mut [u8]) -> (&'a mut [u8], &'a mut [u8]) {
        frame[self.payload_range().start..self.tag_range().end].split_at_mut(self.payload_len)
    }
}

/// Writes `header || metadata || extra` into `out`, reading both from the laid-out frame,
/// whose SFrame header starts at `header_at` (after the clear prefix and the framing).
pub(crate) fn build_aad(
    out: &mut Vec<u8>,
    layout: Layout,
    frame: &[u8],
    header_at: usize,
    header_len: usize,
    extra: &[u8],
) {
    out.clear();
    out.extend_from_slice(&frame[header_at..header_at + header_len]);
    layout.write_metadata(&frame[..header_at], out);
    out.extend_from_slice(extra);
}
