//! The receiving side: one [`Decryptor`] per incoming stream, holding one key per KID.
//!
//! Decryption mirrors [`crate::Encryptor`]'s three steps, so a host can run the AEAD itself:
//! [`Decryptor::plan`] (find the prefix, unescape H.26x, decode the header, pick the KID's
//! key, check the replay window without changing it), [`Decryptor::open`] (the AEAD), and
//! [`Decryptor::commit`] (record the counter in the replay window, checking it again, and
//! strip the header and tag). Nothing but the counters of [`DecryptStats`] changes before a
//! frame authenticated. The KID selects exactly one key: there is no trial decryption.

use core::marker::PhantomData;
use std::collections::BTreeMap;

use crate::MAX_FRAME_LEN;
use crate::codec::Layout;
use crate::error::{DecryptError, KeyError};
use crate::escape;
use crate::header::Header;
use crate::key::{BaseKey, FrameCipher};
use crate::plan::{FramePlan, Open, build_aad};
use crate::replay::{DEFAULT_REPLAY_WINDOW, ReplayWindow};
use crate::stats::DecryptStats;
use crate::suite::CipherSuite;

/// Where a received frame's parts sit in the buffer, and its nonce: what [`Decryptor::plan`]
/// returns. The payload is decrypted in place; the framing, header and tag are then removed.
pub type OpenPlan = FramePlan<Open>;

/// One KID's key and replay state.
struct KeyEntry {
    key: FrameCipher,
    window: ReplayWindow,
}

/// Decrypts one incoming stream's frames.
pub struct Decryptor {
    suite: CipherSuite,
    keys: BTreeMap<u64, KeyEntry>,
    window: u32,
    scratch: Vec<u8>,
    stats: DecryptStats,
}

impl Decryptor {
    /// A decryptor for `suite` with the default replay window and no keys.
    pub fn new(suite: CipherSuite) -> Self {
        Decryptor {
            suite,
            keys: BTreeMap::new(),
            window: DEFAULT_REPLAY_WINDOW,
            scratch: Vec::with_capacity(64),
            stats: DecryptStats::default(),
        }
    }

    /// Sets the replay window for keys added from now on (1 to 65536 counters).
    pub fn with_replay_window(mut self, counters: u32) -> Result<Self, KeyError> {
        ReplayWindow::new(counters)?;
        self.window = counters;
        Ok(self)
    }

    /// Installs the key for `kid`, replacing any (the replay window starts afresh).
    pub fn add_key(&mut self, kid: u64, base_key: &BaseKey) -> Result<(), KeyError> {
        let window = ReplayWindow::new(self.window)?;
        let key = FrameCipher::derive(self.suite, kid, base_key);
        self.keys.insert(kid, KeyEntry { key, window });
        Ok(())
    }

    /// Removes the key for `kid`; returns whether there was one.
    pub fn remove_key(&mut self, kid: u64) -> bool {
        self.keys.remove(&kid).is_some()
    }

    /// Whether a key for `kid` is installed.
    pub fn has_key(&self, kid: u64) -> bool {
        self.keys.contains_key(&kid)
    }

    /// Counters so far.
    pub fn stats(&self) -> DecryptStats {
        self.stats
    }

    /// Counts a drop the host decided on (its own AEAD failed, say).
    pub fn record_failure(&mut self, e: DecryptError) {
        self.stats.count(e);
    }

    /// Decrypts the frame in `buf` in place: wire frame in, plaintext out. On error `buf` may
    /// hold anything and must be dropped, never decoded.
    pub fn decrypt(&mut self, layout: Layout, buf: &mut Vec<u8>) -> Result<OpenPlan, DecryptError> {
        self.decrypt_with_metadata(layout, buf, &[])
    }

    /// [`Decryptor::decrypt`] with the application metadata the sender authenticated.
    pub fn decrypt_with_metadata(
        &mut self,
        layout: Layout,
        buf: &mut Vec<u8>,
        metadata: &[u8],
    ) -> Result<OpenPlan, DecryptError> {
        let plan = self.plan(layout, buf)?;
        self.open_with_metadata(&plan, buf, metadata)?;
        self.commit(&plan, buf)?;
        Ok(plan)
    }

