//! Media mode end to end: the clear prefix survives, H.26x output holds no start code, and
//! every drop reason is counted. Also the negative cases: wrong key, tampering, replay,
//! truncation, unknown KID, unencrypted input.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{av1, frame};
use hush_frame::escape::contains_start_code;
use hush_frame::{
    BaseKey, CipherSuite, Codec, DecryptError, Decryptor, EncryptError, Encryptor, Layout,
};

fn key(b: u8) -> BaseKey {
    BaseKey::new(&[b; 32]).unwrap()
}

fn pair(suite: CipherSuite) -> (Encryptor, Decryptor) {
    let tx = Encryptor::new(suite, 0x1234, &key(1));
    let mut rx = Decryptor::new(suite);
    rx.add_key(0x1234, &key(1)).unwrap();
    (tx, rx)
}

/// A body full of start codes and zero runs, the worst case for escaping.
fn nasty_body() -> Vec<u8> {
    (0..3000u32)
        .map(|i| if i % 7 < 4 { 0 } else { (i % 4) as u8 })
        .collect()
}

#[test]
fn every_layout_and_suite_round_trips_with_its_prefix_in_the_clear() {
    for suite in CipherSuite::ALL {
        for layout in Layout::ALL {
            for key_frame in [true, false] {
                let (mut tx, mut rx) = pair(suite);
                let plain = frame(layout, key_frame, &nasty_body());
                let mut buf = plain.clone();
                let plan = tx.encrypt(layout, &mut buf).unwrap();
                let prefix = plan.prefix_len();
                assert_eq!(&buf[..prefix], &plain[..prefix], "{layout:?} prefix kept");
                assert!(
                    !buf.ends_with(&plain[plain.len() - 64..]),
                    "{layout:?} body hidden"
                );
                if matches!(layout, Layout::Media(Codec::H264 | Codec::H265)) {
                    assert!(
                        !contains_start_code(&buf[prefix..]),
                        "{layout:?} start code"
                    );
                }
                rx.decrypt(layout, &mut buf).unwrap();
                assert_eq!(buf, plain, "{suite:?} {layout:?}");
            }
        }
    }
}

#[test]
fn h264_prefix_is_authenticated_but_start_code_length_is_not() {
    let layout = Layout::Media(Codec::H264);
    let (mut tx, mut rx) = pair(CipherSuite::default());
    let plain = frame(layout, true, b"slice data");
    let mut buf = plain.clone();
    tx.encrypt(layout, &mut buf).unwrap();
    // The receiver's depacketizer may rewrite 4-byte start codes as 3-byte ones.
    let mut rewritten = buf[1..].to_vec();
    rx.decrypt(layout, &mut rewritten).unwrap();
    assert_eq!(rewritten, plain[1..]);
    // Changing a byte of the SPS (clear, authenticated) is caught.
    let mut buf2 = plain.clone();
    tx.encrypt(layout, &mut buf2).unwrap();
    buf2[6] ^= 0x01;
    assert_eq!(rx.decrypt(layout, &mut buf2), Err(DecryptError::AuthFailed));
}

#[test]
fn wrong_key_is_refused_and_counted() {
    for suite in CipherSuite::ALL {
        let mut tx = Encryptor::new(suite, 9, &key(1));
        let mut rx = Decryptor::new(suite);
        rx.add_key(9, &key(2)).unwrap();
        let mut buf = frame(Layout::Media(Codec::Vp8), false, b"secret");
        tx.encrypt(Layout::Media(Codec::Vp8), &mut buf).unwrap();
        assert_eq!(
            rx.decrypt(Layout::Media(Codec::Vp8), &mut buf),
            Err(DecryptError::AuthFailed)
        );
        assert_eq!(rx.stats().auth_failed, 1);
        assert_eq!(rx.stats().decrypted, 0);
    }
}

