//! The load against a real relay: N rooms of M native clients (webrtc-rs, a real key exchange,
//! SFrame), each publishing Opus-sized audio at 50 frames/s and VP8 at a chosen bitrate, every
//! frame stamped inside its encrypted payload with its send time, so each receiver reads the
//! end-to-end latency after decryption.
//!
//! A stamp sits right after the codec's clear prefix (1 byte for Opus, 10 for a VP8 keyframe
//! header; the rest of the frame is encrypted): `"HL"`, a flag byte (1: sent inside the
//! measured window), then the send time in µs since the run's start, big endian. Frames of the
//! warm-up (sent while the last newcomers' media connects) carry flag 0 and are not counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use hush_client::synth::{opus_frame, vp8_frame};
use hush_client::{Client, ClientOptions, FrameSink, MediaKind, ReceivedFrame};
use hush_proto::{AccessToken, Source};
use tokio::sync::Semaphore;

use crate::baseline::LatencySummary;

/// The run's time origin: stamps are µs since it.
fn epoch() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

fn micros_since_epoch() -> u64 {
    u64::try_from(epoch().elapsed().as_micros()).unwrap_or(u64::MAX)
}

const MAGIC: &[u8; 2] = b"HL";
const STAMP_LEN: usize = 11;

/// Where the stamp goes in a frame of `kind` (after the clear prefix of media mode).
fn stamp_at(kind: MediaKind) -> usize {
    match kind {
        MediaKind::Audio => 1,
        MediaKind::Video => 10,
    }
}

/// Writes the stamp into `frame` (long enough by construction).
fn stamp(frame: &mut [u8], kind: MediaKind, measured: bool) {
    let at = stamp_at(kind);
    if let Some(slot) = frame.get_mut(at..at + STAMP_LEN) {
        slot[..2].copy_from_slice(MAGIC);
        slot[2] = u8::from(measured);
        slot[3..].copy_from_slice(&micros_since_epoch().to_be_bytes());
    }
}

/// Reads a stamp: `(measured, send time in µs)`.
fn read_stamp(frame: &[u8], kind: MediaKind) -> Option<(bool, u64)> {
    let at = stamp_at(kind);
    let slot = frame.get(at..at + STAMP_LEN)?;
    if &slot[..2] != MAGIC {
        return None;
    }
    let mut time = [0u8; 8];
    time.copy_from_slice(&slot[3..]);
    Some((slot[2] == 1, u64::from_be_bytes(time)))
}

/// What a run sends.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Plan {
    /// Rooms.
    pub rooms: usize,
    /// Participants per room (each publishes and receives the others).
    pub per_room: usize,
    /// The measured window, in seconds.
    pub seconds: f64,
    /// Sending before the window, at least, in seconds (it also lasts until every client
    /// decrypts each room-mate, at most 60 s).
    pub warmup: f64,
    /// Audio frame size (Opus-like, 50 frames/s), bytes.
    pub audio_bytes: usize,
    /// Video bitrate per publisher, kbit/s (0: audio only).
    pub video_kbps: u32,
    /// Video frames per second.
    pub fps: u32,
    /// Encodings each camera sends (1: no simulcast; 2 or 3: simulcast, rids `q`, `h`, `f`).
    /// `video_kbps` is the top encoding's rate; each lower one sends a quarter of the one above
    /// (a quarter of the pixels, as browsers scale them).
    pub simulcast: u8,
    /// Joins at once.
    pub join_concurrency: usize,
}

impl Plan {
    /// Participants in all.
    pub fn participants(&self) -> usize {
        self.rooms * self.per_room
    }

    /// Bytes of one video frame at the bitrate (the top encoding's).
    pub fn video_frame_bytes(&self) -> usize {
        let per_sec = u64::from(self.video_kbps) * 1000 / 8;
        usize::try_from(per_sec / u64::from(self.fps.max(1))).unwrap_or(usize::MAX)
    }

    /// Bytes of one video frame of simulcast encoding `layer` (0 the lowest).
    pub fn layer_frame_bytes(&self, layer: u8) -> usize {
        let below_top = u32::from(
            self.simulcast
                .max(1)
                .saturating_sub(1)
                .saturating_sub(layer),
        );
        self.video_frame_bytes() >> (2 * below_top.min(8))
    }
}

