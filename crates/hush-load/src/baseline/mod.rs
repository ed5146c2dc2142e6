//! The references a relay's cost is a ratio of: a bare UDP forwarder with the relay's fan-out,
//! and the same with the SRTP work a relay does per packet (decrypt once, rewrite the SSRC,
//! encrypt once per receiver), driven by the same packet stream as the real clients.
//!
//! [`forward`] is the forwarder (run as a process of its own so its CPU can be read from
//! /proc); [`drive`] is the generator and the receivers.
//!
//! # Wire format
//!
//! Every datagram is one of:
//!
//! - **hello**, participant → forwarder, 9 bytes: `0x01`, room (u32 BE), participant (u32 BE).
//!   The forwarder learns the participant's address from it. Sent again until acknowledged.
//! - **ack**, forwarder → participant, 9 bytes: `0x02`, room (u32 BE), participant (u32 BE).
//! - **media**: an RTP packet (first byte `0b10xx_xxxx`, version 2), SRTP-protected in
//!   [`Mode::Srtp`]. Its payload starts with the send time in µs since the run's epoch (u64 BE)
//!   and the sender's number in the run (u32 BE); the rest is zeros up to the stream's size.
//!
//! Anything else is dropped. Media from an address that sent no hello is dropped and counted.
//!
//! # Keys (Srtp)
//!
//! AES-128-CM-HMAC-SHA1-80. The master key and salt of each leg are derived from (room,
//! participant, direction) by a fixed mixing function, so both ends derive them without any
//! exchange: *up* keys protect what a participant sends, *down* keys what the forwarder sends
//! to it. They are not secret; this is a cost reference, not a secure channel.
//!
//! Per media packet the forwarder does what the relay does per subscriber leg: it unprotects
//! with the sender's up context (64-packet replay window), then, per receiver, rewrites the SSRC
//! to one of that receiver's leg and protects with the receiver's down context.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use rtc::crypto::{RTCCrypto, RTCCryptoProvider};
use rtc::rtp::header::Header;
use rtc::rtp::packet::Packet;
use rtc::shared::marshal::{Marshal, MarshalSize, Unmarshal};
use rtc::srtp::context::Context;
use rtc::srtp::option::srtp_replay_protection;
use rtc::srtp::protection_profile::ProtectionProfile;
use tokio::net::UdpSocket;
use tokio::task::JoinSet;

/// First byte of a hello.
const HELLO: u8 = 0x01;
/// First byte of an ack.
const ACK: u8 = 0x02;
/// Length of a hello and of an ack.
const HELLO_LEN: usize = 9;
/// Send time (u64) and sender number (u32) at the start of every media payload.
const STAMP_LEN: usize = 12;
/// Largest datagram read whole (bigger ones are truncated and fail to parse or authenticate).
const MAX_DATAGRAM: usize = 65_536;
/// The forwarder keeps state for at most this many participants; later hellos are dropped.
const MAX_PEERS: usize = 100_000;
/// [`drive`] runs at most this many participants (each a socket and two tasks).
const MAX_PARTICIPANTS: usize = 20_000;
/// The longest run [`drive`] accepts, s.
const MAX_SECONDS: f64 = 24.0 * 3600.0;
/// Replay window of the forwarder's up contexts, as a WebRTC endpoint's remote contexts.
const REPLAY_WINDOW: usize = 64;
/// Hello attempts per participant, and the wait for an ack after each.
const HELLO_TRIES: u32 = 50;
const HELLO_WAIT: Duration = Duration::from_millis(40);
/// The senders' pacing tick.
const TICK: Duration = Duration::from_millis(10);
/// Receivers keep reading this long after the senders end.
const DRAIN: Duration = Duration::from_millis(500);
/// RTP clock rates and payload types.
const AUDIO_CLOCK: u32 = 48_000;
const VIDEO_CLOCK: u32 = 90_000;
const AUDIO_PT: u8 = 111;
const VIDEO_PT: u8 = 96;
/// Latency histogram range, µs (values above are clamped) and precision.
const LATENCY_MAX_US: u64 = 10_000_000;
const LATENCY_SIGFIG: u8 = 2;

/// Which reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Mode {
    /// Bytes forwarded untouched.
    Plain,
    /// SRTP unprotected once per packet, SSRC rewritten and protected again per receiver.
    Srtp,
    /// The same fan-out on str0m ([`sfu`]): a whole WebRTC stack, no Hush logic.
    Str0m,
}