#[test]
fn replay_is_refused_and_honest_frames_still_flow() {
    let layout = Layout::Media(Codec::Opus);
    let (mut tx, mut rx) = pair(CipherSuite::default());
    let mut first = frame(layout, false, b"one");
    tx.encrypt(layout, &mut first).unwrap();
    let copy = first.clone();
    rx.decrypt(layout, &mut first).unwrap();
    let mut replay = copy.clone();
    assert_eq!(rx.decrypt(layout, &mut replay), Err(DecryptError::Replayed));
    let mut next = frame(layout, false, b"two");
    tx.encrypt(layout, &mut next).unwrap();
    rx.decrypt(layout, &mut next).unwrap();
    assert_eq!(next, frame(layout, false, b"two"));
    let s = rx.stats();
    assert_eq!((s.decrypted, s.replayed), (2, 1));
}

#[test]
fn a_forged_frame_does_not_move_the_replay_window() {
    let layout = Layout::Pure;
    let (mut tx, mut rx) = pair(CipherSuite::default());
    let mut frames: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            let mut f = vec![i; 40];
            tx.encrypt(layout, &mut f).unwrap();
            f
        })
        .collect();
    // A forgery claiming counter 2 with a bad tag.
    let mut forged = frames[2].clone();
    let last = forged.len() - 1;
    forged[last] ^= 0x80;
    assert_eq!(
        rx.decrypt(layout, &mut forged),
        Err(DecryptError::AuthFailed)
    );
    // The real frame 2 is still accepted, then 0 and 1 out of order.
    for i in [2, 0, 1] {
        rx.decrypt(layout, &mut frames[i]).unwrap();
    }
    assert_eq!(rx.stats().decrypted, 3);
}

#[test]
fn interleaved_plans_with_the_same_counter_commit_once() {
    let layout = Layout::Pure;
    let (mut tx, mut rx) = pair(CipherSuite::default());
    let mut a = vec![5u8; 100];
    tx.encrypt(layout, &mut a).unwrap();
    let mut b = a.clone();
    let pa = rx.plan(layout, &mut a).unwrap();
    let pb = rx.plan(layout, &mut b).unwrap();
    rx.open(&pa, &mut a).unwrap();
    rx.open(&pb, &mut b).unwrap();
    rx.commit(&pa, &mut a).unwrap();
    assert_eq!(rx.commit(&pb, &mut b), Err(DecryptError::Replayed));
}

#[test]
fn unknown_kid_truncated_malformed_and_unencrypted_are_told_apart() {
    let layout = Layout::Media(Codec::Vp8);
    let (mut tx, mut rx) = pair(CipherSuite::default());
    let mut other = Encryptor::new(CipherSuite::default(), 77, &key(1));
    let mut f = frame(layout, false, b"x");
    other.encrypt(layout, &mut f).unwrap();
    assert_eq!(
        rx.decrypt(layout, &mut f),
        Err(DecryptError::UnknownKid(77))
    );

    let mut f = frame(layout, false, b"payload");
    tx.encrypt(layout, &mut f).unwrap();
    f.truncate(3 + 2 + 10);
    assert_eq!(rx.decrypt(layout, &mut f), Err(DecryptError::Truncated));

    // Config byte announcing an 8-byte KID that is not there.
    let mut f = vec![0x31, 0x02, 0x00, 0xf0, 0x01];
    assert_eq!(
        rx.decrypt(layout, &mut f),
        Err(DecryptError::MalformedHeader)
    );

    assert_eq!(
        rx.decrypt(layout, &mut Vec::new()),
        Err(DecryptError::Unencrypted)
    );
    let mut short_key_frame = vec![0x10, 0x02];
    assert_eq!(
        rx.decrypt(layout, &mut short_key_frame),
        Err(DecryptError::Unencrypted)
    );

    let s = rx.stats();
    assert_eq!(
        (
            s.unknown_kid,
            s.truncated,
            s.malformed_header,
            s.unencrypted,
            s.decrypted
        ),
        (1, 1, 1, 2, 0)
    );
    assert_eq!(s.dropped(), 5);
}

