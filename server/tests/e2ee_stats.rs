//! Client-reported E2EE health over real sockets: an `e2ee_stats` report moves the relay's
//! `/metrics` counters, a second one within the interval does not, and nobody hears of it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

use hush_proto::{ClientMessage, E2eeStats};
use hush_testkit::http::{assert_metrics, metric};
use hush_testkit::relay::TestRelay;

fn report(dropped: &[(&str, u64)], decrypted: u64, epoch: u64) -> ClientMessage {
    ClientMessage::E2eeStats(E2eeStats {
        dropped: dropped.iter().map(|&(r, n)| (r.to_string(), n)).collect(),
        decrypted,
        epoch: Some(epoch),
        last: false,
    })
}

#[tokio::test]
async fn a_clients_report_moves_the_e2ee_metrics_and_floods_do_not() {
    let relay = TestRelay::start().await;
    let before = relay.metrics().await;
    assert_eq!(metric(&before, "hush_e2ee_decrypted_frames_total"), Some(0));
    assert_eq!(metric(&before, "hush_e2ee_epoch_changes_total"), Some(0));

    let (mut alice, _) = relay.join("alice", "e1").await;
    let (mut bob, _) = relay.join("bob", "e1").await;
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
    alice.round_trip(1).await;
    bob.send(&report(&[], 30, 4)).await;
    bob.round_trip(2).await;

    let text = relay.metrics().await;
    let expected = [
        ("hush_e2ee_decrypted_frames_total", 150),
        ("hush_e2ee_dropped_frames_total{reason=\"auth_failed\"}", 2),
        ("hush_e2ee_dropped_frames_total{reason=\"other\"}", 3),
        ("hush_e2ee_reports_total{outcome=\"counted\"}", 2),
        ("hush_e2ee_reports_total{outcome=\"rate_limited\"}", 1),
        // First reports are baselines: no epoch change yet.
        ("hush_e2ee_epoch_changes_total", 0),
    ];
    assert_metrics(&text, &expected);
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
    alice.round_trip(3).await;
    let text = relay.metrics().await;
    assert_eq!(metric(&text, "hush_e2ee_decrypted_frames_total"), Some(157));
    assert_eq!(metric(&text, "hush_e2ee_epoch_changes_total"), Some(2));
}
