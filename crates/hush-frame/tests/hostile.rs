//! Property tests: round trips in both modes and all suites, every single-bit flip refused,
//! and arbitrary bytes always giving a typed error, never a panic.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{av1, frame};
use hush_frame::{BaseKey, CipherSuite, Codec, Decryptor, Encryptor, Header, Layout};
use proptest::prelude::*;

fn suite() -> impl Strategy<Value = CipherSuite> {
    prop::sample::select(CipherSuite::ALL.to_vec())
}

fn layout() -> impl Strategy<Value = Layout> {
    prop::sample::select(Layout::ALL.to_vec())
}

fn pair(suite: CipherSuite, kid: u64) -> (Encryptor, Decryptor) {
    let k = BaseKey::new(&[0x5a; 16]).unwrap();
    let tx = Encryptor::new(suite, kid, &k);
    let mut rx = Decryptor::new(suite);
    rx.add_key(kid, &k).unwrap();
    (tx, rx)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn round_trip(suite in suite(), layout in layout(), key_frame: bool, kid: u64,
                  skip in 0u64..300, body in prop::collection::vec(any::<u8>(), 0..600)) {
        let (mut tx, mut rx) = pair(suite, kid);
        // Move the counter so headers of every length are exercised.
        for _ in 0..skip { let mut f = frame(layout, key_frame, b"x"); tx.encrypt(layout, &mut f).unwrap(); }
        let plain = frame(layout, key_frame, &body);
        let mut buf = plain.clone();
        tx.encrypt(layout, &mut buf).unwrap();
        rx.decrypt(layout, &mut buf).unwrap();
        prop_assert_eq!(buf, plain);
    }

    #[test]
    fn any_single_bit_flip_is_refused(suite in suite(), layout in layout(), key_frame: bool,
                                      body in prop::collection::vec(any::<u8>(), 1..200),
                                      pos: prop::sample::Index, bit in 0u8..8) {
        let (mut tx, mut rx) = pair(suite, 3);
        let mut buf = frame(layout, key_frame, &body);
        tx.encrypt(layout, &mut buf).unwrap();
        let i = pos.index(buf.len());
        buf[i] ^= 1 << bit;
        prop_assert!(rx.decrypt(layout, &mut buf).is_err(), "flip at {} bit {} accepted", i, bit);
        prop_assert_eq!(rx.stats().decrypted, 0);
        prop_assert_eq!(rx.stats().dropped(), 1);
    }

    #[test]
    fn arbitrary_bytes_give_a_typed_error(suite in suite(), layout in layout(),
                                          bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let (_, mut rx) = pair(suite, 0);
        let mut buf = bytes;
        // Any outcome but a panic; an accepted forgery would need a 2^-32 tag guess at least.
        prop_assert!(rx.decrypt(layout, &mut buf).is_err());
        prop_assert_eq!(rx.stats().dropped(), 1);
    }

    #[test]
    fn arbitrary_bytes_with_a_known_kid_header(suite in suite(), layout in layout(), ctr: u64,
                                               key_frame: bool,
                                               tail in prop::collection::vec(any::<u8>(), 0..100)) {
        // Valid header for an installed KID, garbage after: reaches the AEAD, must fail there.
        let (_, mut rx) = pair(suite, 1);
        let mut buf = frame(layout, key_frame, &[]);
        let (h, n) = Header::new(1, ctr).to_bytes();
        buf.extend_from_slice(&h[..n]);
        buf.extend_from_slice(&tail);
        prop_assert!(rx.decrypt(layout, &mut buf).is_err());
    }

    #[test]
    fn arbitrary_plaintext_either_refused_or_round_trips(suite in suite(), layout in layout(),
                                                         bytes in prop::collection::vec(
                                                             prop::sample::select(vec![0u8, 0, 0, 1, 2, 3, 0x65, 0x67, 0x12, 0x0a, 0x32, 0x40, 0x26, 0xff]), 0..120)) {
        // The receiver must find the same clear prefix as the sender for any input the sender
        // accepts: bytes biased to start codes, NAL and OBU headers stress the codec rules.
        let (mut tx, mut rx) = pair(suite, 4);
        let mut buf = bytes.clone();
        if tx.encrypt(layout, &mut buf).is_ok() {
            rx.decrypt(layout, &mut buf).unwrap();
            prop_assert_eq!(buf, bytes);
        }
    }

    #[test]
    fn av1_temporal_units_survive_any_depacketizer(
        suite in suite(),
        delimiter: bool,
        sequence_header in prop::option::of(prop::collection::vec(any::<u8>(), 0..40)),
        padding in prop::option::of(prop::collection::vec(any::<u8>(), 0..20)),
        obus in prop::collection::vec(
            (prop::sample::select(vec![3u8, 4, 5, 6, 7]), prop::option::of(any::<u8>()),
             prop::collection::vec(any::<u8>(), 0..300)), 1..4),
        last_unsized: bool, size_len in 1usize..5, rx_last_unsized: bool,
    ) {
        // Any temporal unit of clear OBUs and frame data, through any re-encoding of sizes
        // a depacketizer may choose: the receiver authenticates it and gets the sender's
        // frame data back byte for byte, after the clear OBUs as it received them.
        let layout = Layout::Media(Codec::Av1);
        let (mut tx, mut rx) = pair(suite, 7);
        let mut plain = Vec::new();
        if delimiter { plain.extend([0x12, 0x00]); }
        if let Some(p) = &padding { plain.extend(av1::obu(15, None, p, true)); }
        if let Some(sh) = &sequence_header { plain.extend(av1::obu(1, None, sh, true)); }
        let clear_len = plain.len();
        for (i, (t, ext, payload)) in obus.iter().enumerate() {
            plain.extend(av1::obu(*t, *ext, payload, !(last_unsized && i + 1 == obus.len())));
        }
        let mut wire = plain.clone();
        tx.encrypt(layout, &mut wire).unwrap();
        let mut received = av1::depacketize(&wire, size_len, rx_last_unsized);
        rx.decrypt(layout, &mut received).unwrap();
        let expected_clear = sequence_header.as_ref().map_or(Vec::new(), |sh| {
            let mut v = vec![0x0a];
            v.extend(av1::leb128(sh.len(), size_len));
            v.extend_from_slice(sh);
            v
        });
        prop_assert_eq!(&received[..expected_clear.len()], &expected_clear[..]);
        prop_assert_eq!(&received[expected_clear.len()..], &plain[clear_len..]);
    }

    #[test]
    fn header_round_trips(kid: u64, ctr: u64) {
        let h = Header::new(kid, ctr);
        let (b, n) = h.to_bytes();
        prop_assert_eq!(Header::decode(&b[..n]), Ok((h, n)));
    }
}
