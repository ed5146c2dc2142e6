//! Flood protection: a flooding connection is slowed, then closed; the others keep going.

use std::time::Duration;

use hush_proto::{
    ClientMessage, E2eeTo, ErrorCode, LeaveReason, OpaqueBytes, Ping, ServerMessage, Source,
    Unpublish,
};

use super::*;
use crate::routing::{Audit, RateLimit};

fn ping(seq: u64) -> ClientMessage {
    ClientMessage::Ping(Ping { seq })
}

/// A relay whose message bucket holds `burst` and refills at `per_second`, with `strikes`.
fn rate_limited(burst: u32, per_second: u32, strikes: u32) -> Sim {
    Sim::with_config(RelayConfig {
        message_rate: RateLimit { burst, per_second },
        max_rate_strikes: strikes,
        ..Default::default()
    })
}

/// `n` pings from `conn`, and everything that happened.
fn pings(sim: &mut Sim, conn: ConnId, n: u64) -> Vec<Output> {
    (0..n).flat_map(|seq| sim.send(conn, ping(seq))).collect()
}

fn pongs(out: &[Output], conn: ConnId) -> usize {
    to(out, conn)
        .iter()
        .filter(|m| matches!(m, ServerMessage::Pong(_)))
        .count()
}

#[test]
fn a_flood_is_dropped_then_closed_while_the_others_keep_going() {
    let mut sim = rate_limited(5, 10, 20);
    let honest = sim.join("honest", "r", full());
    let flood = sim.join("flood", "r", full());

    // The join took one token: four more pass, then one error, then silence.
    let out = pings(&mut sim, flood, 10);
    assert_eq!(pongs(&out, flood), 4);
    assert_eq!(error(&out, flood), (ErrorCode::RateLimited, false));
    assert!(!closed(&out, flood));

    // The bucket refills: 10 per second.
    sim.now = sim.now.advance(Duration::from_millis(300));
    let out = pings(&mut sim, flood, 5);
    assert_eq!(pongs(&out, flood), 3);

    // Going on past the strike limit closes the connection, which is a leave.
    let out = pings(&mut sim, flood, 30);
    assert!(closed(&out, flood));
    let fatal = to(&out, flood).into_iter().any(
        |m| matches!(m, ServerMessage::Error(e) if e.code == ErrorCode::RateLimited && e.fatal),
    );
    assert!(fatal);
    assert!(out.contains(&Output::Audit(Audit::Abuse {
        conn: flood,
        code: ErrorCode::RateLimited
    })));
    assert!(matches!(
        to(&out, honest).as_slice(),
        [ServerMessage::ParticipantLeft(e)] if e.reason == LeaveReason::Disconnected
    ));
    assert_alive(&mut sim, honest);
}

/// A ping flood interleaved with key-exchange messages, which have a bucket of their own: each
/// accepted key message used to clear the strike count, so the flood was dropped for ever and
/// never closed.
#[test]
fn a_flood_is_closed_even_when_the_other_bucket_lets_messages_through() {
    let mut sim = rate_limited(5, 10, 20);
    let [a, b] = sim.join_all("r", ["a", "b"]);
    let mut out = Vec::new();
    for round in 0..10 {
        out.extend(sim.send(
            a,
            ClientMessage::E2ee(E2eeTo {
                to: pid("b"),
                payload: OpaqueBytes::new(vec![round; 64]),
            }),
        ));
        out.extend(pings(&mut sim, a, 15));
        if closed(&out, a) {
            break;
        }
    }
    assert!(closed(&out, a), "the flood went on");
    assert_alive(&mut sim, b);
}

/// One member toggling its camera as fast as the general bucket allows: each publish and
/// unpublish is announced to every member, so 199 of them filled most of another member's
/// signaling queue (256) at once, and two such members had it disconnected. Track changes have
/// a bucket of their own: 16 at once, then refused, then 2 a second.
#[test]
fn publish_and_unpublish_churn_is_limited_per_member() {
    let mut sim = Sim::new();
    let [a, b] = sim.join_all("r", ["a", "b"]);
    let mut out = Vec::new();
    for i in 0..200 {
        let message = if i % 2 == 0 {
            publish(Source::Camera)
        } else {
            ClientMessage::Unpublish(Unpublish {
                source: Source::Camera,
            })
        };
        out.extend(sim.send(a, message));
    }
    let announced = to(&out, b)
        .iter()
        .filter(|m| {
            matches!(
                m,
                ServerMessage::TrackPublished(_) | ServerMessage::TrackUnpublished(_)
            )
        })
        .count();
    assert_eq!(
        announced, 16,
        "b heard each change the bucket let through, and no more"
    );
    let refused = to(&out, a)
        .iter()
        .filter(|m| matches!(m, ServerMessage::Error(e) if e.code == ErrorCode::RateLimited && !e.fatal))
        .count();
    assert_eq!(refused, 184, "a was told of each refusal");
    assert!(!closed(&out, a));
    // A second later, two more changes pass.
    sim.now = sim.now.advance(Duration::from_secs(1));
    let out = sim.send(a, publish(Source::Camera));
    assert!(matches!(
        to(&out, b).as_slice(),
        [ServerMessage::TrackPublished(_)]
    ));
    assert_alive(&mut sim, b);
}

#[test]
fn garbage_counts_against_the_rate_limit_too() {
    let mut sim = rate_limited(3, 1, 2);
    let a = sim.join("a", "r", full());
    let mut out = Vec::new();
    for _ in 0..6 {
        out.extend(sim.send_text(a, "garbage"));
    }
    assert!(closed(&out, a));
}