/// The packet stream each participant sends (the same numbers the real clients use).
#[derive(Clone, Debug)]
pub struct Stream {
    /// Rooms.
    pub rooms: usize,
    /// Participants per room; each receives every other one's packets.
    pub per_room: usize,
    /// How long the participants send, s.
    pub seconds: f64,
    /// Audio packets per second per participant (50 for 20 ms Opus frames).
    pub audio_pps: u32,
    /// RTP payload bytes per audio packet (at least 12: the stamp).
    pub audio_bytes: usize,
    /// Video bitrate per participant, kbit/s of RTP payload; 0 = no video.
    pub video_kbps: u32,
    /// Video frames per second.
    pub fps: u32,
    /// Largest RTP payload of a video packet; a frame is split into ceil(frame / this) packets.
    pub mtu_payload: usize,
}

/// What one reference run measured.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Measured {
    /// The reference.
    pub mode: Mode,
    /// Media packets the participants sent to the forwarder.
    pub sent_packets: u64,
    /// Media packets the receivers got from the forwarder (and, in Srtp, could unprotect).
    pub forwarded_packets: u64,
    /// What a lossless forwarder delivers: sent × (per_room − 1).
    pub expected_packets: u64,
    /// RTP payload bytes of the packets counted in `forwarded_packets`.
    pub received_bytes: u64,
    /// Send to receive, µs.
    pub latency_us: LatencySummary,
    /// From the first send to the end of the last sender, s (excludes hellos and the drain).
    pub wall_secs: f64,
}

/// Percentiles of a histogram.
#[derive(Debug, Default, serde::Serialize, Clone, Copy)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 95th percentile.
    pub p95: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest sample.
    pub max: u64,
}

impl LatencySummary {
    /// The summary of `h` (all zeros when it is empty).
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            p50: h.value_at_quantile(0.50),
            p95: h.value_at_quantile(0.95),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
        }
    }
}

/// What the forwarder counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ForwardStats {
    /// Packets sent to receivers (one per receiver per media packet).
    pub forwarded: u64,
    /// Media packets taken in from known participants.
    pub media: u64,
    /// Hellos taken (repeats included).
    pub hellos: u64,
    /// Hellos dropped: the participant table was full.
    pub hellos_dropped: u64,
    /// Media from an address that sent no hello: dropped.
    pub unknown: u64,
    /// Srtp: media that failed to parse, authenticate or pass the replay check: dropped.
    pub refused: u64,
    /// Datagrams that are neither hello nor media: dropped.
    pub malformed: u64,
    /// Sends to a receiver that failed.
    pub send_errors: u64,
}

/// Keys' direction: what a participant sends (up) or receives (down).
#[derive(Clone, Copy)]
enum Dir {
    Up,
    Down,
}

/// splitmix64's finaliser: the fixed mixing function keys and SSRCs derive from.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn id(room: u32, participant: u32) -> u64 {
    (u64::from(room) << 32) | u64::from(participant)
}

/// The master key and salt of a participant's leg.
fn leg_keys(room: u32, participant: u32, dir: Dir) -> ([u8; 16], [u8; 14]) {
    let tag = match dir {
        Dir::Up => 0x7570_7570_7570_7570,
        Dir::Down => 0x646f_776e_646f_776e,
    };
    let mut s = mix(id(room, participant)) ^ tag;
    let mut out = [0u8; 32];
    for chunk in out.chunks_mut(8) {
        s = mix(s);
        chunk.copy_from_slice(&s.to_be_bytes());
    }
    let mut key = [0u8; 16];
    let mut salt = [0u8; 14];
    key.copy_from_slice(&out[..16]);
    salt.copy_from_slice(&out[16..30]);
    (key, salt)
}

/// A participant's SRTP context for `dir`, with a replay window or without.
fn leg_context(
    crypto: &dyn RTCCrypto,
    room: u32,
    participant: u32,
    dir: Dir,
    replay: bool,
) -> io::Result<Context> {
    let (key, salt) = leg_keys(room, participant, dir);
    let option = replay.then(|| srtp_replay_protection(REPLAY_WINDOW));
    Context::new(
        &key,
        &salt,
        ProtectionProfile::Aes128CmHmacSha1_80,
        option,
        None,
        crypto,
    )
    .map_err(|e| io::Error::other(format!("SRTP context: {e}")))
}

/// A participant's up and down SRTP contexts (none in [`Mode::Plain`], without `provider`); the
/// up one with a replay window if `replay_up` (the forwarder's side).
fn leg_contexts(
    provider: Option<&Arc<dyn RTCCryptoProvider>>,
    room: u32,
    participant: u32,
    replay_up: bool,
) -> io::Result<(Option<Context>, Option<Context>)> {
    let Some(p) = provider else {
        return Ok((None, None));
    };
    Ok((
        Some(leg_context(
            p.crypto(),
            room,
            participant,
            Dir::Up,
            replay_up,
        )?),
        Some(leg_context(
            p.crypto(),
            room,
            participant,
            Dir::Down,
            false,
        )?),
    ))
}

