//! The str0m generator and receivers: one `Rtc` and one UDP socket per participant, in a task
//! of its own; senders start together once every participant is connected.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::config::CryptoProvider;
use str0m::format::{Codec, PayloadParams};
use str0m::media::{MediaKind, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::{Candidate, Event, IceCreds, Input, Output, Rtc};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::{Answer, MAX_LINE, Offer, declare, provider, rtc_config, up_ssrc};
use crate::baseline::drive::{frame_sizes, invalid, new_histogram};
use crate::baseline::{
    AUDIO_CLOCK, DRAIN, LatencySummary, MAX_DATAGRAM, Measured, Mode, Schedule, Stream, TICK,
    Tally, VIDEO_CLOCK, mix, stamped, transient,
};

/// How long every participant has to connect.
const CONNECT_WITHIN: Duration = Duration::from_secs(30);

/// One participant: its `Rtc`, its socket, and its two streams' counters.
struct Participant {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    number: u32,
    audio: Track,
    video: Track,
}

/// One outgoing stream's counters.
struct Track {
    ssrc: str0m::rtp::Ssrc,
    pt: Pt,
    seq: u64,
    ts: u32,
    step: u32,
}

fn pt_of(rtc: &Rtc, codec: Codec) -> io::Result<Pt> {
    rtc.codec_config()
        .find(|p: &PayloadParams| p.spec().codec == codec)
        .map(PayloadParams::pt)
        .ok_or_else(|| io::Error::other(format!("str0m has no {codec:?}")))
}

impl Participant {
    /// Binds, signals the forwarder at `forwarder` and declares the streams (not yet connected).
    async fn join(
        provider: &Arc<CryptoProvider>,
        forwarder: SocketAddr,
        room: u32,
        participant: u32,
        per_room: u32,
        number: u32,
        stream: &Stream,
    ) -> io::Result<Self> {
        let ip: IpAddr = match forwarder {
            SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        };
        let socket = UdpSocket::bind((ip, 0)).await?;
        let local = socket.local_addr()?;
        let mut rtc = rtc_config(provider).build(Instant::now());
        let host = |a| Candidate::host(a, "udp").map_err(|e| io::Error::other(e.to_string()));
        rtc.add_local_candidate(host(local)?);
        rtc.add_remote_candidate(host(forwarder)?);
        let offer = Offer::of(&mut rtc, room, participant, per_room, local);
        let answer = exchange(forwarder, &offer).await?;
        let fingerprint = answer
            .fingerprint
            .parse()
            .map_err(|_| io::Error::other("the forwarder's fingerprint does not parse"))?;
        {
            let mut api = rtc.direct_api();
            api.set_remote_ice_credentials(IceCreds {
                ufrag: answer.ufrag,
                pass: answer.pass,
            });
            api.set_remote_fingerprint(fingerprint);
            api.set_ice_controlling(true);
            api.start_dtls(true)
                .map_err(|e| io::Error::other(e.to_string()))?;
        }
        declare(&mut rtc, room, participant, per_room, true);
        let i = u64::from(number);
        let audio = Track {
            ssrc: up_ssrc(room, participant, MediaKind::Audio),
            pt: pt_of(&rtc, Codec::Opus)?,
            seq: u64::from(mix(i) as u16),
            ts: mix(i + 1) as u32,
            step: AUDIO_CLOCK / stream.audio_pps.max(1),
        };
        let video = Track {
            ssrc: up_ssrc(room, participant, MediaKind::Video),
            pt: pt_of(&rtc, Codec::Vp8)?,
            seq: u64::from(mix(i + 2) as u16),
            ts: mix(i + 3) as u32,
            step: VIDEO_CLOCK / stream.fps.max(1),
        };
        Ok(Self {
            rtc,
            socket,
            local,
            number,
            audio,
            video,
        })
    }

    /// Writes one RTP packet of `size` payload bytes, stamped with the send time.
    fn write(&mut self, video: bool, size: usize, marker: bool, epoch: Instant) {
        let payload = stamped(size, self.number, epoch);
        let track = if video {
            &mut self.video
        } else {
            &mut self.audio
        };
        let (ssrc, pt, seq, ts) = (track.ssrc, track.pt, track.seq, track.ts);
        track.seq += 1;
        let mut api = self.rtc.direct_api();
        if let Some(tx) = api.stream_tx(&ssrc) {
            tx.write_rtp(
                RtpWrite::new(pt, SeqNo::from(seq), ts, Instant::now(), payload)
                    .marker(marker)
                    .nackable(video),
            );
        }
    }

    /// Polls the `Rtc` to its next timeout: sends what it transmits, tallies what it receives.
    /// Returns the timeout and whether it is connected.
    async fn poll(&mut self, tally: &mut Tally, epoch: Instant) -> io::Result<(Instant, bool)> {
        let mut connected = false;
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => return Ok((t, connected)),
                Ok(Output::Transmit(t)) => {
                    match self.socket.send_to(&t.contents, t.destination).await {
                        Ok(_) => {}
                        Err(e) if transient(&e) || e.raw_os_error().is_some() => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(Output::Event(Event::Connected)) => connected = true,
                Ok(Output::Event(Event::RtpPacket(p))) => tally.record(&p.payload, epoch),
                Ok(Output::Event(_)) => {}
                Err(e) => return Err(io::Error::other(format!("str0m: {e}"))),
            }
        }
    }

    /// Runs the participant: connects (reported on `ready`), waits for the common start on
    /// `start`, sends [`Stream`] for `seconds` and receives until the drain ends.
    async fn run(
        mut self,
        stream: Stream,
        epoch: Instant,
        ready: mpsc::Sender<()>,
        mut start: watch::Receiver<Option<tokio::time::Instant>>,
    ) -> io::Result<(u64, Tally)> {
        let mut tally = Tally::new()?;
        let mut sent = 0u64;
        let frame = frame_sizes(&stream);
        let mut schedule = Schedule::new(&stream, !frame.is_empty());
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut announced = false;
        let mut began: Option<tokio::time::Instant> = None;
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let send_for =
            Duration::try_from_secs_f64(stream.seconds).map_err(|_| invalid("seconds"))?;
        loop {
            let (timeout, connected) = self.poll(&mut tally, epoch).await?;
            if connected && !announced {
                announced = true;
                let _ = ready.send(()).await;
            }
            if began.is_none() {
                began = *start.borrow_and_update();
            }
            if let Some(b) = began
                && tokio::time::Instant::now() >= b + send_for + DRAIN
            {
                return Ok((sent, tally));
            }
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => match r {
                    Ok((len, from)) => {
                        let Ok(contents) = (&buf[..len]).try_into() else { continue };
                        let input = Input::Receive(Instant::now(), Receive {
                            proto: Protocol::Udp,
                            source: from,
                            destination: self.local,
                            contents,
                        });
                        // A datagram str0m refuses is dropped (it counts nothing as received).
                        let _ = self.rtc.handle_input(input);
                    }
                    Err(e) if transient(&e) => {}
                    Err(e) => return Err(e),
                },
                () = tokio::time::sleep_until(tokio::time::Instant::from_std(timeout)) => {
                    self.rtc
                        .handle_input(Input::Timeout(Instant::now()))
                        .map_err(|e| io::Error::other(format!("str0m: {e}")))?;
                }
                _ = tick.tick() => {
                    let Some(b) = began else { continue };
                    let now = tokio::time::Instant::now();
                    if now < b {
                        continue;
                    }
                    let (audio, frames) = schedule.due((now - b).as_secs_f64());
                    for _ in 0..audio {
                        self.write(false, stream.audio_bytes, false, epoch);
                        self.audio.ts = self.audio.ts.wrapping_add(self.audio.step);
                        sent += 1;
                    }
                    for _ in 0..frames {
                        for (k, &size) in frame.iter().enumerate() {
                            self.write(true, size, k + 1 == frame.len(), epoch);
                            sent += 1;
                        }
                        self.video.ts = self.video.ts.wrapping_add(self.video.step);
                    }
                    self.rtc
                        .handle_input(Input::Timeout(Instant::now()))
                        .map_err(|e| io::Error::other(format!("str0m: {e}")))?;
                }
                r = start.changed(), if began.is_none() => {
                    if r.is_err() {
                        return Ok((sent, tally));
                    }
                }
            }
        }
    }
}

