//! # hush-wasm: the browser's binding over hush-frame
//!
//! Thin wasm-bindgen classes for the encoded-transform Worker: a [`Sender`] per outgoing
//! stream and a [`Receiver`] per incoming one, plus the low-level functions the RFC 9605
//! vectors test and the host-AEAD (WebCrypto) path need. All logic lives in `hush-frame`;
//! this crate only converts types. `u64` KIDs and counters are JavaScript `BigInt`s.
//!
//! Layout codes (`layout` arguments): 0 pure, 1 Opus, 2 VP8, 3 VP9, 4 H.264, 5 H.265, 6 AV1.
//!
//! **Host AEAD** (DESIGN.md section 2, "AEAD as a seam"): for large frames the Worker runs
//! AES-GCM with WebCrypto. [`Sender::plan_seal`] reserves the counter and returns a
//! [`SealJob`] (clear head, nonce, AAD); the host seals `frame[payloadStart..]` and calls
//! [`Sender::finish`] (or [`Sender::finish_frame`] for H.26x, which escapes). On the receiving
//! side [`Receiver::plan_open`] checks the header, KID and replay window and returns an
//! [`OpenJob`]; the host opens the ciphertext and calls [`Receiver::commit`], or
//! [`Receiver::record_auth_failure`] when the tag did not verify. Only AES-GCM suites (4, 5)
//! are meant for this path: for them WebCrypto's `ciphertext || tag` is the SFrame layout.
//!
//! **Host AEAD without copying the frame** (Opus, VP8, VP9, pure: layouts that neither escape
//! nor add framing): [`Sender::plan_host`] and [`Receiver::open_host`] read only the frame's
//! first [`DETACHED_HEAD`] bytes, passed in a small `io` buffer ([`IO_LEN`] bytes) that the
//! plan is written back into:
//!
//! | bytes | in | out |
//! |---|---|---|
//! | 0..32 | the frame's first `min(len, 32)` bytes | 0: clear prefix length; 1: seal: SFrame header length, open: where `ciphertext \|\| tag` starts; 2: AAD length |
//! | 4..16 | | the nonce (the WebCrypto IV) |
//! | 16..56 | | the AAD, `header \|\| metadata` (at most 27 bytes) |
//! | 56..64 | | the KID, little-endian |
//!
//! The host seals or opens the rest of the frame straight from its own buffer, so one frame
//! costs one call and two 64-byte copies here, whatever its size.

use hush_frame::aead::SuiteAead;
use hush_frame::key::{DerivedKey, FrameCipher};
use hush_frame::{
    BaseKey, CipherSuite, Codec, DETACHED_HEAD, DecryptError, DecryptStats, Decryptor, Encryptor,
    Header, Layout, OpenPlan, SealPlan,
};
use wasm_bindgen::prelude::*;
use zeroize::Zeroizing;

/// The key exchange in the Worker, over the participant core: [`keys::js::KeySession`].
pub mod keys;

/// Maps a layout code to a [`Layout`].
fn layout(code: u8) -> Result<Layout, JsError> {
    Ok(match code {
        0 => Layout::Pure,
        1 => Layout::Media(Codec::Opus),
        2 => Layout::Media(Codec::Vp8),
        3 => Layout::Media(Codec::Vp9),
        4 => Layout::Media(Codec::H264),
        5 => Layout::Media(Codec::H265),
        6 => Layout::Media(Codec::Av1),
        other => return Err(JsError::new(&format!("unknown layout code {other}"))),
    })
}

fn suite(id: u16) -> Result<CipherSuite, JsError> {
    CipherSuite::from_id(id).map_err(|e| JsError::new(&e.to_string()))
}

fn base_key(bytes: &[u8]) -> Result<BaseKey, JsError> {
    BaseKey::new(bytes).map_err(|e| JsError::new(&e.to_string()))
}

/// A key handed in from JS, owned: wasm-bindgen copies a `Uint8Array` argument into wasm memory
/// for the call, and frees the copy of a borrowed `&[u8]` without zeroing it, so key bytes
/// would linger in the module's memory. Taken as a `Vec`, the copy is zeroed when this drops.
fn key_in(key: Vec<u8>) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(key)
}