/// Counters one receiving client shares with its sink.
#[derive(Debug)]
struct Received {
    frames: AtomicU64,
    bytes: AtomicU64,
    latency: Mutex<Histogram<u64>>,
    /// The senders whose video decrypted here (a simulcast forward starts at a keyframe).
    video_from: Mutex<std::collections::BTreeSet<u32>>,
}

impl Received {
    fn new() -> Self {
        Self {
            frames: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            latency: Mutex::new(histogram()),
            video_from: Mutex::new(std::collections::BTreeSet::new()),
        }
    }

    fn sink(self: &Arc<Self>) -> FrameSink {
        let me = Arc::clone(self);
        Arc::new(move |f: &ReceivedFrame<'_>| {
            let now = micros_since_epoch();
            if f.kind == MediaKind::Video {
                me.video_from
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(f.sender_index);
            }
            if let Some((true, sent)) = read_stamp(f.data, f.kind) {
                me.frames.fetch_add(1, Ordering::Relaxed);
                me.bytes.fetch_add(f.data.len() as u64, Ordering::Relaxed);
                let mut h = me.latency.lock().unwrap_or_else(PoisonError::into_inner);
                let _ = h.record(now.saturating_sub(sent).max(1));
            }
        })
    }
}

/// What the clients measured.
#[derive(Debug, Default, serde::Serialize)]
pub struct ClientFigures {
    /// Clients that joined (of the plan's participants).
    pub joined: usize,
    /// How long the warm-up took (until every client decrypted every room-mate), s.
    pub warmup_secs: f64,
    /// Join time (WebSocket open to `joined`), ms.
    pub join_ms: LatencySummary,
    /// Frames sent inside the window (encrypted and handed to the media stack).
    pub sent_frames: u64,
    /// Frames each sender's room-mates should have received: sent × (per room − 1).
    pub expected_frames: u64,
    /// Stamped frames received and decrypted.
    pub received_frames: u64,
    /// Their plaintext bytes.
    pub received_bytes: u64,
    /// 1 − received / expected.
    pub loss: f64,
    /// Frames the decryptors refused (any reason), whole run.
    pub decrypt_failures: u64,
    /// End-to-end latency, send to decrypted, µs.
    pub latency_us: LatencySummary,
}

/// Called at the measured window's start and end (the relay's /proc and /metrics readings).
pub trait Window {
    /// The window starts now.
    fn begin(&mut self) -> impl std::future::Future<Output = ()>;
    /// The window ended now.
    fn end(&mut self) -> impl std::future::Future<Output = ()>;
}

