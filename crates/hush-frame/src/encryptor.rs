//! The sending side: one [`Encryptor`] per outgoing stream (per encoded transform).
//!
//! Encryption is split in three steps so that a host can run the AEAD itself (WebCrypto in a
//! browser Worker, DESIGN.md section 2):
//!
//! 1. [`Encryptor::plan`] checks the frame and the key's usage, **reserves the counter**, lays
//!    the frame out in place (`[prefix][framing][header][payload][room for the tag]`, with
//!    framing only for AV1) and returns a
//!    [`SealPlan`] with the nonce and the byte ranges;
//! 2. [`Encryptor::seal`] runs the suite's AEAD (or the host encrypts
//!    [`SealPlan::payload_range`] with [`Encryptor::aad`] and writes the tag itself);
//! 3. [`Encryptor::finish`] escapes H.26x output and counts the frame.
//!
//! The counter is taken at step 1, not 3: two frames planned before either is sealed (an async
//! host) still get distinct nonces, and a frame whose sealing failed burns its counter rather
//! than risk reusing it. [`Encryptor::encrypt`] does all three.

use core::marker::PhantomData;

use crate::MAX_FRAME_LEN;
use crate::codec::Layout;
use crate::error::EncryptError;
use crate::escape;
use crate::header::Header;
use crate::key::{BaseKey, FrameCipher};
use crate::plan::{FramePlan, Seal};
use crate::stats::EncryptStats;
use crate::suite::CipherSuite;

/// Where a planned frame's parts sit in the buffer, and its nonce: what [`Encryptor::plan`]
/// returns. The host encrypts [`FramePlan::payload_range`] in place and writes the tag at
/// [`FramePlan::tag_range`].
pub type SealPlan = FramePlan<Seal>;

/// Encrypts one outgoing stream's frames with one key at a time.
pub struct Encryptor {
    suite: CipherSuite,
    kid: u64,
    key: FrameCipher,
    /// Next counter. Monotonic for the encryptor's whole life, across key changes, so that
    /// even a KID set again with the same base key never sees a counter twice.
    next_ctr: u64,
    frames_with_key: u64,
    blocks_with_key: u64,
    frame_limit: u64,
    block_limit: u64,
    scratch: Vec<u8>,
    stats: EncryptStats,
}

impl Encryptor {
    /// An encryptor sending under `kid`, keyed from `base_key`.
    pub fn new(suite: CipherSuite, kid: u64, base_key: &BaseKey) -> Self {
        let (frame_limit, block_limit) = suite.usage_limit();
        Encryptor {
            suite,
            kid,
            key: FrameCipher::derive(suite, kid, base_key),
            next_ctr: 0,
            frames_with_key: 0,
            blocks_with_key: 0,
            frame_limit,
            block_limit,
            scratch: Vec::with_capacity(64),
            stats: EncryptStats::default(),
        }
    }

    /// Lowers the number of frames one key may seal (never raises it above the suite's limit).
    pub fn with_usage_limit(mut self, frames: u64) -> Self {
        self.frame_limit = frames.min(self.suite.usage_limit().0);
        self
    }

    /// Switches to a new key. The per-key usage starts again; the counter does not.
    pub fn set_key(&mut self, kid: u64, base_key: &BaseKey) {
        self.kid = kid;
        self.key = FrameCipher::derive(self.suite, kid, base_key);
        self.frames_with_key = 0;
        self.blocks_with_key = 0;
    }

    /// The KID frames are sent under now.
    pub fn kid(&self) -> u64 {
        self.kid
    }

    /// The counter the next frame gets.
    pub fn next_counter(&self) -> u64 {
        self.next_ctr
    }

    /// Moves the counter forward to `next`, never back: an encryptor made again for a KID that
    /// another one sealed under (its key possibly the same) goes on from that one's
    /// [`Self::next_counter`], so no counter is used twice under a key. The per-key usage count
    /// starts from zero here; the suite's limits are far above what a resumed key has used when
    /// keys rotate at half of them ([`Self::needs_rotation`]).
    pub fn resume_from(&mut self, next: u64) {
        self.next_ctr = self.next_ctr.max(next);
    }

    /// The suite.
    pub fn suite(&self) -> CipherSuite {
        self.suite
    }

    /// True once the key has used half of its budget: time to ask for a new epoch, well
    /// before [`EncryptError::RotateKey`].
    pub fn needs_rotation(&self) -> bool {
        self.frames_with_key >= self.frame_limit / 2 || self.blocks_with_key >= self.block_limit / 2
    }

