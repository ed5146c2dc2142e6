//! A deterministic room over the participant core: a simulated relay, a stepped clock and
//! seeded randomness, with hooks that let a test play a relay that drops, delays, duplicates,
//! reorders, rewrites or injects messages.
//!
//! Every participant is a real [`Participant`] seeded from the room's seed and its name, so a
//! run is the same every time and a participant can be rebuilt elsewhere (another adapter) with
//! [`seed_of`]. What each participant receives is recorded ([`Room::transcript`]) so it can be
//! replayed through an adapter's own entry point. Frames are real SFrame frames
//! ([`Room::frame`]) under the keys each participant's outputs installed.
//!
//! ```
//! use hush_testkit::sim::{Room, Verdict};
//! use hush_proto::ServerMessage;
//!
//! let mut room = Room::new(7);
//! for n in ["alice", "bob", "carol"] {
//!     room.join(n);
//! }
//! room.settle();
//! assert_eq!(room.frame("alice", "bob"), Ok(()));
//! // The relay now withholds every key message meant for carol.
//! room.hook(|d| match (&d.msg, d.to.as_str()) {
//!     (ServerMessage::E2ee(_), "carol") => Verdict::Drop,
//!     _ => Verdict::Deliver,
//! });
//! room.leave("bob");
//! room.settle();
//! assert!(room.frame("alice", "carol").is_err());
//! ```

use std::collections::BTreeMap;

use hush_frame::{BaseKey, CipherSuite, Decryptor, Encryptor, Layout};
use hush_keys::Attestation;
use hush_keys::ed25519_dalek::{SigningKey, VerifyingKey};
use hush_participant::{
    Event, Input, Instant, KeyUpdate, Output, Participant, ParticipantConfig, Refusal,
    StreamContext,
};
use hush_proto::{
    ClientMessage, E2eeFrom, Grants, Joined, LeaveReason, MemberRole, OpaqueBytes, ParticipantId,
    ParticipantInfo, ParticipantJoined, ParticipantLeft, RekeyEvent, RoomId, SenderIndex,
    ServerMessage,
};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

/// The cipher suite of simulated frames.
pub const SUITE: CipherSuite = CipherSuite::Aes128GcmSha256_128;

/// The room id every simulated room uses.
pub const ROOM: &str = "sim-room";

/// The seed of participant `name` in a room seeded with `room_seed`: rebuild the same
/// participant (same identity key, same secrets) in another adapter.
pub fn seed_of(room_seed: u64, name: &str) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&room_seed.to_le_bytes());
    for (i, b) in name.bytes().enumerate() {
        s[8 + i % 24] ^= b.wrapping_add(i as u8);
    }
    s
}

/// A relay message on its way to one participant, as hooks see it.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The recipient.
    pub to: String,
    /// The message.
    pub msg: ServerMessage,
}

/// What a hook decides for one delivery.
#[derive(Clone, Debug)]
pub enum Verdict {
    /// Deliver as is (now, or when its delay is up).
    Deliver,
    /// Never deliver it.
    Drop,
    /// Deliver it this many milliseconds later (messages sent after it may overtake it).
    Delay(u64),
    /// Deliver it twice.
    Duplicate,
    /// Deliver this instead.
    Rewrite(ServerMessage),
}

type Hook = Box<dyn FnMut(&Delivery) -> Verdict>;

/// One simulated participant: its core and what it holds.
pub struct Member {
    /// The participant core.
    pub core: Participant<ChaCha20Rng>,
    /// Send keys by stream context: (KID, base key).
    pub send: BTreeMap<u8, (u64, Vec<u8>)>,
    /// Receive keys by KID.
    pub recv: BTreeMap<u64, Vec<u8>>,
    /// Every event, in order.
    pub events: Vec<Event>,
    /// Every refusal of a delivered message, in order.
    pub refusals: Vec<Refusal>,
    /// Every message it sent to the relay, in order.
    pub sent: Vec<ClientMessage>,
    /// The room's recorder, replayed here as its offline tool would: it receives everything
    /// and nothing it outputs reaches the relay.
    pub recorder: bool,
}

/// The relay's record of one announced participant.
#[derive(Clone, Debug)]
struct Announced {
    name: String,
    index: u32,
    join_seq: u64,
    identity: Vec<u8>,
    attestation: Option<Vec<u8>>,
    role: MemberRole,
}

