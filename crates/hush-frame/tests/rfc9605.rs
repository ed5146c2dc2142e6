//! RFC 9605 Appendix C test vectors, checked byte for byte on every path of this crate:
//! header encode and decode (C.1), the AES-CTR + HMAC AEAD (C.2), and full SFrame key
//! derivation, nonce, AAD, encryption and decryption through [`Decryptor`] (C.3).
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hush_frame::aead::SuiteAead;
use hush_frame::key::{DerivedKey, FrameCipher, key_label, salt_label};
use hush_frame::{BaseKey, CipherSuite, Decryptor, Header, Layout};
use serde::Deserialize;

#[derive(Deserialize)]
struct Vectors {
    header: Vec<HeaderVector>,
    aes_ctr_hmac: Vec<CtrHmacVector>,
    sframe: Vec<SframeVector>,
}

#[derive(Deserialize)]
struct HeaderVector {
    kid: u64,
    ctr: u64,
    encoded: String,
}

#[derive(Deserialize)]
struct CtrHmacVector {
    cipher_suite: u16,
    key: String,
    enc_key: String,
    auth_key: String,
    nonce: String,
    aad: String,
    pt: String,
    ct: String,
}

#[derive(Deserialize)]
struct SframeVector {
    cipher_suite: u16,
    kid: u64,
    ctr: u64,
    base_key: String,
    sframe_key_label: String,
    sframe_salt_label: String,
    sframe_secret: String,
    sframe_key: String,
    sframe_salt: String,
    metadata: String,
    nonce: String,
    aad: String,
    pt: String,
    ct: String,
}

fn vectors() -> Vectors {
    let text = include_str!("vectors/rfc9605.json");
    serde_json::from_str(text).unwrap()
}

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

#[test]
fn all_vectors_pass_and_all_were_checked() {
    let v = vectors();
    let headers = check_headers(&v.header);
    let ctr_hmac = check_ctr_hmac(&v.aes_ctr_hmac);
    let sframe = check_sframe(&v.sframe);
    assert_eq!((headers, ctr_hmac, sframe), (289, 3, 5));
}

fn check_headers(vs: &[HeaderVector]) -> usize {
    for v in vs {
        let want = h(&v.encoded);
        let hdr = Header::new(v.kid, v.ctr);
        let (bytes, len) = hdr.to_bytes();
        assert_eq!(
            &bytes[..len],
            &want[..],
            "encode kid={} ctr={}",
            v.kid,
            v.ctr
        );
        assert_eq!(hdr.encoded_len(), want.len());
        // Decoding reads exactly the header, even with payload after it.
        let mut with_payload = want.clone();
        with_payload.extend_from_slice(b"payload");
        assert_eq!(Header::decode(&with_payload), Ok((hdr, want.len())));
    }
    vs.len()
}

fn check_ctr_hmac(vs: &[CtrHmacVector]) -> usize {
    for v in vs {
        let suite = CipherSuite::from_id(v.cipher_suite).unwrap();
        let key = h(&v.key);
        // The key is enc_key || auth_key (section 4.5.1).
        assert_eq!(key[..16], h(&v.enc_key)[..]);
        assert_eq!(key[16..], h(&v.auth_key)[..]);
        let aead = SuiteAead::new(suite, &key).unwrap();
        let nonce: [u8; 12] = h(&v.nonce).try_into().unwrap();
        let aad = h(&v.aad);
        let want = h(&v.ct);
        let mut data = h(&v.pt);
        let mut tag = vec![0u8; suite.tag_len()];
        aead.seal(&nonce, &aad, &mut data, &mut tag).unwrap();
        data.extend_from_slice(&tag);
        assert_eq!(data, want, "seal suite {}", v.cipher_suite);
        let (ct, tag) = want.split_at(want.len() - suite.tag_len());
        let mut ct = ct.to_vec();
        aead.open(&nonce, &aad, &mut ct, tag).unwrap();
        assert_eq!(ct, h(&v.pt), "open suite {}", v.cipher_suite);
    }
    vs.len()
}

fn check_sframe(vs: &[SframeVector]) -> usize {
    for v in vs {
        let suite = CipherSuite::from_id(v.cipher_suite).unwrap();
        let base = BaseKey::new(&h(&v.base_key)).unwrap();
        assert_eq!(key_label(v.kid, suite), h(&v.sframe_key_label));
        assert_eq!(salt_label(v.kid, suite), h(&v.sframe_salt_label));
        let d = DerivedKey::derive(suite, v.kid, &base);
        assert_eq!(
            d.expose_secret(),
            &h(&v.sframe_secret)[..],
            "secret {}",
            v.cipher_suite
        );
        assert_eq!(
            d.expose_key(),
            &h(&v.sframe_key)[..],
            "key {}",
            v.cipher_suite
        );
        assert_eq!(
            &d.salt()[..],
            &h(&v.sframe_salt)[..],
            "salt {}",
            v.cipher_suite
        );
        let fk = FrameCipher::derive(suite, v.kid, &base);
        assert_eq!(
            &fk.nonce(v.ctr)[..],
            &h(&v.nonce)[..],
            "nonce {}",
            v.cipher_suite
        );

        let metadata = h(&v.metadata);
        let (hbytes, hlen) = Header::new(v.kid, v.ctr).to_bytes();
        let mut aad = hbytes[..hlen].to_vec();
        aad.extend_from_slice(&metadata);
        assert_eq!(aad, h(&v.aad), "aad {}", v.cipher_suite);

        // Seal: header || AEAD(pt) must be the vector's ct.
        let mut payload = h(&v.pt);
        let mut tag = vec![0u8; suite.tag_len()];
        fk.aead()
            .seal(&fk.nonce(v.ctr), &aad, &mut payload, &mut tag)
            .unwrap();
        let mut frame = hbytes[..hlen].to_vec();
        frame.extend_from_slice(&payload);
        frame.extend_from_slice(&tag);
        assert_eq!(frame, h(&v.ct), "ct {}", v.cipher_suite);

        // Open through the full receive path, then refuse the same frame again (replay).
        let mut rx = Decryptor::new(suite);
        rx.add_key(v.kid, &base).unwrap();
        let mut buf = h(&v.ct);
        let plan = rx
            .decrypt_with_metadata(Layout::Pure, &mut buf, &metadata)
            .unwrap();
        assert_eq!((plan.kid(), plan.ctr()), (v.kid, v.ctr));
        assert_eq!(buf, h(&v.pt), "decrypt {}", v.cipher_suite);
        let mut again = h(&v.ct);
        assert!(
            rx.decrypt_with_metadata(Layout::Pure, &mut again, &metadata)
                .is_err()
        );
        // Without the metadata the AAD differs: refused.
        let mut rx2 = Decryptor::new(suite);
        rx2.add_key(v.kid, &base).unwrap();
        let mut nometa = h(&v.ct);
        assert!(rx2.decrypt(Layout::Pure, &mut nometa).is_err());
        assert_eq!(rx2.stats().auth_failed, 1);
    }
    vs.len()
}