    /// Frames the current key may still seal.
    pub fn frames_left(&self) -> u64 {
        self.frame_limit.saturating_sub(self.frames_with_key)
    }

    /// Counters so far.
    pub fn stats(&self) -> EncryptStats {
        self.stats
    }

    /// Encrypts the frame in `buf` in place: plaintext in, wire frame out. On error `buf` may
    /// hold anything and must not be sent.
    pub fn encrypt(&mut self, layout: Layout, buf: &mut Vec<u8>) -> Result<SealPlan, EncryptError> {
        self.encrypt_with_metadata(layout, buf, &[])
    }

    /// [`Encryptor::encrypt`] with application metadata authenticated after the codec's
    /// (RFC 9605 section 4.4.3 `metadata`); the receiver must pass the same.
    pub fn encrypt_with_metadata(
        &mut self,
        layout: Layout,
        buf: &mut Vec<u8>,
        metadata: &[u8],
    ) -> Result<SealPlan, EncryptError> {
        let plan = self.plan(layout, buf)?;
        self.seal_with_metadata(&plan, buf, metadata)?;
        self.finish(&plan, buf);
        Ok(plan)
    }

    /// Reserves the next counter for a payload of `payload_len` bytes, within the key's usage
    /// limits (frames and AES blocks, tag block included). The one place counters are handed
    /// out, so no two frames ever share a nonce, whichever path planned them.
    fn reserve_counter(&mut self, payload_len: usize) -> Result<u64, EncryptError> {
        let blocks = (payload_len as u64).div_ceil(16) + 1;
        if self.frames_with_key >= self.frame_limit
            || self.blocks_with_key.saturating_add(blocks) > self.block_limit
            || self.next_ctr == u64::MAX
        {
            self.stats.refused_rotate += 1;
            return Err(EncryptError::RotateKey);
        }
        let ctr = self.next_ctr;
        self.next_ctr += 1;
        self.frames_with_key += 1;
        self.blocks_with_key += blocks;
        Ok(ctr)
    }

    /// Step 1: checks, reserves a counter and lays the frame out. See the module docs.
    pub fn plan(&mut self, layout: Layout, buf: &mut Vec<u8>) -> Result<SealPlan, EncryptError> {
        if buf.len() > MAX_FRAME_LEN {
            self.stats.refused_frame += 1;
            return Err(EncryptError::FrameTooLarge);
        }
        let Ok(split) = layout.send_split(buf) else {
            self.stats.refused_frame += 1;
            return Err(EncryptError::FrameTooShort(layout));
        };
        let prefix_len = split.prefix_len;
        let payload_len = buf.len() - prefix_len;
        let ctr = self.reserve_counter(payload_len)?;

        let header = Header::new(self.kid, ctr);
        let (hbytes, header_len) = header.to_bytes();
        let tag_len = self.suite.tag_len();
        let framing = split.framing(header_len + payload_len + tag_len);
        let framing = framing.as_bytes();
        let header_at = prefix_len + framing.len();
        // The only growth besides header and tag: AV1 framing, at most 6 bytes; a caller
        // that leaves that much capacity headroom gets no allocation.
        buf.resize(header_at + header_len + payload_len + tag_len, 0);
        buf.copy_within(prefix_len..prefix_len + payload_len, header_at + header_len);
        buf[prefix_len..header_at].copy_from_slice(framing);
        buf[header_at..header_at + header_len].copy_from_slice(&hbytes[..header_len]);
        Ok(SealPlan {
            layout,
            kid: self.kid,
            ctr,
            nonce: self.key.nonce(ctr),
            prefix_len,
            framing_len: framing.len(),
            header_len,
            payload_len,
            tag_len,
            side: PhantomData,
        })
    }

    /// The AAD for a planned frame: `header || metadata` (the codec's, see [`crate::codec`]).
    pub fn aad(&mut self, plan: &SealPlan, buf: &[u8]) -> &[u8] {
        plan.write_aad(&mut self.scratch, buf, &[]);
        &self.scratch
    }

    /// Step 2: seals the planned frame with the suite's AEAD.
    pub fn seal(&mut self, plan: &SealPlan, buf: &mut [u8]) -> Result<(), EncryptError> {
        self.seal_with_metadata(plan, buf, &[])
    }

