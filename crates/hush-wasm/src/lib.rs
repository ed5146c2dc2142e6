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

use hush_frame::aead::SuiteAead;
use hush_frame::key::{DerivedKey, FrameKey};
use hush_frame::{
    BaseKey, CipherSuite, Codec, DecryptError, DecryptStats, Decryptor, Encryptor, Header, Layout,
    OpenPlan, SealPlan,
};
use wasm_bindgen::prelude::*;

/// The key exchange (hush-keys) in the Worker: [`keys::KeySession`].
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
    pub fn new(suite_id: u16, kid: u64, key: &[u8]) -> Result<Sender, JsError> {
        Ok(Sender {
            inner: Encryptor::new(suite(suite_id)?, kid, &base_key(key)?),
            buf: Vec::with_capacity(2048),
        })
    }

    /// Switches to a new key and KID.
    #[wasm_bindgen(js_name = setKey)]
    pub fn set_key(&mut self, kid: u64, key: &[u8]) -> Result<(), JsError> {
        self.inner.set_key(kid, &base_key(key)?);
        Ok(())
    }

    /// Encrypts `frame`; throws (and the frame must be dropped) when it cannot.
    pub fn encrypt(&mut self, layout_code: u8, frame: &[u8]) -> Result<Vec<u8>, JsError> {
        let l = layout(layout_code)?;
        self.buf.clear();
        self.buf.extend_from_slice(frame);
        self.inner
            .encrypt(l, &mut self.buf)
            .map_err(|e| JsError::new(&e.to_string()))?;
        Ok(self.buf.clone())
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
}

#[wasm_bindgen]
impl Receiver {
    /// A receiver for suite `suite_id` with no keys.
    #[wasm_bindgen(constructor)]
    pub fn new(suite_id: u16) -> Result<Receiver, JsError> {
        Ok(Receiver {
            inner: Decryptor::new(suite(suite_id)?),
            buf: Vec::with_capacity(2048),
            last_error: None,
        })
    }

    /// Installs the key for `kid`.
    #[wasm_bindgen(js_name = addKey)]
    pub fn add_key(&mut self, kid: u64, key: &[u8]) -> Result<(), JsError> {
        self.inner
            .add_key(kid, &base_key(key)?)
            .map_err(|e| JsError::new(&e.to_string()))
    }

    /// Removes the key for `kid`.
    #[wasm_bindgen(js_name = removeKey)]
    pub fn remove_key(&mut self, kid: u64) -> bool {
        self.inner.remove_key(kid)
    }

    /// Decrypts `frame`; `undefined` when it must be dropped (see `lastError`, `stats`).
    pub fn decrypt(&mut self, layout_code: u8, frame: &[u8]) -> Result<Option<Vec<u8>>, JsError> {
        self.decrypt_with_metadata(layout_code, frame, &[])
    }

