//! A simulated Hush room for tests and benches: seeded RNG, stepped clock, a fake relay that
//! orders membership events per member but delays, reorders and duplicates key messages, and
//! real hush-frame frames.
// Test harness: panics on broken test invariants are the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    dead_code,
    unreachable_pub
)]

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use hush_frame::{BaseKey, CipherSuite, DecryptError, Decryptor, Encryptor, Layout};
use hush_keys::ed25519_dalek::SigningKey;
use hush_keys::rand_core::{Rng, SeedableRng};
use hush_keys::{
    Attestation, Change, Config, Destination, Error, Event, IdentityKeyPair, Input, Instant,
    KeyUpdate, Kid, Member, MembershipEvent, Output, ParticipantId, RoomId, SafetyCode,
    SenderIndex, Session, StreamContext,
};
use rand_chacha::ChaCha20Rng;

pub type TestRng = ChaCha20Rng;
pub const SUITE: CipherSuite = CipherSuite::Aes128GcmSha256_128;
pub const MIC: StreamContext = StreamContext::MICROPHONE;

pub fn rng(seed: u64) -> TestRng {
    ChaCha20Rng::seed_from_u64(seed)
}

#[derive(Clone)]
pub struct NetConfig {
    /// Membership events: one-way delay range (ms); in order per member.
    pub event_delay: (u64, u64),
    /// Key messages: one-way delay range (ms); independent, so they reorder.
    pub msg_delay: (u64, u64),
    /// Per-mille chance that a key message is delivered twice.
    pub dup_per_mille: u64,
    /// Media one-way delay (ms).
    pub media_delay: u64,
    /// Each sender sends a frame this often (ms); `None`: no media.
    pub frame_interval: Option<u64>,
    /// Frames per key before the encryptor refuses (`with_usage_limit`).
    pub usage_limit: Option<u64>,
    /// Session settings.
    pub contexts: u8,
    pub switch_timeout_ms: u64,
    pub rekey_interval_ms: Option<u64>,
    /// Require attestations signed by this backend key.
    pub attestation: Option<[u8; 32]>,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            event_delay: (20, 80),
            msg_delay: (10, 200),
            dup_per_mille: 100,
            media_delay: 50,
            frame_interval: None,
            usage_limit: None,
            contexts: 1,
            switch_timeout_ms: 1500,
            rekey_interval_ms: None,
            attestation: None,
        }
    }
}

pub struct Node {
    pub identity_secret: [u8; 32],
    /// Signed by the relay's own key instead of the backend's (a ghost).
    pub ghost: bool,
    pub pid: ParticipantId,
    pub idx: SenderIndex,
    pub identity_pub: hush_keys::IdentityPublicKey,
    pub session: Session<TestRng>,
    /// Kept once made, as a client must: `StopSend` pauses it (a resumed KID goes on from
    /// its counter).
    pub enc: Option<Encryptor>,
    /// Stopped by `StopSend` until the next `SetSend`.
    pub paused: bool,
    pub dec: Decryptor,
    /// Every frame key this node ever held, by (sender index, context).
    pub keys: BTreeMap<(u32, u8), Vec<[u8; 32]>>,
    pub installed: BTreeMap<u64, u64>,
    pub codes: Vec<SafetyCode>,
    pub events: Vec<Event>,
    pub errors: BTreeMap<String, u64>,
    pub present: bool,
    /// Left, but the curious relay keeps feeding it everything (check (b)).
    pub follower: bool,
    pub join_seq: u64,
    pub left_seq: Option<u64>,
    pub frames_sent: u64,
    pub encrypt_errors: u64,
    pub rekey_requests: u64,
}

enum Delivery {
    Joined {
        to: usize,
        seq: u64,
        members: Vec<Member>,
    },
    Event {
        to: usize,
        ev: MembershipEvent,
    },
    Msg {
        to: usize,
        bytes: Vec<u8>,
    },
    Frame {
        to: usize,
        frame: usize,
    },
    Rekey,
}

