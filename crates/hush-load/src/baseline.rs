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

use bytes::{BufMut, Bytes, BytesMut};
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

/// One participant as the forwarder knows it.
struct Peer {
    addr: SocketAddr,
    room: u32,
    participant: u32,
    /// Srtp: unprotects what it sends.
    up: Option<Context>,
    /// Srtp: protects what it receives.
    down: Option<Context>,
}

/// The forwarder: binds nothing itself; reads `socket`, learns each participant's address from
/// its hello (see the module doc), and sends every media packet from a participant to every
/// other participant of its room. [`Mode::Plain`]: bytes untouched. [`Mode::Srtp`]: unprotected
/// with the sender's context, then per receiver the SSRC rewritten to that receiver's leg and
/// protected with the receiver's context. Runs until `stop` resolves. Prints nothing. Returns
/// the packets forwarded.
pub async fn forward(
    mode: Mode,
    socket: UdpSocket,
    stop: impl Future<Output = ()>,
) -> io::Result<u64> {
    forward_counting(mode, socket, stop)
        .await
        .map(|s| s.forwarded)
}

/// [`forward`], returning everything it counted.
pub async fn forward_counting(
    mode: Mode,
    socket: UdpSocket,
    stop: impl Future<Output = ()>,
) -> io::Result<ForwardStats> {
    let provider = match mode {
        Mode::Plain => None,
        Mode::Srtp => Some(crypto_provider()?),
    };
    let mut stats = ForwardStats::default();
    let mut peers: Vec<Peer> = Vec::new();
    let mut by_addr: HashMap<SocketAddr, usize> = HashMap::new();
    let mut by_id: HashMap<(u32, u32), usize> = HashMap::new();
    let mut rooms: HashMap<u32, Vec<usize>> = HashMap::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut stop = std::pin::pin!(stop);

    loop {
        let (len, from) = tokio::select! {
            biased;
            () = stop.as_mut() => break,
            r = socket.recv_from(&mut buf) => match r {
                Ok(v) => v,
                Err(e) if transient(&e) => continue,
                Err(e) => return Err(e),
            },
        };
        let datagram = &buf[..len];

        if datagram.first() == Some(&HELLO) {
            let Some((room, participant)) = parse_hello(datagram) else {
                stats.malformed += 1;
                continue;
            };
            stats.hellos += 1;
            match by_id.get(&(room, participant)).copied() {
                Some(i) => {
                    // The same participant from a new address (or a repeat): follow it.
                    let old = peers[i].addr;
                    if old != from {
                        by_addr.remove(&old);
                        by_addr.insert(from, i);
                        peers[i].addr = from;
                    }
                }
                None => {
                    if peers.len() >= MAX_PEERS || by_addr.contains_key(&from) {
                        stats.hellos_dropped += 1;
                        continue;
                    }
                    let (up, down) = match &provider {
                        None => (None, None),
                        Some(p) => (
                            Some(leg_context(p.crypto(), room, participant, Dir::Up, true)?),
                            Some(leg_context(
                                p.crypto(),
                                room,
                                participant,
                                Dir::Down,
                                false,
                            )?),
                        ),
                    };
                    let i = peers.len();
                    peers.push(Peer {
                        addr: from,
                        room,
                        participant,
                        up,
                        down,
                    });
                    by_addr.insert(from, i);
                    by_id.insert((room, participant), i);
                    rooms.entry(room).or_default().push(i);
                }
            }
            let ack = hello_bytes(ACK, room, participant);
            if socket.send_to(&ack, from).await.is_err() {
                stats.send_errors += 1;
            }
            continue;
        }

        if !is_rtp(datagram) {
            stats.malformed += 1;
            continue;
        }
        let Some(&sender) = by_addr.get(&from) else {
            stats.unknown += 1;
            continue;
        };
        let room = peers[sender].room;
        let Some(members) = rooms.get(&room) else {
            continue;
        };

        match mode {
            Mode::Plain => {
                stats.media += 1;
                for &r in members {
                    if r == sender {
                        continue;
                    }
                    let to = peers[r].addr;
                    match socket.send_to(datagram, to).await {
                        Ok(_) => stats.forwarded += 1,
                        Err(_) => stats.send_errors += 1,
                    }
                }
            }
            Mode::Srtp => {
                let mut slice = datagram;
                let Ok(header) = Header::unmarshal(&mut slice) else {
                    stats.refused += 1;
                    continue;
                };
                let Some(up) = peers[sender].up.as_mut() else {
                    stats.refused += 1;
                    continue;
                };
                let Ok(mut plain) = up.decrypt_rtp_with_header(datagram, &header) else {
                    stats.refused += 1;
                    continue;
                };
                stats.media += 1;
                let src = header.ssrc;
                let mut leg = header;
                for &r in members {
                    if r == sender {
                        continue;
                    }
                    let peer = &mut peers[r];
                    let to = peer.addr;
                    let ssrc = leg_ssrc(room, peer.participant, src);
                    leg.ssrc = ssrc;
                    if plain.len() >= 12 {
                        plain[8..12].copy_from_slice(&ssrc.to_be_bytes());
                    }
                    let Some(down) = peer.down.as_mut() else {
                        continue;
                    };
                    let Ok(out) = down.encrypt_rtp_with_header(&plain, &leg) else {
                        stats.send_errors += 1;
                        continue;
                    };
                    match socket.send_to(&out, to).await {
                        Ok(_) => stats.forwarded += 1,
                        Err(_) => stats.send_errors += 1,
                    }
                }
            }
        }
    }
    Ok(stats)
}