/// Encrypts one outgoing stream's frames.
#[wasm_bindgen]
pub struct Sender {
    inner: Encryptor,
    buf: Vec<u8>,
}

#[wasm_bindgen]
impl Sender {
    /// A sender for suite `suite_id` (1 to 5) under `kid`, keyed with `key` (16 to 64 bytes).
    #[wasm_bindgen(constructor)]
    pub fn new(suite_id: u16, kid: u64, key: Vec<u8>) -> Result<Sender, JsError> {
        let key = key_in(key);
        Ok(Sender {
            inner: Encryptor::new(suite(suite_id)?, kid, &base_key(&key)?),
            buf: Vec::with_capacity(2048),
        })
    }

    /// Switches to a new key and KID.
    #[wasm_bindgen(js_name = setKey)]
    pub fn set_key(&mut self, kid: u64, key: Vec<u8>) -> Result<(), JsError> {
        let key = key_in(key);
        self.inner.set_key(kid, &base_key(&key)?);
        Ok(())
    }

    /// The counter the next frame gets.
    #[wasm_bindgen(js_name = nextCounter)]
    pub fn next_counter(&self) -> u64 {
        self.inner.next_counter()
    }

    /// Moves the counter forward to `next` (never back): a sender made again for a KID another
    /// one sealed under goes on from that one's counter.
    #[wasm_bindgen(js_name = resumeFrom)]
    pub fn resume_from(&mut self, next: u64) {
        self.inner.resume_from(next);
    }

    /// Encrypts `frame`; throws (and the frame must be dropped) when it cannot.
    pub fn encrypt(&mut self, layout_code: u8, frame: Vec<u8>) -> Result<Vec<u8>, JsError> {
        let l = layout(layout_code)?;
        // The copy wasm-bindgen made is encrypted in place and handed back: one copy in, one
        // out. Room for the header and tag (and AV1 framing) up front.
        let mut frame = frame;
        frame.reserve_exact(64);
        self.inner
            .encrypt(l, &mut frame)
            .map_err(|e| JsError::new(&e.to_string()))?;
        Ok(frame)
    }

    /// Host-AEAD step 1: checks the frame, reserves its counter and returns what the host
    /// needs to seal it; throws (drop the frame) when it cannot be sent.
    #[wasm_bindgen(js_name = planSeal)]
    pub fn plan_seal(&mut self, layout_code: u8, frame: &[u8]) -> Result<SealJob, JsError> {
        let l = layout(layout_code)?;
        self.buf.clear();
        self.buf.extend_from_slice(frame);
        let plan = self
            .inner
            .plan(l, &mut self.buf)
            .map_err(|e| JsError::new(&e.to_string()))?;
        let head = self.buf[..plan.payload_range().start].to_vec();
        let aad = self.inner.aad(&plan, &self.buf).to_vec();
        Ok(SealJob {
            payload_start: plan.prefix_len() as u32,
            plan,
            head,
            aad,
            escapes: escapes(layout_code),
        })
    }

    /// Host-AEAD step 3 for layouts that do not escape: counts the frame, sealed by the host
    /// as `head || ciphertext || tag`. Throws for H.26x (use `finishFrame`).
    pub fn finish(&mut self, job: &SealJob) -> Result<(), JsError> {
        if job.escapes {
            return Err(JsError::new("H.26x frames need finishFrame"));
        }
        self.inner.finish(&job.plan, &mut Vec::new());
        Ok(())
    }

    /// Host-AEAD step 3 with the sealed frame (`head || ciphertext || tag`): escapes H.26x
    /// output and counts the frame; returns the wire frame.
    #[wasm_bindgen(js_name = finishFrame)]
    pub fn finish_frame(&mut self, job: &SealJob, frame: &[u8]) -> Vec<u8> {
        self.buf.clear();
        self.buf.extend_from_slice(frame);
        self.inner.finish(&job.plan, &mut self.buf);
        self.buf.clone()
    }