struct InFlight {
    at: u64,
    order: u64,
    delivery: Delivery,
}

/// A room: an honest simulated relay (ordered log, sender indexes never reused, `e2ee` routed
/// with the sender's name) unless hooks say otherwise.
pub struct Room {
    seed: u64,
    /// The app backend's attestation key, when members must be vouched for.
    backend: Option<SigningKey>,
    /// Whether each participant expects [`ROOM`] in its `joined` (what every adapter sets).
    room_check: bool,
    /// The room secret, in shared-secret mode.
    shared: Option<Vec<u8>>,
    /// How long the backend's attestations hold (seconds).
    attestation_ttl: u64,
    now: u64,
    seq: u64,
    next_index: u32,
    order: u64,
    announced: Vec<Announced>,
    members: BTreeMap<String, Member>,
    in_flight: Vec<InFlight>,
    hooks: Vec<Hook>,
    transcripts: BTreeMap<String, Vec<(u64, ServerMessage)>>,
}

fn pid(s: &str) -> ParticipantId {
    ParticipantId::new(s).unwrap_or_else(|_| panic!("bad participant id {s:?}"))
}

fn info(a: &Announced) -> ParticipantInfo {
    ParticipantInfo {
        id: pid(&a.name),
        sender_index: SenderIndex(a.index),
        join_seq: a.join_seq,
        identity_key: OpaqueBytes::new(a.identity.clone()),
        attestation: a.attestation.clone().map(OpaqueBytes::new),
        grants: Grants::default(),
        role: a.role,
    }
}

