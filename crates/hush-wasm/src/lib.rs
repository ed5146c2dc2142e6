//! # hush-wasm: the browser's binding over hush-frame
//!
//! Thin wasm-bindgen classes for the encoded-transform Worker: a [`Sender`] per outgoing
//! stream and a [`Receiver`] per incoming one, plus the low-level functions the RFC 9605
//! vectors test and the host-AEAD (WebCrypto) path need. All logic lives in `hush-frame`;
//! this crate only converts types. `u64` KIDs and counters are JavaScript `BigInt`s.
//!
//! Layout codes (`layout` arguments): 0 pure, 1 Opus, 2 VP8, 3 VP9, 4 H.264, 5 H.265, 6 AV1.

use hush_frame::aead::SuiteAead;
use hush_frame::key::{DerivedKey, FrameKey};
use hush_frame::{
    BaseKey, CipherSuite, Codec, DecryptError, DecryptStats, Decryptor, Encryptor, Header, Layout,
};
use wasm_bindgen::prelude::*;

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
