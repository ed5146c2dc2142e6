//! hush-participant: three `Participant`s (key exchange, no backend key) behind a fake relay
//! the fuzzer schedules, fed relay messages as decoded JSON: honest `joined`,
//! `participant_joined`, `participant_left`, `rekey` and `e2ee` (the participants' own key
//! messages, forwarded), in any order; lies built field by field (`ServerMessage` values with
//! arbitrary ids, sender indexes, sequence numbers, identity keys, attestations and payloads);
//! and arbitrary text through `ServerMessage::decode`. Never a panic; every message a
//! participant sends decodes on the relay's side to the same message; the frame layer's key
//! contract holds; `sending_epoch <= latest_epoch`.
#![no_main]

use arbitrary::Arbitrary;
use hush_fuzz::{KeyLedger, rng};
use hush_participant::{Input, Instant, Output, Participant, ParticipantConfig, StreamContext};
use hush_proto::{
    ClientMessage, E2eeFrom, Grants, Joined, LeaveReason, OpaqueBytes, ParticipantId,
    ParticipantInfo, ParticipantJoined, ParticipantLeft, RekeyEvent, RoomId, RoomInstance,
    SenderIndex, ServerMessage,
};
use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha20Rng;

const N: usize = 3;

#[derive(Arbitrary, Debug)]
enum Key {
    /// Participant `n`'s real identity key.
    Of(u8),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Info {
    who: u8,
    sender_index: u32,
    join_seq: u64,
    key: Key,
    attestation: Option<Vec<u8>>,
}

/// A relay message of the fuzzer's making.
#[derive(Arbitrary, Debug)]
enum Lie {
    Joined {
        you: u8,
        sender_index: u32,
        join_seq: u64,
        room_instance: Option<[u8; 16]>,
        participants: Vec<Info>,
    },
    ParticipantJoined {
        seq: u64,
        info: Info,
    },
    ParticipantLeft {
        seq: u64,
        who: u8,
        sender_index: u32,
        reason: u8,
    },
    Rekey {
        seq: u64,
    },
    E2ee {
        from: u8,
        payload: Vec<u8>,
    },
}

#[derive(Arbitrary, Debug)]
enum Op {
    Join(u8),
    Leave { n: u8, reason: u8 },
    Rekey,
    Deliver { n: u8, i: u8 },
    DeliverAll,
    Lie { n: u8, lie: Lie },
    Text { n: u8, text: String },
    Stream { n: u8, ctx: u8, start: bool },
    UsageLimit { n: u8, ctx: u8 },
    Tick(u16),
}

struct Peer {
    p: Participant<ChaCha20Rng>,
    inbox: Vec<ServerMessage>,
    ledger: KeyLedger,
    join_seq: Option<u64>,
    in_room: bool,
}

fn id(n: usize) -> ParticipantId {
    // Mostly the three participants; a few ids nobody has.
    ParticipantId::new(format!("p{}", n % 5)).expect("valid")
}

fn index(n: usize) -> SenderIndex {
    SenderIndex(n as u32 * 7 + 1)
}

struct Sim {
    now: u64,
    seq: u64,
    peers: Vec<Peer>,
}

impl Sim {
    fn key(&self, k: Key) -> OpaqueBytes {
        match k {
            Key::Of(n) => OpaqueBytes::new(self.peers[usize::from(n) % N].p.identity_key()),
            Key::Raw(b) => OpaqueBytes::new(b),
        }
    }

    fn info(&self, i: Info) -> ParticipantInfo {
        ParticipantInfo {
            id: id(usize::from(i.who)),
            sender_index: SenderIndex(i.sender_index),
            join_seq: i.join_seq,
            identity_key: self.key(i.key),
            attestation: i.attestation.map(OpaqueBytes::new),
            grants: Grants::default(),
            role: Default::default(),
        }
    }