    /// Host AEAD without copying the frame (see the crate docs for `io`): plans a frame of
    /// `frame_len` bytes whose first `min(frame_len, 32)` bytes are in `io`, reserving its
    /// counter. `true`: the plan is in `io`; seal `frame[prefix..]` and send `frame[..prefix]
    /// || header || ciphertext || tag`, then call `finishHost`. `false`: this layout needs the
    /// whole frame (`planSeal`); nothing was reserved. Throws (drop the frame) when it cannot
    /// be sent.
    #[wasm_bindgen(js_name = planHost)]
    pub fn plan_host(
        &mut self,
        layout_code: u8,
        io: &mut [u8],
        frame_len: u32,
    ) -> Result<bool, JsError> {
        let l = layout(layout_code)?;
        let frame_len = frame_len as usize;
        let head = io_head(io, frame_len)?;
        let Some(plan) = self
            .inner
            .plan_detached(l, head, frame_len)
            .map_err(|e| JsError::new(&e.to_string()))?
        else {
            return Ok(false);
        };
        let mut head_copy = [0u8; DETACHED_HEAD];
        head_copy[..head.len()].copy_from_slice(head);
        let aad = self.inner.detached_aad(&plan, &head_copy[..head.len()]);
        write_plan(
            io,
            [plan.prefix_len(), plan.header_len()],
            plan.nonce(),
            aad,
            plan.kid(),
        )?;
        Ok(true)
    }

    /// Counts a frame sealed by the host from `planHost`.
    #[wasm_bindgen(js_name = finishHost)]
    pub fn finish_host(&mut self) {
        self.inner.finish_detached();
    }

    /// True once the key used half its budget: ask for a new epoch.
    #[wasm_bindgen(js_name = needsRotation)]
    pub fn needs_rotation(&self) -> bool {
        self.inner.needs_rotation()
    }

    /// Frames encrypted so far.
    #[wasm_bindgen(getter)]
    pub fn encrypted(&self) -> f64 {
        self.inner.stats().encrypted as f64
    }
}

/// Decrypts one incoming stream's frames.
#[wasm_bindgen]
pub struct Receiver {
    inner: Decryptor,
    buf: Vec<u8>,
    last_error: Option<DecryptError>,
    /// Frames planned by `openHost`, waiting for `commitHost` or `releaseHost`.
    pending: Vec<(i32, OpenPlan)>,
    next_slot: i32,
}

/// Frames a receiver keeps planned at once: the Worker has at most 16 in flight per transform,
/// and one receiver serves every transform of a participant (web/src/receivers.ts); planning one
/// more forgets the oldest, whose commit then fails.
const MAX_PENDING: usize = 256;

#[wasm_bindgen]
impl Receiver {
    /// A receiver for suite `suite_id` with no keys.
    #[wasm_bindgen(constructor)]
    pub fn new(suite_id: u16) -> Result<Receiver, JsError> {
        Ok(Receiver {
            inner: Decryptor::new(suite(suite_id)?),
            buf: Vec::with_capacity(2048),
            last_error: None,
            pending: Vec::new(),
            next_slot: 1,
        })
    }

    /// Installs the key for `kid`.
    #[wasm_bindgen(js_name = addKey)]
    pub fn add_key(&mut self, kid: u64, key: Vec<u8>) -> Result<(), JsError> {
        let key = key_in(key);
        self.inner
            .add_key(kid, &base_key(&key)?)
            .map_err(|e| JsError::new(&e.to_string()))
    }

    /// Removes the key for `kid`.
    #[wasm_bindgen(js_name = removeKey)]
    pub fn remove_key(&mut self, kid: u64) -> bool {
        self.inner.remove_key(kid)
    }

    /// Decrypts `frame`; `undefined` when it must be dropped (see `lastError`, `stats`).
    pub fn decrypt(&mut self, layout_code: u8, frame: Vec<u8>) -> Result<Option<Vec<u8>>, JsError> {
        self.decrypt_with_metadata(layout_code, frame, &[])
    }

