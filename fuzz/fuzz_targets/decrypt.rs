//! Parse + decrypt of arbitrary frames in every layout, then a sequence of operations: the
//! decryptor must return a typed error (never panic), and its counters must add up.
#![no_main]

use hush_frame::{BaseKey, CipherSuite, Decryptor, Encryptor, Layout};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let layout = Layout::ALL[usize::from(selector) % Layout::ALL.len()];
    let suite = CipherSuite::ALL[usize::from(selector >> 4) % CipherSuite::ALL.len()];
    let Ok(key) = BaseKey::new(&[0x42; 16]) else { return };
    let mut rx = Decryptor::new(suite);
    if rx.add_key(0, &key).is_err() || rx.add_key(1000, &key).is_err() {
        return;
    }
    // Each chunk split at 0xff is one incoming frame.
    let mut frames = 0u64;
    for chunk in rest.split(|&b| b == 0xff) {
        let mut buf = chunk.to_vec();
        let _ = rx.decrypt(layout, &mut buf);
        frames += 1;
    }
    let s = rx.stats();
    assert_eq!(s.decrypted + s.dropped(), frames);
    // Whatever the plaintext, an honest sender's frame must round-trip.
    let mut tx = Encryptor::new(suite, 1000, &key);
    let mut buf = rest.to_vec();
    if tx.encrypt(layout, &mut buf).is_ok() {
        let mut fresh = Decryptor::new(suite);
        if fresh.add_key(1000, &key).is_ok() {
            assert!(fresh.decrypt(layout, &mut buf).is_ok());
            assert_eq!(buf, rest);
        }
    }
});