    fn real_info(&self, n: usize) -> ParticipantInfo {
        ParticipantInfo {
            id: id(n),
            sender_index: index(n),
            join_seq: self.peers[n].join_seq.unwrap_or(0),
            identity_key: OpaqueBytes::new(self.peers[n].p.identity_key()),
            attestation: None,
            grants: Grants::default(),
            role: Default::default(),
        }
    }

    fn lie(&self, lie: Lie) -> ServerMessage {
        match lie {
            Lie::Joined {
                you,
                sender_index,
                join_seq,
                room_instance,
                participants,
            } => ServerMessage::Joined(Joined {
                you: id(usize::from(you)),
                sender_index: SenderIndex(sender_index),
                join_seq,
                room: RoomId::new("fuzz-room").expect("valid"),
                room_instance: room_instance.map(RoomInstance),
                locked: false,
                grants: Grants::default(),
                participants: participants
                    .into_iter()
                    .take(8)
                    .map(|i| self.info(i))
                    .collect(),
                tracks: Vec::new(),
                ice_servers: Vec::new(),
            }),
            Lie::ParticipantJoined { seq, info } => {
                ServerMessage::ParticipantJoined(ParticipantJoined {
                    seq,
                    participant: self.info(info),
                })
            }
            Lie::ParticipantLeft {
                seq,
                who,
                sender_index,
                reason,
            } => ServerMessage::ParticipantLeft(ParticipantLeft {
                seq,
                participant: id(usize::from(who)),
                sender_index: SenderIndex(sender_index),
                reason: leave_reason(reason),
            }),
            Lie::Rekey { seq } => ServerMessage::Rekey(RekeyEvent { seq, by: Vec::new() }),
            Lie::E2ee { from, payload } => ServerMessage::E2ee(E2eeFrom {
                from: id(usize::from(from)),
                payload: OpaqueBytes::new(payload),
            }),
        }
    }

    fn broadcast(&mut self, msg: &ServerMessage, except: usize) {
        for (j, peer) in self.peers.iter_mut().enumerate() {
            if peer.in_room && j != except {
                peer.inbox.push(msg.clone());
            }
        }
    }

    fn input(&mut self, n: usize, input: Input<'_>) {
        let now = Instant::from_millis(self.now);
        let peer = &mut self.peers[n];
        let _ = peer.p.handle_input(now, input);
        let me = peer.p.session().and_then(|s| s.sender_index());
        let mut sends = Vec::new();
        while let Some(out) = peer.p.poll_output() {
            match out {
                Output::Send(msg) => {
                    // What the relay reads is what was sent.
                    let text = msg.encode();
                    assert_eq!(ClientMessage::decode(&text).as_ref(), Ok(&msg));
                    sends.push(msg);
                }
                Output::Key(k) => peer.ledger.apply(me, &k),
                Output::Event(_) => {}
            }
        }
        if let Some(e) = peer.p.sending_epoch() {
            assert!(peer.p.latest_epoch().is_some_and(|l| e <= l));
        }
        if !self.peers[n].in_room {
            return;
        }
        for msg in sends {
            if let ClientMessage::E2ee(e) = msg {
                let fwd = ServerMessage::E2ee(E2eeFrom {
                    from: id(n),
                    payload: e.payload,
                });
                if let Some(j) = (0..N).find(|&j| id(j) == e.to && self.peers[j].in_room) {
                    self.peers[j].inbox.push(fwd);
                }
            }
        }
    }

