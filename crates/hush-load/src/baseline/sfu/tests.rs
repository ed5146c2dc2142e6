//! The str0m reference: every packet arrives over real sockets; bad offers, unknown senders
//! and garbage are refused and counted.

use std::net::SocketAddr;
use std::time::Instant;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::oneshot;

use super::forward::Sfu;
use super::*;
use crate::baseline::Mode;
use crate::baseline::tests::{assert_delivered, stream_of};

async fn start() -> (
    SocketAddr,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<SfuStats>>,
) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let listener = TcpListener::bind(addr).await.unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(forward(socket, listener, async move {
        let _ = rx.await;
    }));
    (addr, tx, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn str0m_forwards_every_packet_within_rooms() {
    let (addr, stop, task) = start().await;
    let s = stream_of(2, 3);
    let mut started = false;
    let m = drive(addr, &s, || started = true).await.unwrap();
    stop.send(()).unwrap();
    let stats = task.await.unwrap().unwrap();

    assert!(started);
    assert_eq!(m.mode, Mode::Str0m);
    // 1 s × (50 audio + 30 frames × 2 packets) × 6 participants, each to its 2 room-mates.
    assert_eq!(m.sent_packets, 660);
    assert_eq!(m.expected_packets, 1320);
    assert_delivered(&m);
    assert_eq!(stats.joined, 6);
    assert_eq!(stats.refused_joins + stats.unknown, 0, "{stats:?}");
    // Each packet taken in went to exactly its two room-mates, none across rooms.
    assert_eq!(stats.forwarded, 2 * stats.media, "{stats:?}");
    assert!(stats.media >= m.sent_packets * 99 / 100, "{stats:?}");
}

fn offer(room: u32, participant: u32, per_room: u32, addr: SocketAddr) -> Offer {
    let mut rtc = rtc_config(&provider()).build(Instant::now());
    Offer::of(&mut rtc, room, participant, per_room, addr)
}

#[test]
fn bad_offers_are_refused() {
    let now = Instant::now();
    let mut sfu = Sfu::new(provider(), "127.0.0.1:9".parse().unwrap());
    let a: SocketAddr = "127.0.0.1:10000".parse().unwrap();
    let b: SocketAddr = "127.0.0.1:10001".parse().unwrap();

    assert!(
        sfu.join(&offer(0, 3, 3, a), now).is_err(),
        "outside the room"
    );
    assert!(sfu.join(&offer(0, 0, 0, a), now).is_err(), "empty room");
    let mut forged = offer(0, 0, 3, a);
    forged.fingerprint = "sha-256 not-hex".into();
    assert!(sfu.join(&forged, now).is_err(), "bad fingerprint");

    let answer = sfu.join(&offer(0, 0, 3, a), now).unwrap();
    assert!(answer.fingerprint.starts_with("sha-256 "), "{answer:?}");
    assert!(sfu.join(&offer(0, 1, 3, a), now).is_err(), "address taken");
    sfu.join(&offer(0, 1, 3, b), now).unwrap();
    assert_eq!(sfu.stats.joined, 2);
}

#[test]
fn datagrams_from_strangers_and_garbage_are_dropped_and_counted() {
    let now = Instant::now();
    let mut sfu = Sfu::new(provider(), "127.0.0.1:9".parse().unwrap());
    let a: SocketAddr = "127.0.0.1:10000".parse().unwrap();
    sfu.join(&offer(0, 0, 2, a), now).unwrap();
    let mut out = Vec::new();

    // An RTP-looking packet from an address nobody offered.
    let mut rtp = vec![0x80, 111, 0, 1, 0, 0, 0, 1, 0, 0, 0, 7];
    rtp.extend_from_slice(&[0; 20]);
    sfu.receive(now, "127.0.0.1:10009".parse().unwrap(), &rtp, &mut out);
    assert_eq!(sfu.stats.unknown, 1);

    // From the offered address, but before DTLS: no SRTP keys, nothing taken in.
    sfu.receive(now, a, &rtp, &mut out);
    // Not a datagram kind WebRTC multiplexes at all, and an empty one.
    sfu.receive(now, a, &[0xff; 40], &mut out);
    sfu.receive(now, a, &[], &mut out);
    assert_eq!(sfu.stats.media, 0);
    assert_eq!(sfu.stats.forwarded, 0);
    assert_eq!(sfu.stats.errors, 2, "{:?}", sfu.stats);
}

#[tokio::test]
async fn garbage_signaling_gets_no_answer() {
    let (addr, stop, task) = start().await;
    for line in [
        "not json\n",
        "{\"room\":1}\n",
        &format!("{}\n", "x".repeat(10_000)),
    ] {
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(line.as_bytes()).await.unwrap();
        let mut answer = String::new();
        let n = BufReader::new(conn)
            .read_line(&mut answer)
            .await
            .unwrap_or(0);
        assert_eq!(n, 0, "answered {answer:?} to {line:?}");
    }
    // An offer for a seat outside its room is refused (the connection closes, unanswered).
    let o = offer(0, 5, 2, "127.0.0.1:10000".parse().unwrap());
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let text = format!("{}\n", serde_json::to_string(&o).unwrap());
    conn.write_all(text.as_bytes()).await.unwrap();
    let mut answer = String::new();
    let n = BufReader::new(conn)
        .read_line(&mut answer)
        .await
        .unwrap_or(0);
    assert_eq!(n, 0, "answered {answer:?}");

    stop.send(()).unwrap();
    let stats = task.await.unwrap().unwrap();
    assert_eq!(stats.joined, 0);
    assert_eq!(stats.refused_joins, 1);
}
