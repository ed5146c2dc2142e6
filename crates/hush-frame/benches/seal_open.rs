//! Seal and open in media mode (VP8 delta frames) for suites 4 and 5, beside raw in-place
//! `aes-gcm` on the same sizes in the same run; prints hush/raw throughput ratios at the end.
//!
//! The raw baseline authenticates the same number of AAD bytes as the SFrame frame does
//! (3-byte VP8 prefix + 2-byte header), so the ratio measures what the frame layer adds:
//! prefix rule, header, layout in place, replay window, counters.
//!
//! `cargo bench -p hush-frame --bench seal_open`
// Bench code: a failed unwrap is a broken bench.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm, Nonce};
use criterion::{BatchSize, Criterion, Throughput, criterion_group};
use hush_frame::{BaseKey, CipherSuite, Codec, Decryptor, Encryptor, Layout};

const SIZES: [(usize, &str); 4] = [
    (100, "100B"),
    (1000, "1KB"),
    (16_000, "16KB"),
    (100_000, "100KB"),
];
const SUITES: [(CipherSuite, &str); 2] = [
    (CipherSuite::Aes128GcmSha256_128, "suite4"),
    (CipherSuite::Aes256GcmSha512_128, "suite5"),
];
const LAYOUT: Layout = Layout::Media(Codec::Vp8);

/// AAD the size of a VP8 delta frame's SFrame AAD (2-byte header + 3-byte prefix).
const RAW_AAD: [u8; 5] = [0x18, 0x01, 0x31, 0x02, 0x00];

fn frame(len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(len + 64);
    f.extend_from_slice(&[0x31, 0x02, 0x00]);
    f.extend((3..len).map(|i| (i * 7) as u8));
    f
}

fn batch(len: usize) -> BatchSize {
    if len >= 16_000 {
        BatchSize::LargeInput
    } else {
        BatchSize::SmallInput
    }
}

/// Raw in-place AES-GCM with a detached tag: the baseline.
enum Raw {
    A128(Box<Aes128Gcm>),
    A256(Box<Aes256Gcm>),
}

impl Raw {
    fn new(suite: CipherSuite) -> Self {
        match suite {
            CipherSuite::Aes256GcmSha512_128 => {
                Raw::A256(Box::new(Aes256Gcm::new(&[1u8; 32].into())))
            }
            _ => Raw::A128(Box::new(Aes128Gcm::new(&[1u8; 16].into()))),
        }
    }
    fn seal(&self, buf: &mut [u8]) -> [u8; 16] {
        let n = Nonce::from([3u8; 12]);
        let t = match self {
            Raw::A128(a) => a.encrypt_inout_detached(&n, &RAW_AAD, buf.into()),
            Raw::A256(a) => a.encrypt_inout_detached(&n, &RAW_AAD, buf.into()),
        };
        t.unwrap().into()
    }
    fn open(&self, buf: &mut [u8], tag: &[u8; 16]) {
        let n = Nonce::from([3u8; 12]);
        let t = (*tag).into();
        match self {
            Raw::A128(a) => a.decrypt_inout_detached(&n, &RAW_AAD, buf.into(), &t),
            Raw::A256(a) => a.decrypt_inout_detached(&n, &RAW_AAD, buf.into(), &t),
        }
        .unwrap();
    }
}

fn benches(c: &mut Criterion) {
    let key = BaseKey::new(&[7u8; 16]).unwrap();
    for (suite, sname) in SUITES {
        let mut g = c.benchmark_group(sname);
        for (len, lname) in SIZES {
            g.throughput(Throughput::Bytes(len as u64));
            let plain = frame(len);
            // Every input gets the same headroom, as a real caller's reused buffer has.
            let fresh = || {
                let mut v = Vec::with_capacity(len + 64);
                v.extend_from_slice(&plain);
                v
            };

            let mut tx = Encryptor::new(suite, 1, &key);
            g.bench_function(format!("seal_hush_{lname}"), |b| {
                b.iter_batched_ref(fresh, |f| tx.encrypt(LAYOUT, f).unwrap(), batch(len))
            });
            let raw = Raw::new(suite);
            g.bench_function(format!("seal_raw_{lname}"), |b| {
                b.iter_batched_ref(fresh, |f| raw.seal(f), batch(len))
            });

            let mut tx = Encryptor::new(suite, 1, &key);
            let mut rx = Decryptor::new(suite);
            rx.add_key(1, &key).unwrap();
            g.bench_function(format!("open_hush_{lname}"), |b| {
                b.iter_batched_ref(
                    || {
                        let mut f = fresh();
                        tx.encrypt(LAYOUT, &mut f).unwrap();
                        f
                    },
                    |f| rx.decrypt(LAYOUT, f).unwrap(),
                    batch(len),
                )
            });
            let mut sealed = plain.clone();
            let tag = raw.seal(&mut sealed);
            g.bench_function(format!("open_raw_{lname}"), |b| {
                b.iter_batched_ref(|| sealed.clone(), |f| raw.open(f, &tag), batch(len))
            });
        }
        g.finish();
    }
}

criterion_group!(group, benches);

/// Mean time of one benchmark from criterion's saved estimates.
fn mean_ns(root: &Path, group: &str, id: &str) -> Option<f64> {
    let p = root.join(group).join(id).join("new").join("estimates.json");
    let text = std::fs::read_to_string(p).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["mean"]["point_estimate"].as_f64()
}

fn criterion_dir() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(t) = std::env::var("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(t).join("criterion"));
    }
    let mut dir = std::env::current_dir().ok()?;
    loop {
        candidates.push(dir.join("target").join("criterion"));
        if !dir.pop() {
            break;
        }
    }
    candidates.into_iter().find(|p| p.is_dir())
}

fn print_ratios() {
    let Some(root) = criterion_dir() else {
        println!("(no criterion output found; ratios not printed)");
        return;
    };
    println!("\nhush-frame vs raw aes-gcm, throughput ratio (1.00 = same speed as raw):");
    println!("{:<8} {:<6} {:>10} {:>10}", "suite", "size", "seal", "open");
    for (_, sname) in SUITES {
        for (_, lname) in SIZES {
            let r = |op: &str| {
                let hush = mean_ns(&root, sname, &format!("{op}_hush_{lname}"))?;
                let raw = mean_ns(&root, sname, &format!("{op}_raw_{lname}"))?;
                Some(raw / hush)
            };
            let f = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.2}x"));
            println!(
                "{:<8} {:<6} {:>10} {:>10}",
                sname,
                lname,
                f(r("seal")),
                f(r("open"))
            );
        }
    }
}

fn main() {
    group();
    Criterion::default().configure_from_args().final_summary();
    print_ratios();
}