/// A participant's outgoing stream state.
struct Sender {
    socket: Arc<UdpSocket>,
    forwarder: SocketAddr,
    /// The sender's number in the run, in every payload.
    number: u32,
    up: Option<Context>,
    audio: Track,
    video: Track,
    audio_bytes: usize,
    /// Payload sizes of one video frame's packets (empty: no video).
    frame: Vec<usize>,
    epoch: Instant,
}

/// One RTP stream's counters.
struct Track {
    ssrc: u32,
    pt: u8,
    seq: u16,
    ts: u32,
    /// Timestamp step per packet (audio) or frame (video).
    step: u32,
}

impl Sender {
    /// Sends one RTP packet; `Ok(false)` when the socket refused it.
    async fn send(&mut self, video: bool, size: usize, marker: bool) -> io::Result<bool> {
        let send_us = u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
        let mut payload = BytesMut::with_capacity(size.max(STAMP_LEN));
        payload.put_u64(send_us);
        payload.put_u32(self.number);
        payload.resize(size.max(STAMP_LEN), 0);
        let track = if video {
            &mut self.video
        } else {
            &mut self.audio
        };
        let header = Header {
            version: 2,
            marker,
            payload_type: track.pt,
            sequence_number: track.seq,
            timestamp: track.ts,
            ssrc: track.ssrc,
            ..Header::default()
        };
        track.seq = track.seq.wrapping_add(1);
        let packet = Packet {
            header,
            payload: payload.freeze(),
        };
        let raw: Bytes = packet
            .marshal()
            .map_err(|e| io::Error::other(format!("RTP marshal: {e}")))?
            .freeze();
        let wire = match self.up.as_mut() {
            None => raw,
            Some(ctx) => ctx
                .encrypt_rtp_with_header(&raw, &packet.header)
                .map_err(|e| io::Error::other(format!("SRTP protect: {e}")))?
                .freeze(),
        };
        match self.socket.send_to(&wire, self.forwarder).await {
            Ok(_) => Ok(true),
            Err(e) if transient(&e) || e.raw_os_error().is_some() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Paces the stream from `start` for `seconds`; returns the packets sent.
    async fn run(
        mut self,
        start: tokio::time::Instant,
        seconds: f64,
        s: &Stream,
    ) -> io::Result<u64> {
        let audio_total = (seconds * f64::from(s.audio_pps)).floor() as u64;
        let frames_total = if self.frame.is_empty() {
            0
        } else {
            (seconds * f64::from(s.fps)).floor() as u64
        };
        let (mut audio_sent, mut frames_sent, mut packets) = (0u64, 0u64, 0u64);
        let mut tick = tokio::time::interval_at(start, TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let elapsed = start.elapsed().as_secs_f64().min(seconds);
            let audio_due = ((elapsed * f64::from(s.audio_pps)).floor() as u64).min(audio_total);
            while audio_sent < audio_due {
                if self.send(false, self.audio_bytes, false).await? {
                    packets += 1;
                }
                self.audio.ts = self.audio.ts.wrapping_add(self.audio.step);
                audio_sent += 1;
            }
            let frames_due = ((elapsed * f64::from(s.fps)).floor() as u64).min(frames_total);
            while frames_sent < frames_due {
                let n = self.frame.len();
                for k in 0..n {
                    let size = self.frame[k];
                    if self.send(true, size, k + 1 == n).await? {
                        packets += 1;
                    }
                }
                self.video.ts = self.video.ts.wrapping_add(self.video.step);
                frames_sent += 1;
            }
            if elapsed >= seconds {
                return Ok(packets);
            }
        }
    }
}

/// What one receiver counted.
struct Tally {
    packets: u64,
    bytes: u64,
    latency: Histogram<u64>,
}

fn new_histogram() -> io::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, LATENCY_MAX_US, LATENCY_SIGFIG)
        .map_err(|e| io::Error::other(format!("histogram: {e:?}")))
}