impl Room {
    /// An empty room whose participants' randomness all derives from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            backend: None,
            room_check: true,
            shared: None,
            attestation_ttl: 86_400,
            now: 1_000,
            seq: 0,
            next_index: 1,
            order: 0,
            announced: Vec::new(),
            members: BTreeMap::new(),
            in_flight: Vec::new(),
            hooks: Vec::new(),
            transcripts: BTreeMap::new(),
        }
    }

    /// A room whose members admit only participants the app backend vouched for (the product
    /// default): the backend's key derives from `seed`, and [`Room::join`] attests each honest
    /// participant as the backend would.
    pub fn vouched(seed: u64) -> Self {
        let mut r = Self::new(seed);
        r.backend = Some(SigningKey::from_bytes(&seed_of(seed, "backend")));
        r
    }

    /// Attestations signed from now on hold for `secs` of simulated time (a day by default).
    pub fn with_attestation_ttl(mut self, secs: u64) -> Self {
        self.attestation_ttl = secs;
        self
    }

    /// The same room in shared-secret mode: every participant holds `secret` (at least 32
    /// bytes) and no envelopes are sent.
    pub fn with_shared_secret(mut self, secret: &[u8]) -> Self {
        self.shared = Some(secret.to_vec());
        self
    }

    /// What every participant here is configured with.
    fn config(&self) -> ParticipantConfig {
        let config = match self.backend_key() {
            Some(k) => ParticipantConfig::vouched_by(k),
            None => ParticipantConfig::unauthenticated(),
        };
        match &self.shared {
            Some(s) => config
                .with_shared_secret(s)
                .unwrap_or_else(|e| panic!("shared secret: {e}")),
            None => config,
        }
    }

    /// The same room whose participants accept a `joined` for any room (what every adapter
    /// did before [`Participant::expect_room`]).
    pub fn without_room_check(mut self) -> Self {
        self.room_check = false;
        self
    }

    /// A participant with a fresh core from `rng`, holding nothing yet.
    fn fresh(&self, rng: ChaCha20Rng) -> Member {
        let mut core =
            Participant::new(self.config(), rng).unwrap_or_else(|e| panic!("new participant: {e}"));
        if self.room_check {
            core.expect_room(ROOM)
                .unwrap_or_else(|e| panic!("expect room: {e}"));
        }
        Member {
            core,
            send: BTreeMap::new(),
            recv: BTreeMap::new(),
            events: Vec::new(),
            refusals: Vec::new(),
            sent: Vec::new(),
            recorder: false,
        }
    }

    /// The backend's verification key (what clients are configured with), if any.
    pub fn backend_key(&self) -> Option<VerifyingKey> {
        self.backend.as_ref().map(SigningKey::verifying_key)
    }

    /// The backend's attestation of `identity` for `name` in this room, valid for a day of
    /// simulated time (or [`Room::with_attestation_ttl`]).
    pub fn attest(&self, name: &str, identity: &[u8]) -> Option<Vec<u8>> {
        self.attest_as(hush_keys::Role::Participant, name, identity)
    }

    /// The backend's attestation of `identity` for `name` in `role`.
    pub fn attest_as(&self, role: hush_keys::Role, name: &str, identity: &[u8]) -> Option<Vec<u8>> {
        self.attest_in(ROOM, role, name, identity)
    }

    /// The backend's attestation of `identity` for `name` in `role` in another `room` (any
    /// account of the app can get one for a room of its own).
    pub fn attest_in(
        &self,
        room: &str,
        role: hush_keys::Role,
        name: &str,
        identity: &[u8],
    ) -> Option<Vec<u8>> {
        let backend = self.backend.as_ref()?;
        let key = hush_keys::IdentityPublicKey::from_slice(identity).ok()?;
        let room = hush_keys::RoomId::new(room).ok()?;
        let who = hush_keys::ParticipantId::new(name).ok()?;
        let expires = self.now / 1000 + self.attestation_ttl;
        Some(
            Attestation::sign_as(backend, role, &room, &who, &key, expires)
                .to_bytes()
                .to_vec(),
        )
    }

    /// Adds a hook; every delivery passes every hook in order (the first verdict other than
    /// [`Verdict::Deliver`] wins).
    pub fn hook(&mut self, h: impl FnMut(&Delivery) -> Verdict + 'static) {
        self.hooks.push(Box::new(h));
    }

    /// Removes every hook: the relay is honest again.
    pub fn clear_hooks(&mut self) {
        self.hooks.clear();
    }

    /// The clock, in milliseconds.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// A participant.
    pub fn member(&self, name: &str) -> &Member {
        &self.members[name]
    }

    /// A participant, mutably (to feed it local inputs).
    pub fn member_mut(&mut self, name: &str) -> &mut Member {
        self.members
            .get_mut(name)
            .unwrap_or_else(|| panic!("no member {name}"))
    }

    /// The `e2ee` payloads `from` sent to `to` (through the relay, before any hook), in order.
    pub fn sent_to(&self, from: &str, to: &str) -> Vec<Vec<u8>> {
        self.members[from]
            .sent
            .iter()
            .filter_map(|m| match m {
                ClientMessage::E2ee(e) if e.to.as_str() == to => {
                    Some(e.payload.as_bytes().to_vec())
                }
                _ => None,
            })
            .collect()
    }

    /// Payloads `from` broadcast to every other member (`e2ee_broadcast`: switch notices,
    /// safety-code commits and reveals), in order.
    pub fn broadcast_by(&self, from: &str) -> Vec<Vec<u8>> {
        self.members[from]
            .sent
            .iter()
            .filter_map(|m| match m {
                ClientMessage::E2eeBroadcast(e) => Some(e.payload.as_bytes().to_vec()),
                _ => None,
            })
            .collect()
    }

    /// Everything the relay delivered to `name`, with the time, in order.
    pub fn transcript(&self, name: &str) -> &[(u64, ServerMessage)] {
        self.transcripts.get(name).map_or(&[], Vec::as_slice)
    }

    /// A participant joins with a fresh core; it starts its microphone once admitted.
    pub fn join(&mut self, name: &str) {
        let member = self.fresh(ChaCha20Rng::from_seed(seed_of(self.seed, name)));
        let identity = member.core.identity_key().to_vec();
        let attestation = self.attest(name, &identity);
        self.members.insert(name.to_owned(), member);
        self.announce(name, identity, attestation);
        self.pump();
    }

    /// The relay announces the room's recorder `name` (`role: recorder`), vouched for by the
    /// backend in that role; `name`'s private key is played here by [`Participant::recorder`],
    /// as `hush-record decrypt` plays it offline, and its outputs go nowhere.
    pub fn start_recorder(&mut self, name: &str) {
        let identity = hush_keys::IdentityKeyPair::from_secret_bytes(seed_of(self.seed, name));
        let key = *identity.public();
        let rng = ChaCha20Rng::from_seed(seed_of(self.seed, &format!("{name} rng")));
        let core = Participant::recorder(self.config(), identity, rng);
        let mut member = self.fresh(ChaCha20Rng::from_seed([0; 32]));
        member.core = core;
        member.recorder = true;
        let attestation = self.attest_as(hush_keys::Role::Recorder, name, key.as_bytes());
        self.members.insert(name.to_owned(), member);
        self.announce_as(
            name,
            key.as_bytes().to_vec(),
            attestation,
            MemberRole::Recorder,
        );
        self.pump();
    }

    /// The relay announces `name` as `role` with `identity` and `attestation`, and no core here
    /// plays it (a relay relabelling a role, say).
    pub fn announce_only_as(
        &mut self,
        name: &str,
        identity: Vec<u8>,
        attestation: Option<Vec<u8>>,
        role: MemberRole,
    ) {
        self.announce_as(name, identity, attestation, role);
        self.pump();
    }

    /// `name`'s page reloads (a fresh core with fresh randomness) and the relay replays, word
    /// for word, everything it had sent the old one: its `joined`, every event and message.
    pub fn reload_with_replay(&mut self, name: &str) {
        let rng = ChaCha20Rng::from_seed(seed_of(self.seed, &format!("{name} after reload")));
        let fresh = self.fresh(rng);
        self.members.insert(name.to_owned(), fresh);
        let replay: Vec<ServerMessage> = self
            .transcript(name)
            .iter()
            .map(|(_, m)| m.clone())
            .collect();
        self.transcripts.remove(name);
        for msg in replay {
            self.send(name, msg);
        }
        self.pump();
    }

    /// The relay announces a participant with `identity` (and `attestation`, if any) that no
    /// core here plays: a ghost, a swapped key, or a participant with an unusable key.
    pub fn announce_only(&mut self, name: &str, identity: Vec<u8>, attestation: Option<Vec<u8>>) {
        self.announce(name, identity, attestation);
        self.pump();
    }

    fn announce(&mut self, name: &str, identity: Vec<u8>, attestation: Option<Vec<u8>>) {
        self.announce_as(name, identity, attestation, MemberRole::Participant);
    }

    fn announce_as(
        &mut self,
        name: &str,
        identity: Vec<u8>,
        attestation: Option<Vec<u8>>,
        role: MemberRole,
    ) {
        self.seq += 1;
        let me = Announced {
            name: name.to_owned(),
            index: self.next_index,
            join_seq: self.seq,
            identity,
            attestation,
            role,
        };
        self.next_index += 1;
        if self.members.contains_key(name) {
            let joined = ServerMessage::Joined(Joined {
                you: pid(name),
                sender_index: SenderIndex(me.index),
                join_seq: me.join_seq,
                room: RoomId::new(ROOM).unwrap_or_else(|_| panic!("room id")),
                room_instance: None,
                locked: false,
                grants: Grants::default(),
                participants: self.announced.iter().map(info).collect(),
                tracks: Vec::new(),
                ice_servers: Vec::new(),
            });
            self.send(name, joined);
        }
        let ev = ServerMessage::ParticipantJoined(ParticipantJoined {
            seq: me.join_seq,
            participant: info(&me),
        });
        self.broadcast(&ev);
        self.announced.push(me);
    }

    /// A participant leaves (`reason` `left`) or is removed.
    pub fn depart(&mut self, name: &str, reason: LeaveReason) {
        let Some(i) = self.announced.iter().position(|a| a.name == name) else {
            panic!("{name} is not in the room");
        };
        let gone = self.announced.remove(i);
        self.seq += 1;
        let ev = ServerMessage::ParticipantLeft(ParticipantLeft {
            seq: self.seq,
            participant: pid(name),
            sender_index: SenderIndex(gone.index),
            reason,
        });
        self.broadcast(&ev);
        self.pump();
    }

    /// A participant leaves.
    pub fn leave(&mut self, name: &str) {
        self.depart(name, LeaveReason::Left);
    }

    /// The relay puts a rekey point in the log that the committer (the earliest member)
    /// asked for: a fresh epoch.
    pub fn rekey(&mut self) {
        let committer = self.announced.first().map(|a| a.name.clone());
        self.rekey_asked_by(committer.as_deref().into_iter());
    }

    /// The relay puts a rekey point in the log naming `by` as who asked.
    pub fn rekey_asked_by<'a>(&mut self, by: impl Iterator<Item = &'a str>) {
        self.seq += 1;
        let by = by.map(pid).collect();
        let ev = ServerMessage::Rekey(RekeyEvent { seq: self.seq, by });
        self.broadcast(&ev);
        self.pump();
    }

    /// The relay sends `msg` to `to` (through the hooks), as if it came from the relay.
    pub fn inject(&mut self, to: &str, msg: ServerMessage) {
        self.send(to, msg);
        self.pump();
    }

    /// An `e2ee` message to `to` that the relay says comes from `from`.
    pub fn e2ee(from: &str, payload: Vec<u8>) -> ServerMessage {
        ServerMessage::E2ee(E2eeFrom {
            from: pid(from),
            payload: OpaqueBytes::new(payload),
        })
    }

    fn broadcast(&mut self, msg: &ServerMessage) {
        let names: Vec<String> = self
            .announced
            .iter()
            .map(|a| a.name.clone())
            .filter(|n| self.members.contains_key(n))
            .collect();
        for n in names {
            self.send(&n, msg.clone());
        }
    }

    fn send(&mut self, to: &str, msg: ServerMessage) {
        let delivery = Delivery {
            to: to.to_owned(),
            msg,
        };
        let mut verdict = Verdict::Deliver;
        for h in &mut self.hooks {
            verdict = h(&delivery);
            if !matches!(verdict, Verdict::Deliver) {
                break;
            }
        }
        let (at, copies, delivery) = match verdict {
            Verdict::Deliver => (self.now, 1, delivery),
            Verdict::Drop => return,
            Verdict::Delay(ms) => (self.now + ms, 1, delivery),
            Verdict::Duplicate => (self.now, 2, delivery),
            Verdict::Rewrite(msg) => (self.now, 1, Delivery { msg, ..delivery }),
        };
        for _ in 0..copies {
            self.order += 1;
            self.in_flight.push(InFlight {
                at,
                order: self.order,
                delivery: delivery.clone(),
            });
        }
    }

    /// Delivers what is due and routes every output until nothing moves (bounded).
    pub fn pump(&mut self) {
        for _ in 0..100_000 {
            let mut moved = false;
            // The earliest due delivery, in send order.
            if let Some(i) = self
                .in_flight
                .iter()
                .enumerate()
                .filter(|(_, f)| f.at <= self.now)
                .min_by_key(|(_, f)| (f.at, f.order))
                .map(|(i, _)| i)
            {
                let f = self.in_flight.remove(i);
                self.deliver(f.delivery);
                moved = true;
            }
            let names: Vec<String> = self.members.keys().cloned().collect();
            for n in names {
                while let Some(o) = self.member_mut(&n).core.poll_output() {
                    moved = true;
                    self.carry_out(&n, o);
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the room never settled");
    }

    fn deliver(&mut self, d: Delivery) {
        let now = self.now;
        let Some(m) = self.members.get_mut(&d.to) else {
            return;
        };
        self.transcripts
            .entry(d.to.clone())
            .or_default()
            .push((now, d.msg.clone()));
        if let Err(r) = m
            .core
            .handle_input(Instant::from_millis(now), Input::Relay(&d.msg))
        {
            m.refusals.push(r);
        }
    }

    fn carry_out(&mut self, from: &str, o: Output) {
        let now = Instant::from_millis(self.now);
        let m = self.member_mut(from);
        match o {
            Output::Key(k) => match k {
                KeyUpdate::SetSend { context, kid, key } => {
                    m.send
                        .insert(context.0, (kid.get(), key.as_bytes().to_vec()));
                }
                KeyUpdate::StopSend { context } => {
                    m.send.remove(&context.0);
                }
                KeyUpdate::InstallReceive { kid, key } => {
                    m.recv.insert(kid.get(), key.as_bytes().to_vec());
                }
                KeyUpdate::RetireReceive { kid } => {
                    m.recv.remove(&kid.get());
                }
                _ => {}
            },
            Output::Event(e) => {
                // Like a client, it starts its microphone once the relay admitted it.
                if matches!(e, Event::Joined { .. }) && !m.recorder {
                    let mic = Input::LocalStreamStarted(StreamContext::MICROPHONE);
                    if let Err(r) = m.core.handle_input(now, mic) {
                        m.refusals.push(r);
                    }
                }
                m.events.push(e);
            }
            // An offline recorder answers nobody.
            Output::Send(_) if m.recorder => {}
            Output::Send(msg) => {
                m.sent.push(msg.clone());
                self.route(from, msg);
            }
        }
    }

    /// The honest relay's handling of a participant's message.
    fn route(&mut self, from: &str, msg: ClientMessage) {
        match msg {
            ClientMessage::E2ee(e) => {
                let to = e.to.as_str().to_owned();
                if self.announced.iter().any(|a| a.name == to) {
                    self.send(&to, Self::e2ee(from, e.payload.as_bytes().to_vec()));
                }
            }
            ClientMessage::E2eeBroadcast(e) => {
                let others: Vec<String> = self
                    .announced
                    .iter()
                    .map(|a| a.name.clone())
                    .filter(|n| n != from && self.members.contains_key(n))
                    .collect();
                for to in others {
                    self.send(&to, Self::e2ee(from, e.payload.as_bytes().to_vec()));
                }
            }
            ClientMessage::Rekey(_) => {
                self.seq += 1;
                let by = vec![pid(from)];
                let ev = ServerMessage::Rekey(RekeyEvent { seq: self.seq, by });
                self.broadcast(&ev);
            }
            _ => {}
        }
    }

    /// Moves the clock by `ms`, ticking every participant whose timer is due, delivering what
    /// is due.
    pub fn advance(&mut self, ms: u64) {
        let end = self.now + ms;
        loop {
            let next_timer = self
                .members
                .values()
                .filter_map(|m| m.core.next_timeout().map(Instant::as_millis))
                .min();
            let next_msg = self.in_flight.iter().map(|f| f.at).min();
            let next = [next_timer, next_msg].into_iter().flatten().min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    let now = Instant::from_millis(self.now);
                    for m in self.members.values_mut() {
                        if m.core.next_timeout().is_some_and(|t| t <= now) {
                            let _ = m.core.handle_input(now, Input::Tick);
                        }
                    }
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = end;
        self.pump();
    }

    /// Runs 30 s of simulated time: long enough for every switch, grace and retry timer.
    pub fn settle(&mut self) {
        self.advance(30_000);
    }

    /// The safety code `name` shows now: the last one it was given, unless a newer round is
    /// pending.
    pub fn safety_code(&self, name: &str) -> Option<String> {
        self.members[name]
            .events
            .iter()
            .rev()
            .find_map(|e| match e {
                Event::SafetyCode(c) => Some(Some(c.to_string())),
                Event::SafetyCodePending(_) => Some(None),
                _ => None,
            })
            .flatten()
    }

    /// The epoch `name` sends on.
    pub fn sending_epoch(&self, name: &str) -> Option<u64> {
        self.members[name].core.sending_epoch()
    }

    /// A microphone frame from `from` under its current send key, decrypted with `to`'s
    /// receive keys: `Ok` when `to` opens it to the same plaintext.
    pub fn frame(&self, from: &str, to: &str) -> Result<(), String> {
        let ctx = StreamContext::MICROPHONE.0;
        let (kid, key) = self.members[from]
            .send
            .get(&ctx)
            .ok_or_else(|| format!("{from} has no send key"))?;
        let key = BaseKey::new(key).map_err(|e| format!("{e}"))?;
        let mut enc = Encryptor::new(SUITE, *kid, &key);
        let plain = format!("audio from {from}").into_bytes();
        let mut buf = plain.clone();
        enc.encrypt(Layout::Pure, &mut buf)
            .map_err(|e| format!("{e:?}"))?;
        let mut dec = Decryptor::new(SUITE);
        for (k, v) in &self.members[to].recv {
            let v = BaseKey::new(v).map_err(|e| format!("{e}"))?;
            dec.add_key(*k, &v).map_err(|e| format!("{e}"))?;
        }
        dec.decrypt(Layout::Pure, &mut buf)
            .map_err(|e| format!("{e:?}"))?;
        if buf == plain {
            Ok(())
        } else {
            Err("wrong plaintext".into())
        }
    }
}
