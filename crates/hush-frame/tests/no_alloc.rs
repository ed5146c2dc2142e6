//! The hot path allocates nothing: once the buffer has headroom and each side has seen a
//! frame, encrypting and decrypting allocate zero times, counted by a global allocator.
// Test code: a failed unwrap is a failed test. The counting allocator needs `unsafe impl`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, unsafe_code)]

mod common;

use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::cell::Cell;

use common::frame;
use hush_frame::{BaseKey, CipherSuite, Decryptor, Encryptor, Layout};

struct Counting;

thread_local! {
    /// Allocations made by this thread (tests run on several threads at once).
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn allocs() -> usize {
    ALLOCS.with(Cell::get)
}

fn count() {
    // `try_with`: during thread teardown the slot may be gone; then nothing is counted.
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: AllocLayout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: AllocLayout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: AllocLayout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn the_counter_sees_allocations() {
    let before = allocs();
    let v = std::hint::black_box(vec![1u8; 100]);
    assert!(allocs() > before);
    drop(v);
}

#[test]
fn encrypt_and_decrypt_allocate_nothing_per_frame() {
    for suite in CipherSuite::ALL {
        for layout in Layout::ALL {
            let k = BaseKey::new(&[9; 16]).unwrap();
            let mut tx = Encryptor::new(suite, 300, &k);
            let mut rx = Decryptor::new(suite);
            rx.add_key(300, &k).unwrap();
            let body: Vec<u8> = (0..1200u32).map(|i| (i * 31 % 251) as u8).collect();
            let plain = frame(layout, true, &body);
            let mut buf = Vec::with_capacity(plain.len() + 256);
            // Warm up: the first frame may size the scratch buffers.
            buf.extend_from_slice(&plain);
            tx.encrypt(layout, &mut buf).unwrap();
            rx.decrypt(layout, &mut buf).unwrap();

            let before = allocs();
            for _ in 0..200 {
                buf.clear();
                buf.extend_from_slice(&plain);
                tx.encrypt(layout, &mut buf).unwrap();
                rx.decrypt(layout, &mut buf).unwrap();
            }
            let after = allocs();
            assert_eq!(after - before, 0, "{suite:?} {layout:?} allocated");
            assert_eq!(buf, plain);
        }
    }
}