    /// [`Receiver::decrypt`] with application metadata authenticated by the sender (pure mode).
    #[wasm_bindgen(js_name = decryptWithMetadata)]
    pub fn decrypt_with_metadata(
        &mut self,
        layout_code: u8,
        frame: Vec<u8>,
        metadata: &[u8],
    ) -> Result<Option<Vec<u8>>, JsError> {
        let l = layout(layout_code)?;
        // Decrypted in place in the copy wasm-bindgen made, and handed back.
        let mut frame = frame;
        match self.inner.decrypt_with_metadata(l, &mut frame, metadata) {
            Ok(_) => {
                self.last_error = None;
                Ok(Some(frame))
            }
            Err(e) => {
                self.last_error = Some(e);
                Ok(None)
            }
        }
    }

    /// Host-AEAD step 1: parses `frame`, picks its KID's key and checks the replay window
    /// (without changing it). `undefined` when the frame must be dropped (see `lastError`).
    #[wasm_bindgen(js_name = planOpen)]
    pub fn plan_open(&mut self, layout_code: u8, frame: &[u8]) -> Result<Option<OpenJob>, JsError> {
        let l = layout(layout_code)?;
        self.buf.clear();
        self.buf.extend_from_slice(frame);
        let plan = match self.inner.plan(l, &mut self.buf) {
            Ok(plan) => plan,
            Err(e) => {
                self.last_error = Some(e);
                return Ok(None);
            }
        };
        self.last_error = None;
        let escapes = escapes(layout_code);
        let sealed_range = plan.payload_range().start..plan.tag_range().end;
        // The decrypted frame is `clear prefix || plaintext`: AV1's framing (carrier OBU
        // header and size, between prefix and SFrame header) is not part of it.
        Ok(Some(OpenJob {
            head: self.buf[..plan.prefix_len()].to_vec(),
            // After unescaping the ciphertext may sit elsewhere than in `frame`: copy it.
            sealed: if escapes {
                self.buf[sealed_range.clone()].to_vec()
            } else {
                Vec::new()
            },
            sealed_start: sealed_range.start as u32,
            sealed_end: sealed_range.end as u32,
            aad: self.inner.aad(&plan, &self.buf).to_vec(),
            plan,
            escapes,
        }))
    }

    /// Host-AEAD step 3, after the host's AEAD accepted the frame: records its counter in
    /// the replay window. `false` (drop the frame, see `lastError`) when another frame with
    /// the same counter was accepted meanwhile or the key was removed.
    pub fn commit(&mut self, job: &OpenJob) -> bool {
        self.commit_plan(&job.plan)
    }

    /// Counts a frame whose tag the host's AEAD refused (`lastError` becomes `auth_failed`).
    #[wasm_bindgen(js_name = recordAuthFailure)]
    pub fn record_auth_failure(&mut self) {
        self.inner.record_failure(DecryptError::AuthFailed);
        self.last_error = Some(DecryptError::AuthFailed);
    }

    /// Host AEAD without copying the frame (see the crate docs for `io`): plans a received
    /// frame of `frame_len` bytes whose first `min(frame_len, 32)` bytes are in `io`, and
    /// checks its KID and replay window (without changing it).
    /// Returns a slot (> 0; the plan is in `io`): open `frame[io[1]..]` (`ciphertext ||
    /// tag`) and call `commitHost(slot)`, or `releaseHost(slot, ...)` when that failed. `0`:
    /// this layout needs the whole frame (`planOpen`). `-1`: drop the frame (`lastError`).
    #[wasm_bindgen(js_name = openHost)]
    pub fn open_host(
        &mut self,
        layout_code: u8,
        io: &mut [u8],
        frame_len: u32,
    ) -> Result<i32, JsError> {
        let l = layout(layout_code)?;
        let frame_len = frame_len as usize;
        let head = io_head(io, frame_len)?;
        let mut head_copy = [0u8; DETACHED_HEAD];
        head_copy[..head.len()].copy_from_slice(head);
        let head = &head_copy[..head.len()];
        let plan = match self.inner.plan_detached(l, head, frame_len) {
            Ok(Some(plan)) => plan,
            Ok(None) => return Ok(0),
            Err(e) => {
                self.last_error = Some(e);
                return Ok(-1);
            }
        };
        self.last_error = None;
        let sealed_at = plan.payload_range().start;
        let aad = self.inner.detached_aad(&plan, head);
        write_plan(
            io,
            [plan.prefix_len(), sealed_at],
            plan.nonce(),
            aad,
            plan.kid(),
        )?;
        let slot = self.next_slot;
        self.next_slot = if slot == i32::MAX { 1 } else { slot + 1 };
        if self.pending.len() >= MAX_PENDING {
            self.pending.remove(0);
        }
        self.pending.push((slot, plan));
        Ok(slot)
    }

