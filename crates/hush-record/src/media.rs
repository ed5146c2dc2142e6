//! Writers for the decrypt tool's plaintext output: video frames into IVF ([`IvfWriter`], for
//! VP8, VP9 and AV1) and Opus packets into Ogg ([`OggOpusWriter`], RFC 7845), with the Opus
//! packet duration ([`opus_packet_samples`], RFC 6716 section 3.1) that Ogg granule positions
//! are computed from. Both writers take what they are given: a recording's frames, decrypted,
//! are still untrusted, but a bad frame only makes a bad output file, never a panic.

mod ivf;
mod ogg_opus;
mod opus;

pub use ivf::{IVF_FILE_HEADER_LEN, IVF_FRAME_HEADER_LEN, IvfWriter};
pub use ogg_opus::{OPUS_TAGS_VENDOR, OggOpusWriter};
pub use opus::{OPUS_MAX_PACKET_SAMPLES, OPUS_SAMPLE_RATE, opus_packet_samples};
