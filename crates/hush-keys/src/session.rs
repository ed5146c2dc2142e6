//! The sans-IO key state machine: [`Session::handle_input`] with an explicit time, then
//! [`Session::poll_output`] until it returns `None`. No I/O, no clock, no OS randomness: the RNG
//! is the caller's. See [`crate::manual`] for the protocol.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;
use core::time::Duration;

use ed25519_dalek::VerifyingKey;
use rand_core::CryptoRng;

use crate::envelope::{self, EnvelopeHeader, Message, Reason};
use crate::epoch::{EpochSecret, SharedSecret};
use crate::error::{EnvelopeError, Error, MembershipError, UsageError};
use crate::identity::IdentityKeyPair;
use crate::ids::{ParticipantId, RoomId};
use crate::kid::{EPOCH_BITS, Kid, SenderIndex, StreamContext};
use crate::member::{Change, Member, MembershipEvent};
use crate::safety::SafetyCode;
use crate::secret::FrameKey;
use crate::time::Instant;

/// How the room gets its epoch secrets.
#[derive(Debug)]
#[non_exhaustive]
pub enum KeyMode {
    /// The default: the committer draws epochs and sends them in HPKE envelopes; ratchet on
    /// join, fresh secret on leave, removal and rekey.
    Exchange,
    /// Shared-secret mode, for apps that distribute one high-entropy room secret themselves:
    /// `E_0` comes from the secret and every relay event ratchets (`E_s = ratchet^s(E_0)`), with
    /// no envelopes. **Weaker**: anyone who ever held the secret (a member who left, a late
    /// joiner) can compute every epoch, past and future; it only keeps the relay out.
    SharedSecret(SharedSecret),
}

/// Session settings. [`Config::new`] gives the defaults.
#[derive(Debug)]
pub struct Config {
    /// The room id, bound into envelopes and the safety code.
    pub room: RoomId,
    /// Where epoch secrets come from.
    pub mode: KeyMode,
    /// How long a member waits for the committer's switch notice before it sends on a newly
    /// installed epoch anyway (default 1.5 s).
    pub switch_timeout: Duration,
    /// How long a receiver keeps an older epoch's keys after it switched (default 10 s).
    pub grace: Duration,
    /// The committer asks for a rekey this long after the last fresh epoch (default 10 min;
    /// `None`: never). A rekey keeps the safety code.
    pub rekey_interval: Option<Duration>,
    /// How many stream contexts (0..n) to install receive keys for, per member (default 4:
    /// microphone, camera, screen, screen audio).
    pub contexts: u8,
    /// With a key set, members refuse anyone without a valid backend attestation.
    pub attestation_key: Option<VerifyingKey>,
    /// The relay's nonce for this life of the room (`joined.room_instance`). Shared-secret mode
    /// mixes it into `E_0`: a room the relay forgot (empty timeout) and created again restarts
    /// its sequence numbers and sender indexes at 0, and without it would repeat every key and
    /// nonce of the earlier life. Exchange mode draws fresh epochs and does not need it.
    pub room_instance: Option<[u8; 16]>,
}

impl Config {
    /// Defaults for `room`: exchange mode, 1.5 s switch timeout, 10 s grace, 10 min rekey, 4
    /// contexts, no attestations.
    pub fn new(room: RoomId) -> Self {
        Self {
            room,
            mode: KeyMode::Exchange,
            switch_timeout: Duration::from_millis(1500),
            grace: Duration::from_secs(10),
            rekey_interval: Some(Duration::from_secs(600)),
            contexts: 4,
            attestation_key: None,
            room_instance: None,
        }
    }
}

/// What the driver feeds the session.
#[derive(Debug)]
#[non_exhaustive]
pub enum Input<'a> {
    /// The relay's snapshot when this member joined: the room's members (this one included)
    /// right after its own join event `seq`.
    Joined {
        /// The sequence number of this member's join event.
        seq: u64,
        /// Every member, this one included.
        members: Vec<Member>,
    },
    /// The next event of the relay's ordered room log.
    Membership(MembershipEvent),
    /// An opaque key message (envelope, ack or switch notice) the relay forwarded.
    Message(&'a [u8]),
    /// [`Input::Message`] with the sender the relay names (`e2ee.from`, which members cannot
    /// set). A message whose claimed sender index belongs to another current member is refused
    /// ([`EnvelopeError::Forged`]): a member cannot pass off acks or switch notices (which are
    /// MACed with the epoch secret every member holds) as the committer's or another member's.
    MessageFrom {
        /// The sender as the relay names it.
        from: &'a ParticipantId,
        /// The bytes.
        bytes: &'a [u8],
    },
    /// A local encoded transform started sending on `context`.
    LocalStreamStarted(StreamContext),
    /// A local transform stopped.
    LocalStreamStopped(StreamContext),
    /// The frame layer reports that a local stream's key nears its usage limit
    /// (`Encryptor::needs_rotation`): the session asks for a rekey.
    UsageLimitNear(StreamContext),
    /// Time passed (call at [`Session::next_timeout`]).
    Tick,
}

/// Where a [`Transmit`] goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// One member, by participant id.
    Member(ParticipantId),
    /// Every other member of the room (one relay message, fanned out by the relay).
    AllMembers,
}