/// Reads until `end`: counts the forwarder's media packets (unprotected with `down` in Srtp),
/// their payload bytes and their latency.
async fn receive(
    socket: Arc<UdpSocket>,
    forwarder: SocketAddr,
    mut down: Option<Context>,
    epoch: Instant,
    end: tokio::time::Instant,
) -> io::Result<Tally> {
    let mut tally = Tally {
        packets: 0,
        bytes: 0,
        latency: new_histogram()?,
    };
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (len, from) = match tokio::time::timeout_at(end, socket.recv_from(&mut buf)).await {
            Err(_) => return Ok(tally),
            Ok(Err(e)) if transient(&e) => continue,
            Ok(Err(e)) => return Err(e),
            Ok(Ok(v)) => v,
        };
        if from != forwarder || !is_rtp(&buf[..len]) {
            continue; // a late ack, or not ours
        }
        let datagram = &buf[..len];
        let mut slice = datagram;
        let Ok(header) = Header::unmarshal(&mut slice) else {
            continue;
        };
        let offset = header.marshal_size();
        let plain;
        let payload: &[u8] = match down.as_mut() {
            None => datagram.get(offset..).unwrap_or_default(),
            Some(ctx) => {
                let Ok(p) = ctx.decrypt_rtp_with_header(datagram, &header) else {
                    continue;
                };
                plain = p;
                plain.get(offset..).unwrap_or_default()
            }
        };
        let Some(stamp) = payload.get(..8) else {
            continue;
        };
        let mut send_us = [0u8; 8];
        send_us.copy_from_slice(stamp);
        let now_us = u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
        tally.packets += 1;
        tally.bytes += payload.len() as u64;
        tally
            .latency
            .saturating_record(now_us.saturating_sub(u64::from_be_bytes(send_us)));
    }
}