/// The signaling exchange: the offer line out, the answer line in.
async fn exchange(forwarder: SocketAddr, offer: &Offer) -> io::Result<Answer> {
    let stream = TcpStream::connect(forwarder).await?;
    let (read, mut write) = stream.into_split();
    let mut text = serde_json::to_string(offer).map_err(io::Error::other)?;
    text.push('\n');
    write.write_all(text.as_bytes()).await?;
    let mut line = String::new();
    BufReader::new(read.take(MAX_LINE as u64))
        .read_line(&mut line)
        .await?;
    serde_json::from_str(&line)
        .map_err(|e| io::Error::other(format!("the forwarder's answer {line:?}: {e}")))
}

/// The generator and receivers against the str0m forwarder at `forwarder`: every participant
/// joins and connects (ICE, DTLS), then all send [`Stream`] from one start for
/// `stream.seconds`, paced on a 10 ms tick, and count what arrives until 500 ms after.
/// `at_start` is called once all are connected, just before the first packet (so a caller can
/// leave the handshakes out of what it measures).
pub async fn drive(
    forwarder: SocketAddr,
    stream: &Stream,
    at_start: impl FnOnce(),
) -> io::Result<Measured> {
    let (n, per_room) = stream.participants()?;
    let provider = provider();
    let epoch = Instant::now();
    let (ready_tx, mut ready) = mpsc::channel(n);
    let (start_tx, start_rx) = watch::channel(None);
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let number = i as u32;
        let p = Participant::join(
            &provider,
            forwarder,
            number / per_room,
            number % per_room,
            per_room,
            number,
            stream,
        )
        .await?;
        tasks.spawn(p.run(stream.clone(), epoch, ready_tx.clone(), start_rx.clone()));
    }
    drop(ready_tx);
    let deadline = tokio::time::Instant::now() + CONNECT_WITHIN;
    for k in 0..n {
        match tokio::time::timeout_at(deadline, ready.recv()).await {
            Ok(Some(())) => {}
            _ => {
                tasks.abort_all();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("str0m reference: {k} of {n} participants connected"),
                ));
            }
        }
    }
    // Start phases would be spread by the tick; one start for all, as the relay's clients.
    at_start();
    let start = tokio::time::Instant::now() + TICK;
    let _ = start_tx.send(Some(start));
    let mut latency = new_histogram()?;
    let (mut sent, mut received, mut bytes) = (0u64, 0u64, 0u64);
    while let Some(r) = tasks.join_next().await {
        let (s, t) = r.map_err(io::Error::other)??;
        sent += s;
        received += t.packets;
        bytes += t.bytes;
        latency
            .add(&t.latency)
            .map_err(|e| io::Error::other(format!("histogram: {e:?}")))?;
    }
    Ok(Measured {
        mode: Mode::Str0m,
        sent_packets: sent,
        forwarded_packets: received,
        expected_packets: sent * (stream.per_room as u64 - 1),
        received_bytes: bytes,
        latency_us: LatencySummary::of(&latency),
        wall_secs: stream.seconds,
    })
}
