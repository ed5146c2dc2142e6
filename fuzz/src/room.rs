//! An in-memory room of hush-keys sessions behind an honest relay that the fuzzer schedules:
//! it picks who joins, leaves, is removed or asks for a rekey, which queued item each member
//! gets next (events and key messages in any order, messages possibly lost), when time passes,
//! and which local streams run. It can also act as a hostile relay or member: forged, replayed
//! and tampered key messages, and (once [`Room::honest`] is false) membership events of its own
//! making for one member only.
//!
//! After every step the invariants are checked: the frame layer's key contract
//! ([`KeyLedger`]), `sending_epoch <= latest_epoch`, each running local stream's send key is
//! the sending epoch's, a removed member holds no key, and, while the relay is honest, every
//! member that holds a receive key for a KID holds the very key its sender encrypts with.

use std::collections::{BTreeMap, BTreeSet};

use arbitrary::Arbitrary;
use hush_keys::{
    Change, Config, Destination, Event, IdentityPublicKey, Input, Instant, KeyMode, KeyUpdate, Kid,
    Member, MembershipEvent, Output, ParticipantId, RoomId, SenderIndex, Session, StreamContext,
};
use rand_chacha::ChaCha20Rng;

use crate::{KeyLedger, identity, public_identity, rng};

/// Most members a run creates (each join costs HPKE seals for everyone).
pub const MAX_PEERS: usize = 6;
/// Relay events per run stay below 2^8, so a KID (epoch mod 2^8) names one epoch.
const MAX_SEQ: u64 = 200;
const MAX_HISTORY: usize = 256;
const CONTEXTS: u8 = 4;

/// One queued delivery.
#[derive(Clone, Debug)]
pub enum Item {
    /// A relay event.
    Event(MembershipEvent),
    /// A key message, with the relay-named sender.
    Message(ParticipantId, Vec<u8>),
}

/// One member.
pub struct Peer {
    /// Its participant id.
    pub pid: ParticipantId,
    /// Its sender index.
    pub index: SenderIndex,
    /// The sequence number of its join.
    pub join_seq: u64,
    /// Its session.
    pub session: Session<ChaCha20Rng>,
    /// What the relay has queued for it.
    pub inbox: Vec<Item>,
    /// Its frame layer.
    pub ledger: KeyLedger,
    /// Its running local streams.
    pub streams: BTreeSet<StreamContext>,
    /// In the room, as the relay sees it.
    pub in_room: bool,
    /// Its session said `Removed`.
    pub removed: bool,
}

/// A membership event of the fuzzer's making (a lying relay).
#[derive(Arbitrary, Debug)]
pub struct ArbEvent {
    /// Added to the room's sequence number (so mostly near it).
    pub seq_delta: i8,
    /// The change.
    pub change: ArbChange,
}

/// A change of the fuzzer's making.
#[derive(Arbitrary, Debug)]
pub enum ArbChange {
    /// A join of someone, possibly a known member again, possibly with a bad key.
    Join {
        /// Which participant id (known ones first).
        who: u8,
        /// Its sender index (masked into range or not).
        index: u32,
        /// Added to the event's sequence number for `join_seq`.
        join_seq_delta: i8,
        /// Which identity: a known one or raw bytes.
        key: ArbKey,
    },
    /// A leave.
    Leave(u8),
    /// A removal.
    Remove(u8),
    /// A rekey.
    Rekey,
    /// A refused join.
    Refused(u8),
}

/// An identity key in a fuzzed member.
#[derive(Arbitrary, Debug)]
pub enum ArbKey {
    /// The public key of fuzz identity `n`.
    Known(u8),
    /// Any 32 bytes (small-order points included).
    Raw([u8; 32]),
}

impl ArbKey {
    /// The key: fuzz identity `n % known`, or the raw bytes if they are a public key, else
    /// `fallback`.
    pub fn key(self, known: u8, fallback: IdentityPublicKey) -> IdentityPublicKey {
        match self {
            ArbKey::Known(n) => public_identity(n % known),
            ArbKey::Raw(b) => IdentityPublicKey::from_bytes(b).unwrap_or(fallback),
        }
    }
}

/// The sender index `index` names, masked into range.
pub fn masked_index(index: u32) -> SenderIndex {
    SenderIndex::new(index & SenderIndex::MAX).expect("masked")
}