    /// After the host's AEAD accepted the frame of `slot` (from `openHost`): records its
    /// counter. `false` (drop the frame, see `lastError`) when another frame with the same
    /// counter was accepted meanwhile or the key was removed, or (`lastError` undefined) the
    /// slot is unknown.
    #[wasm_bindgen(js_name = commitHost)]
    pub fn commit_host(&mut self, slot: i32) -> bool {
        let Some(i) = self.pending.iter().position(|p| p.0 == slot) else {
            // Forgotten (more than MAX_PENDING planned since): no reason from hush-frame.
            self.last_error = None;
            return false;
        };
        let (_, plan) = self.pending.swap_remove(i);
        self.commit_plan(&plan)
    }

    /// Forgets the frame of `slot` (from `openHost`) without committing it; `auth_failed`:
    /// the host's AEAD refused its tag (counted, `lastError` becomes `auth_failed`).
    #[wasm_bindgen(js_name = releaseHost)]
    pub fn release_host(&mut self, slot: i32, auth_failed: bool) {
        if let Some(i) = self.pending.iter().position(|p| p.0 == slot) {
            self.pending.swap_remove(i);
        }
        if auth_failed {
            self.record_auth_failure();
        }
    }

    /// Why the last frame was dropped, as a stable code (`auth_failed`, `replayed`, ...).
    #[wasm_bindgen(js_name = lastError)]
    pub fn last_error(&self) -> Option<String> {
        self.last_error.map(|e| e.reason().as_str().to_owned())
    }

    /// The KID of the last frame, when it was dropped for having no key here (`lastError`
    /// `unknown_kid`); `undefined` otherwise. The Worker tells a frame under another sender's
    /// key (`wrong_sender`) from one under no key at all with it.
    #[wasm_bindgen(js_name = lastUnknownKid)]
    pub fn last_unknown_kid(&self) -> Option<u64> {
        match self.last_error {
            Some(DecryptError::UnknownKid(kid)) => Some(kid),
            _ => None,
        }
    }

    /// Counters by outcome: `decrypted`, then the drops of each hush-frame `DropReason` in its
    /// `ALL` order (`unencrypted, malformed_header, truncated, unknown_kid, replayed,
    /// auth_failed, too_large`), the names `lastError` gives.
    pub fn stats(&self) -> Vec<f64> {
        let s: DecryptStats = self.inner.stats();
        core::iter::once(s.decrypted)
            .chain(s.drops().map(|(_, n)| n))
            .map(|v| v as f64)
            .collect()
    }
}

impl Receiver {
    fn commit_plan(&mut self, plan: &OpenPlan) -> bool {
        // The host holds the plaintext: only the replay window changes here.
        match self.inner.commit_detached(plan) {
            Ok(()) => {
                self.last_error = None;
                true
            }
            Err(e) => {
                self.last_error = Some(e);
                false
            }
        }
    }
}

/// The frame's head in `io`: its first `min(frame_len, 32)` bytes.
fn io_head(io: &[u8], frame_len: usize) -> Result<&[u8], JsError> {
    if io.len() < IO_LEN {
        return Err(JsError::new("io must be 64 bytes"));
    }
    Ok(&io[..frame_len.min(DETACHED_HEAD)])
}

