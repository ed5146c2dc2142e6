//! The plaintext files `open` writes: VP8 into IVF (from the first keyframe on, with its
//! size, timestamps from RTP at 90 kHz), Opus into Ogg Opus (granule positions from the RTP
//! timestamps at 48 kHz, so silence the sender did not send stays silence). A file is created
//! with its first frame: a track with nothing decrypted leaves no file.

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

use crate::manifest::{TrackInfo, TrackKind};
use crate::media::{IvfWriter, OggOpusWriter, opus_packet_samples};

/// RTP timestamps turned into a running total (wraps and reordering handled: a step back is
/// taken as no time).
#[derive(Debug, Default)]
struct Clock {
    last: Option<u32>,
    total: u64,
}

impl Clock {
    fn at(&mut self, ts: u32) -> u64 {
        if let Some(last) = self.last {
            let step = ts.wrapping_sub(last);
            if step < 1 << 31 {
                self.total += u64::from(step);
                self.last = Some(ts);
            }
        } else {
            self.last = Some(ts);
        }
        self.total
    }
}

enum Writer {
    None,
    Ivf(IvfWriter<BufWriter<File>>),
    Ogg(OggOpusWriter<BufWriter<File>>),
}

/// One track's output file.
pub(super) struct TrackOutput {
    path: PathBuf,
    kind: TrackKind,
    serial: u32,
    writer: Writer,
    clock: Clock,
    /// Audio: granule position of the last packet written.
    granule: u64,
    /// Video: pts of the last frame written (90 kHz).
    pts: u64,
}

impl TrackOutput {
    pub(super) fn new(out: &Path, index: usize, track: &TrackInfo) -> Self {
        let who: String = track
            .participant
            .chars()
            .take(48)
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let ext = match track.kind {
            TrackKind::Audio => "ogg",
            TrackKind::Video => "ivf",
        };
        let name = format!("{index}-{who}-{}.{ext}", track.codec);
        Self {
            path: out.join(name),
            kind: track.kind,
            serial: u32::try_from(index).unwrap_or(0).wrapping_add(1),
            writer: Writer::None,
            clock: Clock::default(),
            granule: 0,
            pts: 0,
        }
    }

    /// Writes one decrypted frame; `false` when it is skipped (video before its first
    /// keyframe: nothing could decode it).
    pub(super) fn write(&mut self, frame: &[u8], rtp_ts: u32) -> io::Result<bool> {
        match self.kind {
            TrackKind::Video => self.video(frame, rtp_ts),
            TrackKind::Audio => self.audio(frame, rtp_ts),
        }
    }

    fn video(&mut self, frame: &[u8], rtp_ts: u32) -> io::Result<bool> {
        if matches!(self.writer, Writer::None) {
            let Some((w, h)) = vp8_keyframe_size(frame) else {
                return Ok(false);
            };
            let file = BufWriter::new(File::create(&self.path)?);
            self.writer = Writer::Ivf(IvfWriter::new(file, *b"VP80", w, h, 90_000, 1)?);
        }
        let pts = self.clock.at(rtp_ts);
        if let Writer::Ivf(w) = &mut self.writer {
            w.write_frame(pts, frame)?;
            self.pts = pts;
        }
        Ok(true)
    }

    fn audio(&mut self, packet: &[u8], rtp_ts: u32) -> io::Result<bool> {
        let Some(samples) = opus_packet_samples(packet) else {
            return Ok(false);
        };
        if matches!(self.writer, Writer::None) {
            // TOC bit 2: stereo.
            let channels = if packet.first().is_some_and(|t| t & 0x04 != 0) {
                2
            } else {
                1
            };
            let file = BufWriter::new(File::create(&self.path)?);
            self.writer = Writer::Ogg(OggOpusWriter::new(file, self.serial, channels, 0, 48_000)?);
        }
        let start = self.clock.at(rtp_ts);
        let granule = (start + u64::from(samples)).max(self.granule);
        if let Writer::Ogg(w) = &mut self.writer {
            w.write_packet(packet, granule)?;
            self.granule = granule;
        }
        Ok(true)
    }

    /// Closes the file: its path (if one was written) and its media duration in ms.
    pub(super) fn finish(self) -> io::Result<(Option<PathBuf>, u64)> {
        match self.writer {
            Writer::None => Ok((None, 0)),
            Writer::Ivf(w) => {
                let mut out = w.finish()?;
                io::Write::flush(&mut out)?;
                Ok((Some(self.path), self.pts / 90))
            }
            Writer::Ogg(w) => {
                let mut out = w.finish(self.granule)?;
                io::Write::flush(&mut out)?;
                Ok((Some(self.path), self.granule / 48))
            }
        }
    }
}

/// A VP8 keyframe's size (RFC 6386 section 9.1): frame tag bit 0 clear, the start code, then
/// 14-bit width and height.
fn vp8_keyframe_size(frame: &[u8]) -> Option<(u16, u16)> {
    let b = frame.get(..10)?;
    if b[0] & 1 != 0 || b[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u16::from_le_bytes([b[6], b[7]]) & 0x3fff;
    let h = u16::from_le_bytes([b[8], b[9]]) & 0x3fff;
    Some((w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_time_runs_on_across_wraps_and_ignores_steps_back() {
        let mut c = Clock::default();
        assert_eq!(c.at(u32::MAX - 10), 0);
        assert_eq!(c.at(5), 16);
        assert_eq!(c.at(3), 16);
        assert_eq!(c.at(1005), 1016);
    }

    #[test]
    fn only_a_vp8_keyframe_gives_a_size() {
        let mut key = vec![0x50, 0x01, 0x00, 0x9d, 0x01, 0x2a];
        key.extend_from_slice(&640u16.to_le_bytes());
        key.extend_from_slice(&(360u16 | 0x4000).to_le_bytes());
        assert_eq!(vp8_keyframe_size(&key), Some((640, 360)));
        let mut delta = key.clone();
        delta[0] |= 1;
        assert_eq!(vp8_keyframe_size(&delta), None);
        assert_eq!(vp8_keyframe_size(&key[..9]), None);
    }
}