impl ArbEvent {
    /// The event, at sequence number `seq` plus the fuzzer's delta: `named` turns the fuzzer's
    /// participant numbers into ids, and keys are read as [`ArbKey::key`] reads them.
    pub fn event(
        self,
        seq: u64,
        named: impl Fn(u8) -> ParticipantId,
        known_keys: u8,
        fallback_key: IdentityPublicKey,
    ) -> MembershipEvent {
        let seq = seq.saturating_add_signed(i64::from(self.seq_delta));
        let change = match self.change {
            ArbChange::Join {
                who,
                index,
                join_seq_delta,
                key,
            } => Change::Join(Member {
                participant: named(who),
                sender_index: masked_index(index),
                join_seq: seq.saturating_add_signed(i64::from(join_seq_delta)),
                identity: key.key(known_keys, fallback_key),
                attestation: None,
                role: hush_keys::Role::Participant,
            }),
            ArbChange::Leave(n) => Change::Leave(named(n)),
            ArbChange::Remove(n) => Change::Remove(named(n)),
            ArbChange::Rekey => Change::Rekey,
            ArbChange::Refused(n) => Change::Refused(named(n)),
        };
        MembershipEvent { seq, change }
    }
}

/// A key message of a hostile relay or member.
#[derive(Arbitrary, Debug)]
pub enum Attack {
    /// Member `k` gets arbitrary bytes as a key message.
    Forge {
        /// Which member.
        k: u8,
        /// Named sender (a member, or someone unknown).
        from: u8,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// Member `k` gets an earlier key message again, from a sender of the fuzzer's choosing.
    Replay {
        /// Which member.
        k: u8,
        /// Which message of the history.
        h: u8,
        /// Named sender.
        from: u8,
    },
    /// Member `k` gets an earlier key message with one byte changed.
    Tamper {
        /// Which member.
        k: u8,
        /// Which message of the history.
        h: u8,
        /// Which byte.
        pos: u8,
        /// XORed into it (0 is taken as 1).
        xor: u8,
    },
}

/// One step.
#[derive(Arbitrary, Debug)]
pub enum Op {
    /// A new participant joins.
    Join,
    /// Member `k` leaves (or is removed).
    Leave {
        /// Which member.
        k: u8,
        /// Removed by a moderator rather than left.
        removed: bool,
    },
    /// The relay puts a rekey in the log.
    Rekey,
    /// Member `k` gets its `i`-th queued item.
    Deliver {
        /// Which member.
        k: u8,
        /// Which item.
        i: u8,
    },
    /// Member `k` gets everything queued, in order.
    DeliverAll(u8),
    /// Every member gets everything, until nothing moves.
    Settle,
    /// The `i`-th queued item of member `k` is lost (key messages only).
    Lose {
        /// Which member.
        k: u8,
        /// Which item.
        i: u8,
    },
    /// Time passes by `ms` milliseconds (times 16), then every member ticks.
    Tick(u16),
    /// Time jumps to the earliest timer, then every member ticks.
    TickToNext,
    /// Member `k` starts a local stream.
    StreamStart {
        /// Which member.
        k: u8,
        /// Which context.
        ctx: u8,
    },
    /// Member `k` stops a local stream.
    StreamStop {
        /// Which member.
        k: u8,
        /// Which context.
        ctx: u8,
    },
    /// Member `k`'s frame layer reports a key near its usage limit.
    UsageLimit {
        /// Which member.
        k: u8,
        /// Which context.
        ctx: u8,
    },
    /// A hostile key message.
    Attack(Attack),
    /// Member `k` alone gets a membership event of the fuzzer's making (the relay lies from now
    /// on).
    Inject {
        /// Which member.
        k: u8,
        /// The event.
        event: ArbEvent,
    },
}

/// The room.
pub struct Room {
    /// The clock.
    pub now: Instant,
    /// The room id.
    pub room: RoomId,
    /// Shared-secret mode instead of the key exchange.
    pub shared: bool,
    /// The relay's last sequence number.
    pub seq: u64,
    /// Everyone who ever joined.
    pub peers: Vec<Peer>,
    /// Key messages sent so far (the first [`MAX_HISTORY`]).
    pub history: Vec<(ParticipantId, Vec<u8>)>,
    /// False once the fuzzer lied about membership: keys may then legitimately disagree.
    pub honest: bool,
    /// Send keys by KID, as senders set them.
    send_keys: BTreeMap<u64, [u8; 32]>,
}

/// The participant id of fuzz member `n`.
pub fn pid(n: usize) -> ParticipantId {
    ParticipantId::new(format!("p{n}")).expect("short ids are valid")
}

fn sender_index(n: usize) -> SenderIndex {
    // Spread out, so indexes are not simply the join order.
    SenderIndex::new((n as u32) * 7 + 1).expect("small indexes are valid")
}

impl Room {
    /// An empty room.
    pub fn new(shared: bool) -> Self {
        Self {
            now: Instant::from_millis(1_000),
            room: RoomId::new("fuzz-room").expect("a valid room id"),
            shared,
            seq: 0,
            peers: Vec::new(),
            history: Vec::new(),
            honest: true,
            send_keys: BTreeMap::new(),
        }
    }