fn crypto_provider() -> io::Result<Arc<dyn RTCCryptoProvider>> {
    rtc::crypto::default_provider().map_err(|e| io::Error::other(format!("crypto provider: {e}")))
}

/// The SSRC of a sender's stream (0 audio, 1 video).
fn sender_ssrc(room: u32, participant: u32, kind: u64) -> u32 {
    (mix(id(room, participant) ^ (kind << 62)) as u32).max(1)
}

/// The SSRC that stream `src` carries on `receiver`'s leg.
fn leg_ssrc(room: u32, receiver: u32, src: u32) -> u32 {
    (mix(mix(id(room, receiver)) ^ u64::from(src)) as u32).max(1)
}

fn hello_bytes(kind: u8, room: u32, participant: u32) -> [u8; HELLO_LEN] {
    let mut b = [0u8; HELLO_LEN];
    b[0] = kind;
    b[1..5].copy_from_slice(&room.to_be_bytes());
    b[5..9].copy_from_slice(&participant.to_be_bytes());
    b
}

fn parse_hello(b: &[u8]) -> Option<(u32, u32)> {
    if b.len() != HELLO_LEN {
        return None;
    }
    let room = u32::from_be_bytes([b[1], b[2], b[3], b[4]]);
    let participant = u32::from_be_bytes([b[5], b[6], b[7], b[8]]);
    Some((room, participant))
}

fn is_rtp(b: &[u8]) -> bool {
    b.first().is_some_and(|b0| b0 >> 6 == 2)
}

/// µs since `epoch` (saturating).
fn micros_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// A media payload of `size` bytes (at least [`STAMP_LEN`]): the send time in µs since
/// `epoch`, the sender's number, then zeros.
fn stamped(size: usize, number: u32, epoch: Instant) -> Vec<u8> {
    let mut payload = vec![0u8; size.max(STAMP_LEN)];
    payload[..8].copy_from_slice(&micros_since(epoch).to_be_bytes());
    payload[8..12].copy_from_slice(&number.to_be_bytes());
    payload
}

/// What one receiver counted: stamped payloads, their bytes and their latency.
struct Tally {
    packets: u64,
    bytes: u64,
    latency: Histogram<u64>,
}

impl Tally {
    fn new() -> io::Result<Self> {
        Ok(Self {
            packets: 0,
            bytes: 0,
            latency: drive::new_histogram()?,
        })
    }

    /// Counts `payload`, received now, with its latency from its stamp (too short: not counted).
    fn record(&mut self, payload: &[u8], epoch: Instant) {
        let Some(stamp) = payload.get(..8) else {
            return;
        };
        let mut send_us = [0u8; 8];
        send_us.copy_from_slice(stamp);
        self.packets += 1;
        self.bytes += payload.len() as u64;
        self.latency
            .saturating_record(micros_since(epoch).saturating_sub(u64::from_be_bytes(send_us)));
    }
}

/// How many audio packets and video frames a sender owes, paced from its start.
struct Schedule {
    audio_pps: f64,
    fps: f64,
    seconds: f64,
    audio_total: u64,
    frames_total: u64,
    audio_sent: u64,
    frames_sent: u64,
}

impl Schedule {
    /// `s`'s audio, and its video unless `video` is false (no frame to send).
    fn new(s: &Stream, video: bool) -> Self {
        let (audio_pps, fps) = (f64::from(s.audio_pps), f64::from(s.fps));
        Self {
            audio_pps,
            fps,
            seconds: s.seconds,
            audio_total: (s.seconds * audio_pps).floor() as u64,
            frames_total: if video {
                (s.seconds * fps).floor() as u64
            } else {
                0
            },
            audio_sent: 0,
            frames_sent: 0,
        }
    }

    /// The audio packets and video frames due `elapsed` s after the start and not yet sent,
    /// counted as sent now.
    fn due(&mut self, elapsed: f64) -> (u64, u64) {
        let elapsed = elapsed.min(self.seconds);
        let audio = ((elapsed * self.audio_pps).floor() as u64).min(self.audio_total);
        let frames = ((elapsed * self.fps).floor() as u64).min(self.frames_total);
        let due = (
            audio.saturating_sub(self.audio_sent),
            frames.saturating_sub(self.frames_sent),
        );
        self.audio_sent = self.audio_sent.max(audio);
        self.frames_sent = self.frames_sent.max(frames);
        due
    }
}

/// Errors a UDP socket reports for an earlier datagram (an ICMP unreachable): not fatal.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

mod drive;
mod forward;
pub mod sfu;
#[cfg(test)]
mod tests;

pub use drive::drive;
pub use forward::{forward, forward_counting};