/// A relay's hook on key messages: (from, to, bytes) -> bytes to forward (None: drop).
pub type Tamper = Box<dyn FnMut(usize, usize, Vec<u8>) -> Option<Vec<u8>>>;

pub struct FrameRec {
    pub sender: usize,
    pub sender_idx: u32,
    pub sent_at: u64,
    pub epoch: u64,
    pub kid: u64,
    pub bytes: Vec<u8>,
    pub settled: bool,
}

#[derive(Default, Debug, Clone)]
pub struct Stats {
    pub envelopes: u64,
    pub envelope_bytes: u64,
    pub control_msgs: u64,
    pub control_bytes: u64,
    pub required_deliveries: u64,
    pub required_ok: u64,
    pub unsettled_frames: u64,
    pub settled_frames: u64,
    pub optional_failures: u64,
    /// Frames a receiver had no key for, sealed under an epoch before its join.
    pub pre_join_unknown: u64,
    /// ... of which the receiver's session said `predates_join`.
    pub pre_join_classified: u64,
}

pub struct Net {
    pub cfg: NetConfig,
    pub now: u64,
    pub room: RoomId,
    pub nodes: Vec<Node>,
    pub log: Vec<MembershipEvent>,
    pub frames: Vec<FrameRec>,
    pub stats: Stats,
    pub violations: Vec<String>,
    /// Every (sender index, KID, counter) sent.
    sent_nonces: std::collections::HashSet<(u32, u64, u64)>,
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    slab: Vec<Option<Delivery>>,
    tie: u64,
    rng: TestRng,
    last_event_at: Vec<u64>,
    next_frame_at: u64,
    backend: Option<SigningKey>,
    /// Nodes the relay lets in but the members refuse (ghosts under attestations): not counted
    /// as members for settling and media.
    pub excluded: std::collections::BTreeSet<usize>,
    /// Called on every key message the relay forwards: (from, to, bytes) -> replacement bytes
    /// (None: drop).
    pub tamper: Option<Tamper>,
    /// The relay ignores rekey requests.
    pub drop_rekey_requests: bool,
}

impl Net {
    pub fn new(seed: u64, cfg: NetConfig) -> Self {
        let backend = cfg.attestation.map(|b| SigningKey::from_bytes(&b));
        Self {
            cfg,
            now: 0,
            room: RoomId::new("sim-room").unwrap(),
            nodes: Vec::new(),
            log: Vec::new(),
            frames: Vec::new(),
            stats: Stats::default(),
            violations: Vec::new(),
            sent_nonces: std::collections::HashSet::new(),
            queue: BinaryHeap::new(),
            slab: Vec::new(),
            tie: 0,
            rng: rng(seed),
            last_event_at: Vec::new(),
            next_frame_at: 0,
            backend,
            excluded: Default::default(),
            tamper: None,
            drop_rekey_requests: false,
        }
    }

    pub fn session_config(&self) -> Config {
        let mut c = Config::new(self.room.clone());
        c.contexts = self.cfg.contexts;
        c.switch_timeout = std::time::Duration::from_millis(self.cfg.switch_timeout_ms);
        c.rekey_interval = self
            .cfg
            .rekey_interval_ms
            .map(std::time::Duration::from_millis);
        c.attestation_key = self.backend.as_ref().map(|k| k.verifying_key());
        c
    }

    fn rand_in(&mut self, (lo, hi): (u64, u64)) -> u64 {
        lo + self.rng.next_u64() % (hi - lo + 1)
    }

    pub fn rand_below(&mut self, n: u64) -> u64 {
        self.rng.next_u64() % n
    }

    fn schedule(&mut self, at: u64, d: Delivery) {
        self.slab.push(Some(d));
        self.tie += 1;
        self.queue
            .push(Reverse((at, self.tie, self.slab.len() - 1)));
    }