    fn config(&self) -> Config {
        let mut cfg = Config::new(self.room.clone());
        cfg.contexts = CONTEXTS;
        if self.shared {
            let s = crate::shared_secret();
            cfg.mode = KeyMode::SharedSecret(s);
            cfg.room_instance = Some([3; 16]);
        }
        cfg
    }

    fn member(&self, n: usize, join_seq: u64) -> Member {
        Member {
            participant: pid(n),
            sender_index: sender_index(n),
            join_seq,
            identity: public_identity(n as u8),
            attestation: None,
            role: hush_keys::Role::Participant,
        }
    }

    fn peer_index(&self, k: u8) -> Option<usize> {
        (!self.peers.is_empty()).then(|| usize::from(k) % self.peers.len())
    }

    fn in_room(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.peers.len()).filter(|&j| self.peers[j].in_room)
    }

    /// Runs one step and checks the invariants.
    pub fn step(&mut self, op: Op) {
        match op {
            Op::Join => self.join(),
            Op::Leave { k, removed } => {
                if let Some(k) = self.peer_index(k) {
                    self.leave(k, removed);
                }
            }
            Op::Rekey => {
                if self.seq < MAX_SEQ && self.in_room().next().is_some() {
                    self.seq += 1;
                    let ev = MembershipEvent {
                        seq: self.seq,
                        change: Change::Rekey,
                    };
                    self.broadcast_event(&ev);
                }
            }
            Op::Deliver { k, i } => {
                if let Some(k) = self.peer_index(k) {
                    self.deliver(k, usize::from(i));
                }
            }
            Op::DeliverAll(k) => {
                if let Some(k) = self.peer_index(k) {
                    while !self.peers[k].inbox.is_empty() {
                        self.deliver(k, 0);
                    }
                }
            }
            Op::Settle => self.settle(),
            Op::Lose { k, i } => {
                if let Some(k) = self.peer_index(k) {
                    let inbox = &mut self.peers[k].inbox;
                    if !inbox.is_empty() {
                        let i = usize::from(i) % inbox.len();
                        if matches!(inbox[i], Item::Message(..)) {
                            inbox.remove(i);
                        }
                    }
                }
            }
            Op::Tick(ms) => {
                self.now = Instant::from_millis(self.now.as_millis() + u64::from(ms) * 16);
                self.tick_all();
            }
            Op::TickToNext => {
                let next = self
                    .peers
                    .iter()
                    .filter_map(|p| p.session.next_timeout())
                    .min();
                if let Some(t) = next {
                    self.now = self.now.max(t);
                }
                self.tick_all();
            }
            Op::StreamStart { k, ctx } => {
                if let Some(k) = self.peer_index(k) {
                    let ctx = StreamContext(ctx % (CONTEXTS + 2));
                    let r = self.input(k, Input::LocalStreamStarted(ctx));
                    if r.is_ok() {
                        self.peers[k].streams.insert(ctx);
                    }
                }
            }
            Op::StreamStop { k, ctx } => {
                if let Some(k) = self.peer_index(k) {
                    let ctx = StreamContext(ctx % (CONTEXTS + 2));
                    let _ = self.input(k, Input::LocalStreamStopped(ctx));
                    // The driver drops that stream's encryptor.
                    self.peers[k].streams.remove(&ctx);
                    self.peers[k].ledger.send.remove(&ctx);
                }
            }
            Op::UsageLimit { k, ctx } => {
                if let Some(k) = self.peer_index(k) {
                    let _ = self.input(k, Input::UsageLimitNear(StreamContext(ctx % CONTEXTS)));
                }
            }
            Op::Attack(a) => self.attack(a),
            Op::Inject { k, event } => {
                if let Some(k) = self.peer_index(k) {
                    self.honest = false;
                    let ev = event.event(
                        self.seq,
                        |n| self.named(n),
                        MAX_PEERS as u8 + 1,
                        public_identity(0),
                    );
                    let _ = self.input(k, Input::Membership(ev));
                }
            }
        }
        self.check_all();
    }

