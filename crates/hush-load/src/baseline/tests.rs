//! The references in process: every packet arrives, forged and tampered ones are refused.

use super::drive::{frame_sizes, hello};
use super::*;
use bytes::BytesMut;
use tokio::sync::oneshot;

/// One second of the test stream (audio 100 B at 50/s, video 300 kbit/s at 30 fps) from
/// `rooms` × `per_room` participants.
pub(super) fn stream_of(rooms: usize, per_room: usize) -> Stream {
    Stream {
        rooms,
        per_room,
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

/// At least 99 % of what a lossless forwarder delivers arrived, none extra, each with its
/// latency recorded.
pub(super) fn assert_delivered(m: &Measured) {
    assert!(
        m.forwarded_packets <= m.expected_packets
            && m.forwarded_packets * 100 >= m.expected_packets * 99,
        "{m:?}"
    );
    assert_eq!(m.latency_us.count, m.forwarded_packets);
}

async fn run(mode: Mode) {
    let (addr, tx, task) = start_forwarder(mode).await;
    let s = stream_of(1, 3);
    let m = drive(mode, addr, &s).await.unwrap();
    tx.send(()).unwrap();
    let stats = task.await.unwrap().unwrap();

    // 1 s × (50 audio + 30 frames × 2 packets) × 3 participants, each to 2 others.
    assert_eq!(frame_sizes(&s), vec![625, 625]);
    assert_eq!(m.mode, mode);
    assert_eq!(m.sent_packets, 330);
    assert_eq!(m.expected_packets, 660);
    assert_delivered(&m);
    assert!(m.latency_us.count > 0 && m.latency_us.max >= m.latency_us.p50);
    // Payload bytes: per sender 50 × 100 + 60 × 625, each received twice.
    let per_sender = 50 * 100 + 60 * 625;
    assert!(m.received_bytes <= 3 * 2 * per_sender, "{m:?}");
    // The stream lasts a second; how much longer the run took is the machine's, not asserted.
    assert!(m.wall_secs >= 1.0, "{m:?}");
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
    let mut s = stream_of(1, 3);
    s.video_kbps = 2500; // 10416 bytes a frame at 30 fps: 9 packets
    let f = frame_sizes(&s);
    assert_eq!(f.len(), 9);
    assert_eq!(f.iter().sum::<usize>(), 10416);
    assert!(f.iter().all(|&p| p <= 1200));
    s.video_kbps = 0;
    assert!(frame_sizes(&s).is_empty());
}
