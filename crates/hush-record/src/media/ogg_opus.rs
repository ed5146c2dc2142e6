//! Ogg Opus (RFC 7845): Opus packets in an Ogg stream, as `.opus` files.
//!
//! The stream this writer produces: the identification header `OpusHead` (RFC 7845 section
//! 5.1, channel mapping family 0: mono or stereo) alone on the first page, the comment header
//! `OpusTags` (section 5.2, vendor [`OPUS_TAGS_VENDOR`], no comments) alone on the second,
//! then the audio packets, a page ending after the packet that completes about a second of
//! audio, and the last packet on the last page, flagged end of stream. Every page's granule
//! position is the caller's for the last packet that ends on it.

use std::io::{self, Write};

use ogg::writing::{PacketWriteEndInfo, PacketWriter};

use super::opus::OPUS_SAMPLE_RATE;

/// The vendor string of the `OpusTags` header.
pub const OPUS_TAGS_VENDOR: &str = "hush-record";

/// The packet handed in last: it is written when the next one comes, or by `finish` with the
/// end-of-stream flag.
#[derive(Debug)]
enum Pending {
    /// The `OpusTags` header (nothing written after `OpusHead` yet).
    Tags(Vec<u8>),
    /// An audio packet and its granule position.
    Audio(Vec<u8>, u64),
}

/// Writes Opus packets into an Ogg Opus stream (see the [module docs](self)). The stream is
/// complete only after [`OggOpusWriter::finish`], which writes the last packet.
pub struct OggOpusWriter<W: Write> {
    ogg: PacketWriter<'static, W>,
    serial: u32,
    pending: Pending,
    /// Granule position of the last page written (0: headers only).
    page_granule: u64,
}

impl<W: Write> std::fmt::Debug for OggOpusWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OggOpusWriter")
            .field("serial", &self.serial)
            .field("pending", &self.pending)
            .field("page_granule", &self.page_granule)
            .finish_non_exhaustive()
    }
}

impl<W: Write> OggOpusWriter<W> {
    /// Starts a stream with the Ogg serial number `serial`, writing its `OpusHead` page:
    /// `channels` 1 or 2 (anything else is refused with [`io::ErrorKind::InvalidInput`]),
    /// `pre_skip` samples at 48 kHz that the decoder drops at the start, and the sample rate of
    /// the encoder's input (informational; 0 if unknown). The `OpusTags` page follows with the
    /// first packet, or at `finish`.
    pub fn new(
        out: W,
        serial: u32,
        channels: u8,
        pre_skip: u16,
        input_sample_rate: u32,
    ) -> io::Result<Self> {
        if !matches!(channels, 1 | 2) {
            return Err(invalid(
                "Ogg Opus channel mapping family 0 is mono or stereo",
            ));
        }
        let mut head = Vec::with_capacity(19);
        head.extend_from_slice(b"OpusHead");
        head.push(1); // version
        head.push(channels);
        head.extend_from_slice(&pre_skip.to_le_bytes());
        head.extend_from_slice(&input_sample_rate.to_le_bytes());
        head.extend_from_slice(&0i16.to_le_bytes()); // output gain
        head.push(0); // channel mapping family
        let mut ogg = PacketWriter::new(out);
        ogg.write_packet(head, serial, PacketWriteEndInfo::EndPage, 0)?;

        let vendor = OPUS_TAGS_VENDOR.as_bytes();
        let mut tags = Vec::with_capacity(16 + vendor.len());
        tags.extend_from_slice(b"OpusTags");
        tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
        tags.extend_from_slice(vendor);
        tags.extend_from_slice(&0u32.to_le_bytes()); // no user comments
        Ok(Self {
            ogg,
            serial,
            pending: Pending::Tags(tags),
            page_granule: 0,
        })
    }

    /// Adds one Opus packet; `granule` is the total of 48 kHz samples at the end of this
    /// packet, pre-skip included (RFC 7845 section 4): the previous packet's plus
    /// [`opus_packet_samples`](super::opus_packet_samples) of this one. Refused with
    /// [`io::ErrorKind::InvalidInput`]: an empty packet, a granule below the previous one, or
    /// `u64::MAX` (Ogg's "no packet ends on this page").
    pub fn write_packet(&mut self, data: &[u8], granule: u64) -> io::Result<()> {
        if data.is_empty() {
            return Err(invalid("an Opus packet has at least one byte"));
        }
        if granule == u64::MAX || granule < self.last_granule() {
            return Err(invalid("granule positions must not decrease"));
        }
        let next = Pending::Audio(data.to_vec(), granule);
        match std::mem::replace(&mut self.pending, next) {
            Pending::Tags(tags) => {
                self.ogg
                    .write_packet(tags, self.serial, PacketWriteEndInfo::EndPage, 0)?;
            }
            Pending::Audio(packet, at) => {
                let end = if at - self.page_granule >= u64::from(OPUS_SAMPLE_RATE) {
                    self.page_granule = at;
                    PacketWriteEndInfo::EndPage
                } else {
                    PacketWriteEndInfo::NormalPacket
                };
                self.ogg.write_packet(packet, self.serial, end, at)?;
            }
        }
        Ok(())
    }

    /// Writes the last packet on the last page, flagged end of stream, flushes, and returns the
    /// writer. `final_granule` is that page's granule position: the last packet's for the
    /// whole stream, or less to have players drop the end of the last packet (RFC 7845
    /// section 4.5), but not below the previous page's (refused with
    /// [`io::ErrorKind::InvalidInput`], nothing written). Without audio packets the stream
    /// ends on the `OpusTags` page, at granule 0, whatever `final_granule`.
    pub fn finish(mut self, final_granule: u64) -> io::Result<W> {
        match self.pending {
            Pending::Tags(tags) => {
                self.ogg
                    .write_packet(tags, self.serial, PacketWriteEndInfo::EndStream, 0)?;
            }
            Pending::Audio(packet, at) => {
                if final_granule > at || final_granule < self.page_granule {
                    return Err(invalid(
                        "the final granule must lie between the previous page's and the last packet's",
                    ));
                }
                self.ogg.write_packet(
                    packet,
                    self.serial,
                    PacketWriteEndInfo::EndStream,
                    final_granule,
                )?;
            }
        }
        let mut out = self.ogg.into_inner();
        out.flush()?;
        Ok(out)
    }

    fn last_granule(&self) -> u64 {
        match self.pending {
            Pending::Tags(_) => 0,
            Pending::Audio(_, at) => at,
        }
    }
}

fn invalid(why: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why)
}