/// An opaque message for the relay to forward.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Recipient(s).
    pub to: Destination,
    /// The bytes.
    pub payload: Vec<u8>,
}

/// Why a rekey is requested.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RekeyReason {
    /// The committer's rekey timer.
    Timer,
    /// A local stream nears its key's usage limit.
    UsageLimit,
}

/// A change for the frame layer (hush-frame): exactly one key per KID.
#[derive(Debug)]
#[non_exhaustive]
pub enum KeyUpdate {
    /// Add a decryption key (`Decryptor::add_key`).
    InstallReceive {
        /// The KID.
        kid: Kid,
        /// Its base key.
        key: FrameKey,
    },
    /// Remove a decryption key (`Decryptor::remove_key`).
    RetireReceive {
        /// The KID.
        kid: Kid,
    },
    /// Encrypt the local stream `context` with this key from now on (`Encryptor::set_key`).
    SetSend {
        /// The local stream.
        context: StreamContext,
        /// The KID.
        kid: Kid,
        /// Its base key.
        key: FrameKey,
    },
    /// Stop encrypting (this member was removed): drop the encryptor's key.
    StopSend {
        /// The local stream.
        context: StreamContext,
    },
}

/// Something the application may want to show or act on.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Receive keys for epoch `epoch` are installed.
    EpochInstalled {
        /// The epoch number.
        epoch: u64,
    },
    /// Local streams now send on epoch `epoch`.
    Switched {
        /// The epoch number.
        epoch: u64,
    },
    /// A new key arrived from the committer: ask the publishers for a keyframe.
    KeyframeWanted,
    /// The safety code changed (membership changed).
    SafetyCodeChanged(SafetyCode),
    /// A join (or snapshot entry) was refused; the participant is not treated as a member.
    MemberRefused {
        /// Who.
        participant: ParticipantId,
        /// Why.
        reason: MembershipError,
    },
    /// This member was removed (or left); every key is retired.
    Removed,
}

/// One output of the session.
#[derive(Debug)]
#[non_exhaustive]
pub enum Output {
    /// Send this through the relay.
    Transmit(Transmit),
    /// Ask the relay to put a [`Change::Rekey`] event in the room log.
    RequestRekey(RekeyReason),
    /// A frame-layer key change.
    Key(KeyUpdate),
    /// An application event.
    Event(Event),
}

const MAX_QUEUED_EVENTS: usize = 4096;
const MAX_EARLY_ENVELOPES: usize = 32;
const MAX_EARLY_ACKS: usize = 4096;
/// Key messages for epochs further ahead than this (past the newest relay event received) are
/// refused, not buffered: a member cannot park envelopes for epoch 2^63 and keep them forever.
pub const EARLY_EPOCH_WINDOW: u64 = 64;
/// Shared-secret mode ratchets `E_0` once per relay event up to the join sequence; a snapshot
/// whose sequence number is larger than this is refused ([`MembershipError::SequenceTooLarge`])
/// instead of hanging the client in the ratchet loop.
pub const MAX_SHARED_SECRET_SEQ: u64 = 1 << 16;
const REKEY_RETRY: Duration = Duration::from_secs(30);

struct EpochState {
    secret: EpochSecret,
    kids: Vec<Kid>,
    retire_at: Option<Instant>,
}

#[derive(Clone, Copy)]
struct Wait {
    epoch: u64,
    committer: SenderIndex,
}

/// A member's key state for one room. See the crate docs for the run loop.
pub struct Session<R> {
    cfg: Config,
    rng: R,
    identity: IdentityKeyPair,
    participant: ParticipantId,
    me: Option<SenderIndex>,
    removed: bool,
    /// Current members (this one included), by join sequence: the first is the committer.
    members: BTreeMap<u64, Member>,
    seen_indexes: BTreeSet<SenderIndex>,
    applied_seq: u64,
    events: BTreeMap<u64, MembershipEvent>,
    epochs: BTreeMap<u64, EpochState>,
    /// The newest epoch whose secret this member holds and can ratchet from.
    head: Option<u64>,
    wait: Option<Wait>,
    sending: Option<u64>,
    /// Per installed epoch not yet sent on: when to switch to it without a notice.
    switch_deadlines: BTreeMap<u64, Instant>,
    /// Committer: the ack rounds in progress, by epoch.
    collecting: BTreeMap<u64, BTreeSet<SenderIndex>>,
    /// The sending epoch when a usage-limit rekey was last asked for.
    usage_rekey_for: Option<u64>,
    early_envelopes: Vec<(u64, Vec<u8>)>,
    early_acks: Vec<Vec<u8>>,
    early_switch: Option<(u64, Vec<u8>)>,
    last_envelope_epoch: Option<u64>,
    local_streams: BTreeSet<StreamContext>,
    membership_dirty: bool,
    safety: Option<SafetyCode>,
    last_fresh_at: Instant,
    rekey_requested_at: Option<Instant>,
    outputs: VecDeque<Output>,
}

impl<R> core::fmt::Debug for Session<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("me", &self.me)
            .field("members", &self.members.len())
            .field("applied_seq", &self.applied_seq)
            .field("head", &self.head)
            .field("sending", &self.sending)
            .finish_non_exhaustive()
    }
}

