//! AV1 OBU builders and a model of what RTP does to an OBU stream (`av1-rtp-spec`, and
//! Chromium's packetizer and depacketizer, as measured in Chromium 156): parse by size
//! fields, drop temporal delimiters and padding, write every size field anew.

/// `leb128(v)` padded to at least `min_len` bytes.
pub(crate) fn leb128(mut v: usize, min_len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 && out.len() + 1 >= min_len {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

/// One OBU of type `obu_type`, with an extension byte when `ext` is given and a minimal
/// size field unless `sized` is false.
pub(crate) fn obu(obu_type: u8, ext: Option<u8>, payload: &[u8], sized: bool) -> Vec<u8> {
    let mut h = obu_type << 3;
    if ext.is_some() {
        h |= 0x04;
    }
    if sized {
        h |= 0x02;
    }
    let mut out = vec![h];
    out.extend(ext);
    if sized {
        out.extend(leb128(payload.len(), 1));
    }
    out.extend_from_slice(payload);
    out
}

/// The OBUs of `frame` as `(header bytes without the size flag, payload)`, parsed the way
/// a packetizer does; `None` when the stream does not parse.
pub(crate) fn parse(frame: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut at = 0;
    let mut out = Vec::new();
    while at < frame.len() {
        let h = frame[at];
        let hl = 1 + usize::from(h & 0x04 != 0);
        let header = frame.get(at..at + hl)?.to_vec();
        at += hl;
        let size = if h & 0x02 != 0 {
            let (mut v, mut i) = (0usize, 0);
            loop {
                let b = *frame.get(at + i)?;
                v |= usize::from(b & 0x7f) << (7 * i);
                i += 1;
                if b & 0x80 == 0 {
                    break;
                }
            }
            at += i;
            v
        } else {
            frame.len() - at
        };
        let payload = frame.get(at..at + size)?.to_vec();
        at += size;
        let mut header = header;
        header[0] &= !0x02;
        out.push((header, payload));
    }
    Some(out)
}

/// What a receiver's depacketizer hands over: no temporal delimiters or padding, every
/// size field written again padded to `size_len` bytes, and the last OBU without one when
/// `last_unsized`.
pub(crate) fn depacketize(wire: &[u8], size_len: usize, last_unsized: bool) -> Vec<u8> {
    let obus = parse(wire).expect("the wire frame is a valid OBU stream");
    let kept: Vec<_> = obus
        .into_iter()
        .filter(|(h, _)| !matches!((h[0] >> 3) & 0x0f, 2 | 15))
        .collect();
    let mut out = Vec::new();
    for (i, (h, payload)) in kept.iter().enumerate() {
        let sized = !(last_unsized && i + 1 == kept.len());
        out.push(h[0] | if sized { 0x02 } else { 0 });
        out.extend_from_slice(&h[1..]);
        if sized {
            out.extend(leb128(payload.len(), size_len));
        }
        out.extend_from_slice(payload);
    }
    out
}

/// A key frame: temporal delimiter, sequence header, frame header OBU, two tile groups.
pub(crate) fn key_frame(body_len: usize) -> Vec<u8> {
    let body: Vec<u8> = (0..body_len).map(|i| (i * 13 % 251) as u8).collect();
    [
        vec![0x12, 0x00],
        obu(
            1,
            None,
            &[0x00, 0x00, 0x00, 0x02, 0xaf, 0xff, 0x9b, 0x5f, 0x30, 0x08],
            true,
        ),
        obu(3, None, &[0x10, 0x20, 0x30], true),
        obu(4, None, &body[..body_len / 2], true),
        obu(4, None, &body[body_len / 2..], true),
    ]
    .concat()
}
