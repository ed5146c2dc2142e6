//! A simulated relay with a stepped clock: tokens are minted per join, every output is
//! collected, and helpers pick out what one connection received.

mod admin;
mod e2ee_stats;
mod media;
mod membership;
mod moderation;
mod protection;
mod recording;
mod rekey;
mod token_store;

use std::time::{Duration, Instant};

use hush_proto::{
    AccessToken, Audience, ClientMessage, ErrorCode, Grants, Join, OpaqueBytes, ParticipantId,
    Publish, RoomId, ServerMessage, Source, TokenClaims,
};

use super::{ConnId, Output, Relay, RelayConfig};
use crate::time::Now;
use crate::token::{SigningKey, TokenPolicy, TokenVerifier, VerifyingKeys, mint};

const SECRET: &[u8; 32] = b"routing-tests-secret-32-bytes!!!";

pub(super) struct Sim {
    pub(super) relay: Relay,
    pub(super) now: Now,
    key: SigningKey,
    next_jti: u64,
}

impl Sim {
    pub(super) fn new() -> Self {
        Self::with_config(RelayConfig::default())
    }

    pub(super) fn with_config(config: RelayConfig) -> Self {
        let mut keys = VerifyingKeys::new();
        keys.add_hs256("k1", SECRET).unwrap();
        let tokens = TokenVerifier::new(keys, TokenPolicy::new("hush"));
        Self {
            relay: Relay::new(config, tokens),
            now: Now::new(Instant::now(), Duration::from_secs(1_800_000_000)),
            key: SigningKey::hs256("k1", SECRET).unwrap(),
            next_jti: 0,
        }
    }

    pub(super) fn token(&mut self, sub: &str, room: &str, grants: Grants) -> String {
        let iat = self.now.unix_secs();
        self.token_issued(sub, room, grants, Some(iat))
    }

    /// A token like [`Sim::token`] (with [`full`] grants) but without `iat`: it cannot show
    /// when it was issued.
    pub(super) fn token_without_iat(&mut self, sub: &str, room: &str) -> String {
        self.token_issued(sub, room, full(), None)
    }

    fn token_issued(&mut self, sub: &str, room: &str, grants: Grants, iat: Option<u64>) -> String {
        self.next_jti += 1;
        let claims = TokenClaims {
            sub: pid(sub),
            room: rid(room),
            aud: Audience::from("hush"),
            exp: self.now.unix_secs() + 600,
            nbf: None,
            iat,
            jti: Some(format!("jti-{}", self.next_jti)),
            grants,
        };
        mint(&claims, &self.key).unwrap()
    }

    pub(super) fn connect(&mut self) -> ConnId {
        self.relay.connect(self.now)
    }

    pub(super) fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.relay.poll_output()).collect()
    }

    pub(super) fn send(&mut self, conn: ConnId, message: ClientMessage) -> Vec<Output> {
        self.send_text(conn, &message.encode())
    }

    pub(super) fn send_text(&mut self, conn: ConnId, text: &str) -> Vec<Output> {
        self.relay.handle_text(self.now, conn, text);
        self.drain()
    }

    pub(super) fn join_message(token: String, room: Option<&str>) -> ClientMessage {
        ClientMessage::Join(Join {
            token: AccessToken::new(token),
            room: room.map(rid),
            identity_key: OpaqueBytes::new([5u8; 32]),
            attestation: None,
            offers_first: None,
        })
    }

    /// Connects and joins; returns the connection and everything that happened.
    pub(super) fn try_join(
        &mut self,
        sub: &str,
        room: &str,
        grants: Grants,
    ) -> (ConnId, Vec<Output>) {
        let token = self.token(sub, room, grants);
        self.try_join_with(token, room)
    }

    /// Connects and joins `room` with `token`; returns the connection and what happened.
    pub(super) fn try_join_with(&mut self, token: String, room: &str) -> (ConnId, Vec<Output>) {
        let conn = self.connect();
        let out = self.send(conn, Self::join_message(token, Some(room)));
        (conn, out)
    }

    /// Connects and joins, asserting success.
    pub(super) fn join(&mut self, sub: &str, room: &str, grants: Grants) -> ConnId {
        let (conn, out) = self.try_join(sub, room, grants);
        assert!(
            matches!(to(&out, conn).first(), Some(ServerMessage::Joined(_))),
            "{sub} did not join: {out:?}"
        );
        conn
    }

    /// Joins each of `subs` to `room` with [`full`] grants, in order.
    pub(super) fn join_all<const N: usize>(&mut self, room: &str, subs: [&str; N]) -> [ConnId; N] {
        subs.map(|sub| self.join(sub, room, full()))
    }

    /// Connects and tries to join with [`full`] grants, asserting a fatal refusal with `code`.
    pub(super) fn join_refused(&mut self, sub: &str, room: &str, code: ErrorCode) -> Vec<Output> {
        let (conn, out) = self.try_join(sub, room, full());
        assert_refused_fatally(&out, conn, code);
        out
    }

    pub(super) fn advance(&mut self, by: Duration) -> Vec<Output> {
        self.now = self.now.advance(by);
        self.relay.handle_timeout(self.now);
        self.drain()
    }
}