    /// [`Receiver::decrypt`] with application metadata authenticated by the sender (pure mode).
    #[wasm_bindgen(js_name = decryptWithMetadata)]
    pub fn decrypt_with_metadata(
        &mut self,
        layout_code: u8,
        frame: &[u8],
        metadata: &[u8],
    ) -> Result<Option<Vec<u8>>, JsError> {
        let l = layout(layout_code)?;
        self.buf.clear();
        self.buf.extend_from_slice(frame);
        match self.inner.decrypt_with_metadata(l, &mut self.buf, metadata) {
            Ok(_) => {
                self.last_error = None;
                Ok(Some(self.buf.clone()))
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
        let prefix_len = plan.prefix_len();
        Ok(Some(OpenJob {
            head: self.buf[..prefix_len].to_vec(),
            // After unescaping the ciphertext may sit elsewhere than in `frame`: copy it.
            sealed: if escapes {
                self.buf[sealed_range.clone()].to_vec()
            } else {
                Vec::new()
            },
            sealed_start: sealed_range.start as u32,
            sealed_end: sealed_range.end as u32,
            aad: self.inner.aad(&plan, &self.buf).to_vec(),
            frame_len: self.buf.len(),
            plan,
            escapes,
        }))
    }

    /// Host-AEAD step 3, after the host's AEAD accepted the frame: records its counter in
    /// the replay window. `false` (drop the frame, see `lastError`) when another frame with
    /// the same counter was accepted meanwhile or the key was removed.
    pub fn commit(&mut self, job: &OpenJob) -> bool {
        // `commit` moves the payload within a frame-sized buffer; its content is not used
        // here (the host holds the plaintext), only its length.
        self.buf.clear();
        self.buf.resize(job.frame_len, 0);
        match self.inner.commit(&job.plan, &mut self.buf) {
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

    /// Counts a frame whose tag the host's AEAD refused (`lastError` becomes `auth_failed`).
    #[wasm_bindgen(js_name = recordAuthFailure)]
    pub fn record_auth_failure(&mut self) {
        self.inner.record_failure(DecryptError::AuthFailed);
        self.last_error = Some(DecryptError::AuthFailed);
    }

    /// Why the last frame was dropped, as a stable code (`auth_failed`, `replayed`, ...).
    #[wasm_bindgen(js_name = lastError)]
    pub fn last_error(&self) -> Option<String> {
        self.last_error.map(|e| reason(e).to_string())
    }

    /// Counters by outcome, as `[decrypted, unencrypted, malformed_header, truncated,
    /// unknown_kid, replayed, auth_failed, too_large]`.
    pub fn stats(&self) -> Vec<f64> {
        let s: DecryptStats = self.inner.stats();
        [
            s.decrypted,
            s.unencrypted,
            s.malformed_header,
            s.truncated,
            s.unknown_kid,
            s.replayed,
            s.auth_failed,
            s.too_large,
        ]
        .map(|v| v as f64)
        .to_vec()
    }
}

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
    frame_len: usize,
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

/// The stable code of a drop reason.
fn reason(e: DecryptError) -> &'static str {
    match e {
        DecryptError::Unencrypted => "unencrypted",
        DecryptError::MalformedHeader => "malformed_header",
        DecryptError::Truncated => "truncated",
        DecryptError::UnknownKid(_) => "unknown_kid",
        DecryptError::Replayed => "replayed",
        DecryptError::AuthFailed => "auth_failed",
        DecryptError::FrameTooLarge => "too_large",
        _ => "other",
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
pub fn derive_key(suite_id: u16, kid: u64, key: &[u8]) -> Result<Vec<u8>, JsError> {
    let d = DerivedKey::derive(suite(suite_id)?, kid, &base_key(key)?);
    let mut out = d.expose_secret().to_vec();
    out.extend_from_slice(d.expose_key());
    out.extend_from_slice(d.salt());
    Ok(out)
}

/// The AEAD key of section 4.4.2 (`sframe_key`) for `kid`, to import into WebCrypto once per
/// KID (as a non-extractable key; the caller zeroes these bytes after the import).
#[wasm_bindgen(js_name = aeadKey)]
pub fn aead_key(suite_id: u16, kid: u64, key: &[u8]) -> Result<Vec<u8>, JsError> {
    let d = DerivedKey::derive(suite(suite_id)?, kid, &base_key(key)?);
    Ok(d.expose_key().to_vec())
}

/// The nonce of counter `ctr` for `kid` under `key`.
#[wasm_bindgen(js_name = frameNonce)]
pub fn frame_nonce(suite_id: u16, kid: u64, key: &[u8], ctr: u64) -> Result<Vec<u8>, JsError> {
    Ok(FrameKey::derive(suite(suite_id)?, kid, &base_key(key)?)
        .nonce(ctr)
        .to_vec())
}

/// Seals with the suite's raw AEAD: returns `ciphertext || tag`.
#[wasm_bindgen(js_name = aeadSeal)]
pub fn aead_seal(
    suite_id: u16,
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    pt: &[u8],
) -> Result<Vec<u8>, JsError> {
    let s = suite(suite_id)?;
    let aead = SuiteAead::new(s, key).map_err(|e| JsError::new(&e.to_string()))?;
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
