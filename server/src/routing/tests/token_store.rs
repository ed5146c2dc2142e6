//! Joins through a token store ([`RelayConfig::token_store`]): nobody is admitted before the
//! store marked the token id used, a used id or a store that cannot answer refuses the join, and
//! late or repeated answers change nothing.

use std::time::Duration;

use hush_proto::{ErrorCode, ServerMessage};

use super::*;
use crate::routing::TokenClaim;

fn store_sim() -> Sim {
    let config = RelayConfig {
        token_store: true,
        ..RelayConfig::default()
    };
    Sim::with_config(config)
}

/// Connects and sends a join; returns the connection, the claimed id and the outputs.
fn start_join(sim: &mut Sim, sub: &str) -> (ConnId, String, Vec<Output>) {
    let token = sim.token(sub, "r", full());
    let conn = sim.connect();
    let out = sim.send(conn, Sim::join_message(token, Some("r")));
    let claims: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::ClaimToken {
                conn: c,
                jti,
                forget_after,
            } if *c == conn => Some((jti.clone(), *forget_after)),
            _ => None,
        })
        .collect();
    assert_eq!(claims.len(), 1, "one claim per join: {out:?}");
    let (jti, forget_after) = claims[0].clone();
    // Forgotten only after the token expired (exp + leeway).
    assert_eq!(forget_after, sim.now.unix_secs() + 600 + 30);
    (conn, jti, out)
}

fn claim(sim: &mut Sim, conn: ConnId, answer: TokenClaim) -> Vec<Output> {
    sim.relay.token_claimed(sim.now, conn, answer);
    sim.drain()
}

#[test]
fn nobody_is_admitted_before_the_store_answers() {
    let mut sim = store_sim();
    let (conn, jti, out) = start_join(&mut sim, "alice");
    assert_eq!(jti, "jti-1");
    assert!(to(&out, conn).is_empty(), "nothing sent yet: {out:?}");
    assert_eq!(sim.relay.participant_total(), 0);
    let out = claim(&mut sim, conn, TokenClaim::Fresh);
    assert!(matches!(
        to(&out, conn).first(),
        Some(ServerMessage::Joined(_))
    ));
    assert_eq!(sim.relay.participant_count(&rid("r")), Some(1));
    // A second answer for the same connection is ignored.
    assert!(claim(&mut sim, conn, TokenClaim::Used).is_empty());
    assert_alive(&mut sim, conn);
}

#[test]
fn an_id_the_store_knows_is_refused_as_replayed() {
    let mut sim = store_sim();
    let (conn, _, _) = start_join(&mut sim, "alice");
    let out = claim(&mut sim, conn, TokenClaim::Used);
    assert_refused_fatally(&out, conn, ErrorCode::TokenReplayed);
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Audit(crate::routing::Audit::JoinRefused {
            code: ErrorCode::TokenReplayed,
            ..
        })
    )));
    assert_eq!(sim.relay.participant_total(), 0);
}

/// A join whose token was verified and whose claim the store never answers times out; the
/// audit line names whom the token named (it named nobody).
#[test]
fn a_join_the_store_never_answers_times_out_and_the_audit_names_it() {
    let mut sim = store_sim();
    let (conn, _, _) = start_join(&mut sim, "alice");
    let out = sim.advance(Duration::from_secs(10));
    assert_refused_fatally(&out, conn, ErrorCode::JoinTimeout);
    assert!(
        out.contains(&Output::Audit(crate::routing::Audit::JoinRefused {
            conn,
            code: ErrorCode::JoinTimeout,
            who: Some((rid("r"), pid("alice"))),
        }))
    );
}

#[test]
fn a_store_that_cannot_answer_refuses_the_join() {
    let mut sim = store_sim();
    let (conn, _, _) = start_join(&mut sim, "alice");
    let out = claim(&mut sim, conn, TokenClaim::Unavailable);
    assert_refused_fatally(&out, conn, ErrorCode::ServerBusy);
    assert_eq!(sim.relay.participant_total(), 0);
    // The token was not used: the same one asks the store again (and joins when it answers).
    let token = sim.token("bob", "r", full());
    let first = sim.connect();
    sim.send(first, Sim::join_message(token.clone(), Some("r")));
    claim(&mut sim, first, TokenClaim::Unavailable);
    let again = sim.connect();
    let out = sim.send(again, Sim::join_message(token, Some("r")));
    assert!(out.iter().any(|o| matches!(o, Output::ClaimToken { .. })));
    let out = claim(&mut sim, again, TokenClaim::Fresh);
    assert!(matches!(
        to(&out, again).first(),
        Some(ServerMessage::Joined(_))
    ));
}