#[test]
fn frames_too_short_for_their_codec_are_refused_not_sent() {
    let mut tx = Encryptor::new(CipherSuite::default(), 1, &key(1));
    for (layout, f) in [
        (Layout::Media(Codec::Opus), vec![]),
        (Layout::Media(Codec::Vp8), vec![0x10, 0x02, 0x00]),
        (Layout::Media(Codec::Av1), vec![0x12]),
    ] {
        let mut buf = f.clone();
        assert_eq!(
            tx.encrypt(layout, &mut buf),
            Err(EncryptError::FrameTooShort(layout))
        );
    }
    assert_eq!(tx.stats().refused_frame, 3);
    assert_eq!(tx.stats().encrypted, 0);
}

#[test]
fn the_key_must_rotate_before_its_usage_limit() {
    let mut tx = Encryptor::new(CipherSuite::default(), 1, &key(1)).with_usage_limit(10);
    let mut rotate_asked_at = None;
    for i in 0..10 {
        if rotate_asked_at.is_none() && tx.needs_rotation() {
            rotate_asked_at = Some(i);
        }
        let mut f = vec![1u8; 10];
        tx.encrypt(Layout::Pure, &mut f).unwrap();
    }
    assert_eq!(rotate_asked_at, Some(5), "asks at half the budget");
    let mut f = vec![1u8; 10];
    assert_eq!(
        tx.encrypt(Layout::Pure, &mut f),
        Err(EncryptError::RotateKey)
    );
    // A new key starts a new budget; the counter keeps going up (no nonce reuse even for a
    // KID set again with the same key).
    tx.set_key(2, &key(2));
    let p = tx.encrypt(Layout::Pure, &mut f).unwrap();
    assert_eq!(p.ctr(), 10);
    tx.set_key(1, &key(1));
    let mut g = vec![1u8; 10];
    assert_eq!(tx.encrypt(Layout::Pure, &mut g).unwrap().ctr(), 11);
}

/// An encryptor made again for a KID another one sealed under goes on from that one's counter
/// (`resume_from`), and a resume never moves the counter back.
#[test]
fn a_new_encryptor_resumes_another_ones_counter_and_never_goes_back() {
    let mut first = Encryptor::new(CipherSuite::default(), 1, &key(1));
    for _ in 0..3 {
        let mut f = vec![1u8; 10];
        first.encrypt(Layout::Pure, &mut f).unwrap();
    }
    assert_eq!(first.next_counter(), 3);
    let mut again = Encryptor::new(CipherSuite::default(), 1, &key(1));
    again.resume_from(first.next_counter());
    let mut f = vec![1u8; 10];
    assert_eq!(again.encrypt(Layout::Pure, &mut f).unwrap().ctr(), 3);
    again.resume_from(1);
    assert_eq!(again.next_counter(), 4, "not back");
    let mut g = vec![1u8; 10];
    assert_eq!(again.encrypt(Layout::Pure, &mut g).unwrap().ctr(), 4);
}

#[test]
fn host_seam_matches_the_built_in_aead() {
    // A host that runs the AEAD itself (as the browser does with WebCrypto) produces the
    // same bytes from the plan's nonce, AAD and ranges.
    for layout in Layout::ALL {
        let suite = CipherSuite::Aes128GcmSha256_128;
        let mut a = Encryptor::new(suite, 5, &key(3));
        let mut b = Encryptor::new(suite, 5, &key(3));
        let plain = frame(layout, true, &nasty_body());
        let mut built_in = plain.clone();
        a.encrypt(layout, &mut built_in).unwrap();

        let mut host = plain.clone();
        let plan = b.plan(layout, &mut host).unwrap();
        let aad = b.aad(&plan, &host).to_vec();
        let d = hush_frame::key::DerivedKey::derive(suite, 5, &key(3));
        let aead = hush_frame::aead::SuiteAead::new(suite, d.expose_key()).unwrap();
        let (payload, tag) = host[plan.payload_range().start..plan.tag_range().end]
            .split_at_mut(plan.tag_range().start - plan.payload_range().start);
        aead.seal(plan.nonce(), &aad, payload, tag).unwrap();
        b.finish(&plan, &mut host);
        assert_eq!(host, built_in, "{layout:?}");

        // And the receiving seam: the host opens, the decryptor commits.
        let mut rx = Decryptor::new(suite);
        rx.add_key(5, &key(3)).unwrap();
        let p = rx.plan(layout, &mut host).unwrap();
        let aad = rx.aad(&p, &host).to_vec();
        let (payload, tag) = host[p.payload_range().start..p.tag_range().end]
            .split_at_mut(p.tag_range().start - p.payload_range().start);
        aead.open(p.nonce(), &aad, payload, tag).unwrap();
        rx.commit(&p, &mut host).unwrap();
        assert_eq!(host, plain, "{layout:?}");
    }
}

