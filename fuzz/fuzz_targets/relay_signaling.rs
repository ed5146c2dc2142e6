//! The relay's sans-IO routing core (`hush_relay::routing::Relay`) driven by up to eight
//! connections: joins with valid, expired, replayed, foreign-room and garbage tokens; every
//! client message built field by field (e2ee to members and strangers, publish, subscribe,
//! moderation, stats...); arbitrary text through `handle_text`; disconnects, keyframe requests
//! and time passing through `handle_timeout`. Never a panic; every message the relay sends goes
//! to an open connection and decodes on the client's side to the same message; no output names
//! a connection after it was closed; room sizes stay within the configured limit.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use hush_proto::{
    AccessToken, Audience, Candidate, ClientMessage, E2eeStats, E2eeTo, ForceDisconnect,
    ForceUnpublish, Grants, Join, LockRoom, OpaqueBytes, ParticipantId, Ping, Publish,
    RekeyRequest, RoomId, Sdp, ServerMessage, Source, TokenClaims, TrackId, TrackRef, Unpublish,
};
use hush_relay::routing::{ConnId, Output, Relay, RelayConfig};
use hush_relay::time::Now;
use hush_relay::token::{SigningKey, TokenPolicy, TokenVerifier, VerifyingKeys, mint};
use libfuzzer_sys::fuzz_target;

const SECRET: [u8; 32] = [42; 32];
const MAX_CONNS: usize = 8;
const MAX_PER_ROOM: u32 = 4;

#[derive(Arbitrary, Debug)]
enum Token {
    Valid,
    Expired,
    WrongAudience,
    /// Signed with a key the relay does not have.
    WrongKey,
    /// The last valid token again.
    Replay,
    Garbage(String),
}

#[derive(Arbitrary, Debug)]
enum Msg {
    Join {
        who: u8,
        room: u8,
        /// Name a room in the message (possibly another than the token's).
        room_field: Option<u8>,
        publish: bool,
        subscribe: bool,
        moderator: bool,
        token: Token,
        identity_key: Vec<u8>,
        attestation: Option<Vec<u8>>,
        offers_first: Option<bool>,
    },
    Leave,
    Offer(String),
    Answer(String),
    Candidate {
        candidate: String,
        mid: Option<String>,
    },
    Publish {
        source: u8,
        mid: Option<String>,
    },
    Unpublish(u8),
    Subscribe(u8),
    Unsubscribe(u8),
    E2ee {
        to: u8,
        payload: Vec<u8>,
    },
    KeyframeRequest(u8),
    Rekey,
    ForceDisconnect(u8),
    ForceUnpublish {
        who: u8,
        source: u8,
    },
    LockRoom(bool),
    CloseRoom,
    Ping(u64),
    E2eeStats {
        dropped: Vec<(String, u64)>,
        decrypted: u64,
        epoch: Option<u64>,
        last: bool,
    },
}

#[derive(Arbitrary, Debug)]
enum Op {
    Connect,
    Send { c: u8, msg: Msg },
    Text { c: u8, text: String },
    Disconnect(u8),
    MediaKeyframeRequest { c: u8, track: u8 },
    Advance(u16),
}

fn id(n: u8) -> ParticipantId {
    ParticipantId::new(format!("p{}", n % 10)).expect("valid")
}

fn room(n: u8) -> RoomId {
    RoomId::new(format!("room{}", n % 3)).expect("valid")
}

fn source(n: u8) -> Source {
    Source::ALL[usize::from(n) % Source::ALL.len()]
}

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

struct Sim {
    relay: Relay,
    now: Now,
    conns: Vec<ConnId>,
    open: BTreeSet<ConnId>,
    jti: u64,
    last_token: Option<String>,
}