/// Joins every token's client (`tokens[room]` one per participant), sends through the warm-up
/// and the window, and measures. Clients that cannot join are reported, not fatal.
pub async fn run(
    url: &str,
    tokens: Vec<Vec<String>>,
    plan: &Plan,
    window: &mut impl Window,
) -> ClientFigures {
    let _ = epoch();
    let joins = Arc::new(Semaphore::new(plan.join_concurrency.max(1)));
    let join_hist = Arc::new(Mutex::new(histogram()));
    let mut tasks = Vec::new();
    for (room, room_tokens) in tokens.into_iter().enumerate() {
        for (i, token) in room_tokens.into_iter().enumerate() {
            let (url, joins, join_hist) = (url.to_owned(), joins.clone(), join_hist.clone());
            let video = plan.video_kbps > 0;
            let simulcast = plan.simulcast.max(1);
            tasks.push(tokio::spawn(async move {
                let received = Arc::new(Received::new());
                let mut publish = vec![Source::Microphone];
                if video {
                    publish.push(Source::Camera);
                }
                let options = ClientOptions {
                    publish,
                    frame_sink: Some(received.sink()),
                    simulcast_layers: simulcast,
                    ..ClientOptions::unauthenticated()
                };
                let _permit = joins.acquire_owned().await.ok()?;
                let started = Instant::now();
                match Client::connect(&url, AccessToken::new(token), options).await {
                    Ok(client) => {
                        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                        let _ = join_hist
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .record(ms.max(1));
                        Some((room, Arc::new(client), received))
                    }
                    Err(e) => {
                        eprintln!("room {room} participant {i}: could not join: {e}");
                        None
                    }
                }
            }));
        }
    }
    let mut clients = Vec::new();
    for task in tasks {
        if let Ok(Some(joined)) = task.await {
            clients.push(joined);
        }
    }
    eprintln!(
        "{} of {} clients joined",
        clients.len(),
        plan.participants()
    );

    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    // Senders stop on their own after the longest warm-up and the window.
    let total = Duration::from_secs_f64(plan.warmup.max(60.0) + plan.seconds);
    let senders: Vec<_> = clients
        .iter()
        .map(|(_, client, _)| {
            let (client, measuring, sent) = (client.clone(), measuring.clone(), sent.clone());
            let plan = plan.clone();
            tokio::spawn(async move { send(&client, &plan, total, &measuring, &sent).await })
        })
        .collect();
    // The warm-up: at least `plan.warmup`, and until every client decrypts every room-mate
    // (the last joiners' media connects), at most a minute.
    let warm = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(plan.warmup)).await;
    while !all_receiving(&clients, plan.video_kbps > 0) && warm.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let warmup_secs = warm.elapsed().as_secs_f64();
    eprintln!("warm-up {warmup_secs:.1} s: measuring");
    measuring.store(true, Ordering::SeqCst);
    window.begin().await;
    let progress = progress(&clients, plan.seconds);
    progress.await;
    window.end().await;
    measuring.store(false, Ordering::SeqCst);
    for s in senders {
        s.abort();
        let _ = s.await;
    }
    // What is still in flight arrives.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut figures = ClientFigures {
        joined: clients.len(),
        warmup_secs,
        join_ms: LatencySummary::of(&join_hist.lock().unwrap_or_else(PoisonError::into_inner)),
        ..ClientFigures::default()
    };
    let mut latency = histogram();
    let mut per_room = vec![0usize; plan.rooms];
    for (room, _, _) in &clients {
        if let Some(n) = per_room.get_mut(*room) {
            *n += 1;
        }
    }
    for (_, client, received) in &clients {
        figures.received_frames += received.frames.load(Ordering::Relaxed);
        figures.received_bytes += received.bytes.load(Ordering::Relaxed);
        let h = received
            .latency
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let _ = latency.add(&*h);
        figures.decrypt_failures += client.stats().dropped_total();
    }
    figures.sent_frames = sent.load(Ordering::Relaxed);
    // Each frame goes to the sender's room-mates that joined.
    let mates = per_room
        .iter()
        .map(|n| n.saturating_sub(1))
        .max()
        .unwrap_or(0);
    figures.expected_frames = figures.sent_frames * mates as u64;
    figures.loss = if figures.expected_frames == 0 {
        0.0
    } else {
        1.0 - figures.received_frames as f64 / figures.expected_frames as f64
    };
    figures.latency_us = LatencySummary::of(&latency);
    for (_, client, _) in clients {
        if let Ok(mut client) = Arc::try_unwrap(client) {
            let _ = client.leave().await;
        }
    }
    figures
}