const AV1: Layout = Layout::Media(Codec::Av1);

#[test]
fn av1_wire_frame_is_one_carrier_obu_after_the_clear_ones() {
    for suite in CipherSuite::ALL {
        // Body lengths around the leb128 boundaries of the carrier's size field.
        for body_len in [0, 90, 100, 120, 16_330, 16_400] {
            let (mut tx, mut rx) = pair(suite);
            let plain = av1::key_frame(body_len);
            let mut buf = plain.clone();
            let plan = tx.encrypt(AV1, &mut buf).unwrap();
            let obus = av1::parse(&buf).expect("valid OBU stream");
            let types: Vec<u8> = obus.iter().map(|(h, _)| (h[0] >> 3) & 0x0f).collect();
            assert_eq!(types, [2, 1, 3], "{suite:?} {body_len}");
            // The clear OBUs are untouched, the carrier's payload is the sealed part.
            assert_eq!(&buf[..plan.prefix_len()], &plain[..plan.prefix_len()]);
            let carrier = &obus[2].1;
            assert_eq!(
                carrier.len(),
                buf.len() - plan.payload_range().start + plan.header_len()
            );
            if body_len >= 32 {
                assert!(!buf.windows(32).any(|w| w == &plain[plain.len() - 32..]));
            }
            rx.decrypt(AV1, &mut buf).unwrap();
            assert_eq!(buf, plain, "{suite:?} {body_len}");
        }
    }
}

#[test]
fn av1_survives_the_receivers_depacketizer() {
    let (mut tx, mut rx) = pair(CipherSuite::default());
    for (size_len, last_unsized) in [(1, false), (2, false), (4, false), (1, true), (3, true)] {
        let plain = av1::key_frame(300);
        let mut wire = plain.clone();
        tx.encrypt(AV1, &mut wire).unwrap();
        let mut received = av1::depacketize(&wire, size_len, last_unsized);
        assert_ne!(received[0], 0x12, "temporal delimiter dropped");
        rx.decrypt(AV1, &mut received)
            .unwrap_or_else(|e| panic!("size_len {size_len} last_unsized {last_unsized}: {e}"));
        // The clear sequence header as the depacketizer wrote it, then the sender's bytes.
        let sh_len = 1 + size_len + 10;
        assert_eq!(received[0], 0x0a);
        assert_eq!(&received[sh_len..], &plain[2 + 12..], "plaintext exact");
        let obus = av1::parse(&received).unwrap();
        assert_eq!(obus.len(), 4);
    }
    assert_eq!(rx.stats().decrypted, 5);
}

#[test]
fn av1_carrier_without_size_and_svc_layers_round_trip_exactly() {
    let (mut tx, mut rx) = pair(CipherSuite::default());
    // A temporal unit with two spatial layers (extension bytes), the last OBU without a size.
    let plain = [
        vec![0x12, 0x00],
        av1::obu(6, Some(0x08), &[1, 2, 3, 4, 5], true),
        av1::obu(6, Some(0x10), &[6, 7, 8], false),
    ]
    .concat();
    let mut wire = plain.clone();
    tx.encrypt(AV1, &mut wire).unwrap();
    let obus = av1::parse(&wire).unwrap();
    assert_eq!(obus.len(), 2);
    assert_eq!(obus[1].0, [0x34, 0x08], "carrier keeps type and layer ids");
    let mut received = av1::depacketize(&wire, 1, true);
    rx.decrypt(AV1, &mut received).unwrap();
    assert_eq!(received, plain[2..]);

    // A frame whose only OBU has no size field.
    let plain = av1::obu(6, None, &[9; 50], false);
    let mut wire = plain.clone();
    tx.encrypt(AV1, &mut wire).unwrap();
    assert_eq!(wire[0], 0x32, "the carrier gets a size field");
    rx.decrypt(AV1, &mut wire).unwrap();
    assert_eq!(wire, plain);
}