impl Sim {
    fn token(&mut self, t: Token, who: u8, room_n: u8, grants: Grants) -> String {
        let key = match t {
            Token::WrongKey => SigningKey::hs256("k1", &[7; 32]),
            _ => SigningKey::hs256("k1", &SECRET),
        }
        .expect("a valid key");
        self.jti += 1;
        let now = self.now.unix_secs();
        let mut claims = TokenClaims {
            sub: id(who),
            room: room(room_n),
            aud: Audience::from("hush"),
            exp: now + 300,
            nbf: None,
            iat: Some(now),
            jti: Some(format!("jti-{}", self.jti)),
            grants,
        };
        match t {
            Token::Expired => claims.exp = now - 120,
            Token::WrongAudience => claims.aud = Audience::from("other"),
            Token::Replay => {
                if let Some(t) = &self.last_token {
                    return t.clone();
                }
            }
            Token::Garbage(s) => return s,
            _ => {}
        }
        let token = mint(&claims, &key).expect("small claims mint");
        if matches!(t, Token::Valid) {
            self.last_token = Some(token.clone());
        }
        token
    }

    fn message(&mut self, m: Msg) -> ClientMessage {
        match m {
            Msg::Join {
                who,
                room: r,
                room_field,
                publish,
                subscribe,
                moderator,
                token,
                identity_key,
                attestation,
                offers_first,
            } => {
                let grants = Grants {
                    publish,
                    subscribe,
                    moderator,
                    ..Grants::default()
                };
                let token = self.token(token, who, r, grants);
                ClientMessage::Join(Join {
                    token: AccessToken::new(token),
                    room: room_field.map(room),
                    identity_key: OpaqueBytes::new(identity_key),
                    attestation: attestation.map(OpaqueBytes::new),
                    offers_first,
                })
            }
            Msg::Leave => ClientMessage::Leave,
            Msg::Offer(sdp) => ClientMessage::Offer(Sdp { sdp }),
            Msg::Answer(sdp) => ClientMessage::Answer(Sdp { sdp }),
            Msg::Candidate { candidate, mid } => ClientMessage::Candidate(Candidate {
                candidate,
                sdp_mid: mid,
                ..candidate_defaults()
            }),
            Msg::Publish { source: s, mid } => ClientMessage::Publish(Publish {
                source: source(s),
                mid,
            }),
            Msg::Unpublish(s) => ClientMessage::Unpublish(Unpublish { source: source(s) }),
            Msg::Subscribe(t) => ClientMessage::Subscribe(TrackRef {
                track: TrackId(u64::from(t)),
            }),
            Msg::Unsubscribe(t) => ClientMessage::Unsubscribe(TrackRef {
                track: TrackId(u64::from(t)),
            }),
            Msg::E2ee { to, payload } => ClientMessage::E2ee(E2eeTo {
                to: id(to),
                payload: OpaqueBytes::new(payload),
            }),
            Msg::KeyframeRequest(t) => ClientMessage::KeyframeRequest(TrackRef {
                track: TrackId(u64::from(t)),
            }),
            Msg::Rekey => ClientMessage::Rekey(RekeyRequest::default()),
            Msg::ForceDisconnect(w) => {
                ClientMessage::ForceDisconnect(ForceDisconnect { participant: id(w) })
            }
            Msg::ForceUnpublish { who, source: s } => {
                ClientMessage::ForceUnpublish(ForceUnpublish {
                    participant: id(who),
                    source: source(s),
                })
            }
            Msg::LockRoom(locked) => ClientMessage::LockRoom(LockRoom { locked }),
            Msg::CloseRoom => ClientMessage::CloseRoom,
            Msg::Ping(seq) => ClientMessage::Ping(Ping { seq }),
            Msg::E2eeStats {
                dropped,
                decrypted,
                epoch,
                last,
            } => ClientMessage::E2eeStats(E2eeStats {
                dropped: dropped.into_iter().take(20).collect::<BTreeMap<_, _>>(),
                decrypted,
                epoch,
                last,
            }),
        }
    }