/// Sends hellos until the forwarder acknowledges one.
async fn hello(
    socket: &UdpSocket,
    forwarder: SocketAddr,
    room: u32,
    participant: u32,
) -> io::Result<()> {
    let msg = hello_bytes(HELLO, room, participant);
    let want = hello_bytes(ACK, room, participant);
    let mut buf = [0u8; 64];
    for _ in 0..HELLO_TRIES {
        match socket.send_to(&msg, forwarder).await {
            Ok(_) => {}
            Err(e) if transient(&e) => {}
            Err(e) => return Err(e),
        }
        let deadline = tokio::time::Instant::now() + HELLO_WAIT;
        while let Ok(r) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await {
            match r {
                Ok((len, from)) if from == forwarder && buf[..len] == want => return Ok(()),
                Ok(_) => {}
                Err(e) if transient(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        format!(
            "no ack from the forwarder at {forwarder} for room {room} participant {participant}"
        ),
    ))
}

/// Payload sizes of one video frame's packets: the frame's bytes split evenly into as few
/// packets of at most `mtu_payload` as hold them.
fn frame_sizes(s: &Stream) -> Vec<usize> {
    if s.video_kbps == 0 || s.fps == 0 {
        return Vec::new();
    }
    let bytes = (u64::from(s.video_kbps) * 1000 / 8 / u64::from(s.fps)).max(1) as usize;
    let mtu = s.mtu_payload.max(STAMP_LEN);
    let n = bytes.div_ceil(mtu);
    (0..n)
        .map(|k| (bytes / n + usize::from(k < bytes % n)).max(STAMP_LEN))
        .collect()
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what.to_string())
}

/// The generator and the receivers: one UDP socket per participant on the loopback address of
/// `forwarder`'s family; hellos until acknowledged; then for `stream.seconds` each participant
/// sends its audio and video (see [`Stream`]) as RTP, paced on a 10 ms tick, its packets
/// stamped with the send time and protected with its up context in [`Mode::Srtp`]. Receivers
/// count what arrives and record its latency until 500 ms after the senders end.
pub async fn drive(mode: Mode, forwarder: SocketAddr, stream: &Stream) -> io::Result<Measured> {
    let n = stream
        .rooms
        .checked_mul(stream.per_room)
        .filter(|&n| n > 0 && n <= MAX_PARTICIPANTS)
        .ok_or_else(|| invalid("rooms × per_room: 1 to 20000 participants"))?;
    if !(stream.seconds.is_finite() && (0.0..=MAX_SECONDS).contains(&stream.seconds)) {
        return Err(invalid("seconds: 0 to 86400"));
    }
    if stream.fps == 0 && stream.video_kbps > 0 {
        return Err(invalid("fps: 0 with video"));
    }
    let per_room = u32::try_from(stream.per_room).map_err(|_| invalid("per_room"))?;
    let provider = match mode {
        Mode::Plain => None,
        Mode::Srtp => Some(crypto_provider()?),
    };
    let local: IpAddr = match forwarder {
        SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
        SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
    };

    // Sockets, and the forwarder's acks.
    let mut sockets = Vec::with_capacity(n);
    for _ in 0..n {
        sockets.push(Arc::new(UdpSocket::bind((local, 0)).await?));
    }
    let mut hellos = JoinSet::new();
    for (i, socket) in sockets.iter().enumerate() {
        let socket = Arc::clone(socket);
        let (room, participant) = (i as u32 / per_room, i as u32 % per_room);
        hellos.spawn(async move { hello(&socket, forwarder, room, participant).await });
    }
    while let Some(r) = hellos.join_next().await {
        r.map_err(io::Error::other)??;
    }

    // Media. Start phases are spread over a tick so that not every sender wakes at once.
    let epoch = Instant::now();
    let start = tokio::time::Instant::now();
    let send_for = Duration::try_from_secs_f64(stream.seconds).map_err(|_| invalid("seconds"))?;
    let recv_end = start + TICK + send_for + DRAIN;
    let frame = frame_sizes(stream);
    let mut receivers = JoinSet::new();
    let mut senders = JoinSet::new();
    for (i, socket) in sockets.iter().enumerate() {
        let (room, participant) = (i as u32 / per_room, i as u32 % per_room);
        let (up, down) = match &provider {
            None => (None, None),
            Some(p) => (
                Some(leg_context(p.crypto(), room, participant, Dir::Up, false)?),
                Some(leg_context(
                    p.crypto(),
                    room,
                    participant,
                    Dir::Down,
                    false,
                )?),
            ),
        };
        receivers.spawn(receive(
            Arc::clone(socket),
            forwarder,
            down,
            epoch,
            recv_end,
        ));
        let sender = Sender {
            socket: Arc::clone(socket),
            forwarder,
            number: i as u32,
            up,
            audio: Track {
                ssrc: sender_ssrc(room, participant, 0),
                pt: AUDIO_PT,
                seq: mix(i as u64) as u16,
                ts: mix(i as u64 + 1) as u32,
                step: AUDIO_CLOCK / stream.audio_pps.max(1),
            },
            video: Track {
                ssrc: sender_ssrc(room, participant, 1),
                pt: VIDEO_PT,
                seq: mix(i as u64 + 2) as u16,
                ts: mix(i as u64 + 3) as u32,
                step: VIDEO_CLOCK / stream.fps.max(1),
            },
            audio_bytes: stream.audio_bytes,
            frame: frame.clone(),
            epoch,
        };
        let phase = TICK.mul_f64((i % 10) as f64 / 10.0);
        let s = stream.clone();
        senders.spawn(async move { sender.run(start + phase, s.seconds, &s).await });
    }

    let mut sent = 0u64;
    let mut failure = None;
    while let Some(r) = senders.join_next().await {
        match r.map_err(io::Error::other).and_then(|r| r) {
            Ok(p) => sent += p,
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    let wall_secs = start.elapsed().as_secs_f64();
    if let Some(e) = failure {
        receivers.abort_all();
        return Err(e);
    }

    let mut latency = new_histogram()?;
    let (mut forwarded, mut bytes) = (0u64, 0u64);
    while let Some(r) = receivers.join_next().await {
        let tally = r.map_err(io::Error::other)??;
        forwarded += tally.packets;
        bytes += tally.bytes;
        latency
            .add(&tally.latency)
            .map_err(|e| io::Error::other(format!("histogram: {e:?}")))?;
    }
    Ok(Measured {
        mode,
        sent_packets: sent,
        forwarded_packets: forwarded,
        expected_packets: sent * (stream.per_room as u64 - 1),
        received_bytes: bytes,
        latency_us: LatencySummary::of(&latency),
        wall_secs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    fn stream() -> Stream {
        Stream {
            rooms: 1,
            per_room: 3,
            seconds: 1.0,
            audio_pps: 50,
            audio_bytes: 100,
            video_kbps: 300,
            fps: 30,
            mtu_payload: 1200,
        }
    }

    async fn start_forwarder(
        mode: Mode,
    ) -> (
        SocketAddr,
        oneshot::Sender<()>,
        tokio::task::JoinHandle<io::Result<ForwardStats>>,
    ) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(forward_counting(mode, socket, async move {
            let _ = rx.await;
        }));
        (addr, tx, task)
    }

    async fn run(mode: Mode) {
        let (addr, tx, task) = start_forwarder(mode).await;
        let s = stream();
        let m = drive(mode, addr, &s).await.unwrap();
        tx.send(()).unwrap();
        let stats = task.await.unwrap().unwrap();

        // 1 s × (50 audio + 30 frames × 2 packets) × 3 participants, each to 2 others.
        assert_eq!(frame_sizes(&s), vec![625, 625]);
        assert_eq!(m.mode, mode);
        assert_eq!(m.sent_packets, 330);
        assert_eq!(m.expected_packets, 660);
        assert!(
            m.forwarded_packets <= m.expected_packets
                && m.forwarded_packets * 100 >= m.expected_packets * 99,
            "{m:?}"
        );
        assert_eq!(m.latency_us.count, m.forwarded_packets);
        assert!(m.latency_us.count > 0 && m.latency_us.max >= m.latency_us.p50);
        // Payload bytes: per sender 50 × 100 + 60 × 625, each received twice.
        let per_sender = 50 * 100 + 60 * 625;
        assert!(m.received_bytes <= 3 * 2 * per_sender, "{m:?}");
        assert!(m.wall_secs >= 1.0 && m.wall_secs < 5.0, "{m:?}");
        assert!(stats.forwarded >= m.forwarded_packets, "{stats:?} {m:?}");
        assert_eq!(
            stats.hellos_dropped + stats.unknown + stats.refused + stats.malformed,
            0
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn plain_forwards_every_packet() {
        run(Mode::Plain).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn srtp_forwards_every_packet() {
        run(Mode::Srtp).await;
    }

    /// A protected media packet from `p` in room 7, as a sender would make it with `key_of`'s keys.
    fn protected(crypto: &dyn RTCCrypto, key_of: u32, seq: u16) -> BytesMut {
        let mut ctx = leg_context(crypto, 7, key_of, Dir::Up, false).unwrap();
        let header = Header {
            version: 2,
            payload_type: AUDIO_PT,
            sequence_number: seq,
            timestamp: 960,
            ssrc: sender_ssrc(7, 0, 0),
            ..Header::default()
        };
        let mut payload = vec![0u8; 40];
        payload[..8].copy_from_slice(&1u64.to_be_bytes());
        let raw = Packet {
            header: header.clone(),
            payload: payload.into(),
        }
        .marshal()
        .unwrap();
        ctx.encrypt_rtp_with_header(&raw, &header).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn srtp_refuses_forged_and_tampered_packets_and_unknown_senders() {
        let (addr, tx, task) = start_forwarder(Mode::Srtp).await;
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        hello(&a, addr, 7, 0).await.unwrap();
        hello(&b, addr, 7, 1).await.unwrap();
        let provider = crypto_provider().unwrap();
        let crypto = provider.crypto();

        // Protected with another participant's key.
        a.send_to(&protected(crypto, 1, 100), addr).await.unwrap();
        // Protected with the right key, one payload byte flipped in flight.
        let mut tampered = protected(crypto, 0, 101);
        tampered[20] ^= 0x01;
        a.send_to(&tampered, addr).await.unwrap();
        // Right key, but from an address that sent no hello.
        stranger
            .send_to(&protected(crypto, 0, 102), addr)
            .await
            .unwrap();
        // Neither hello nor RTP.
        a.send_to(&[0x55; 30], addr).await.unwrap();
        // The one good packet.
        a.send_to(&protected(crypto, 0, 103), addr).await.unwrap();

        let mut down = leg_context(crypto, 7, 1, Dir::Down, false).unwrap();
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let (len, from) = tokio::time::timeout(Duration::from_secs(5), b.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(from, addr);
        let mut slice = &buf[..len];
        let header = Header::unmarshal(&mut slice).unwrap();
        assert_eq!(header.sequence_number, 103);
        assert_eq!(header.ssrc, leg_ssrc(7, 1, sender_ssrc(7, 0, 0)));
        let plain = down.decrypt_rtp_with_header(&buf[..len], &header).unwrap();
        assert_eq!(&plain[12..20], &1u64.to_be_bytes());
        // Nothing else arrives.
        assert!(
            tokio::time::timeout(Duration::from_millis(200), b.recv_from(&mut buf))
                .await
                .is_err()
        );

        tx.send(()).unwrap();
        let stats = task.await.unwrap().unwrap();
        // A hello is repeated when its ack is late: at least one each.
        assert!(stats.hellos >= 2, "{stats:?}");
        assert_eq!(
            stats,
            ForwardStats {
                forwarded: 1,
                media: 1,
                hellos: stats.hellos,
                hellos_dropped: 0,
                unknown: 1,
                refused: 2,
                malformed: 1,
                send_errors: 0,
            }
        );
    }

    #[tokio::test]
    async fn plain_drops_unknown_senders() {
        let (addr, tx, task) = start_forwarder(Mode::Plain).await;
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        hello(&a, addr, 1, 0).await.unwrap();
        b.send_to(&[0x80; 40], addr).await.unwrap();
        a.send_to(&[0x80; 40], addr).await.unwrap();
        // a is alone in its room: nothing to forward to. Let the forwarder read both.
        tokio::time::sleep(Duration::from_millis(100)).await;
        tx.send(()).unwrap();
        let stats = task.await.unwrap().unwrap();
        assert_eq!((stats.unknown, stats.media, stats.forwarded), (1, 1, 0));
    }

    #[test]
    fn keys_differ_per_leg_and_are_stable() {
        assert_eq!(leg_keys(1, 2, Dir::Up), leg_keys(1, 2, Dir::Up));
        assert_ne!(leg_keys(1, 2, Dir::Up), leg_keys(1, 2, Dir::Down));
        assert_ne!(leg_keys(1, 2, Dir::Up), leg_keys(2, 1, Dir::Up));
        assert_ne!(sender_ssrc(0, 0, 0), sender_ssrc(0, 0, 1));
    }

    #[test]
    fn frames_split_at_the_mtu() {
        let mut s = stream();
        s.video_kbps = 2500; // 10416 bytes a frame at 30 fps: 9 packets
        let f = frame_sizes(&s);
        assert_eq!(f.len(), 9);
        assert_eq!(f.iter().sum::<usize>(), 10416);
        assert!(f.iter().all(|&p| p <= 1200));
        s.video_kbps = 0;
        assert!(frame_sizes(&s).is_empty());
    }
}