#[test]
fn a_store_that_never_answers_ends_in_the_join_timeout() {
    let mut sim = store_sim();
    let (conn, _, _) = start_join(&mut sim, "alice");
    let timeout = RelayConfig::default().join_timeout;
    let out = sim.advance(timeout + Duration::from_millis(1));
    assert_refused_fatally(&out, conn, ErrorCode::JoinTimeout);
    // The answer after the connection is gone does nothing.
    assert!(claim(&mut sim, conn, TokenClaim::Fresh).is_empty());
    assert_eq!(sim.relay.participant_total(), 0);
}

#[test]
fn a_second_join_while_one_is_checked_is_refused() {
    let mut sim = store_sim();
    let (conn, _, _) = start_join(&mut sim, "alice");
    let token = sim.token("alice", "r", full());
    let out = sim.send(conn, Sim::join_message(token, Some("r")));
    assert_refused_fatally(&out, conn, ErrorCode::AlreadyJoined);
    assert!(
        !out.iter().any(|o| matches!(o, Output::ClaimToken { .. })),
        "no second claim: {out:?}"
    );
    assert!(claim(&mut sim, conn, TokenClaim::Fresh).is_empty());
    assert_eq!(sim.relay.participant_total(), 0);
}

#[test]
fn a_connection_that_leaves_while_checked_is_forgotten() {
    let mut sim = store_sim();
    let (conn, _, _) = start_join(&mut sim, "alice");
    sim.relay.disconnected(sim.now, conn);
    sim.drain();
    assert!(claim(&mut sim, conn, TokenClaim::Fresh).is_empty());
    assert_eq!(sim.relay.participant_total(), 0);
}

#[test]
fn a_bad_token_never_reaches_the_store() {
    // Only a token whose signature and claims passed may use up an id: a forged one with the
    // same jti must not burn the real token.
    let mut sim = store_sim();
    let token = sim.token("alice", "r", full());
    // The same claims (same jti) signed with a key the relay does not hold.
    let claims = TokenClaims {
        sub: pid("alice"),
        room: rid("r"),
        aud: Audience::from("hush"),
        exp: sim.now.unix_secs() + 600,
        nbf: None,
        iat: None,
        jti: Some(format!("jti-{}", sim.next_jti)),
        grants: full(),
    };
    let wrong = SigningKey::hs256("k1", b"another-secret-of-32-bytes-long!").unwrap();
    let forged = mint(&claims, &wrong).unwrap();
    let conn = sim.connect();
    let out = sim.send(conn, Sim::join_message(forged, Some("r")));
    assert_refused_fatally(&out, conn, ErrorCode::TokenBadSignature);
    assert!(!out.iter().any(|o| matches!(o, Output::ClaimToken { .. })));
    // The core's own cache still refuses a replay on this process without asking the store.
    let conn = sim.connect();
    let out = sim.send(conn, Sim::join_message(token.clone(), Some("r")));
    assert!(out.iter().any(|o| matches!(o, Output::ClaimToken { .. })));
    claim(&mut sim, conn, TokenClaim::Fresh);
    let again = sim.connect();
    let out = sim.send(again, Sim::join_message(token, Some("r")));
    assert_refused_fatally(&out, again, ErrorCode::TokenReplayed);
    assert!(!out.iter().any(|o| matches!(o, Output::ClaimToken { .. })));
}

#[test]
fn without_a_store_joins_are_admitted_at_once() {
    let mut sim = Sim::new();
    let (conn, out) = sim.try_join("alice", "r", full());
    assert!(!out.iter().any(|o| matches!(o, Output::ClaimToken { .. })));
    assert!(matches!(
        to(&out, conn).first(),
        Some(ServerMessage::Joined(_))
    ));
}