/// Writes a plan into `io` (see the crate docs).
fn write_plan(
    io: &mut [u8],
    lens: [usize; 2],
    nonce: &[u8; 12],
    aad: &[u8],
    kid: u64,
) -> Result<(), JsError> {
    let fits = |n: usize| u8::try_from(n).ok();
    let (Some(a), Some(b), Some(c)) = (fits(lens[0]), fits(lens[1]), fits(aad.len())) else {
        return Err(JsError::new("plan does not fit io"));
    };
    if io.len() < IO_LEN || 16 + aad.len() > 56 {
        return Err(JsError::new("plan does not fit io"));
    }
    io[0] = a;
    io[1] = b;
    io[2] = c;
    io[4..16].copy_from_slice(nonce);
    io[16..16 + aad.len()].copy_from_slice(aad);
    io[56..64].copy_from_slice(&kid.to_le_bytes());
    Ok(())
}

/// Length of the `io` buffer of `planHost` / `openHost`.
pub const IO_LEN: usize = 64;

/// Whether a layout code escapes its ciphertext (H.264, H.265).
fn escapes(layout_code: u8) -> bool {
    matches!(layout_code, 4 | 5)
}

/// A frame planned for sealing by the host: see the crate docs ("Host AEAD").
#[wasm_bindgen]
pub struct SealJob {
    plan: SealPlan,
    head: Vec<u8>,
    aad: Vec<u8>,
    payload_start: u32,
    escapes: bool,
}

#[wasm_bindgen]
impl SealJob {
    /// The KID to seal under (selects the host's key).
    #[wasm_bindgen(getter)]
    pub fn kid(&self) -> u64 {
        self.plan.kid()
    }

    /// The frame's counter.
    #[wasm_bindgen(getter)]
    pub fn ctr(&self) -> u64 {
        self.plan.ctr()
    }

    /// What goes before the ciphertext on the wire: `clear prefix || SFrame header`.
    #[wasm_bindgen(getter)]
    pub fn head(&self) -> Vec<u8> {
        self.head.clone()
    }

    /// Where the plaintext to seal starts in the frame given to `planSeal`.
    #[wasm_bindgen(getter, js_name = payloadStart)]
    pub fn payload_start(&self) -> u32 {
        self.payload_start
    }

    /// The 12-byte AEAD nonce (the WebCrypto IV).
    #[wasm_bindgen(getter)]
    pub fn nonce(&self) -> Vec<u8> {
        self.plan.nonce().to_vec()
    }

    /// The AAD: `header || codec metadata`.
    #[wasm_bindgen(getter)]
    pub fn aad(&self) -> Vec<u8> {
        self.aad.clone()
    }

    /// Whether the sealed frame must go through `finishFrame` (H.26x escaping).
    #[wasm_bindgen(getter)]
    pub fn escapes(&self) -> bool {
        self.escapes
    }
}

/// A received frame planned for opening by the host: see the crate docs ("Host AEAD").
#[wasm_bindgen]
pub struct OpenJob {
    plan: OpenPlan,
    head: Vec<u8>,
    sealed: Vec<u8>,
    sealed_start: u32,
    sealed_end: u32,
    aad: Vec<u8>,
    escapes: bool,
}

#[wasm_bindgen]
impl OpenJob {
    /// The frame's KID (selects the host's key).
    #[wasm_bindgen(getter)]
    pub fn kid(&self) -> u64 {
        self.plan.kid()
    }

    /// The clear prefix: the decrypted frame is `head || plaintext`.
    #[wasm_bindgen(getter)]
    pub fn head(&self) -> Vec<u8> {
        self.head.clone()
    }

    /// Where `ciphertext || tag` starts in the received frame (layouts that do not escape).
    #[wasm_bindgen(getter, js_name = sealedStart)]
    pub fn sealed_start(&self) -> u32 {
        self.sealed_start
    }

    /// Where `ciphertext || tag` ends in the received frame (layouts that do not escape).
    #[wasm_bindgen(getter, js_name = sealedEnd)]
    pub fn sealed_end(&self) -> u32 {
        self.sealed_end
    }

    /// `ciphertext || tag` after unescaping, for H.26x (`escapes`); empty otherwise.
    #[wasm_bindgen(getter)]
    pub fn sealed(&self) -> Vec<u8> {
        self.sealed.clone()
    }

    /// The 12-byte AEAD nonce (the WebCrypto IV).
    #[wasm_bindgen(getter)]
    pub fn nonce(&self) -> Vec<u8> {
        self.plan.nonce().to_vec()
    }