    fn drain(&mut self) {
        let mut closed = BTreeSet::new();
        while let Some(out) = self.relay.poll_output() {
            let named: Vec<ConnId> = match &out {
                Output::Send { conn, message } => {
                    let text = message.encode();
                    assert_eq!(ServerMessage::decode(&text).as_ref(), Ok(message), "{text}");
                    vec![*conn]
                }
                Output::Close { conn } => {
                    closed.insert(*conn);
                    vec![*conn]
                }
                Output::Media { conn, .. } => vec![*conn],
                Output::StartForward {
                    publisher,
                    subscriber,
                    ..
                } => vec![*publisher, *subscriber],
                _ => Vec::new(),
            };
            for c in named {
                assert!(
                    self.open.contains(&c),
                    "output for a connection that is not open: {out:?}"
                );
                if !matches!(out, Output::Close { .. }) {
                    assert!(!closed.contains(&c), "output after close: {out:?}");
                }
            }
        }
        for c in closed {
            // The adapter closes the socket and reports the disconnect.
            self.open.remove(&c);
            self.relay.disconnected(self.now, c);
            while let Some(out) = self.relay.poll_output() {
                if let Output::Send { conn, .. } = &out {
                    assert!(
                        self.open.contains(conn),
                        "output for a closed connection: {out:?}"
                    );
                }
            }
        }
        assert!(self.relay.participant_total() <= self.open.len());
        for r in 0..3 {
            let n = self.relay.participant_count(&room(r)).unwrap_or(0);
            assert!(n <= MAX_PER_ROOM as usize, "room over its limit");
        }
    }
}

fn candidate_defaults() -> Candidate {
    Candidate {
        candidate: String::new(),
        sdp_mid: None,
        sdp_m_line_index: None,
        username_fragment: None,
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let mut keys = VerifyingKeys::new();
    keys.add_hs256("k1", &SECRET).expect("a valid key");
    let mut config = RelayConfig::default();
    config.max_participants_per_room = MAX_PER_ROOM;
    config.max_rooms = 2;
    let mut relay = Relay::new(config, TokenVerifier::new(keys, TokenPolicy::new("hush")));
    relay.set_room_instance_key([5; 32]);
    let mut sim = Sim {
        relay,
        now: Now::new(base(), Duration::from_secs(1_800_000_000)),
        conns: Vec::new(),
        open: BTreeSet::new(),
        jti: 0,
        last_token: None,
    };
    for op in ops.into_iter().take(128) {
        match op {
            Op::Connect => {
                if sim.conns.len() < MAX_CONNS {
                    let c = sim.relay.connect(sim.now);
                    sim.conns.push(c);
                    sim.open.insert(c);
                }
            }
            Op::Send { c, msg } => {
                if let Some(&conn) = sim.conns.get(usize::from(c) % MAX_CONNS)
                    && sim.open.contains(&conn)
                {
                    let msg = sim.message(msg);
                    // Through the text path, as the WebSocket adapter does.
                    let text = msg.encode();
                    sim.relay.handle_text(sim.now, conn, &text);
                }
            }
            Op::Text { c, text } => {
                if let Some(&conn) = sim.conns.get(usize::from(c) % MAX_CONNS)
                    && sim.open.contains(&conn)
                {
                    sim.relay.handle_text(sim.now, conn, &text);
                }
            }
            Op::Disconnect(c) => {
                if let Some(&conn) = sim.conns.get(usize::from(c) % MAX_CONNS)
                    && sim.open.remove(&conn)
                {
                    sim.relay.disconnected(sim.now, conn);
                }
            }
            Op::MediaKeyframeRequest { c, track } => {
                if let Some(&conn) = sim.conns.get(usize::from(c) % MAX_CONNS)
                    && sim.open.contains(&conn)
                {
                    sim.relay
                        .request_keyframe(sim.now, conn, TrackId(u64::from(track)));
                }
            }
            Op::Advance(ms) => {
                sim.now = sim.now.advance(Duration::from_millis(u64::from(ms) * 64));
                if sim
                    .relay
                    .poll_timeout()
                    .is_some_and(|t| t <= sim.now.instant)
                {
                    sim.relay.handle_timeout(sim.now);
                }
            }
        }
        sim.drain();
    }
});