    /// Step 1: parses the frame and picks its key. Counts the reason when it fails.
    pub fn plan(&mut self, layout: Layout, buf: &mut Vec<u8>) -> Result<OpenPlan, DecryptError> {
        let r = self.plan_inner(layout, buf);
        if let Err(e) = r {
            self.stats.count(e);
        }
        r
    }

    fn plan_inner(&self, layout: Layout, buf: &mut Vec<u8>) -> Result<OpenPlan, DecryptError> {
        if buf.len() > MAX_FRAME_LEN {
            return Err(DecryptError::FrameTooLarge);
        }
        if buf.is_empty() {
            return Err(DecryptError::Unencrypted);
        }
        let split = layout
            .open_split(buf)
            .map_err(|_| DecryptError::Unencrypted)?;
        let prefix_len = split.prefix_len;
        if layout.escapes() {
            escape::unescape_in_place(buf, prefix_len);
        }
        let rest = buf
            .get(prefix_len + split.framing_len..)
            .ok_or(DecryptError::Unencrypted)?;
        self.plan_sframe(layout, rest, rest.len(), prefix_len, split.framing_len)
    }

    /// The part of planning both paths share: `rest` starts at the SFrame header (and holds all
    /// of it unless the frame ends first), `sframe_len` is the length from there to the end of
    /// the frame. Checks the header, the length, the KID and the replay window.
    fn plan_sframe(
        &self,
        layout: Layout,
        rest: &[u8],
        sframe_len: usize,
        prefix_len: usize,
        framing_len: usize,
    ) -> Result<OpenPlan, DecryptError> {
        if rest.is_empty() {
            return Err(DecryptError::Unencrypted);
        }
        let (header, header_len) =
            Header::decode(rest).map_err(|_| DecryptError::MalformedHeader)?;
        let tag_len = self.suite.tag_len();
        let payload_len = sframe_len
            .checked_sub(header_len + tag_len)
            .ok_or(DecryptError::Truncated)?;
        let entry = self
            .keys
            .get(&header.kid)
            .ok_or(DecryptError::UnknownKid(header.kid))?;
        if !entry.window.check(header.ctr) {
            return Err(DecryptError::Replayed);
        }
        Ok(OpenPlan {
            layout,
            kid: header.kid,
            ctr: header.ctr,
            nonce: entry.key.nonce(header.ctr),
            prefix_len,
            framing_len,
            header_len,
            payload_len,
            tag_len,
            side: PhantomData,
        })
    }

    /// The AAD of a planned frame, for a host that runs the AEAD itself.
    pub fn aad(&mut self, plan: &OpenPlan, buf: &[u8]) -> &[u8] {
        plan.write_aad(&mut self.scratch, buf, &[]);
        &self.scratch
    }

    /// Step 2: authenticates and decrypts the payload in place. Counts a failure.
    pub fn open(&mut self, plan: &OpenPlan, buf: &mut [u8]) -> Result<(), DecryptError> {
        self.open_with_metadata(plan, buf, &[])
    }

    fn open_with_metadata(
        &mut self,
        plan: &OpenPlan,
        buf: &mut [u8],
        metadata: &[u8],
    ) -> Result<(), DecryptError> {
        let Some(entry) = self.keys.get(&plan.kid) else {
            self.stats.count(DecryptError::UnknownKid(plan.kid));
            return Err(DecryptError::UnknownKid(plan.kid));
        };
        if buf.len() < plan.tag_range().end {
            self.stats.count(DecryptError::Truncated);
            return Err(DecryptError::Truncated);
        }
        plan.write_aad(&mut self.scratch, buf, metadata);
        let (payload, tag) = plan.payload_and_tag(buf);
        if entry
            .key
            .aead()
            .open(&plan.nonce, &self.scratch, payload, tag)
            .is_err()
        {
            self.stats.count(DecryptError::AuthFailed);
            return Err(DecryptError::AuthFailed);
        }
        Ok(())
    }

