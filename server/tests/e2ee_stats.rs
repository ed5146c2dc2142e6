//! Client-reported E2EE health over real sockets: an `e2ee_stats` report moves the relay's
//! `/metrics` counters, a second one within the interval does not, and nobody hears of it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

mod common;

use std::net::SocketAddr;

use common::{Client, STEP, keys, start};
use hush_proto::{ClientMessage, E2eeStats, Ping, ServerMessage};
use hush_relay::http::RelayOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `GET /metrics`: the body.
async fn metrics(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(STEP, stream.read_to_string(&mut response))
        .await
        .unwrap()
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

fn metric(text: &str, prefix: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix)?.strip_prefix(' ')?.parse().ok())
}

fn report(dropped: &[(&str, u64)], decrypted: u64, epoch: u64) -> ClientMessage {
    ClientMessage::E2eeStats(E2eeStats {
        dropped: dropped.iter().map(|&(r, n)| (r.to_string(), n)).collect(),
        decrypted,
        epoch: Some(epoch),
        last: false,
    })
}

/// Pings and waits for the pong: everything sent before it was handled, and no error came.
async fn round_trip(c: &mut Client, seq: u64) {
    c.send(&ClientMessage::Ping(Ping { seq })).await;
    for _ in 0..10 {
        match c.recv().await {
            Some(ServerMessage::Pong(p)) if p.seq == seq => return,
            Some(ServerMessage::Error(e)) => panic!("refused: {e:?}"),
            Some(_) => {}
            None => panic!("closed"),
        }
    }
    panic!("no pong");
}

#[tokio::test]
async fn a_clients_report_moves_the_e2ee_metrics_and_floods_do_not() {
    let addr = start(RelayOptions::new(keys())).await;
    let before = metrics(addr).await;
    assert_eq!(metric(&before, "hush_e2ee_decrypted_frames_total"), Some(0));
    assert_eq!(metric(&before, "hush_e2ee_epoch_changes_total"), Some(0));

    let (mut alice, _) = Client::join(addr, "alice", "e1").await;
    let (mut bob, _) = Client::join(addr, "bob", "e1").await;
    alice
        .send(&report(
            &[("auth_failed", 2), ("made_up_reason", 3)],
            120,
            4,
        ))
        .await;
    // Within the interval: dropped silently (no error comes back before the pong).
    alice
        .send(&report(&[("auth_failed", 1000)], 1000, 40))
        .await;
    round_trip(&mut alice, 1).await;
    bob.send(&report(&[], 30, 4)).await;
    round_trip(&mut bob, 2).await;

    let text = metrics(addr).await;
    assert_eq!(
        metric(&text, "hush_e2ee_decrypted_frames_total"),
        Some(150),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "hush_e2ee_dropped_frames_total{reason=\"auth_failed\"}"
        ),
        Some(2)
    );
    assert_eq!(
        metric(&text, "hush_e2ee_dropped_frames_total{reason=\"other\"}"),
        Some(3)
    );
    assert_eq!(
        metric(&text, "hush_e2ee_reports_total{outcome=\"counted\"}"),
        Some(2)
    );
    assert_eq!(
        metric(&text, "hush_e2ee_reports_total{outcome=\"rate_limited\"}"),
        Some(1)
    );
    // First reports are baselines: no epoch change yet.
    assert_eq!(metric(&text, "hush_e2ee_epoch_changes_total"), Some(0));
    // No client-made label and no ids.
    assert!(!text.contains("made_up") && !text.contains("alice") && !text.contains("e1"));

    // The last report before leaving passes the interval once.
    alice
        .send(&ClientMessage::E2eeStats(E2eeStats {
            decrypted: 7,
            epoch: Some(6),
            last: true,
            ..E2eeStats::default()
        }))
        .await;
    round_trip(&mut alice, 3).await;
    let text = metrics(addr).await;
    assert_eq!(metric(&text, "hush_e2ee_decrypted_frames_total"), Some(157));
    assert_eq!(metric(&text, "hush_e2ee_epoch_changes_total"), Some(2));
}
