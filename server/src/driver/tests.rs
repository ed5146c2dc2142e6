//! The driver around the core: metrics counted once, the per-address backoff fed by token refusals.

use hush_proto::TrackId;
use rtc::rtp;

use super::*;
use crate::ops::limits::IpLimits;
use crate::routing::RelayConfig;
use crate::token::{TokenPolicy, TokenVerifier, VerifyingKeys};

fn driver() -> (Driver, Arc<Metrics>) {
    let relay = Relay::new(
        RelayConfig::default(),
        TokenVerifier::new(VerifyingKeys::new(), TokenPolicy::new("hush")),
    );
    let metrics = Arc::new(Metrics::new());
    let (tx, rx) = mpsc::channel(1);
    let driver = Driver {
        relay,
        media: MediaOptions::default(),
        rx,
        tx: tx.downgrade(),
        conns: HashMap::new(),
        fanouts: HashMap::new(),
        ops: DriverOps {
            metrics: Arc::clone(&metrics),
            limiter: Arc::new(Mutex::new(IpLimiter::new(IpLimits::default()))),
            audit: AuditSink::new([0; 32]),
            token_store: None,
        },
        fanout_totals: FanoutTotals::default(),
        recordings: Recordings::new(None, Arc::clone(&metrics)).0,
        recording_failures: mpsc::channel(1).1,
        threads: None,
    };
    (driver, metrics)
}

/// A fan-out with one subscriber whose queue holds one packet: `sent` packets give one
/// forwarded and `sent - 1` dropped.
fn fanout(track: u64, sent: usize) -> (Arc<Fanout>, mpsc::Receiver<rtp::Packet>) {
    let fanout = Arc::new(Fanout::new(TrackId(track), SenderIndex(1)));
    let (sink, queue) = mpsc::channel(1);
    fanout.add_sink(
        ConnId(9),
        sink,
        Arc::new(crate::media::fanout::SinkControl::default()),
        90_000,
    );
    for _ in 0..sent {
        fanout.forward(&rtp::Packet::default(), 0, false);
    }
    (fanout, queue)
}

fn value(text: &str, prefix: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix)?.strip_prefix(' ')?.parse().ok())
}

const FORWARDED: &str = "hush_forwarded_packets_total";
const DROPPED: &str = "hush_dropped_packets_total{reason=\"queue_full\"}";
/// Empty payloads: the 12-byte fixed header each.
const BYTES: &str = "hush_forwarded_bytes_total";

#[test]
fn fanout_counters_reach_metrics_once_and_survive_unpublishing() {
    let (mut d, metrics) = driver();
    let (a, _qa) = fanout(0, 4);
    d.fanouts.insert((ConnId(1), TrackId(0)), Arc::clone(&a));
    d.refresh_metrics();
    let text = metrics.render();
    assert_eq!(value(&text, FORWARDED), Some(1), "{text}");
    assert_eq!(value(&text, BYTES), Some(12), "{text}");
    assert_eq!(value(&text, DROPPED), Some(3));
    // A second refresh adds nothing new.
    d.refresh_metrics();
    assert_eq!(value(&metrics.render(), FORWARDED), Some(1));

    // Unpublished: the fan-out goes, its counts stay.
    d.output(Output::Unpublished {
        publisher: ConnId(1),
        track: TrackId(0),
    });
    assert!(d.fanouts.is_empty());
    let (b, _qb) = fanout(1, 2);
    d.fanouts.insert((ConnId(2), TrackId(1)), b);
    d.refresh_metrics();
    let text = metrics.render();
    assert_eq!(value(&text, FORWARDED), Some(2), "{text}");
    assert_eq!(value(&text, BYTES), Some(24), "{text}");
    assert_eq!(value(&text, DROPPED), Some(4));
    assert_eq!(value(&text, "hush_rooms"), Some(0));
    assert_eq!(value(&text, "hush_participants"), Some(0));
}

#[test]
fn token_refusals_back_off_the_address_and_other_refusals_do_not() {
    let (mut d, _) = driver();
    let ip: IpAddr = "192.0.2.1".parse().unwrap();
    let (outgoing, _out) = mpsc::channel(8);
    let conn = d.open(outgoing, Arc::new(Notify::new()), ip);
    let limiter = Arc::clone(&d.ops.limiter);
    let free = IpLimits::default().free_auth_failures;
    // Room refusals are not authentication failures.
    for _ in 0..free + 3 {
        d.audit(&Audit::JoinRefused {
            conn,
            code: hush_proto::ErrorCode::RoomFull,
            who: None,
        });
    }
    assert!(
        limiter
            .lock()
            .unwrap()
            .try_connect(Instant::now(), ip)
            .is_ok()
    );
    for _ in 0..=free {
        d.audit(&Audit::JoinRefused {
            conn,
            code: hush_proto::ErrorCode::TokenExpired,
            who: None,
        });
    }
    assert!(matches!(
        limiter.lock().unwrap().try_connect(Instant::now(), ip),
        Err(crate::ops::limits::LimitRefusal::AuthBackoff { .. })
    ));
}

#[tokio::test]
async fn a_connection_whose_queue_fills_is_dropped_and_its_socket_told_to_close() {
    let (mut d, _) = driver();
    let ip: IpAddr = "192.0.2.7".parse().unwrap();
    // A client that reads nothing: its queue holds two messages.
    let (outgoing, _unread) = mpsc::channel(2);
    let kill = Arc::new(Notify::new());
    let conn = d.open(outgoing, Arc::clone(&kill), ip);
    let pong = || ServerMessage::Pong(hush_proto::Ping { seq: 1 });
    d.send(conn, pong());
    d.send(conn, pong());
    assert!(
        d.conns.contains_key(&conn),
        "a full queue is not yet an overflow"
    );
    let told = tokio::time::timeout(std::time::Duration::from_millis(20), kill.notified());
    assert!(told.await.is_err(), "not told while it keeps up");
    // The third overflows: the driver forgets the connection and, since its queue has no room
    // for a close, tells the socket task directly (before, the socket stayed open and silent).
    d.send(conn, pong());
    assert!(!d.conns.contains_key(&conn));
    let told = tokio::time::timeout(std::time::Duration::from_secs(5), kill.notified());
    assert!(told.await.is_ok(), "the socket task is told to close");
}
