//! Host AEAD without the frame (`plan_detached`, `detached_aad`, `commit_detached`): what the
//! browser Worker's WebCrypto path does, with the suite's AEAD standing in for WebCrypto. The
//! wire bytes must equal the in-place path's, for every layout it accepts; the layouts that
//! need the whole frame are refused without burning a counter; and the receiver's checks
//! (replay, truncation, unknown KID, bad input) hold as in `plan`.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::frame;
use hush_frame::aead::SuiteAead;
use hush_frame::key::DerivedKey;
use hush_frame::{
    BaseKey, CipherSuite, Codec, DETACHED_HEAD, DecryptError, Decryptor, EncryptError, Encryptor,
    Layout, OpenPlan,
};

const KID: u64 = 0x1234;

fn key() -> BaseKey {
    BaseKey::new(&[7; 32]).unwrap()
}

fn host_aead(suite: CipherSuite) -> SuiteAead {
    SuiteAead::new(suite, DerivedKey::derive(suite, KID, &key()).expose_key()).unwrap()
}

/// A sender and a receiver of `KID` under `suite`.
fn pair(suite: CipherSuite) -> (Encryptor, Decryptor) {
    let mut rx = Decryptor::new(suite);
    rx.add_key(KID, &key()).unwrap();
    (Encryptor::new(suite, KID, &key()), rx)
}

fn head(frame: &[u8]) -> &[u8] {
    &frame[..frame.len().min(DETACHED_HEAD)]
}

fn detachable(layout: Layout) -> bool {
    matches!(
        layout,
        Layout::Pure | Layout::Media(Codec::Opus | Codec::Vp8 | Codec::Vp9)
    )
}

/// The receiver's detached plan of `wire`, which must succeed.
fn plan_open(rx: &mut Decryptor, layout: Layout, wire: &[u8]) -> OpenPlan {
    rx.plan_detached(layout, head(wire), wire.len())
        .unwrap()
        .expect("detachable layout")
}

/// Seals `plain` the way the Worker does: plan from the head, AEAD over the rest.
fn host_seal(tx: &mut Encryptor, aead: &SuiteAead, layout: Layout, plain: &[u8]) -> Vec<u8> {
    let plan = tx
        .plan_detached(layout, head(plain), plain.len())
        .unwrap()
        .unwrap();
    let aad = tx.detached_aad(&plan, head(plain)).to_vec();
    let prefix = plan.prefix_len();
    let mut payload = plain[prefix..].to_vec();
    let mut tag = vec![0; aead.tag_len()];
    aead.seal(plan.nonce(), &aad, &mut payload, &mut tag)
        .unwrap();
    tx.finish_detached();
    let mut wire = plain[..prefix].to_vec();
    wire.extend_from_slice(&aad[..plan.header_len()]);
    wire.extend_from_slice(&payload);
    wire.extend_from_slice(&tag);
    wire
}