    /// A participant id the fuzzer names: a member's, or one nobody has.
    fn named(&self, n: u8) -> ParticipantId {
        let n = usize::from(n);
        if n < self.peers.len() + 2 {
            pid(n)
        } else {
            pid(1000 + n)
        }
    }

    /// Hands member `k` a forged, replayed or tampered key message.
    fn attack(&mut self, a: Attack) {
        match a {
            Attack::Forge { k, from, bytes } => {
                if let Some(k) = self.peer_index(k) {
                    let from = self.named(from);
                    self.message(k, &from, &bytes);
                }
            }
            Attack::Replay { k, h, from } => {
                if let (Some(k), false) = (self.peer_index(k), self.history.is_empty()) {
                    let (orig, bytes) = self.history[usize::from(h) % self.history.len()].clone();
                    let from = if from == 0 { orig } else { self.named(from) };
                    self.message(k, &from, &bytes);
                }
            }
            Attack::Tamper { k, h, pos, xor } => {
                if let (Some(k), false) = (self.peer_index(k), self.history.is_empty()) {
                    let (from, mut bytes) =
                        self.history[usize::from(h) % self.history.len()].clone();
                    if !bytes.is_empty() {
                        let pos = usize::from(pos) % bytes.len();
                        bytes[pos] ^= xor.max(1);
                    }
                    self.message(k, &from, &bytes);
                }
            }
        }
    }

    fn join(&mut self) {
        if self.peers.len() >= MAX_PEERS || self.seq >= MAX_SEQ {
            return;
        }
        self.seq += 1;
        let seq = self.seq;
        let n = self.peers.len();
        let me = self.member(n, seq);
        let ev = MembershipEvent {
            seq,
            change: Change::Join(me.clone()),
        };
        self.broadcast_event(&ev);
        // The snapshot: everyone in the room, by their join sequence, and the newcomer.
        let mut members: Vec<Member> = Vec::new();
        for j in self.in_room().collect::<Vec<_>>() {
            members.push(self.member(j, self.peers[j].join_seq));
        }
        members.push(me);
        let session = Session::new(self.config(), identity(n as u8), pid(n), rng(n as u64));
        self.peers.push(Peer {
            pid: pid(n),
            index: sender_index(n),
            join_seq: seq,
            session,
            inbox: Vec::new(),
            ledger: KeyLedger::default(),
            streams: BTreeSet::new(),
            in_room: true,
            removed: false,
        });
        let r = self.input(n, Input::Joined { seq, members });
        assert!(r.is_ok(), "an honest snapshot was refused: {r:?}");
    }

    fn leave(&mut self, k: usize, removed: bool) {
        if !self.peers[k].in_room || self.seq >= MAX_SEQ {
            return;
        }
        self.seq += 1;
        let who = self.peers[k].pid.clone();
        let change = if removed {
            Change::Remove(who)
        } else {
            Change::Leave(who)
        };
        let ev = MembershipEvent {
            seq: self.seq,
            change,
        };
        self.peers[k].in_room = false;
        self.broadcast_event(&ev);
        if removed {
            // A removed member hears of it; one who left has gone.
            self.peers[k].inbox.push(Item::Event(ev));
        }
    }

    fn broadcast_event(&mut self, ev: &MembershipEvent) {
        for j in self.in_room().collect::<Vec<_>>() {
            self.peers[j].inbox.push(Item::Event(ev.clone()));
        }
    }

    fn deliver(&mut self, k: usize, i: usize) {
        let inbox = &mut self.peers[k].inbox;
        if inbox.is_empty() {
            return;
        }
        let item = inbox.remove(i % inbox.len());
        match item {
            Item::Event(ev) => {
                let _ = self.input(k, Input::Membership(ev));
            }
            Item::Message(from, bytes) => self.message(k, &from, &bytes),
        }
    }

