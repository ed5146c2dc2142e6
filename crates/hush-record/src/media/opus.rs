//! The duration of an Opus packet, from its TOC byte and frame count (RFC 6716 section 3.1).

/// Opus always counts time at 48 kHz in Ogg (RFC 7845 section 4).
pub const OPUS_SAMPLE_RATE: u32 = 48_000;
/// Longest Opus packet: 120 ms at 48 kHz (RFC 6716 section 3.2.5).
pub const OPUS_MAX_PACKET_SAMPLES: u32 = 5_760;

/// The number of 48 kHz samples an Opus packet decodes to (per channel), from its TOC byte
/// (the frame duration of its configuration) and its frame count code, or `None` when the
/// packet cannot be valid: empty, code 3 without its frame count byte or with a count of 0,
/// or longer than 120 ms (RFC 6716 section 3.1, requirements R1 and R5).
///
/// Only the TOC and, for code 3, the count byte are read: frame lengths inside the packet are
/// not checked, as a decoder will.
pub fn opus_packet_samples(packet: &[u8]) -> Option<u32> {
    let (&toc, rest) = packet.split_first()?;
    let frames = match toc & 0b11 {
        0 => 1,
        1 | 2 => 2,
        _ => match rest.first()? & 0x3f {
            0 => return None,
            count => u32::from(count),
        },
    };
    let samples = frame_samples(toc) * frames;
    (samples <= OPUS_MAX_PACKET_SAMPLES).then_some(samples)
}

/// Samples at 48 kHz in one frame of the TOC's configuration (RFC 6716 section 3.1, Table 2).
fn frame_samples(toc: u8) -> u32 {
    let config = toc >> 3;
    match config {
        // SILK-only, NB / MB / WB: 10, 20, 40, 60 ms.
        0..=11 => match config & 0b11 {
            0 => 480,
            1 => 960,
            2 => 1_920,
            _ => 2_880,
        },
        // Hybrid, SWB / FB: 10, 20 ms.
        12..=15 => {
            if config & 1 == 0 {
                480
            } else {
                960
            }
        }
        // CELT-only, NB / WB / SWB / FB: 2.5, 5, 10, 20 ms.
        _ => match config & 0b11 {
            0 => 120,
            1 => 240,
            2 => 480,
            _ => 960,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_configuration_has_its_table_2_duration() {
        let ms_x2: [u32; 32] = [
            20, 40, 80, 120, 20, 40, 80, 120, 20, 40, 80, 120, // SILK
            20, 40, 20, 40, // hybrid
            5, 10, 20, 40, 5, 10, 20, 40, 5, 10, 20, 40, 5, 10, 20, 40, // CELT
        ];
        for (config, half_ms) in (0u8..32).zip(ms_x2) {
            assert_eq!(frame_samples(config << 3), half_ms * 24, "config {config}");
        }
    }
}