    fn relay(&mut self, n: usize, msg: &ServerMessage) {
        // Every relay message crosses the wire as JSON.
        let text = msg.encode();
        match ServerMessage::decode(&text) {
            Ok(decoded) => {
                assert_eq!(&decoded, msg);
                self.input(n, Input::Relay(&decoded));
            }
            // Only lies over a field limit fail to decode.
            Err(e) => assert_eq!(e.code(), hush_proto::ErrorCode::FieldTooLarge, "{e}"),
        }
    }
}

fn leave_reason(r: u8) -> LeaveReason {
    match r % 4 {
        0 => LeaveReason::Left,
        1 => LeaveReason::Disconnected,
        2 => LeaveReason::Removed,
        _ => LeaveReason::Replaced,
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let mut sim = Sim {
        now: 1_000,
        seq: 0,
        peers: (0..N)
            .map(|n| Peer {
                p: Participant::new(ParticipantConfig::unauthenticated(), rng(n as u64))
                    .expect("a participant"),
                inbox: Vec::new(),
                ledger: KeyLedger::default(),
                join_seq: None,
                in_room: false,
            })
            .collect(),
    };
    for op in ops.into_iter().take(128) {
        match op {
            Op::Join(n) => {
                let n = usize::from(n) % N;
                if sim.peers[n].join_seq.is_some() {
                    continue;
                }
                sim.seq += 1;
                sim.peers[n].join_seq = Some(sim.seq);
                let participants = (0..N)
                    .filter(|&j| sim.peers[j].in_room)
                    .map(|j| sim.real_info(j))
                    .collect();
                let joined = ServerMessage::Joined(Joined {
                    you: id(n),
                    sender_index: index(n),
                    join_seq: sim.seq,
                    room: RoomId::new("fuzz-room").expect("valid"),
                    room_instance: Some(RoomInstance([1; 16])),
                    locked: false,
                    grants: Grants::default(),
                    participants,
                    tracks: Vec::new(),
                    ice_servers: Vec::new(),
                });
                let announce = ServerMessage::ParticipantJoined(ParticipantJoined {
                    seq: sim.seq,
                    participant: sim.real_info(n),
                });
                sim.broadcast(&announce, n);
                sim.peers[n].in_room = true;
                sim.relay(n, &joined);
            }
            Op::Leave { n, reason } => {
                let n = usize::from(n) % N;
                if !sim.peers[n].in_room {
                    continue;
                }
                sim.seq += 1;
                let reason = leave_reason(reason);
                let msg = ServerMessage::ParticipantLeft(ParticipantLeft {
                    seq: sim.seq,
                    participant: id(n),
                    sender_index: index(n),
                    reason,
                });
                sim.broadcast(&msg, n);
                sim.peers[n].in_room = false;
                if reason == LeaveReason::Removed {
                    sim.relay(n, &msg);
                }
            }
            Op::Rekey => {
                sim.seq += 1;
                let msg = ServerMessage::Rekey(RekeyEvent {
                    seq: sim.seq,
                    by: Vec::new(),
                });
                sim.broadcast(&msg, N);
            }
            Op::Deliver { n, i } => {
                let n = usize::from(n) % N;
                let inbox = &mut sim.peers[n].inbox;
                if !inbox.is_empty() {
                    let msg = inbox.remove(usize::from(i) % inbox.len());
                    sim.relay(n, &msg);
                }
            }
            Op::DeliverAll => {
                for n in 0..N {
                    while !sim.peers[n].inbox.is_empty() {
                        let msg = sim.peers[n].inbox.remove(0);
                        sim.relay(n, &msg);
                    }
                }
            }
            Op::Lie { n, lie } => {
                let msg = sim.lie(lie);
                sim.relay(usize::from(n) % N, &msg);
            }
            Op::Text { n, text } => {
                if let Ok(msg) = ServerMessage::decode(&text) {
                    sim.input(usize::from(n) % N, Input::Relay(&msg));
                }
            }
            Op::Stream { n, ctx, start } => {
                let n = usize::from(n) % N;
                let ctx = StreamContext(ctx % 4);
                if start {
                    sim.input(n, Input::LocalStreamStarted(ctx));
                } else {
                    sim.peers[n].ledger.send.remove(&ctx);
                    sim.input(n, Input::LocalStreamStopped(ctx));
                }
            }
            Op::UsageLimit { n, ctx } => {
                sim.input(
                    usize::from(n) % N,
                    Input::UsageLimitNear(StreamContext(ctx % 4)),
                );
            }
            Op::Tick(ms) => {
                sim.now += u64::from(ms) * 16;
                for n in 0..N {
                    sim.input(n, Input::Tick);
                }
            }
        }
    }
});