    /// Delivers everything, in order, until nothing is queued (bounded: each round can only
    /// add replies to what it delivered).
    pub fn settle(&mut self) {
        for _ in 0..16 {
            let mut moved = false;
            for k in 0..self.peers.len() {
                while !self.peers[k].inbox.is_empty() {
                    self.deliver(k, 0);
                    moved = true;
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn tick_all(&mut self) {
        for k in 0..self.peers.len() {
            let _ = self.input(k, Input::Tick);
        }
    }

    fn message(&mut self, k: usize, from: &ParticipantId, bytes: &[u8]) {
        let _ = self.input(k, Input::MessageFrom { from, bytes });
    }

    /// Feeds member `k` one input at the room's time, then carries out what it says.
    pub fn input(&mut self, k: usize, input: Input<'_>) -> Result<(), hush_keys::Error> {
        let now = self.now;
        let r = self.peers[k].session.handle_input(now, input);
        self.drain(k);
        r
    }

    fn drain(&mut self, k: usize) {
        while let Some(out) = self.peers[k].session.poll_output() {
            match out {
                Output::Transmit(t) => {
                    if self.history.len() < MAX_HISTORY {
                        self.history
                            .push((self.peers[k].pid.clone(), t.payload.clone()));
                    }
                    // The relay forwards only between members of the room.
                    if !self.peers[k].in_room {
                        continue;
                    }
                    let from = self.peers[k].pid.clone();
                    for j in self.in_room().collect::<Vec<_>>() {
                        let to_j = match &t.to {
                            Destination::Member(p) => *p == self.peers[j].pid,
                            Destination::AllMembers => j != k,
                        };
                        if to_j {
                            let item = Item::Message(from.clone(), t.payload.clone());
                            self.peers[j].inbox.push(item);
                        }
                    }
                }
                Output::Key(update) => {
                    let me = self.peers[k].session.sender_index();
                    self.peers[k].ledger.apply(me, &update);
                    self.agree(k, &update);
                }
                Output::Event(Event::Removed) => {
                    self.peers[k].removed = true;
                }
                _ => {}
            }
        }
    }

    /// Honest relay: a receive key is the key its sender sends with.
    fn agree(&mut self, k: usize, update: &KeyUpdate) {
        if !self.honest {
            return;
        }
        match update {
            KeyUpdate::SetSend { kid, key, .. } => {
                let key = *key.as_bytes();
                if let Some(old) = self.send_keys.insert(kid.get(), key) {
                    assert_eq!(old, key, "two send keys for {kid:?}");
                }
                for (j, p) in self.peers.iter().enumerate() {
                    if let Some(r) = p.ledger.receive.get(&kid.get()) {
                        assert_eq!(
                            *r, key,
                            "member {j} decrypts {kid:?} with another key than member {k} sends with"
                        );
                    }
                }
            }
            KeyUpdate::InstallReceive { kid, key } => {
                if let Some(s) = self.send_keys.get(&kid.get()) {
                    assert_eq!(
                        s,
                        key.as_bytes(),
                        "member {k} installed {kid:?} with another key than its sender's"
                    );
                }
            }
            _ => {}
        }
    }

    /// The invariants that hold after every step.
    pub fn check_all(&self) {
        for (k, p) in self.peers.iter().enumerate() {
            let s = &p.session;
            let (sending, latest) = (s.sending_epoch(), s.latest_epoch());
            if let Some(e) = sending {
                assert!(
                    latest.is_some_and(|l| e <= l),
                    "member {k}: sending {e} past latest {latest:?}"
                );
            }
            if p.removed {
                assert!(
                    p.ledger.receive.is_empty(),
                    "member {k} was removed but holds receive keys"
                );
                assert!(
                    p.ledger.send.is_empty(),
                    "member {k} was removed but holds send keys"
                );
                assert_eq!(sending, None);
                continue;
            }
            // One send key per running stream, and it is the sending epoch's.
            for ctx in p.ledger.send.keys() {
                assert!(
                    p.streams.contains(ctx),
                    "member {k}: send key for a stopped stream"
                );
            }
            if let (Some(e), Some(me)) = (sending, s.sender_index()) {
                for ctx in &p.streams {
                    let (kid, _) = p
                        .ledger
                        .send
                        .get(ctx)
                        .expect("a running stream has a send key");
                    assert_eq!(
                        *kid,
                        Kid::new(*ctx, me, e),
                        "member {k}: stream {ctx:?} not on the sending epoch"
                    );
                }
            }
            if self.honest {
                // Members are unique by id and by sender index.
                let ids: BTreeSet<_> = s.members().map(|m| m.participant.clone()).collect();
                let idx: BTreeSet<_> = s.members().map(|m| m.sender_index).collect();
                let n = s.members().count();
                assert!(
                    ids.len() == n && idx.len() == n,
                    "member {k}: duplicate members"
                );
            }
        }
    }
}

/// Builds a room where `n` members joined and everything was delivered.
pub fn settled_room(n: usize, shared: bool) -> Room {
    let mut room = Room::new(shared);
    for _ in 0..n {
        room.step(Op::Join);
        room.step(Op::Settle);
    }
    room.step(Op::TickToNext);
    room.step(Op::Settle);
    room
}