impl<R: CryptoRng> Session<R> {
    /// A session for `participant` with `identity`; it starts when [`Input::Joined`] arrives.
    pub fn new(cfg: Config, identity: IdentityKeyPair, participant: ParticipantId, rng: R) -> Self {
        Self {
            cfg,
            rng,
            identity,
            participant,
            me: None,
            removed: false,
            members: BTreeMap::new(),
            seen_indexes: BTreeSet::new(),
            applied_seq: 0,
            events: BTreeMap::new(),
            epochs: BTreeMap::new(),
            head: None,
            wait: None,
            sending: None,
            switch_deadlines: BTreeMap::new(),
            collecting: BTreeMap::new(),
            usage_rekey_for: None,
            early_envelopes: Vec::new(),
            early_acks: Vec::new(),
            early_switch: None,
            last_envelope_epoch: None,
            local_streams: BTreeSet::new(),
            membership_dirty: false,
            safety: None,
            last_fresh_at: Instant::default(),
            rekey_requested_at: None,
            outputs: VecDeque::new(),
        }
    }

    /// Feeds one input at time `now`. An error refuses that input only; the session stays
    /// usable (except after [`UsageError::Removed`]).
    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) -> Result<(), Error> {
        if self.removed {
            return Err(UsageError::Removed.into());
        }
        let r = match input {
            Input::Joined { seq, members } => self.on_joined(now, seq, members),
            Input::Membership(ev) => self.on_event(now, ev),
            Input::Message(bytes) => self.on_message(now, bytes),
            Input::MessageFrom { from, bytes } => {
                self.check_claimed_sender(from, bytes)?;
                self.on_message(now, bytes)
            }
            Input::LocalStreamStarted(ctx) => {
                self.require_joined()?;
                if self.local_streams.insert(ctx)
                    && let Some(e) = self.sending
                {
                    self.emit_send_key(ctx, e);
                }
                Ok(())
            }
            Input::LocalStreamStopped(ctx) => {
                self.local_streams.remove(&ctx);
                Ok(())
            }
            Input::UsageLimitNear(_) => {
                self.require_joined()?;
                // Once per sending epoch: the next epoch brings fresh keys for every stream.
                if self.usage_rekey_for != self.sending || self.sending.is_none() {
                    self.usage_rekey_for = self.sending;
                    self.rekey_requested_at = None;
                    self.request_rekey(now, RekeyReason::UsageLimit);
                }
                Ok(())
            }
            Input::Tick => {
                self.on_tick(now);
                Ok(())
            }
        };
        // Time-driven work also runs on every input, so a late Tick never loses a deadline.
        if !self.removed && self.me.is_some() {
            self.on_tick(now);
        }
        r
    }

    /// The next output, or `None` when there is nothing to do until the next input.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When to feed [`Input::Tick`] next, if any timer runs.
    pub fn next_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = self.switch_deadlines.values().min().copied();
        let mut min = |x: Instant| t = Some(t.map_or(x, |y| y.min(x)));
        for st in self.epochs.values() {
            if let Some(r) = st.retire_at {
                min(r);
            }
        }
        if let Some(r) = self.rekey_due() {
            min(r);
        }
        t
    }

    /// The safety code to show, once known.
    pub fn safety_code(&self) -> Option<SafetyCode> {
        self.safety
    }

    /// The epoch local streams send on.
    pub fn sending_epoch(&self) -> Option<u64> {
        self.sending
    }

    /// The newest epoch installed.
    pub fn latest_epoch(&self) -> Option<u64> {
        self.epochs.keys().next_back().copied()
    }

    /// This member's sender index, once joined.
    pub fn sender_index(&self) -> Option<SenderIndex> {
        self.me
    }

    /// True when this member is the committer (the earliest joined).
    pub fn is_committer(&self) -> bool {
        self.me.is_some() && self.committer().map(|m| m.sender_index) == self.me
    }

    /// The current members (this one included), in join order.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// The sequence number of the last relay event applied.
    pub fn applied_seq(&self) -> u64 {
        self.applied_seq
    }

    // ---------------------------------------------------------------- membership

    fn require_joined(&self) -> Result<SenderIndex, Error> {
        self.me.ok_or(Error::Usage(UsageError::NotJoined))
    }

    fn committer(&self) -> Option<&Member> {
        self.members.values().next()
    }

    fn member_by_index(&self, idx: SenderIndex) -> Option<&Member> {
        self.members.values().find(|m| m.sender_index == idx)
    }

    fn validate(&self, now: Instant, m: &Member) -> Result<(), MembershipError> {
        if self
            .members
            .values()
            .any(|x| x.participant == m.participant)
        {
            return Err(MembershipError::DuplicateParticipant);
        }
        if self.seen_indexes.contains(&m.sender_index) {
            return Err(MembershipError::SenderIndexReused);
        }
        if self.members.contains_key(&m.join_seq) {
            return Err(MembershipError::BadJoinSequence);
        }
        if !self.identity.agrees_with(&m.identity) {
            return Err(MembershipError::BadIdentityKey);
        }
        if let Some(vk) = &self.cfg.attestation_key {
            let a = m
                .attestation
                .as_ref()
                .ok_or(MembershipError::MissingAttestation)?;
            a.verify(vk, &self.cfg.room, &m.participant, &m.identity, now)?;
        }
        Ok(())
    }

    fn admit(&mut self, now: Instant, m: Member) -> bool {
        match self.validate(now, &m) {
            Ok(()) => {
                self.seen_indexes.insert(m.sender_index);
                self.members.insert(m.join_seq, m);
                self.membership_dirty = true;
                true
            }
            Err(reason) => {
                self.event(Event::MemberRefused {
                    participant: m.participant,
                    reason,
                });
                false
            }
        }
    }

    fn on_joined(&mut self, now: Instant, seq: u64, members: Vec<Member>) -> Result<(), Error> {
        if self.me.is_some() {
            return Err(UsageError::AlreadyJoined.into());
        }
        if matches!(self.cfg.mode, KeyMode::SharedSecret(_)) && seq > MAX_SHARED_SECRET_SEQ {
            // `E_seq = ratchet^seq(E_0)`: one HMAC per step, and `seq` is the relay's.
            return Err(MembershipError::SequenceTooLarge.into());
        }
        let own = members
            .iter()
            .find(|m| m.participant == self.participant && m.identity == *self.identity.public())
            .ok_or(MembershipError::NotInSnapshot)?;
        if own.join_seq != seq {
            return Err(MembershipError::BadJoinSequence.into());
        }
        let me = own.sender_index;
        let my_identity = *self.identity.public();
        // Our index is taken before any other entry is checked: a snapshot that lists someone
        // else with our sender index ahead of our own entry must not get both admitted (found
        // by fuzz/fuzz_targets/keys_snapshot.rs).
        self.seen_indexes.insert(me);
        for m in members {
            if m.participant == self.participant {
                // Only our own exact entry is taken unchecked. Any other entry under our id
                // (a relay inventing a second "us" with its own key and an earlier join, to
                // become the committer) is refused like any duplicate.
                let exact = m.join_seq == seq
                    && m.identity == my_identity
                    && !self.members.contains_key(&seq);
                if exact {
                    self.seen_indexes.insert(m.sender_index);
                    self.members.insert(m.join_seq, m);
                } else {
                    self.event(Event::MemberRefused {
                        participant: m.participant,
                        reason: MembershipError::DuplicateParticipant,
                    });
                }
            } else if m.join_seq >= seq {
                self.event(Event::MemberRefused {
                    participant: m.participant,
                    reason: MembershipError::BadJoinSequence,
                });
            } else {
                self.admit(now, m);
            }
        }
        self.me = Some(me);
        self.applied_seq = seq;
        self.membership_dirty = true;
        self.last_fresh_at = now;
        self.events.retain(|s, _| *s > seq);
        match &self.cfg.mode {
            KeyMode::SharedSecret(s) => {
                let mut e = s.epoch_zero(self.cfg.room.as_bytes(), self.cfg.room_instance);
                for _ in 0..seq {
                    e = e.ratchet();
                }
                self.install(now, seq, e, false);
            }
            KeyMode::Exchange => {
                if self.is_committer() {
                    self.fresh_epoch(now, seq, Reason::Join);
                } else if let Some(c) = self.committer().map(|c| c.sender_index) {
                    self.wait = Some(Wait {
                        epoch: seq,
                        committer: c,
                    });
                    self.try_early_envelopes(now);
                }
            }
        }
        self.prune_early();
        self.process_queue(now);
        Ok(())
    }

    fn on_event(&mut self, now: Instant, ev: MembershipEvent) -> Result<(), Error> {
        if ev.seq <= self.applied_seq || self.events.contains_key(&ev.seq) {
            return Err(MembershipError::StaleEvent.into());
        }
        if self.events.len() >= MAX_QUEUED_EVENTS {
            return Err(MembershipError::EventBufferFull.into());
        }
        self.events.insert(ev.seq, ev);
        if self.me.is_some() {
            self.process_queue(now);
        }
        Ok(())
    }

    /// Applies queued events in order while no envelope is awaited.
    fn process_queue(&mut self, now: Instant) {
        loop {
            if self.removed {
                return;
            }
            if let Some(w) = self.wait {
                // The committer we wait for leaves later in the log: it may never answer. Give
                // up on that epoch; the next committer answers the leave with a fresh one.
                let pid = self
                    .member_by_index(w.committer)
                    .map(|m| m.participant.clone());
                let leaves = self.events.values().any(|ev| match (&ev.change, &pid) {
                    (Change::Leave(p) | Change::Remove(p), Some(c)) => p == c,
                    (_, None) => true,
                    _ => false,
                });
                if !leaves {
                    return;
                }
                self.wait = None;
                self.head = None;
            }
            let next = self.applied_seq + 1;
            let Some(ev) = self.events.remove(&next) else {
                return;
            };
            self.apply(now, ev);
        }
    }

    fn apply(&mut self, now: Instant, ev: MembershipEvent) {
        self.applied_seq = ev.seq;
        let seq = ev.seq;
        match ev.change {
            Change::Join(m) => {
                if m.join_seq != seq {
                    self.event(Event::MemberRefused {
                        participant: m.participant,
                        reason: MembershipError::BadJoinSequence,
                    });
                    return;
                }
                let idx = m.sender_index;
                if self.admit(now, m) {
                    self.new_epoch(now, seq, Reason::Join, Some(idx));
                }
            }
            Change::Leave(pid) | Change::Remove(pid) if pid == self.participant => {
                self.on_removed()
            }
            Change::Leave(pid) => self.on_leave(now, seq, &pid, Reason::Leave),
            Change::Remove(pid) => self.on_leave(now, seq, &pid, Reason::Removal),
            Change::Rekey => self.new_epoch(now, seq, Reason::Rekey, None),
            Change::Refused(_) => {}
        }
        self.early_envelopes
            .retain(|(e, _)| *e > seq || self.wait.is_some_and(|w| w.epoch == *e));
    }

    fn on_leave(&mut self, now: Instant, seq: u64, pid: &ParticipantId, reason: Reason) {
        let Some(js) = self
            .members
            .iter()
            .find(|(_, m)| m.participant == *pid)
            .map(|(k, _)| *k)
        else {
            // Not a member (a refused ghost, say): nothing changes.
            return;
        };
        let Some(gone) = self.members.remove(&js) else {
            return;
        };
        self.membership_dirty = true;
        // Its keys stop working at once, in every epoch still held.
        let idx = gone.sender_index;
        let mut retired = Vec::new();
        for st in self.epochs.values_mut() {
            st.kids.retain(|k| {
                let keep = Kid::unpack(k.get()).is_none_or(|(_, s, _)| s != idx);
                if !keep {
                    retired.push(*k);
                }
                keep
            });
        }
        for kid in retired {
            self.key(KeyUpdate::RetireReceive { kid });
        }
        for missing in self.collecting.values_mut() {
            missing.remove(&idx);
        }
        self.new_epoch(now, seq, reason, None);
        self.maybe_complete_collect(now);
    }

    fn on_removed(&mut self) {
        self.removed = true;
        let epochs = core::mem::take(&mut self.epochs);
        for st in epochs.into_values() {
            for kid in st.kids {
                self.key(KeyUpdate::RetireReceive { kid });
            }
        }
        let streams: Vec<_> = self.local_streams.iter().copied().collect();
        for context in streams {
            self.key(KeyUpdate::StopSend { context });
        }
        self.head = None;
        self.sending = None;
        self.wait = None;
        self.collecting.clear();
        self.switch_deadlines.clear();
        self.event(Event::Removed);
    }

    // ---------------------------------------------------------------- epochs

    /// The room moves to epoch `epoch` (the sequence number of the event that caused it).
    fn new_epoch(
        &mut self,
        now: Instant,
        epoch: u64,
        reason: Reason,
        newcomer: Option<SenderIndex>,
    ) {
        if let KeyMode::SharedSecret(_) = self.cfg.mode {
            if let Some(h) = self.head
                && let Some(st) = self.epochs.get(&h)
            {
                let mut e = st.secret.ratchet();
                // Events are applied one by one, so this gap is the count of events since the
                // head that started no epoch (refused joins): one ratchet per event received.
                for _ in h + 1..epoch {
                    e = e.ratchet();
                }
                self.install(now, epoch, e, false);
            }
            return;
        }
        let head_secret = self
            .head
            .and_then(|h| self.epochs.get(&h))
            .map(|st| st.secret.ratchet());
        match (reason, head_secret) {
            (Reason::Join, Some(next)) => {
                let committer = self.is_committer();
                if committer
                    && let Some(m) = newcomer.and_then(|i| self.member_by_index(i)).cloned()
                {
                    self.seal_to(epoch, reason, &m, &next);
                }
                self.install(now, epoch, next, false);
            }
            _ if self.is_committer() => self.fresh_epoch(now, epoch, reason),
            (Reason::Join, None) => {}
            _ => {
                if let Some(c) = self.committer().map(|c| c.sender_index) {
                    self.wait = Some(Wait {
                        epoch,
                        committer: c,
                    });
                    self.try_early_envelopes(now);
                }
            }
        }
    }

    /// Committer: draws a fresh secret and sends it to every other member.
    fn fresh_epoch(&mut self, now: Instant, epoch: u64, reason: Reason) {
        let secret = EpochSecret::random(&mut self.rng);
        let others: Vec<Member> = self
            .members
            .values()
            .filter(|m| Some(m.sender_index) != self.me)
            .cloned()
            .collect();
        for m in &others {
            self.seal_to(epoch, reason, m, &secret);
        }
        self.last_fresh_at = now;
        self.rekey_requested_at = None;
        self.install(now, epoch, secret, false);
    }

    fn seal_to(&mut self, epoch: u64, reason: Reason, to: &Member, secret: &EpochSecret) {
        let Some(me) = self.me else { return };
        let header = EnvelopeHeader {
            epoch,
            sender: me,
            recipient: to.sender_index,
            reason,
        };
        match envelope::seal(
            &mut self.rng,
            self.cfg.room.as_bytes(),
            &header,
            &self.identity,
            &to.identity,
            secret,
        ) {
            Ok(payload) => self.transmit(Destination::Member(to.participant.clone()), payload),
            // Keys are checked when members are admitted; an unusable one gets no envelope.
            Err(_) => self.event(Event::MemberRefused {
                participant: to.participant.clone(),
                reason: MembershipError::BadIdentityKey,
            }),
        }
    }

    /// Installs receive keys for `epoch` and starts the ack / switch round.
    fn install(&mut self, now: Instant, epoch: u64, secret: EpochSecret, from_envelope: bool) {
        let Some(me) = self.me else { return };
        if self.epochs.contains_key(&epoch) {
            return;
        }
        // KID wrap: an older epoch with the same low bits gives way first (one key per KID).
        let mask = (1u64 << EPOCH_BITS) - 1;
        let clash: Vec<u64> = self
            .epochs
            .keys()
            .copied()
            .filter(|e| e & mask == epoch & mask)
            .collect();
        for e in clash {
            if let Some(st) = self.epochs.remove(&e) {
                for kid in st.kids {
                    self.key(KeyUpdate::RetireReceive { kid });
                }
            }
        }
        let mut kids = Vec::new();
        let senders: Vec<SenderIndex> = self
            .members
            .values()
            .map(|m| m.sender_index)
            .filter(|s| *s != me)
            .collect();
        for s in senders {
            for c in 0..self.cfg.contexts {
                let ctx = StreamContext(c);
                let kid = Kid::new(ctx, s, epoch);
                let key = secret.base_key(s, ctx);
                kids.push(kid);
                self.key(KeyUpdate::InstallReceive { kid, key });
            }
        }
        self.epochs.insert(
            epoch,
            EpochState {
                secret,
                kids,
                retire_at: None,
            },
        );
        self.head = Some(epoch);
        self.event(Event::EpochInstalled { epoch });
        if from_envelope {
            self.event(Event::KeyframeWanted);
        }
        if self.membership_dirty {
            self.membership_dirty = false;
            if let Some(st) = self.epochs.get(&epoch) {
                let code = SafetyCode::compute(&self.cfg.room, self.members.values(), &st.secret);
                if self.safety != Some(code) {
                    self.safety = Some(code);
                    self.event(Event::SafetyCodeChanged(code));
                }
            }
        }
        self.switch_deadlines
            .insert(epoch, now.saturating_add(self.cfg.switch_timeout));
        if self.is_committer() {
            let missing = self
                .members
                .values()
                .map(|m| m.sender_index)
                .filter(|s| *s != me)
                .collect();
            self.collecting.insert(epoch, missing);
            let early = core::mem::take(&mut self.early_acks);
            for bytes in early {
                // Early acks for other epochs are dropped; errors here are the sender's.
                let _ = self.on_message(now, &bytes);
            }
            self.maybe_complete_collect(now);
        } else if let (Some(c), Some(st)) = (self.committer().cloned(), self.epochs.get(&epoch)) {
            let ack = envelope::ack(self.cfg.room.as_bytes(), epoch, me, &st.secret);
            self.transmit(Destination::Member(c.participant), ack);
        }
        if let Some((e, bytes)) = self.early_switch.take() {
            if e <= epoch {
                let _ = self.on_message(now, &bytes);
            } else {
                self.early_switch = Some((e, bytes));
            }
        }
    }

    fn maybe_complete_collect(&mut self, now: Instant) {
        // The newest epoch whose round is complete; older rounds are moot once it switches.
        let Some(epoch) = self
            .collecting
            .iter()
            .rev()
            .find(|(_, m)| m.is_empty())
            .map(|(e, _)| *e)
        else {
            return;
        };
        self.collecting.retain(|e, _| *e > epoch);
        if let (Some(me), Some(st)) = (self.me, self.epochs.get(&epoch))
            && self.members.len() > 1
        {
            let sw = envelope::switch(self.cfg.room.as_bytes(), epoch, me, &st.secret);
            self.transmit(Destination::AllMembers, sw);
        }
        self.switch_to(now, epoch);
    }

    fn switch_to(&mut self, now: Instant, epoch: u64) {
        if self.sending.is_some_and(|s| s >= epoch) || !self.epochs.contains_key(&epoch) {
            return;
        }
        self.sending = Some(epoch);
        let streams: Vec<_> = self.local_streams.iter().copied().collect();
        for ctx in streams {
            self.emit_send_key(ctx, epoch);
        }
        let retire_at = now.saturating_add(self.cfg.grace);
        for (e, st) in self.epochs.iter_mut() {
            if *e < epoch && st.retire_at.is_none() {
                st.retire_at = Some(retire_at);
            }
        }
        self.switch_deadlines.retain(|e, _| *e > epoch);
        self.collecting.retain(|e, _| *e > epoch);
        self.event(Event::Switched { epoch });
    }

    fn emit_send_key(&mut self, ctx: StreamContext, epoch: u64) {
        let (Some(me), Some(st)) = (self.me, self.epochs.get(&epoch)) else {
            return;
        };
        let key = st.secret.base_key(me, ctx);
        self.key(KeyUpdate::SetSend {
            context: ctx,
            kid: Kid::new(ctx, me, epoch),
            key,
        });
    }

    // ---------------------------------------------------------------- messages

    /// Refuses a message whose claimed sender index is not that of `from`, when `from` is a
    /// current member (messages from members not applied yet are checked when opened).
    fn check_claimed_sender(&self, from: &ParticipantId, bytes: &[u8]) -> Result<(), Error> {
        let claimed = match Message::parse(bytes)? {
            Message::Envelope { header, .. } => header.sender,
            Message::Ack { sender, .. } | Message::Switch { sender, .. } => sender,
        };
        match self.members.values().find(|m| m.participant == *from) {
            Some(m) if m.sender_index != claimed => Err(EnvelopeError::Forged.into()),
            _ => Ok(()),
        }
    }

    fn on_message(&mut self, now: Instant, bytes: &[u8]) -> Result<(), Error> {
        let msg = Message::parse(bytes)?;
        match msg {
            Message::Envelope { header, bytes } => self.on_envelope(now, header, bytes),
            Message::Ack {
                epoch,
                sender,
                bytes,
            } => self.on_ack(now, epoch, sender, bytes),
            Message::Switch {
                epoch,
                sender,
                bytes,
            } => self.on_switch(now, epoch, sender, bytes),
        }
    }

    /// The furthest epoch a key message may name and still be kept for later: the newest relay
    /// event received (applied or queued) plus [`EARLY_EPOCH_WINDOW`]. `None` before the
    /// snapshot (nothing is known yet; the buffer's size bounds what is kept).
    fn early_bound(&self) -> Option<u64> {
        self.me?;
        let newest = self
            .events
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
            .max(self.applied_seq);
        Some(newest.saturating_add(EARLY_EPOCH_WINDOW))
    }

    /// Keeps an envelope for an epoch whose event has not been applied yet. Bounded twice: by
    /// epoch ([`Session::early_bound`]) and by count; when full, the entry for the furthest
    /// epoch gives way (the oldest of those first), so junk for far epochs cannot push out an
    /// envelope for the next one, and a flood for the next epoch is outlived by the envelope
    /// that arrives after it.
    fn buffer_envelope(&mut self, epoch: u64, bytes: &[u8]) -> Result<(), Error> {
        if self.early_bound().is_some_and(|b| epoch > b) {
            return Err(EnvelopeError::UnexpectedEpoch.into());
        }
        if self.early_envelopes.iter().any(|(_, b)| b == bytes) {
            return Err(EnvelopeError::Replayed.into());
        }
        if self.early_envelopes.len() >= MAX_EARLY_ENVELOPES {
            let far = self.early_envelopes.iter().map(|(e, _)| *e).max();
            match far {
                Some(f) if epoch <= f => {
                    if let Some(i) = self.early_envelopes.iter().position(|(e, _)| *e == f) {
                        self.early_envelopes.remove(i);
                    }
                }
                _ => return Err(EnvelopeError::BufferFull.into()),
            }
        }
        self.early_envelopes.push((epoch, bytes.to_vec()));
        Ok(())
    }

    /// Drops buffered key messages that the bound refuses now (after the snapshot).
    fn prune_early(&mut self) {
        let Some(bound) = self.early_bound() else {
            return;
        };
        let floor = self.applied_seq;
        self.early_envelopes.retain(|(e, _)| {
            *e <= bound && (*e > floor || self.wait.is_some_and(|w| w.epoch == *e))
        });
        self.early_acks
            .retain(|b| control_epoch(b).is_some_and(|e| e <= bound));
        if self.early_switch.as_ref().is_some_and(|(e, _)| *e > bound) {
            self.early_switch = None;
        }
    }

    fn on_envelope(&mut self, now: Instant, h: EnvelopeHeader, bytes: &[u8]) -> Result<(), Error> {
        if let KeyMode::SharedSecret(_) = self.cfg.mode {
            return Err(EnvelopeError::UnexpectedEpoch.into());
        }
        let Some(me) = self.me else {
            // Before the snapshot: keep it for when we know who we are.
            return self.buffer_envelope(h.epoch, bytes);
        };
        if h.recipient != me {
            return Err(EnvelopeError::Misaddressed.into());
        }
        match self.last_envelope_epoch {
            Some(l) if h.epoch == l => return Err(EnvelopeError::Replayed.into()),
            Some(l) if h.epoch < l => return Err(EnvelopeError::Stale.into()),
            _ => {}
        }
        if h.epoch > self.applied_seq {
            return self.buffer_envelope(h.epoch, bytes);
        }
        let w = match self.wait {
            Some(w) if w.epoch == h.epoch => w,
            Some(w) if h.epoch < w.epoch => return Err(EnvelopeError::Stale.into()),
            _ if self.head.is_some_and(|hd| h.epoch <= hd) => {
                return Err(EnvelopeError::Stale.into());
            }
            _ => return Err(EnvelopeError::UnexpectedEpoch.into()),
        };
        let sender = self
            .member_by_index(h.sender)
            .ok_or(EnvelopeError::UnknownSender)?;
        if h.sender != w.committer {
            return Err(EnvelopeError::NotCommitter.into());
        }
        let secret = envelope::open(
            self.cfg.room.as_bytes(),
            bytes,
            &self.identity,
            &sender.identity,
        )?;
        self.wait = None;
        self.last_envelope_epoch = Some(h.epoch);
        if h.reason != Reason::Join {
            self.last_fresh_at = now;
            self.rekey_requested_at = None;
        }
        self.early_envelopes.retain(|(e, _)| *e > h.epoch);
        self.install(now, h.epoch, secret, true);
        self.process_queue(now);
        Ok(())
    }

    fn try_early_envelopes(&mut self, now: Instant) {
        let Some(w) = self.wait else { return };
        let mine: Vec<Vec<u8>> = self
            .early_envelopes
            .iter()
            .filter(|(e, _)| *e == w.epoch)
            .map(|(_, b)| b.clone())
            .collect();
        self.early_envelopes.retain(|(e, _)| *e != w.epoch);
        for b in mine {
            // A bad one (forged, misaddressed) is dropped; a good one ends the wait.
            let _ = self.on_message(now, &b);
            if self.wait.is_none() {
                return;
            }
        }
    }

    fn on_ack(
        &mut self,
        now: Instant,
        epoch: u64,
        sender: SenderIndex,
        bytes: &[u8],
    ) -> Result<(), Error> {
        if self.me.is_none() || epoch > self.applied_seq {
            if self.early_bound().is_some_and(|b| epoch > b) {
                return Err(EnvelopeError::UnexpectedEpoch.into());
            }
            if self.early_acks.len() >= MAX_EARLY_ACKS {
                return Err(EnvelopeError::BufferFull.into());
            }
            self.early_acks.push(bytes.to_vec());
            return Ok(());
        }
        if self.member_by_index(sender).is_none() {
            return Err(EnvelopeError::UnknownSender.into());
        }
        if !self.collecting.contains_key(&epoch) {
            return Err(EnvelopeError::Stale.into());
        }
        let st = self.epochs.get(&epoch).ok_or(EnvelopeError::Stale)?;
        envelope::verify_control(self.cfg.room.as_bytes(), bytes, &st.secret)?;
        let fresh = self
            .collecting
            .get_mut(&epoch)
            .is_some_and(|m| m.remove(&sender));
        if !fresh {
            return Err(EnvelopeError::Replayed.into());
        }
        self.maybe_complete_collect(now);
        Ok(())
    }

    fn on_switch(
        &mut self,
        now: Instant,
        epoch: u64,
        sender: SenderIndex,
        bytes: &[u8],
    ) -> Result<(), Error> {
        let Some(st) = self.epochs.get(&epoch) else {
            if self.me.is_none()
                || epoch > self.applied_seq
                || self.wait.is_some_and(|w| w.epoch == epoch)
            {
                if self.early_bound().is_some_and(|b| epoch > b) {
                    return Err(EnvelopeError::UnexpectedEpoch.into());
                }
                if self.early_switch.as_ref().is_none_or(|(e, _)| *e < epoch) {
                    self.early_switch = Some((epoch, bytes.to_vec()));
                }
                return Ok(());
            }
            return Err(EnvelopeError::Stale.into());
        };
        if self.member_by_index(sender).is_none() {
            return Err(EnvelopeError::UnknownSender.into());
        }
        if self.committer().map(|c| c.sender_index) != Some(sender) {
            return Err(EnvelopeError::NotCommitter.into());
        }
        envelope::verify_control(self.cfg.room.as_bytes(), bytes, &st.secret)?;
        if self.sending.is_some_and(|s| s >= epoch) {
            return Err(EnvelopeError::Replayed.into());
        }
        self.switch_to(now, epoch);
        Ok(())
    }

    // ---------------------------------------------------------------- timers

    fn rekey_due(&self) -> Option<Instant> {
        if !matches!(self.cfg.mode, KeyMode::Exchange)
            || !self.is_committer()
            || self.members.len() < 2
        {
            return None;
        }
        let interval = self.cfg.rekey_interval?;
        let due = self.last_fresh_at.saturating_add(interval);
        Some(match self.rekey_requested_at {
            Some(r) => due.max(r.saturating_add(REKEY_RETRY)),
            None => due,
        })
    }

    fn request_rekey(&mut self, now: Instant, reason: RekeyReason) {
        if self
            .rekey_requested_at
            .is_some_and(|r| now < r.saturating_add(REKEY_RETRY))
        {
            return;
        }
        self.rekey_requested_at = Some(now);
        self.outputs.push_back(Output::RequestRekey(reason));
    }

    fn on_tick(&mut self, now: Instant) {
        // The newest epoch whose deadline passed (older ones are moot once it switches).
        if let Some(e) = self
            .switch_deadlines
            .iter()
            .filter(|(_, d)| now >= **d)
            .map(|(e, _)| *e)
            .max()
        {
            self.switch_to(now, e);
        }
        let due: Vec<u64> = self
            .epochs
            .iter()
            .filter(|(_, st)| st.retire_at.is_some_and(|r| now >= r))
            .map(|(e, _)| *e)
            .collect();
        for e in due {
            if Some(e) == self.head || Some(e) == self.sending {
                continue;
            }
            if let Some(st) = self.epochs.remove(&e) {
                for kid in st.kids {
                    self.key(KeyUpdate::RetireReceive { kid });
                }
            }
        }
        if self.rekey_due().is_some_and(|d| now >= d) {
            self.request_rekey(now, RekeyReason::Timer);
        }
    }

    // ---------------------------------------------------------------- outputs

    fn transmit(&mut self, to: Destination, payload: Vec<u8>) {
        self.outputs
            .push_back(Output::Transmit(Transmit { to, payload }));
    }

    fn key(&mut self, k: KeyUpdate) {
        self.outputs.push_back(Output::Key(k));
    }

    fn event(&mut self, e: Event) {
        self.outputs.push_back(Output::Event(e));
    }
}

/// The epoch an ack or switch notice names, if it parses.
fn control_epoch(bytes: &[u8]) -> Option<u64> {
    match Message::parse(bytes).ok()? {
        Message::Ack { epoch, .. } | Message::Switch { epoch, .. } => Some(epoch),
        Message::Envelope { .. } => None,
    }
}