/// 1 µs to 60 s at 3 significant digits.
#[allow(clippy::expect_used)] // constant, valid bounds: cannot fail
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Whether every client decrypts frames from each of its room-mates (`video`: video frames
/// too, which a simulcast forward sends only from the chosen encoding's first keyframe on).
fn all_receiving(clients: &[(usize, Arc<Client>, Arc<Received>)], video: bool) -> bool {
    clients.iter().all(|(room, client, received)| {
        let mates = clients.iter().filter(|(r, _, _)| r == room).count() - 1;
        let stats = client.stats();
        let decrypting = stats
            .received
            .values()
            .filter(|r| r.decrypt.decrypted > 0)
            .count();
        let seeing = received
            .video_from
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        decrypting >= mates && (!video || seeing >= mates)
    })
}

/// One client's sending: audio every 20 ms, video frames at `fps`, paced on a 10 ms tick.
async fn send(
    client: &Client,
    plan: &Plan,
    total: Duration,
    measuring: &std::sync::atomic::AtomicBool,
    sent: &AtomicU64,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let start = Instant::now();
    let layers = plan.simulcast.max(1);
    let mut video_sent = 0u64;
    let mut n: u64 = 0;
    let frame_time = Duration::from_secs(1) / plan.fps.max(1);
    while start.elapsed() < total {
        tick.tick().await;
        let index = u32::try_from(n).unwrap_or(u32::MAX);
        let counted = measuring.load(Ordering::Relaxed);
        if n.is_multiple_of(2) {
            let mut f = opus_frame(index, plan.audio_bytes.max(STAMP_LEN + 2));
            stamp(&mut f, MediaKind::Audio, counted);
            if let Ok(true) = client
                .send_frame(Source::Microphone, &f, Duration::from_millis(20))
                .await
                && counted
            {
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Video frames due by now at `fps`.
        let due = start.elapsed().as_micros() * u128::from(plan.fps) / 1_000_000;
        if plan.video_kbps > 0 && u128::from(video_sent) < due {
            let vi = u32::try_from(video_sent).unwrap_or(u32::MAX);
            // Every encoding carries the frame (keyframes at the same time, as an encoder's
            // simulcast does); a subscriber gets one of them: one frame counted.
            let mut written = false;
            for layer in 0..layers {
                let bytes = plan.layer_frame_bytes(layer).max(40);
                let mut f = vp8_frame(vi, bytes, plan.fps.max(1) * 3);
                stamp(&mut f, MediaKind::Video, counted);
                let r = client
                    .send_layer_frame(Source::Camera, usize::from(layer), &f, frame_time)
                    .await;
                written |= matches!(r, Ok(true));
            }
            if written && counted {
                sent.fetch_add(1, Ordering::Relaxed);
            }
            video_sent += 1;
        }
        n += 1;
    }
}

/// Prints a line a second while the window runs (stderr).
async fn progress(clients: &[(usize, Arc<Client>, Arc<Received>)], seconds: f64) {
    let frames = || -> u64 {
        clients
            .iter()
            .map(|(_, _, r)| r.frames.load(Ordering::Relaxed))
            .sum()
    };
    let start = Instant::now();
    let window = Duration::from_secs_f64(seconds);
    let mut last = frames();
    while start.elapsed() < window {
        let step = (window - start.elapsed()).min(Duration::from_secs(1));
        tokio::time::sleep(step).await;
        let now = frames();
        eprintln!(
            "  t={:>5.1}s  frames received/s {:>7}",
            start.elapsed().as_secs_f64(),
            ((now - last) as f64 / step.as_secs_f64().max(1e-3)).round()
        );
        last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_reads_back_and_garbage_does_not() {
        let mut f = opus_frame(1, 100);
        stamp(&mut f, MediaKind::Audio, true);
        let (measured, at) = read_stamp(&f, MediaKind::Audio).unwrap();
        assert!(measured && at <= micros_since_epoch());
        let mut v = vp8_frame(0, 500, 30);
        stamp(&mut v, MediaKind::Video, false);
        assert_eq!(read_stamp(&v, MediaKind::Video).map(|s| s.0), Some(false));
        assert_eq!(read_stamp(&[0u8; 5], MediaKind::Video), None);
        assert_eq!(read_stamp(&opus_frame(2, 100), MediaKind::Audio), None);
    }

    #[test]
    fn video_frames_follow_the_bitrate() {
        let plan = Plan {
            rooms: 1,
            per_room: 2,
            seconds: 1.0,
            warmup: 0.0,
            audio_bytes: 100,
            video_kbps: 600,
            fps: 30,
            simulcast: 1,
            join_concurrency: 1,
        };
        assert_eq!(plan.video_frame_bytes(), 2500);
        assert_eq!(plan.layer_frame_bytes(0), 2500);
        assert_eq!(plan.participants(), 2);
        // Simulcast: the top encoding at the bitrate, each lower one a quarter of the one above.
        let three = Plan {
            simulcast: 3,
            ..plan
        };
        let sizes: Vec<usize> = (0..3).map(|l| three.layer_frame_bytes(l)).collect();
        assert_eq!(sizes, [156, 625, 2500]);
    }
}
