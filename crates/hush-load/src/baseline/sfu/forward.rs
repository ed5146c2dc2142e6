//! The str0m forwarder: a sans-IO core ([`Sfu`]) and the socket loop around it ([`forward`]).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::bwe::Bitrate;
use str0m::config::{CryptoProvider, Fingerprint};
use str0m::net::{DatagramSend, Protocol, Receive};
use str0m::rtp::{RtpPacket, RtpWrite};
use str0m::{Candidate, Event, IceConnectionState, IceCreds, Input, Output, Rtc};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};

use super::{Answer, MAX_LINE, Offer, declare, provider, rtc_config};
use crate::baseline::{MAX_DATAGRAM, MAX_PEERS, leg_ssrc, transient};

/// The bandwidth estimate a leg starts from, kbit/s (as the relay's legs do).
const BWE_START_KBPS: u64 = 1_500;

/// How long the loop sleeps when no `Rtc` has a timeout sooner.
const IDLE: Duration = Duration::from_millis(100);

/// What the forwarder counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SfuStats {
    /// Participants joined.
    pub joined: u64,
    /// Joins refused (bad offer, table full, address taken).
    pub refused_joins: u64,
    /// RTP packets taken in from participants.
    pub media: u64,
    /// RTP packets written to receivers' streams.
    pub forwarded: u64,
    /// Datagrams from an address no participant offered: dropped.
    pub unknown: u64,
    /// Datagrams or outputs str0m refused with an error.
    pub errors: u64,
}

/// One participant as the forwarder knows it.
struct Member {
    rtc: Rtc,
    room: u32,
    participant: u32,
    connected: bool,
    timeout: Instant,
}

/// The forwarder's state: no I/O, no clock; datagrams in, datagrams out.
pub(super) struct Sfu {
    provider: Arc<CryptoProvider>,
    local: SocketAddr,
    members: Vec<Member>,
    by_addr: HashMap<SocketAddr, usize>,
    rooms: HashMap<u32, Vec<usize>>,
    pub(super) stats: SfuStats,
    /// Scratch: packets taken from one member, to write to its room-mates.
    packets: Vec<RtpPacket>,
}

impl Sfu {
    pub(super) fn new(provider: Arc<CryptoProvider>, local: SocketAddr) -> Self {
        Self {
            provider,
            local,
            members: Vec::new(),
            by_addr: HashMap::new(),
            rooms: HashMap::new(),
            stats: SfuStats::default(),
            packets: Vec::new(),
        }
    }

    /// A participant joins: its `Rtc` (ICE-lite, DTLS server) with its streams declared.
    pub(super) fn join(&mut self, offer: &Offer, now: Instant) -> Result<Answer, String> {
        if self.members.len() >= MAX_PEERS || self.by_addr.contains_key(&offer.addr) {
            return Err("table full or address taken".into());
        }
        if offer.per_room == 0 || offer.per_room > 1000 || offer.participant >= offer.per_room {
            return Err("participant outside the room".into());
        }
        let fingerprint: Fingerprint = offer
            .fingerprint
            .parse()
            .map_err(|_| "bad fingerprint".to_string())?;
        // Send-side bandwidth estimation on every leg, as the relay runs a congestion
        // controller per subscriber leg (and str0m's pacer with it).
        let mut rtc = rtc_config(&self.provider)
            .set_ice_lite(true)
            .enable_bwe(Some(Bitrate::kbps(BWE_START_KBPS)))
            .build(now);
        let local = Candidate::host(self.local, "udp").map_err(|e| e.to_string())?;
        rtc.add_local_candidate(local);
        let remote = Candidate::host(offer.addr, "udp").map_err(|e| e.to_string())?;
        rtc.add_remote_candidate(remote);
        let answer = {
            let mut api = rtc.direct_api();
            api.set_remote_ice_credentials(IceCreds {
                ufrag: offer.ufrag.clone(),
                pass: offer.pass.clone(),
            });
            api.set_remote_fingerprint(fingerprint);
            api.set_ice_controlling(false);
            api.start_dtls(false).map_err(|e| e.to_string())?;
            let creds = api.local_ice_credentials();
            Answer {
                ufrag: creds.ufrag,
                pass: creds.pass,
                fingerprint: api.local_dtls_fingerprint().to_string(),
            }
        };
        declare(
            &mut rtc,
            offer.room,
            offer.participant,
            offer.per_room,
            false,
        );
        let i = self.members.len();
        self.members.push(Member {
            rtc,
            room: offer.room,
            participant: offer.participant,
            connected: false,
            timeout: now,
        });
        self.by_addr.insert(offer.addr, i);
        self.rooms.entry(offer.room).or_default().push(i);
        self.stats.joined += 1;
        Ok(answer)
    }