#[test]
fn av1_tampering_an_authenticated_byte_fails() {
    let (mut tx, mut rx) = pair(CipherSuite::default());
    let seal = |tx: &mut Encryptor| {
        let mut w = av1::key_frame(200);
        tx.encrypt(AV1, &mut w).unwrap();
        av1::depacketize(&w, 1, false)
    };
    // Received: [0a 0a <10 bytes SH>][1a <size> SFrame ...]. Every bit of the sequence
    // header's header and payload, and of the carrier's header (type, flags), is covered.
    for i in (0..1).chain(2..13) {
        for bit in 0..8 {
            if i != 0 && i != 12 || bit != 1 {
                let mut w = seal(&mut tx);
                w[i] ^= 1 << bit;
                assert!(rx.decrypt(AV1, &mut w).is_err(), "byte {i} bit {bit}");
            }
        }
    }
    let before = rx.stats();
    assert_eq!(before.decrypted, 0);
    // A payload byte of the sequence header and the carrier's type: exactly auth_failed.
    let mut w = seal(&mut tx);
    w[5] ^= 0x40;
    assert_eq!(rx.decrypt(AV1, &mut w), Err(DecryptError::AuthFailed));
    let mut w = seal(&mut tx);
    assert_eq!(w[12], 0x1a);
    w[12] = 0x32; // frame header -> frame
    assert_eq!(rx.decrypt(AV1, &mut w), Err(DecryptError::AuthFailed));
    // Dropping the sequence header is caught; adding padding or a delimiter is not an attack.
    let mut w = seal(&mut tx)[12..].to_vec();
    assert_eq!(rx.decrypt(AV1, &mut w), Err(DecryptError::AuthFailed));
    let w = seal(&mut tx);
    let mut padded = [&[0x12, 0x00, 0x7a, 0x02, 0xee, 0xee][..], &w].concat();
    rx.decrypt(AV1, &mut padded).unwrap();
    assert_eq!(padded[6..18], w[..12], "the clear OBUs as received");
    // Carrier size off by one either way, or a trailing OBU: refused before the AEAD.
    for delta in [-1i32, 1] {
        let mut w = seal(&mut tx);
        w[13] = (i32::from(w[13]) + delta) as u8;
        assert_eq!(rx.decrypt(AV1, &mut w), Err(DecryptError::Unencrypted));
    }
    let mut w = seal(&mut tx);
    w.extend_from_slice(&[0x7a, 0x00]);
    assert_eq!(rx.decrypt(AV1, &mut w), Err(DecryptError::Unencrypted));
    let s = rx.stats();
    assert_eq!(
        (
            s.decrypted,
            s.unencrypted - before.unencrypted,
            s.auth_failed - before.auth_failed
        ),
        (1, 3, 3)
    );
}

#[test]
fn av1_frames_the_rules_cannot_carry_are_refused() {
    let mut tx = Encryptor::new(CipherSuite::default(), 1, &key(1));
    for f in [
        av1::obu(8, None, &[1, 2, 3], true), // tile list carrier
        [vec![0x12, 0x01, 0x00], av1::obu(6, None, &[1], true)].concat(), // delimiter payload
        av1::obu(1, None, &[1, 2, 3], false), // unsized header
        [vec![0x12, 0x00], av1::obu(1, None, &[1], true)].concat(), // no carrier
    ] {
        let mut buf = f.clone();
        assert_eq!(
            tx.encrypt(AV1, &mut buf),
            Err(EncryptError::FrameTooShort(AV1)),
            "{f:02x?}"
        );
    }
    // A plain AV1 frame is not mistaken for an encrypted one.
    let (_, mut rx) = pair(CipherSuite::default());
    let mut plain = av1::depacketize(&av1::key_frame(100), 1, false);
    assert!(rx.decrypt(AV1, &mut plain).is_err());
}
