//! The generator and the receivers: one socket per participant, paced senders, latency from
//! the stamp in every payload.

use super::*;

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
        let payload = stamped(size, self.number, self.epoch);
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
            payload: Bytes::from(payload),
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
        let mut schedule = Schedule::new(s, !self.frame.is_empty());
        let mut packets = 0u64;
        let mut tick = tokio::time::interval_at(start, TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let elapsed = start.elapsed().as_secs_f64().min(seconds);
            let (audio, frames) = schedule.due(elapsed);
            for _ in 0..audio {
                if self.send(false, self.audio_bytes, false).await? {
                    packets += 1;
                }
                self.audio.ts = self.audio.ts.wrapping_add(self.audio.step);
            }
            for _ in 0..frames {
                let n = self.frame.len();
                for k in 0..n {
                    let size = self.frame[k];
                    if self.send(true, size, k + 1 == n).await? {
                        packets += 1;
                    }
                }
                self.video.ts = self.video.ts.wrapping_add(self.video.step);
            }
            if elapsed >= seconds {
                return Ok(packets);
            }
        }
    }
}

pub(super) fn new_histogram() -> io::Result<Histogram<u64>> {
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
    let mut tally = Tally::new()?;
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
        tally.record(payload, epoch);
    }
}

/// Sends hellos until the forwarder acknowledges one.
pub(super) async fn hello(
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
pub(super) fn frame_sizes(s: &Stream) -> Vec<usize> {
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

pub(super) fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what.to_string())
}

impl Stream {
    /// Checks the stream's bounds; returns (participants, per_room).
    pub(super) fn participants(&self) -> io::Result<(usize, u32)> {
        let n = self
            .rooms
            .checked_mul(self.per_room)
            .filter(|&n| n > 0 && n <= MAX_PARTICIPANTS)
            .ok_or_else(|| invalid("rooms × per_room: 1 to 20000 participants"))?;
        if !(self.seconds.is_finite() && (0.0..=MAX_SECONDS).contains(&self.seconds)) {
            return Err(invalid("seconds: 0 to 86400"));
        }
        if self.fps == 0 && self.video_kbps > 0 {
            return Err(invalid("fps: 0 with video"));
        }
        let per_room = u32::try_from(self.per_room).map_err(|_| invalid("per_room"))?;
        Ok((n, per_room))
    }
}

/// The generator and the receivers: one UDP socket per participant on the loopback address of
/// `forwarder`'s family; hellos until acknowledged; then for `stream.seconds` each participant
/// sends its audio and video (see [`Stream`]) as RTP, paced on a 10 ms tick, its packets
/// stamped with the send time and protected with its up context in [`Mode::Srtp`]. Receivers
/// count what arrives and record its latency until 500 ms after the senders end.
pub async fn drive(mode: Mode, forwarder: SocketAddr, stream: &Stream) -> io::Result<Measured> {
    let (n, per_room) = stream.participants()?;
    let provider = match mode {
        Mode::Plain => None,
        Mode::Srtp => Some(crypto_provider()?),
        Mode::Str0m => return Err(invalid("the str0m reference is driven by sfu::drive")),
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
        let (up, down) = leg_contexts(provider.as_ref(), room, participant, false)?;
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