/// Opens `wire` the way the Worker does; `None` when it is dropped.
fn host_open(
    rx: &mut Decryptor,
    aead: &SuiteAead,
    layout: Layout,
    wire: &[u8],
) -> Result<Vec<u8>, DecryptError> {
    let plan = rx
        .plan_detached(layout, head(wire), wire.len())?
        .expect("detachable layout");
    let aad = rx.detached_aad(&plan, head(wire)).to_vec();
    let sealed_at = plan.payload_range().start;
    let tag_at = plan.tag_range().start;
    let mut payload = wire[sealed_at..tag_at].to_vec();
    aead.open(plan.nonce(), &aad, &mut payload, &wire[tag_at..])
        .map_err(|_| DecryptError::AuthFailed)?;
    rx.commit_detached(&plan)?;
    let mut out = wire[..plan.prefix_len()].to_vec();
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Under suite 4: a sender, a receiver, the host's AEAD, and the wire frame of a VP8 delta
/// frame with `body`, sealed by the host.
fn vp8_sent(body: &[u8]) -> (Encryptor, Decryptor, SuiteAead, Vec<u8>) {
    let suite = CipherSuite::Aes128GcmSha256_128;
    let vp8 = Layout::Media(Codec::Vp8);
    let aead = host_aead(suite);
    let (mut tx, rx) = pair(suite);
    let wire = host_seal(&mut tx, &aead, vp8, &frame(vp8, false, body));
    (tx, rx, aead, wire)
}

#[test]
fn detached_seal_equals_in_place_seal_and_opens_both_ways() {
    for suite in CipherSuite::ALL {
        let aead = host_aead(suite);
        for layout in Layout::ALL.into_iter().filter(|l| detachable(*l)) {
            let (mut host_tx, mut host_rx) = pair(suite);
            let (mut wasm_tx, mut wasm_rx) = pair(suite);
            for key_frame in [true, false] {
                for n in [1usize, 17, 40, 3000] {
                    let body: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
                    let plain = frame(layout, key_frame, &body);
                    let wire = host_seal(&mut host_tx, &aead, layout, &plain);
                    let mut expected = plain.clone();
                    wasm_tx.encrypt(layout, &mut expected).unwrap();
                    assert_eq!(wire, expected, "{suite:?} {layout:?} {n}");
                    // Host-sealed opens in place; in-place-sealed opens on the host.
                    let mut buf = wire.clone();
                    wasm_rx.decrypt(layout, &mut buf).unwrap();
                    assert_eq!(buf, plain);
                    assert_eq!(host_open(&mut host_rx, &aead, layout, &expected), Ok(plain));
                }
            }
            assert_eq!(host_tx.stats().encrypted, 8);
            assert_eq!(host_rx.stats().decrypted, 8);
        }
    }
}

#[test]
fn layouts_that_need_the_whole_frame_are_refused_without_using_a_counter() {
    let suite = CipherSuite::Aes128GcmSha256_128;
    for layout in Layout::ALL.into_iter().filter(|l| !detachable(*l)) {
        let (mut tx, mut rx) = pair(suite);
        let plain = frame(layout, true, &[5; 100]);
        assert_eq!(
            tx.plan_detached(layout, head(&plain), plain.len()),
            Ok(None)
        );
        let mut buf = plain.clone();
        assert_eq!(tx.encrypt(layout, &mut buf).unwrap().ctr(), 0, "{layout:?}");
        assert_eq!(rx.plan_detached(layout, head(&buf), buf.len()), Ok(None));
        assert_eq!(
            rx.stats(),
            Default::default(),
            "nothing counted for {layout:?}"
        );
    }
}

#[test]
fn detached_open_refuses_replays_and_double_commits() {
    let layout = Layout::Media(Codec::Vp8);
    let (mut tx, mut rx, aead, wire) = vp8_sent(&[9; 500]);
    // Two copies planned before either committed (an async host): one commit wins.
    let first = plan_open(&mut rx, layout, &wire);
    let second = plan_open(&mut rx, layout, &wire);
    assert_eq!(rx.commit_detached(&first), Ok(()));
    assert_eq!(rx.commit_detached(&second), Err(DecryptError::Replayed));
    // After the commit, the plan itself refuses the counter.
    assert_eq!(
        rx.plan_detached(layout, head(&wire), wire.len()),
        Err(DecryptError::Replayed)
    );
    // A removed key: the commit fails.
    let later = host_seal(&mut tx, &aead, layout, &frame(layout, false, &[9; 500]));
    let plan = plan_open(&mut rx, layout, &later);
    rx.remove_key(KID);
    assert_eq!(
        rx.commit_detached(&plan),
        Err(DecryptError::UnknownKid(KID))
    );
    let s = rx.stats();
    assert_eq!((s.decrypted, s.replayed, s.unknown_kid), (1, 2, 1));
}

#[test]
fn detached_open_refuses_bad_input_and_counts_it() {
    let layout = Layout::Media(Codec::Vp8);
    let (_, mut rx, aead, wire) = vp8_sent(&[9; 100]);
    // The head must be exactly the frame's first min(len, 32) bytes.
    assert_eq!(
        rx.plan_detached(layout, &wire[..10], wire.len()),
        Err(DecryptError::Unencrypted)
    );
    assert_eq!(
        rx.plan_detached(layout, &[], 0),
        Err(DecryptError::Unencrypted)
    );
    // Cut inside the tag: truncated.
    let short = &wire[..3 + 2 + 10];
    assert_eq!(
        rx.plan_detached(layout, head(short), short.len()),
        Err(DecryptError::Truncated)
    );
    // Another KID.
    let mut other = Encryptor::new(CipherSuite::Aes128GcmSha256_128, 99, &key());
    let mut buf = frame(layout, false, &[1; 100]);
    other.encrypt(layout, &mut buf).unwrap();
    assert_eq!(
        rx.plan_detached(layout, head(&buf), buf.len()),
        Err(DecryptError::UnknownKid(99))
    );
    // A flipped tag byte: the host's AEAD refuses, nothing is committed.
    let mut bad = wire.clone();
    *bad.last_mut().unwrap() ^= 1;
    assert_eq!(
        host_open(&mut rx, &aead, layout, &bad),
        Err(DecryptError::AuthFailed)
    );
    assert_eq!(
        host_open(&mut rx, &aead, layout, &wire),
        Ok(frame(layout, false, &[9; 100]))
    );
    let s = rx.stats();
    assert_eq!(
        (s.unencrypted, s.truncated, s.unknown_kid, s.decrypted),
        (2, 1, 1, 1)
    );
}

#[test]
fn detached_plan_refuses_what_plan_refuses() {
    let suite = CipherSuite::Aes128GcmSha256_128;
    let vp8 = Layout::Media(Codec::Vp8);
    let mut tx = Encryptor::new(suite, KID, &key()).with_usage_limit(1);
    // A VP8 key frame shorter than its 10-byte prefix.
    let short = [0x10, 0x02, 0x00, 0x9d];
    assert_eq!(
        tx.plan_detached(vp8, &short, short.len()),
        Err(EncryptError::FrameTooShort(vp8))
    );
    // A head that is not the frame's first min(len, 32) bytes.
    let plain = frame(vp8, false, &[3; 100]);
    assert_eq!(
        tx.plan_detached(vp8, &plain[..5], plain.len()),
        Err(EncryptError::Seal)
    );
    // The usage limit: one frame, then rotate.
    assert!(
        tx.plan_detached(vp8, head(&plain), plain.len())
            .unwrap()
            .is_some()
    );
    assert_eq!(
        tx.plan_detached(vp8, head(&plain), plain.len()),
        Err(EncryptError::RotateKey)
    );
    // Too large.
    let mut big = Encryptor::new(suite, KID, &key());
    assert_eq!(
        big.plan_detached(vp8, head(&plain), hush_frame::MAX_FRAME_LEN + 1),
        Err(EncryptError::FrameTooLarge)
    );
}

#[test]
fn counters_are_shared_between_the_detached_and_in_place_paths() {
    let suite = CipherSuite::Aes128GcmSha256_128;
    let vp8 = Layout::Media(Codec::Vp8);
    let mut tx = Encryptor::new(suite, KID, &key());
    let plain = frame(vp8, false, &[3; 100]);
    let mut ctrs = Vec::new();
    for i in 0..6 {
        if i % 2 == 0 {
            let plan = tx
                .plan_detached(vp8, head(&plain), plain.len())
                .unwrap()
                .unwrap();
            ctrs.push(plan.ctr());
        } else {
            let mut buf = plain.clone();
            ctrs.push(tx.encrypt(vp8, &mut buf).unwrap().ctr());
        }
    }
    assert_eq!(ctrs, [0, 1, 2, 3, 4, 5]);
}