    fn seal_with_metadata(
        &mut self,
        plan: &SealPlan,
        buf: &mut [u8],
        metadata: &[u8],
    ) -> Result<(), EncryptError> {
        if plan.kid != self.kid || buf.len() < plan.tag_range().end {
            return Err(EncryptError::Seal);
        }
        plan.write_aad(&mut self.scratch, buf, metadata);
        let (payload, tag) = plan.payload_and_tag(buf);
        self.key
            .aead()
            .seal(&plan.nonce, &self.scratch, payload, tag)
            .map_err(|_| EncryptError::Seal)
    }

    /// Step 3: escapes H.26x output and counts the frame.
    pub fn finish(&mut self, plan: &SealPlan, buf: &mut Vec<u8>) {
        if plan.layout.escapes() {
            escape::escape_in_place(buf, plan.prefix_len);
        }
        self.stats.encrypted += 1;
    }
}

impl core::fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Encryptor")
            .field("suite", &self.suite)
            .field("kid", &self.kid)
            .field("next_ctr", &self.next_ctr)
            .finish_non_exhaustive()
    }
}

/// How many leading bytes of a frame [`Encryptor::plan_detached`] and
/// [`crate::Decryptor::plan_detached`] read: enough for the longest fixed clear prefix (VP8
/// key frames, 10 bytes) and the longest SFrame header (17 bytes).
pub const DETACHED_HEAD: usize = 32;

/// Whether `layout` can be planned from the frame's first [`DETACHED_HEAD`] bytes: its clear
/// prefix has a fixed rule read there, it is not escaped (H.26x) and has no framing (AV1).
pub(crate) fn detachable(layout: Layout) -> bool {
    use crate::codec::Codec;
    matches!(
        layout,
        Layout::Pure | Layout::Media(Codec::Opus | Codec::Vp8 | Codec::Vp9)
    )
}

/// Host AEAD without the frame: the host keeps the frame and seals `frame[prefix_len..]`
/// itself, so nothing but its first bytes is copied here (the browser Worker's WebCrypto path).
impl Encryptor {
    /// [`Encryptor::plan`] for a frame the caller keeps: `head` is the frame's first
    /// `min(frame_len, DETACHED_HEAD)` bytes and `frame_len` its length. Checks the frame and
    /// the key's usage and **reserves the counter**, like `plan`. `Ok(None)` (nothing
    /// reserved) for layouts that need the whole frame (H.26x, AV1): use `plan`.
    ///
    /// The wire frame is `frame[..prefix_len] || header || AEAD(frame[prefix_len..])`, with
    /// the header and AAD from [`Encryptor::detached_aad`]; once sealed, call
    /// [`Encryptor::finish_detached`] (a frame whose sealing failed burns its counter).
    pub fn plan_detached(
        &mut self,
        layout: Layout,
        head: &[u8],
        frame_len: usize,
    ) -> Result<Option<SealPlan>, EncryptError> {
        if !detachable(layout) {
            return Ok(None);
        }
        if frame_len > MAX_FRAME_LEN {
            self.stats.refused_frame += 1;
            return Err(EncryptError::FrameTooLarge);
        }
        if head.len() != frame_len.min(DETACHED_HEAD) {
            return Err(EncryptError::Seal);
        }
        // The fixed rules read the first byte and compare the length with at most 10, so
        // `head` gives the answer the whole frame would.
        let Ok(split) = layout.open_split(head) else {
            self.stats.refused_frame += 1;
            return Err(EncryptError::FrameTooShort(layout));
        };
        let prefix_len = split.prefix_len;
        let payload_len = frame_len - prefix_len;
        let ctr = self.reserve_counter(payload_len)?;
        Ok(Some(SealPlan {
            layout,
            kid: self.kid,
            ctr,
            nonce: self.key.nonce(ctr),
            prefix_len,
            framing_len: 0,
            header_len: Header::new(self.kid, ctr).to_bytes().1,
            payload_len,
            tag_len: self.suite.tag_len(),
            side: PhantomData,
        }))
    }

    /// The AAD of a detached plan, `header || metadata`, from the frame's `head`; the SFrame
    /// header is its first [`SealPlan::header_len`] bytes.
    pub fn detached_aad(&mut self, plan: &SealPlan, head: &[u8]) -> &[u8] {
        let (hbytes, header_len) = Header::new(plan.kid, plan.ctr).to_bytes();
        self.scratch.clear();
        self.scratch.extend_from_slice(&hbytes[..header_len]);
        let prefix = head.get(..plan.prefix_len).unwrap_or(head);
        plan.layout.write_metadata(prefix, &mut self.scratch);
        &self.scratch
    }

    /// Counts a frame the host sealed from a detached plan.
    pub fn finish_detached(&mut self) {
        self.stats.encrypted += 1;
    }
}