/// A fresh relay with room "r" and these members in it, joined in order.
pub(super) fn room_of<const N: usize>(members: [(&str, Grants); N]) -> (Sim, [ConnId; N]) {
    let mut sim = Sim::new();
    let conns = members.map(|(sub, grants)| sim.join(sub, "r", grants));
    (sim, conns)
}

pub(super) fn pid(s: &str) -> ParticipantId {
    ParticipantId::new(s).unwrap()
}

pub(super) fn rid(s: &str) -> RoomId {
    RoomId::new(s).unwrap()
}

/// Grants to publish everything and subscribe.
pub(super) fn full() -> Grants {
    Grants {
        publish: true,
        subscribe: true,
        ..Grants::default()
    }
}

/// Grants to subscribe only.
pub(super) fn viewer() -> Grants {
    Grants {
        subscribe: true,
        ..Grants::default()
    }
}

/// Grants to publish only.
pub(super) fn publisher_only() -> Grants {
    Grants {
        publish: true,
        ..Grants::default()
    }
}

pub(super) fn moderator() -> Grants {
    Grants {
        moderator: true,
        ..full()
    }
}

pub(super) fn only_sources(sources: &[Source]) -> Grants {
    Grants {
        sources: Some(sources.to_vec()),
        ..full()
    }
}

/// Publishes `source` as the SDP `mid` "0".
pub(super) fn publish(source: Source) -> ClientMessage {
    ClientMessage::Publish(Publish {
        source,
        mid: Some("0".into()),
    })
}

/// The messages sent to `conn`, in order.
pub(super) fn to(out: &[Output], conn: ConnId) -> Vec<&ServerMessage> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { conn: c, message } if *c == conn => Some(message),
            _ => None,
        })
        .collect()
}

/// The one error sent to `conn` (code, fatal), asserting there is exactly one.
pub(super) fn error(out: &[Output], conn: ConnId) -> (ErrorCode, bool) {
    let errors: Vec<_> = to(out, conn)
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::Error(e) => Some((e.code, e.fatal)),
            _ => None,
        })
        .collect();
    assert_eq!(errors.len(), 1, "expected one error to {conn:?}: {out:?}");
    errors[0]
}

pub(super) fn closed(out: &[Output], conn: ConnId) -> bool {
    out.iter()
        .any(|o| matches!(o, Output::Close { conn: c } if *c == conn))
}

/// A fatal refusal: the error, then the close.
pub(super) fn assert_refused_fatally(out: &[Output], conn: ConnId, code: ErrorCode) {
    assert_eq!(error(out, conn), (code, true), "{out:?}");
    assert!(closed(out, conn), "{conn:?} not closed: {out:?}");
}

/// A refusal that keeps the connection.
pub(super) fn assert_refused(out: &[Output], conn: ConnId, code: ErrorCode) {
    assert_eq!(error(out, conn), (code, false), "{out:?}");
    assert!(!closed(out, conn));
}

/// The connection still works: a ping gets its pong.
pub(super) fn assert_alive(sim: &mut Sim, conn: ConnId) {
    let out = sim.send(conn, ClientMessage::Ping(hush_proto::Ping { seq: 77 }));
    assert_eq!(
        to(&out, conn),
        [&ServerMessage::Pong(hush_proto::Ping { seq: 77 })]
    );
}