    fn send_event(&mut self, to: usize, ev: MembershipEvent) {
        let d = self.rand_in(self.cfg.event_delay);
        let at = (self.now + d).max(self.last_event_at[to]);
        self.last_event_at[to] = at;
        self.schedule(at, Delivery::Event { to, ev });
    }

    pub fn present(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|n| self.nodes[*n].present)
            .collect()
    }

    /// Present and accepted by the members.
    pub fn members_now(&self) -> Vec<usize> {
        self.present()
            .into_iter()
            .filter(|n| !self.excluded.contains(n))
            .collect()
    }

    pub fn member_of(&self, n: usize) -> Member {
        let node = &self.nodes[n];
        Member {
            participant: node.pid.clone(),
            sender_index: node.idx,
            join_seq: node.join_seq,
            identity: node.identity_pub,
            attestation: self.backend.as_ref().map(|b| {
                let relay_key = SigningKey::from_bytes(&[0x66; 32]);
                let k = if node.ghost { &relay_key } else { b };
                Attestation::sign(k, &self.room, &node.pid, &node.identity_pub, 1 << 40)
            }),
            role: hush_keys::Role::Participant,
        }
    }

    /// A new participant joins; returns its node number.
    pub fn join(&mut self) -> usize {
        self.join_custom(false, |_| {}, |_| {})
    }

    /// A join the relay manipulates: `ghost` signs its attestation with the relay's key;
    /// `snapshot` edits the members the newcomer is shown, `announce` the newcomer as the others
    /// see it.
    pub fn join_custom(
        &mut self,
        ghost: bool,
        snapshot: impl Fn(&mut Member),
        announce: impl Fn(&mut Member),
    ) -> usize {
        let n = self.nodes.len();
        let mut r = rng(self.rng.next_u64());
        let identity = IdentityKeyPair::generate(&mut r);
        let pid = ParticipantId::new(format!("p{n}")).unwrap();
        let seq = self.log.len() as u64 + 1;
        let node = Node {
            identity_secret: *identity.secret_bytes(),
            ghost: false,
            pid: pid.clone(),
            idx: SenderIndex::new(n as u32 + 1).unwrap(),
            identity_pub: *identity.public(),
            session: Session::new(self.session_config(), identity, pid, r),
            enc: None,
            paused: false,
            dec: Decryptor::new(SUITE),
            keys: BTreeMap::new(),
            installed: BTreeMap::new(),
            codes: Vec::new(),
            events: Vec::new(),
            errors: BTreeMap::new(),
            present: false,
            follower: false,
            join_seq: seq,
            left_seq: None,
            frames_sent: 0,
            encrypt_errors: 0,
            rekey_requests: 0,
        };
        self.nodes.push(node);
        self.nodes[n].ghost = ghost;
        self.last_event_at.push(0);
        let mut member = self.member_of(n);
        announce(&mut member);
        self.append_event(Change::Join(member), None);
        let mut members: Vec<Member> = self
            .present()
            .into_iter()
            .map(|p| self.member_of(p))
            .collect();
        for m in &mut members {
            snapshot(m);
        }
        members.push(self.member_of(n));
        self.nodes[n].present = true;
        let d = self.rand_in(self.cfg.event_delay);
        self.last_event_at[n] = self.now + d;
        self.schedule(
            self.now + d,
            Delivery::Joined {
                to: n,
                seq,
                members,
            },
        );
        n
    }

    /// Appends an event to the log and sends it to every present member except `skip`.
    pub fn append_event(&mut self, change: Change, skip: Option<usize>) -> u64 {
        let seq = self.log.len() as u64 + 1;
        let ev = MembershipEvent { seq, change };
        self.log.push(ev.clone());
        for p in self.present() {
            if Some(p) != skip {
                self.send_event(p, ev.clone());
            }
        }
        // Followers (members who left) keep following the log; their own leave reads as a rekey.
        for f in 0..self.nodes.len() {
            if self.nodes[f].follower {
                self.send_event(f, ev.clone());
            }
        }
        seq
    }

    /// Node `n` leaves (or is removed). With `follow`, the relay keeps feeding it every event and
    /// every key message (its own leave shows up as a rekey), to prove it still learns nothing.
    pub fn leave(&mut self, n: usize, remove: bool, follow: bool) {
        self.nodes[n].present = false;
        let pid = self.nodes[n].pid.clone();
        let change = if remove {
            Change::Remove(pid)
        } else {
            Change::Leave(pid)
        };
        let seq = self.append_event(change, Some(n));
        self.nodes[n].left_seq = Some(seq);
        if follow {
            self.nodes[n].follower = true;
            // The leaver plays along as if a phantom had joined: it ratchets its last epoch
            // secret on its own, the best it can do with what it holds.
            let phantom = Member {
                participant: ParticipantId::new(format!("phantom{n}")).unwrap(),
                sender_index: SenderIndex::new(SenderIndex::MAX - n as u32).unwrap(),
                join_seq: seq,
                identity: *IdentityKeyPair::from_secret_bytes([7; 32]).public(),
                attestation: None,
                role: hush_keys::Role::Participant,
            };
            let change = Change::Join(phantom);
            self.send_event(n, MembershipEvent { seq, change });
        }
    }

    pub fn rekey(&mut self) -> u64 {
        self.append_event(Change::Rekey, None)
    }

    fn route_msg(&mut self, from: usize, to: usize, bytes: Vec<u8>) {
        let bytes = match self.tamper.as_mut() {
            Some(t) => match t(from, to, bytes) {
                Some(b) => b,
                None => return,
            },
            None => bytes,
        };
        let d = self.rand_in(self.cfg.msg_delay);
        self.schedule(
            self.now + d,
            Delivery::Msg {
                to,
                bytes: bytes.clone(),
            },
        );
        if self.rand_below(1000) < self.cfg.dup_per_mille {
            let d = self.rand_in(self.cfg.msg_delay);
            self.schedule(self.now + d, Delivery::Msg { to, bytes });
        }
    }

    /// Drains node `n`'s outputs into the relay and its frame layer.
    pub fn drive(&mut self, n: usize) {
        while let Some(out) = self.nodes[n].session.poll_output() {
            match out {
                Output::Transmit(t) => {
                    if !self.nodes[n].present {
                        continue; // the relay no longer forwards for a member that left
                    }
                    let len = t.payload.len() as u64;
                    if len == hush_keys::envelope::ENVELOPE_LEN as u64 {
                        self.stats.envelopes += 1;
                        self.stats.envelope_bytes += len;
                    }
                    let targets: Vec<usize> = match &t.to {
                        Destination::Member(p) => (0..self.nodes.len())
                            .filter(|x| self.nodes[*x].present && self.nodes[*x].pid == *p)
                            .collect(),
                        Destination::AllMembers => {
                            self.present().into_iter().filter(|x| *x != n).collect()
                        }
                    };
                    if len != hush_keys::envelope::ENVELOPE_LEN as u64 {
                        self.stats.control_msgs += targets.len() as u64;
                        self.stats.control_bytes += len * targets.len() as u64;
                    }
                    for to in targets {
                        self.route_msg(n, to, t.payload.clone());
                    }
                    let followers: Vec<usize> = (0..self.nodes.len())
                        .filter(|f| self.nodes[*f].follower)
                        .collect();
                    for f in followers {
                        self.route_msg(n, f, t.payload.clone());
                    }
                }
                Output::RequestRekey(_) => {
                    self.nodes[n].rekey_requests += 1;
                    if self.nodes[n].present && !self.drop_rekey_requests {
                        let d = self.rand_in(self.cfg.event_delay);
                        self.schedule(self.now + d, Delivery::Rekey);
                    }
                }
                Output::Key(k) => self.apply_key(n, k),
                Output::Event(e) => {
                    match &e {
                        Event::EpochInstalled { epoch } => {
                            self.nodes[n].installed.insert(*epoch, self.now);
                        }
                        Event::SafetyCodeChanged(c) => self.nodes[n].codes.push(*c),
                        _ => {}
                    }
                    self.nodes[n].events.push(e);
                }
                _ => {}
            }
        }
    }

    fn record_key(&mut self, n: usize, kid: Kid, key: &[u8; 32]) {
        let (ctx, s, _) = Kid::unpack(kid.get()).unwrap();
        self.nodes[n]
            .keys
            .entry((s.get(), ctx.0))
            .or_default()
            .push(*key);
    }

    fn apply_key(&mut self, n: usize, k: KeyUpdate) {
        match k {
            KeyUpdate::InstallReceive { kid, key } => {
                self.record_key(n, kid, key.as_bytes());
                let bk = BaseKey::new(key.as_bytes()).unwrap();
                self.nodes[n].dec.add_key(kid.get(), &bk).unwrap();
            }
            KeyUpdate::RetireReceive { kid } => {
                self.nodes[n].dec.remove_key(kid.get());
            }
            KeyUpdate::SetSend { kid, key, context } => {
                assert_eq!(context, MIC);
                self.record_key(n, kid, key.as_bytes());
                let bk = BaseKey::new(key.as_bytes()).unwrap();
                let node = &mut self.nodes[n];
                match node.enc.as_mut() {
                    Some(e) => e.set_key(kid.get(), &bk),
                    None => {
                        let mut e = Encryptor::new(SUITE, kid.get(), &bk);
                        if let Some(l) = self.cfg.usage_limit {
                            e = e.with_usage_limit(l);
                        }
                        node.enc = Some(e);
                    }
                }
                node.paused = false;
            }
            KeyUpdate::StopSend { .. } => self.nodes[n].paused = true,
            _ => {}
        }
    }

    pub fn input(&mut self, n: usize, input: Input<'_>) -> Result<(), Error> {
        let now = Instant::from_millis(self.now);
        let r = self.nodes[n].session.handle_input(now, input);
        if let Err(e) = &r {
            *self.nodes[n].errors.entry(format!("{e:?}")).or_default() += 1;
        }
        self.drive(n);
        r
    }

    fn deliver(&mut self, d: Delivery) {
        match d {
            Delivery::Joined { to, seq, members } => {
                self.input(to, Input::Joined { seq, members }).unwrap();
                if self.cfg.frame_interval.is_some() {
                    self.input(to, Input::LocalStreamStarted(MIC)).unwrap();
                }
            }
            Delivery::Event { to, ev } => {
                if self.nodes[to].present || self.nodes[to].follower {
                    let _ = self.input(to, Input::Membership(ev));
                }
            }
            Delivery::Msg { to, bytes } => {
                if self.nodes[to].present || self.nodes[to].follower {
                    let _ = self.input(to, Input::Message(&bytes));
                }
            }
            Delivery::Frame { to, frame } => self.deliver_frame(to, frame),
            Delivery::Rekey => {
                self.rekey();
            }
        }
    }

    fn deliver_frame(&mut self, to: usize, f: usize) {
        let node_present = self.nodes[to].present;
        let sender_present = self.nodes[self.frames[f].sender].present;
        if !node_present || !sender_present {
            return;
        }
        let mut buf = self.frames[f].bytes.clone();
        let res = self.nodes[to].dec.decrypt(Layout::Pure, &mut buf);
        let ok = res.is_ok();
        let fr = &self.frames[f];
        if matches!(res, Err(DecryptError::UnknownKid(_))) {
            // `predates_join` sorts out frames sealed before this receiver's join, and only
            // those: it never hides a frame of the join's epoch or a later one.
            let (ctx, s, _) = Kid::unpack(fr.kid).unwrap();
            let kid = Kid::new(ctx, s, fr.epoch);
            let now = Instant::from_millis(self.now);
            let session = &self.nodes[to].session;
            let before = session.predates_join(now, kid);
            // The snapshot the native client keeps decides the same.
            let horizon = session.join_horizon();
            assert_eq!(horizon.is_some_and(|h| h.predates(now, kid)), before);
            if fr.epoch < self.nodes[to].join_seq {
                self.stats.pre_join_unknown += 1;
                self.stats.pre_join_classified += u64::from(before);
            } else if before {
                self.violations.push(format!(
                    "t={} node {to} took frame {f} (epoch {}, its join {}) for a pre-join frame",
                    self.now, fr.epoch, self.nodes[to].join_seq
                ));
            }
        }
        if ok {
            let mut want = fr.sender_idx.to_be_bytes().to_vec();
            want.extend_from_slice(&(f as u64).to_be_bytes());
            assert_eq!(buf, want, "decrypted to the wrong plaintext");
        }
        // Required: the epoch had settled at send time and this receiver was a member when it
        // started.
        if fr.settled && self.nodes[to].join_seq <= fr.epoch {
            self.stats.required_deliveries += 1;
            if ok {
                self.stats.required_ok += 1;
            } else {
                self.violations.push(format!(
                    "t={} node {to} failed frame {f} from node {} on settled epoch {} (sent {})",
                    self.now, fr.sender, fr.epoch, fr.sent_at
                ));
            }
        } else if !ok {
            self.stats.optional_failures += 1;
        }
    }

    fn send_frames(&mut self) {
        for n in self.members_now() {
            let Some(epoch) = self.nodes[n].session.sending_epoch() else {
                continue;
            };
            if self.nodes[n].enc.is_none() || self.nodes[n].paused {
                continue;
            }
            let f = self.frames.len();
            let mut buf = self.nodes[n].idx.get().to_be_bytes().to_vec();
            buf.extend_from_slice(&(f as u64).to_be_bytes());
            let enc = self.nodes[n].enc.as_mut().unwrap();
            let kid = enc.kid();
            if enc.encrypt(Layout::Pure, &mut buf).is_err() {
                self.nodes[n].encrypt_errors += 1;
                continue;
            }
            let near = enc.needs_rotation();
            // No (KID, counter) twice from one sender: under one key that is a nonce used twice.
            if let Ok((h, _)) = hush_frame::Header::decode(&buf) {
                let idx = self.nodes[n].idx.get();
                if !self.sent_nonces.insert((idx, h.kid, h.ctr)) {
                    self.violations.push(format!(
                        "sender {idx} sent KID {} CTR {} twice",
                        h.kid, h.ctr
                    ));
                }
            }
            self.nodes[n].frames_sent += 1;
            let receivers: Vec<usize> =
                self.members_now().into_iter().filter(|x| *x != n).collect();
            // Settled: every receiver that was a member when the epoch started has it (later
            // joiners must not be able to read it: check (c)).
            let settled = receivers
                .iter()
                .filter(|r| self.nodes[**r].join_seq <= epoch)
                .all(|r| self.nodes[*r].installed.contains_key(&epoch));
            if settled {
                self.stats.settled_frames += 1;
            } else {
                self.stats.unsettled_frames += 1;
            }
            self.frames.push(FrameRec {
                sender: n,
                sender_idx: self.nodes[n].idx.get(),
                sent_at: self.now,
                epoch,
                kid,
                bytes: buf,
                settled,
            });
            for r in receivers {
                self.schedule(
                    self.now + self.cfg.media_delay,
                    Delivery::Frame { to: r, frame: f },
                );
            }
            if near {
                let _ = self.input(n, Input::UsageLimitNear(MIC));
            }
        }
    }

    /// Runs the simulation until `until` (ms).
    pub fn run_until(&mut self, until: u64) {
        loop {
            let mut next = until;
            if let Some(Reverse((t, _, _))) = self.queue.peek() {
                next = next.min(*t);
            }
            if let Some(i) = self.cfg.frame_interval {
                if self.next_frame_at <= self.now {
                    self.next_frame_at = self.now + i;
                }
                next = next.min(self.next_frame_at);
            }
            let mut tick_due = None;
            for (n, node) in self.nodes.iter().enumerate() {
                if !(node.present || node.follower) {
                    continue;
                }
                if let Some(t) = node.session.next_timeout() {
                    let t = t.as_millis().max(self.now);
                    if t < next || (t == next && tick_due.is_none()) {
                        next = t;
                        tick_due = Some(n);
                    }
                }
            }
            if next > until {
                break;
            }
            self.now = next;
            // Deliveries due now.
            while let Some(Reverse((t, _, i))) = self.queue.peek().copied() {
                if t > self.now {
                    break;
                }
                self.queue.pop();
                if let Some(d) = self.slab[i].take() {
                    self.deliver(d);
                }
            }
            // Timers due now.
            for n in 0..self.nodes.len() {
                if !(self.nodes[n].present || self.nodes[n].follower) {
                    continue;
                }
                if self.nodes[n]
                    .session
                    .next_timeout()
                    .is_some_and(|t| t.as_millis() <= self.now)
                {
                    let _ = self.input(n, Input::Tick);
                }
            }
            if self.cfg.frame_interval.is_some() && self.next_frame_at <= self.now {
                self.send_frames();
                self.next_frame_at = self.now + self.cfg.frame_interval.unwrap_or(1);
            }
            if self.now >= until
                && self
                    .queue
                    .peek()
                    .is_none_or(|Reverse((t, _, _))| *t > until)
            {
                break;
            }
        }
        self.now = until;
    }

    /// True when every present member sends on the same epoch, the newest in the log that
    /// starts one.
    pub fn settled(&self) -> bool {
        let p = self.members_now();
        let Some(first) = p.first() else { return true };
        let e = self.nodes[*first].session.sending_epoch();
        e.is_some()
            && p.iter()
                .all(|n| self.nodes[*n].session.sending_epoch() == e)
    }

    /// Runs for `ms` milliseconds from now.
    pub fn run_for(&mut self, ms: u64) {
        let t = self.now + ms;
        self.run_until(t);
    }

    /// `count` participants join, `gap_ms` apart (the net running in between).
    pub fn join_spaced(&mut self, count: usize, gap_ms: u64) {
        for _ in 0..count {
            self.join();
            self.run_for(gap_ms);
        }
    }

    /// Runs until settled (or `limit` ms pass); returns the time it took.
    pub fn run_until_settled(&mut self, limit: u64) -> Option<u64> {
        let start = self.now;
        while self.now < start + limit {
            self.run_for(5);
            if self.settled() && self.queue.is_empty() {
                return Some(self.now - start);
            }
        }
        None
    }

    /// Tries every key `n` ever held for the frame's stream, under the frame's KID: the count of
    /// frames among `frames` it decrypts.
    pub fn decryptable_by(&self, n: usize, frames: &[usize]) -> (u64, u64) {
        let mut attempts = 0;
        let mut broken = 0;
        for &f in frames {
            let fr = &self.frames[f];
            let (ctx, s, _) = Kid::unpack(fr.kid).unwrap();
            let Some(keys) = self.nodes[n].keys.get(&(s.get(), ctx.0)) else {
                continue;
            };
            for k in keys {
                attempts += 1;
                let mut d = Decryptor::new(SUITE);
                d.add_key(fr.kid, &BaseKey::new(k).unwrap()).unwrap();
                let mut b = fr.bytes.clone();
                if d.decrypt(Layout::Pure, &mut b).is_ok() {
                    broken += 1;
                }
            }
        }
        (attempts, broken)
    }

    pub fn codes_of(&self, nodes: &[usize]) -> Vec<Option<SafetyCode>> {
        nodes
            .iter()
            .map(|n| self.nodes[*n].session.safety_code())
            .collect()
    }
}
