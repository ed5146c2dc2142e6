//! `e2ee_stats`: client-reported E2EE health, rate limited and bounded, for the metrics only.

use std::time::Duration;

use hush_proto::{ClientMessage, E2eeDropReason, E2eeStats, ErrorCode, MAX_E2EE_STATS_COUNT};

use super::*;
use crate::routing::E2eeHealth;

fn report(dropped: &[(&str, u64)], decrypted: u64, epoch: Option<u64>) -> ClientMessage {
    ClientMessage::E2eeStats(E2eeStats {
        dropped: dropped.iter().map(|&(r, n)| (r.to_string(), n)).collect(),
        decrypted,
        epoch,
        last: false,
    })
}

fn last(decrypted: u64) -> ClientMessage {
    ClientMessage::E2eeStats(E2eeStats {
        decrypted,
        last: true,
        ..E2eeStats::default()
    })
}

fn health(out: &[Output]) -> Vec<&E2eeHealth> {
    out.iter()
        .filter_map(|o| match o {
            Output::E2eeHealth(h) => Some(h),
            _ => None,
        })
        .collect()
}

fn counted(decrypted: u64, epoch_changes: u64) -> E2eeHealth {
    E2eeHealth::Report {
        dropped: Vec::new(),
        decrypted,
        epoch_changes,
    }
}

#[test]
fn a_report_is_bounded_unknown_reasons_become_other_and_nothing_is_sent() {
    let mut sim = Sim::new();
    let a = sim.join("a", "r", full());
    let b = sim.join("b", "r", full());
    let dropped = [
        ("auth_failed", 3),
        ("made_up", 2),
        ("also_made_up", 4),
        ("other", 1),
        ("replayed", 0),
        ("unknown_kid", u64::MAX),
    ];
    let out = sim.send(a, report(&dropped, u64::MAX, Some(7)));
    let expected = E2eeHealth::Report {
        // Sorted by reason; zero counts left out; unknown names summed into `other`.
        dropped: vec![
            (E2eeDropReason::UnknownKid, MAX_E2EE_STATS_COUNT),
            (E2eeDropReason::AuthFailed, 3),
            (E2eeDropReason::Other, 7),
        ],
        decrypted: MAX_E2EE_STATS_COUNT,
        // The first report is the baseline of this connection's epoch.
        epoch_changes: 0,
    };
    assert_eq!(health(&out), [&expected]);
    // No answer to anyone: a report only feeds the metrics.
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(to(&out, a).is_empty() && to(&out, b).is_empty());
}

#[test]
fn one_report_per_interval_extra_ones_dropped_silently_and_counted() {
    let mut sim = Sim::new();
    let a = sim.join("a", "r", full());
    let b = sim.join("b", "r", full());
    assert_eq!(
        health(&sim.send(a, report(&[], 1, Some(2)))),
        [&counted(1, 0)]
    );
    // Within 5 s: dropped without an error, only counted as rate limited.
    sim.advance(Duration::from_millis(4_999));
    let out = sim.send(a, report(&[], 50, Some(9)));
    assert_eq!(health(&out), [&E2eeHealth::RateLimited]);
    assert!(to(&out, a).is_empty(), "{out:?}");
    // Another connection has its own interval.
    assert_eq!(health(&sim.send(b, report(&[], 4, None))), [&counted(4, 0)]);
    // Once the interval is over: counted again; the dropped report's epoch was not taken.
    sim.advance(Duration::from_millis(1));
    assert_eq!(
        health(&sim.send(a, report(&[], 5, Some(5)))),
        [&counted(5, 3)]
    );
    assert_alive(&mut sim, a);
}

#[test]
fn epochs_count_forward_only_and_are_capped() {
    let mut sim = Sim::new();
    let a = sim.join("a", "r", full());
    let step = |sim: &mut Sim, epoch| {
        sim.advance(Duration::from_secs(5));
        match health(&sim.send(a, report(&[], 0, epoch)))[..] {
            [E2eeHealth::Report { epoch_changes, .. }] => *epoch_changes,
            ref other => panic!("{other:?}"),
        }
    };
    assert_eq!(step(&mut sim, Some(10)), 0);
    assert_eq!(step(&mut sim, Some(12)), 2);
    assert_eq!(step(&mut sim, None), 0, "no epoch named: no change");
    assert_eq!(step(&mut sim, Some(13)), 1);
    assert_eq!(step(&mut sim, Some(1)), 0, "going back is a new baseline");
    assert_eq!(step(&mut sim, Some(3)), 2);
    assert_eq!(step(&mut sim, Some(u64::MAX)), MAX_E2EE_STATS_COUNT);
}

#[test]
fn a_last_report_passes_the_interval_once_then_nothing_counts() {
    let mut sim = Sim::new();
    let a = sim.join("a", "r", full());
    assert_eq!(health(&sim.send(a, last(1))).len(), 1);
    let b = sim.join("b", "r", full());
    assert_eq!(health(&sim.send(b, report(&[], 1, None))), [&counted(1, 0)]);
    assert_eq!(health(&sim.send(b, last(2))), [&counted(2, 0)]);
    // A second `last`, or anything after it, even much later: dropped.
    assert_eq!(health(&sim.send(b, last(3))), [&E2eeHealth::RateLimited]);
    sim.advance(Duration::from_secs(60));
    let out = sim.send(b, report(&[], 4, None));
    assert_eq!(health(&out), [&E2eeHealth::RateLimited]);
}

#[test]
fn only_joined_members_may_report() {
    let mut sim = Sim::new();
    let conn = sim.connect();
    let out = sim.send(conn, report(&[("auth_failed", 1)], 1, Some(1)));
    assert!(health(&out).is_empty(), "{out:?}");
    assert_refused_fatally(&out, conn, ErrorCode::NotJoined);
    // After leaving, the connection is gone: nothing is counted.
    let a = sim.join("a", "r", full());
    sim.send(a, ClientMessage::Leave);
    assert!(health(&sim.send(a, report(&[], 1, None))).is_empty());
}

#[test]
fn oversized_reports_are_refused_not_counted() {
    let mut sim = Sim::new();
    let a = sim.join("a", "r", full());
    let many: Vec<(String, u64)> = (0..40).map(|i| (format!("r{i}"), 1)).collect();
    let many: Vec<(&str, u64)> = many.iter().map(|(r, n)| (r.as_str(), *n)).collect();
    let out = sim.send(a, report(&many, 1, None));
    assert!(health(&out).is_empty());
    assert_refused(&out, a, ErrorCode::FieldTooLarge);
    let out = sim.send_text(a, r#"{"v":1,"type":"e2ee_stats","decrypted":-5}"#);
    assert!(health(&out).is_empty());
    assert_refused(&out, a, ErrorCode::MalformedMessage);
}
