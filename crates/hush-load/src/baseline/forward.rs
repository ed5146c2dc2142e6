//! The forwarder: one UDP socket, the relay's fan-out, SRTP per leg in [`Mode::Srtp`].

use super::*;

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
        Mode::Str0m => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the str0m reference is sfu::forward",
            ));
        }
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
                    let (up, down) = leg_contexts(provider.as_ref(), room, participant, true)?;
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
            Mode::Str0m => {}
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