    /// The AAD: `header || codec metadata`.
    #[wasm_bindgen(getter)]
    pub fn aad(&self) -> Vec<u8> {
        self.aad.clone()
    }

    /// Whether the ciphertext must be read from `sealed` (H.26x) rather than the frame.
    #[wasm_bindgen(getter)]
    pub fn escapes(&self) -> bool {
        self.escapes
    }
}

/// Encodes an SFrame header (RFC 9605 section 4.3).
#[wasm_bindgen(js_name = headerEncode)]
pub fn header_encode(kid: u64, ctr: u64) -> Vec<u8> {
    let (b, n) = Header::new(kid, ctr).to_bytes();
    b[..n].to_vec()
}

/// Decodes an SFrame header: `[kid, ctr, length]`.
#[wasm_bindgen(js_name = headerDecode)]
pub fn header_decode(bytes: &[u8]) -> Result<Vec<u64>, JsError> {
    let (h, n) = Header::decode(bytes).map_err(|e| JsError::new(&e.to_string()))?;
    Ok(vec![h.kid, h.ctr, n as u64])
}

/// The key schedule of section 4.4.2 as `secret || key || salt` (lengths per suite), for
/// known-answer tests and for importing the AEAD key into WebCrypto.
#[wasm_bindgen(js_name = deriveKey)]
pub fn derive_key(suite_id: u16, kid: u64, key: Vec<u8>) -> Result<js_sys::Uint8Array, JsError> {
    let key = key_in(key);
    let d = DerivedKey::derive(suite(suite_id)?, kid, &base_key(&key)?);
    // Sized once: a reallocation would free a copy of the secret unzeroed.
    let mut out = Zeroizing::new(Vec::with_capacity(
        d.expose_secret().len() + d.expose_key().len() + d.salt().len(),
    ));
    out.extend_from_slice(d.expose_secret());
    out.extend_from_slice(d.expose_key());
    out.extend_from_slice(d.salt());
    Ok(js_sys::Uint8Array::from(out.as_slice()))
}

/// The AEAD key of section 4.4.2 (`sframe_key`) for `kid`, to import into WebCrypto once per
/// KID (as a non-extractable key; the caller zeroes these bytes after the import). Written
/// straight into a JS array: no copy stays in wasm memory.
#[wasm_bindgen(js_name = aeadKey)]
pub fn aead_key(suite_id: u16, kid: u64, key: Vec<u8>) -> Result<js_sys::Uint8Array, JsError> {
    let key = key_in(key);
    let d = DerivedKey::derive(suite(suite_id)?, kid, &base_key(&key)?);
    Ok(js_sys::Uint8Array::from(d.expose_key()))
}

/// The nonce of counter `ctr` for `kid` under `key`.
#[wasm_bindgen(js_name = frameNonce)]
pub fn frame_nonce(suite_id: u16, kid: u64, key: Vec<u8>, ctr: u64) -> Result<Vec<u8>, JsError> {
    let key = key_in(key);
    Ok(FrameCipher::derive(suite(suite_id)?, kid, &base_key(&key)?)
        .nonce(ctr)
        .to_vec())
}

/// Seals with the suite's raw AEAD: returns `ciphertext || tag`.
#[wasm_bindgen(js_name = aeadSeal)]
pub fn aead_seal(
    suite_id: u16,
    key: Vec<u8>,
    nonce: &[u8],
    aad: &[u8],
    pt: &[u8],
) -> Result<Vec<u8>, JsError> {
    let key = key_in(key);
    let s = suite(suite_id)?;
    let aead = SuiteAead::new(s, &key).map_err(|e| JsError::new(&e.to_string()))?;
    let nonce: [u8; 12] = nonce
        .try_into()
        .map_err(|_| JsError::new("nonce must be 12 bytes"))?;
    let mut out = pt.to_vec();
    let mut tag = vec![0u8; s.tag_len()];
    aead.seal(&nonce, aad, &mut out, &mut tag)
        .map_err(|_| JsError::new("seal failed"))?;
    out.extend_from_slice(&tag);
    Ok(out)
}
