//! Start-code emulation prevention for H.264 and H.265 media mode.
//!
//! An Annex B packetizer splits a frame at every `00 00 01`, so the encrypted part of an H.26x
//! frame must never contain one. Hush escapes it the way H.264 itself does (ITU-T H.264
//! section 7.4.1): after two zero bytes, a byte `<= 0x03` gets an `0x03` inserted before it,
//! and so does the end of the frame. Unescaping drops each `0x03` that follows two zeros.
//!
//! Escaping was chosen over re-encrypting with the next counter until no start code appears:
//! it is deterministic (one pass, no retry loop whose length depends on the ciphertext), burns
//! no counters, and costs one byte per `2^22` bytes on average. The price is that the frame
//! grows by those bytes, which the caller's buffer capacity absorbs (no allocation when it
//! has a little headroom).

/// Number of `0x03` bytes [`escape_in_place`] will insert into `data`.
pub fn escaped_extra(data: &[u8]) -> usize {
    let mut zeros = 0usize;
    let mut extra = 0usize;
    for &b in data {
        if zeros >= 2 && b <= 3 {
            extra += 1;
            zeros = 0;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    if zeros >= 2 {
        extra += 1;
    }
    extra
}

/// Escapes `buf[from..]` in place, growing `buf` by [`escaped_extra`] bytes.
pub fn escape_in_place(buf: &mut Vec<u8>, from: usize) {
    let extra = escaped_extra(&buf[from..]);
    if extra == 0 {
        return;
    }
    let old_len = buf.len();
    buf.resize(old_len + extra, 0);
    // Move the region to the end, then rewrite it forwards; the write index never passes the
    // read index because it is ahead by at most the inserts still to come.
    buf.copy_within(from..old_len, from + extra);
    let mut r = from + extra;
    let mut w = from;
    let end = old_len + extra;
    let mut zeros = 0usize;
    while r < end {
        let b = buf[r];
        r += 1;
        if zeros >= 2 && b <= 3 {
            buf[w] = 3;
            w += 1;
            zeros = 0;
        }
        buf[w] = b;
        w += 1;
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    if zeros >= 2 {
        buf[w] = 3;
    }
}

/// Removes emulation-prevention bytes from `buf[from..]` in place, shrinking `buf`.
pub fn unescape_in_place(buf: &mut Vec<u8>, from: usize) {
    let mut w = from;
    let mut zeros = 0usize;
    for r in from..buf.len() {
        let b = buf[r];
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        buf[w] = b;
        w += 1;
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    buf.truncate(w);
}

/// Whether `data` contains a three-byte start code prefix `00 00 00`, `00 00 01` or `00 00 02`.
pub fn contains_start_code(data: &[u8]) -> bool {
    data.windows(3).any(|w| w[0] == 0 && w[1] == 0 && w[2] <= 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(data: &[u8]) -> Vec<u8> {
        let mut v = data.to_vec();
        escape_in_place(&mut v, 0);
        v
    }

    #[test]
    fn known_escapes() {
        assert_eq!(esc(&[0, 0, 1]), [0, 0, 3, 1]);
        assert_eq!(esc(&[0, 0, 0, 0]), [0, 0, 3, 0, 0, 3]);
        assert_eq!(esc(&[0, 0, 3]), [0, 0, 3, 3]);
        assert_eq!(esc(&[0, 0, 4]), [0, 0, 4]);
        assert_eq!(esc(&[1, 0]), [1, 0]);
        assert_eq!(esc(&[1, 0, 0]), [1, 0, 0, 3]);
    }

    #[test]
    fn escape_round_trips_and_leaves_no_start_code() {
        let mut seed = 0x1234_5678u32;
        for len in 0..300 {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    // Mostly zeros and small values, to hit every case.
                    ((seed >> 16) % 5) as u8
                })
                .collect();
            let mut v = vec![9u8, 9];
            v.extend_from_slice(&data);
            escape_in_place(&mut v, 2);
            assert!(!contains_start_code(&v));
            assert_eq!(v.len(), 2 + data.len() + escaped_extra(&data));
            unescape_in_place(&mut v, 2);
            assert_eq!(&v[2..], &data[..]);
        }
    }
}