    /// A datagram from `from`; what to send goes to `out`.
    pub(super) fn receive(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
        out: &mut Vec<(SocketAddr, DatagramSend)>,
    ) {
        let Some(&i) = self.by_addr.get(&from) else {
            self.stats.unknown += 1;
            return;
        };
        let Ok(contents) = data.try_into() else {
            self.stats.errors += 1;
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source: from,
                destination: self.local,
                contents,
            },
        );
        if self.members[i].rtc.handle_input(input).is_err() {
            self.stats.errors += 1;
        }
        self.members[i].poll(now, &mut self.packets, &mut self.stats, out);
        self.fan_out(i, now, out);
    }

    /// Every member whose timeout has come.
    pub(super) fn timeout(&mut self, now: Instant, out: &mut Vec<(SocketAddr, DatagramSend)>) {
        for i in 0..self.members.len() {
            if self.members[i].timeout <= now {
                if self.members[i]
                    .rtc
                    .handle_input(Input::Timeout(now))
                    .is_err()
                {
                    self.stats.errors += 1;
                }
                self.members[i].poll(now, &mut self.packets, &mut self.stats, out);
                self.fan_out(i, now, out);
            }
        }
    }

    /// The earliest timeout of any member.
    pub(super) fn next_timeout(&self, now: Instant) -> Instant {
        self.members
            .iter()
            .map(|m| m.timeout)
            .min()
            .unwrap_or(now + IDLE)
    }

    /// Writes the packets taken from member `i` to each connected room-mate's leg, then polls
    /// those legs.
    fn fan_out(&mut self, i: usize, now: Instant, out: &mut Vec<(SocketAddr, DatagramSend)>) {
        if self.packets.is_empty() {
            return;
        }
        let packets = std::mem::take(&mut self.packets);
        let Self {
            members,
            rooms,
            stats,
            packets: scratch,
            ..
        } = self;
        let room = members[i].room;
        let mates = rooms.get(&room).map(Vec::as_slice).unwrap_or_default();
        for p in &packets {
            stats.media += 1;
            for &j in mates {
                let m = &mut members[j];
                if j == i || !m.connected {
                    continue;
                }
                let ssrc = leg_ssrc(room, m.participant, *p.header.ssrc).into();
                let mut api = m.rtc.direct_api();
                let Some(tx) = api.stream_tx(&ssrc) else {
                    continue;
                };
                tx.write_rtp(
                    RtpWrite::new(
                        p.header.payload_type,
                        p.seq_no,
                        p.header.timestamp,
                        now,
                        Arc::clone(&p.payload),
                    )
                    .marker(p.header.marker)
                    .nackable(true),
                );
                stats.forwarded += 1;
            }
        }
        for &j in mates {
            if j != i && members[j].connected {
                members[j].poll(now, scratch, stats, out);
            }
        }
        // Keep the scratch vector's allocation.
        self.packets = packets;
        self.packets.clear();
    }
}

impl Member {
    /// Polls the `Rtc` to its next timeout: datagrams to `out`, RTP to `packets`.
    fn poll(
        &mut self,
        now: Instant,
        packets: &mut Vec<RtpPacket>,
        stats: &mut SfuStats,
        out: &mut Vec<(SocketAddr, DatagramSend)>,
    ) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.timeout = t;
                    return;
                }
                Ok(Output::Transmit(t)) => out.push((t.destination, t.contents)),
                Ok(Output::Event(Event::RtpPacket(p))) => packets.push(p),
                Ok(Output::Event(Event::Connected)) => self.connected = true,
                Ok(Output::Event(Event::IceConnectionStateChange(
                    IceConnectionState::Disconnected,
                ))) => self.connected = false,
                Ok(Output::Event(_)) => {}
                Err(_) => {
                    stats.errors += 1;
                    self.connected = false;
                    self.timeout = now + IDLE;
                    return;
                }
            }
        }
    }
}

/// The forwarder: UDP media on `socket`, signaling on `listener` (see the module doc); runs
/// until `stop` resolves and returns what it counted.
pub async fn forward(
    socket: UdpSocket,
    listener: TcpListener,
    stop: impl Future<Output = ()>,
) -> io::Result<SfuStats> {
    let local = socket.local_addr()?;
    let mut sfu = Sfu::new(provider(), local);
    let (joins, mut joined) = mpsc::channel::<(Offer, oneshot::Sender<Answer>)>(64);
    let acceptor = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let joins = joins.clone();
            tokio::spawn(async move {
                let _ = signal(stream, joins).await;
            });
        }
    });
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut out = Vec::new();
    let mut stop = std::pin::pin!(stop);
    let result = loop {
        let deadline = tokio::time::Instant::from_std(sfu.next_timeout(Instant::now()));
        tokio::select! {
            biased;
            () = stop.as_mut() => break Ok(sfu.stats),
            Some((offer, reply)) = joined.recv() => {
                match sfu.join(&offer, Instant::now()) {
                    Ok(answer) => { let _ = reply.send(answer); }
                    Err(_) => sfu.stats.refused_joins += 1,
                }
            }
            r = socket.recv_from(&mut buf) => match r {
                Ok((len, from)) => sfu.receive(Instant::now(), from, &buf[..len], &mut out),
                Err(e) if transient(&e) => {}
                Err(e) => break Err(e),
            },
            () = tokio::time::sleep_until(deadline) => sfu.timeout(Instant::now(), &mut out),
        }
        for (to, datagram) in out.drain(..) {
            if let Err(e) = socket.send_to(&datagram, to).await
                && !transient(&e)
            {
                sfu.stats.errors += 1;
            }
        }
    };
    acceptor.abort();
    result
}

/// One participant's signaling connection: an offer line in, an answer line out.
async fn signal(
    stream: TcpStream,
    joins: mpsc::Sender<(Offer, oneshot::Sender<Answer>)>,
) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_LINE as u64));
    reader.read_line(&mut line).await?;
    let offer: Offer = serde_json::from_str(&line).map_err(io::Error::other)?;
    let (reply, answer) = oneshot::channel();
    joins
        .send((offer, reply))
        .await
        .map_err(|_| io::Error::other("forwarder gone"))?;
    let answer = answer.await.map_err(|_| io::Error::other("join refused"))?;
    let mut text = serde_json::to_string(&answer).map_err(io::Error::other)?;
    text.push('\n');
    write.write_all(text.as_bytes()).await
}