    /// Step 3, after the frame authenticated: records its counter (refusing it if another
    /// frame with the same counter was committed since the plan) and leaves `prefix ||
    /// plaintext` in `buf`.
    pub fn commit(&mut self, plan: &OpenPlan, buf: &mut Vec<u8>) -> Result<(), DecryptError> {
        let accepted = self
            .keys
            .get_mut(&plan.kid)
            .map(|e| e.window.accept(plan.ctr));
        match accepted {
            Some(true) => {}
            Some(false) => {
                self.stats.count(DecryptError::Replayed);
                return Err(DecryptError::Replayed);
            }
            None => {
                self.stats.count(DecryptError::UnknownKid(plan.kid));
                return Err(DecryptError::UnknownKid(plan.kid));
            }
        }
        let payload = plan.payload_range();
        buf.copy_within(payload.clone(), plan.prefix_len);
        buf.truncate(plan.prefix_len + plan.payload_len);
        self.stats.decrypted += 1;
        Ok(())
    }
}

impl core::fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Decryptor")
            .field("suite", &self.suite)
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .field("stats", &self.stats)
            .finish()
    }
}

/// Host AEAD without the frame: see [`crate::Encryptor::plan_detached`].
impl Decryptor {
    /// [`Decryptor::plan`] for a frame the caller keeps: `head` is its first
    /// `min(frame_len, DETACHED_HEAD)` bytes. Checks the header, KID and replay window
    /// (without changing it) and counts the reason when it fails. `Ok(None)` for layouts that
    /// need the whole frame (H.26x, AV1): use `plan`. The host opens
    /// `frame[payload_range().start..]` (ciphertext and tag) with
    /// [`Decryptor::detached_aad`]; the plaintext frame is `frame[..prefix_len] || plaintext`.
    pub fn plan_detached(
        &mut self,
        layout: Layout,
        head: &[u8],
        frame_len: usize,
    ) -> Result<Option<OpenPlan>, DecryptError> {
        if !crate::encryptor::detachable(layout) {
            return Ok(None);
        }
        let r = self.plan_detached_inner(layout, head, frame_len);
        if let Err(e) = r {
            self.stats.count(e);
        }
        r.map(Some)
    }

    fn plan_detached_inner(
        &self,
        layout: Layout,
        head: &[u8],
        frame_len: usize,
    ) -> Result<OpenPlan, DecryptError> {
        if frame_len > MAX_FRAME_LEN {
            return Err(DecryptError::FrameTooLarge);
        }
        if frame_len == 0 || head.len() != frame_len.min(crate::encryptor::DETACHED_HEAD) {
            return Err(DecryptError::Unencrypted);
        }
        let prefix_len = layout
            .open_split(head)
            .map_err(|_| DecryptError::Unencrypted)?
            .prefix_len;
        let rest = head.get(prefix_len..).ok_or(DecryptError::Unencrypted)?;
        // The header (at most 17 bytes) lies inside `head` unless the frame ends first.
        self.plan_sframe(layout, rest, frame_len - prefix_len, prefix_len, 0)
    }

    /// The AAD of a detached plan, `header || metadata`, from the frame's `head`.
    pub fn detached_aad(&mut self, plan: &OpenPlan, head: &[u8]) -> &[u8] {
        let end = (plan.prefix_len + plan.header_len).min(head.len());
        build_aad(
            &mut self.scratch,
            plan.layout,
            &head[..end],
            plan.prefix_len.min(end),
            end - plan.prefix_len.min(end),
            &[],
        );
        &self.scratch
    }

    /// Step 3 of a detached plan, after the host's AEAD accepted the frame: records its
    /// counter (refusing it if another frame with the same counter was committed since the
    /// plan, or the key was removed) and counts it.
    pub fn commit_detached(&mut self, plan: &OpenPlan) -> Result<(), DecryptError> {
        match self
            .keys
            .get_mut(&plan.kid)
            .map(|e| e.window.accept(plan.ctr))
        {
            Some(true) => {
                self.stats.decrypted += 1;
                Ok(())
            }
            Some(false) => {
                self.stats.count(DecryptError::Replayed);
                Err(DecryptError::Replayed)
            }
            None => {
                self.stats.count(DecryptError::UnknownKid(plan.kid));
                Err(DecryptError::UnknownKid(plan.kid))
            }
        }
    }
}
