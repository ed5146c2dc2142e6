//! [`Participant`]: the relay's messages in, the key session's decisions out.

use std::collections::VecDeque;

use hush_keys::{
    Change, Config, Destination, Error, IdentityKeyPair, IdentityPublicKey, Input as KeyInput,
    Instant, KeyMode, Member, MembershipEvent, Output as KeyOutput, RekeyReason, Role, Session,
    SharedSecret, StreamContext, ed25519_dalek::VerifyingKey, rand_core::CryptoRng,
};
use hush_proto::{
    ClientMessage, E2eeBroadcast, E2eeTo, Joined, LeaveReason, OpaqueBytes, ParticipantJoined,
    ParticipantLeft, RekeyRequest, ServerMessage,
};

use crate::convert::{member, participant_id, proto_id, room_id, sender_index};
use crate::output::{Event, Output};
use crate::refusal::Refusal;

/// Most events kept between two polls; past it the oldest *events* are dropped, never key
/// updates or relay messages (a participant polled after every input never gets near it).
pub const MAX_PENDING_EVENTS: usize = 1024;

/// Who may be a member of the key exchange.
#[derive(Clone, Debug)]
pub enum Membership {
    /// Only participants whose identity key the app's backend vouched for with this Ed25519
    /// key ([`hush_keys::Attestation`]): a relay that invents a member or swaps a key gets no
    /// envelope and no frame key. The product default.
    VouchedBy(VerifyingKey),
    /// Anyone the relay announces. The relay can then add a member of its own (a "ghost")
    /// that every member seals epochs to and that every safety code includes: only for tests
    /// and apps that compare safety codes out of band for every change.
    Unauthenticated,
}

/// How this participant admits members and gets its epoch secrets.
#[derive(Debug)]
pub struct ParticipantConfig {
    /// Who may be a member.
    pub membership: Membership,
    /// `None`: the key exchange (identity keys, HPKE envelopes). `Some`: shared-secret mode,
    /// where the app distributes one high-entropy room secret itself.
    pub shared_secret: Option<SharedSecret>,
}

impl ParticipantConfig {
    /// The key exchange, admitting only members vouched for by `backend` (the default path).
    pub fn vouched_by(backend: VerifyingKey) -> Self {
        Self {
            membership: Membership::VouchedBy(backend),
            shared_secret: None,
        }
    }

    /// The key exchange, admitting whoever the relay announces: see
    /// [`Membership::Unauthenticated`].
    pub fn unauthenticated() -> Self {
        Self {
            membership: Membership::Unauthenticated,
            shared_secret: None,
        }
    }

    /// Shared-secret mode; refuses secrets shorter than [`hush_keys::MIN_SHARED_SECRET_LEN`].
    pub fn with_shared_secret(mut self, secret: &[u8]) -> Result<Self, Refusal> {
        let s = SharedSecret::new(secret).map_err(|e| Refusal::Keys(Error::Input(e)))?;
        self.shared_secret = Some(s);
        Ok(self)
    }
}

/// One input.
#[derive(Debug)]
#[non_exhaustive]
pub enum Input<'a> {
    /// A message from the relay, decoded.
    Relay(&'a ServerMessage),
    /// A local send transform started on this stream context (it gets its key at once if one
    /// exists).
    LocalStreamStarted(StreamContext),
    /// A local send transform stopped.
    LocalStreamStopped(StreamContext),
    /// A local stream's key nears its usage limit: ask the relay for a rekey.
    UsageLimitNear(StreamContext),
    /// Time passed: run the timers ([`Participant::next_timeout`] says when).
    Tick,
}

/// Most key messages kept from before the relay's `joined` (a relay that reorders can deliver
/// an envelope first); past it the newest are refused.
pub const MAX_EARLY_MESSAGES: usize = 64;

/// What is held before the relay's `joined`.
struct Pending<R> {
    identity: IdentityKeyPair,
    rng: R,
    shared: Option<SharedSecret>,
    membership: Membership,
    /// Our own role: a participant, or a recorder replaying its recording.
    role: Role,
    /// Key messages that came before `joined`: (relay-named sender, bytes), fed after it.
    early: Vec<(hush_keys::ParticipantId, Vec<u8>)>,
    /// The room this participant set out to join ([`Participant::expect_room`]).
    room: Option<String>,
}

enum State<R> {
    /// Before `joined`: the room and our id are not known yet.
    Waiting(Box<Pending<R>>),
    /// Joined (or refused at join: the session then stays unjoined for good).
    Running(Box<Session<R>>),
    /// Only while moving from the first to the second.
    Gone,
}

/// One participant's key exchange, fed the relay's messages; see the crate docs.
pub struct Participant<R> {
    state: State<R>,
    identity: IdentityPublicKey,
    outputs: VecDeque<Output>,
    events: usize,
    /// Whether a recorder is a member of the key exchange (last reported).
    recorded: bool,
}

impl<R> core::fmt::Debug for Participant<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Participant")
            .field("joined", &matches!(self.state, State::Running(_)))
            .finish_non_exhaustive()
    }
}

impl<R: CryptoRng> Participant<R> {
    /// A participant with a fresh identity key pair drawn from `rng`, which it keeps for every
    /// later secret (fresh epoch secrets, HPKE ephemeral keys).
    pub fn new(config: ParticipantConfig, mut rng: R) -> Result<Self, Refusal> {
        let identity = IdentityKeyPair::generate(&mut rng);
        Ok(Self::with_identity(
            config,
            identity,
            Role::Participant,
            rng,
        ))
    }

    /// The room's recorder, replaying a recording offline with the recorder's private key
    /// (`hush-record decrypt`): fed what the relay stored for the recorder, it installs every
    /// epoch's receive keys the recorder was sealed, like a member that never speaks. What it
    /// would send (acks) is output as usual and meant to be dropped.
    pub fn recorder(config: ParticipantConfig, identity: IdentityKeyPair, rng: R) -> Self {
        Self::with_identity(config, identity, Role::Recorder, rng)
    }

    fn with_identity(
        config: ParticipantConfig,
        identity: IdentityKeyPair,
        role: Role,
        rng: R,
    ) -> Self {
        Self {
            identity: *identity.public(),
            state: State::Waiting(Box::new(Pending {
                identity,
                rng,
                shared: config.shared_secret,
                membership: config.membership,
                role,
                early: Vec::new(),
                room: None,
            })),
            outputs: VecDeque::new(),
            events: 0,
            recorded: false,
        }
    }

    /// The room this participant sets out to join (the one its token names): a `joined` for
    /// any other room is refused ([`Refusal::WrongRoom`]). Attestations bind a member to a
    /// room, but the room they are checked against is the one `joined` names, so without this
    /// a relay could answer with a room of its choosing whose members' attestations it holds.
    /// Only before `joined`.
    pub fn expect_room(&mut self, room: &str) -> Result<(), Refusal> {
        match &mut self.state {
            State::Waiting(p) => {
                p.room = Some(room.to_owned());
                Ok(())
            }
            _ => Err(Refusal::AlreadyJoined),
        }
    }

    /// The X25519 public key for `join.identity_key`.
    pub fn identity_key(&self) -> [u8; 32] {
        *self.identity.as_bytes()
    }

    /// The key session, once joined (read-only: epochs, members, safety code).
    pub fn session(&self) -> Option<&Session<R>> {
        match &self.state {
            State::Running(s) => Some(s),
            _ => None,
        }
    }

    /// The epoch local streams send on.
    pub fn sending_epoch(&self) -> Option<u64> {
        self.session()?.sending_epoch()
    }

    /// The newest epoch whose receive keys are installed.
    pub fn latest_epoch(&self) -> Option<u64> {
        self.session()?.latest_epoch()
    }

    /// The safety code, once known.
    pub fn safety_code(&self) -> Option<hush_keys::SafetyCode> {
        self.session()?.safety_code()
    }

    /// When to feed [`Input::Tick`] next, if a timer runs.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.session()?.next_timeout()
    }

    /// Feeds one input. A refused input changes nothing but what its refusal says (a refused
    /// join still consumes its place in the membership log); outputs produced on the way,
    /// refusal events included, are queued either way.
    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) -> Result<(), Refusal> {
        let r = match input {
            Input::Relay(msg) => self.on_relay(now, msg),
            Input::LocalStreamStarted(c) => self.keys(now, KeyInput::LocalStreamStarted(c)),
            Input::LocalStreamStopped(c) => self.keys(now, KeyInput::LocalStreamStopped(c)),
            Input::UsageLimitNear(c) => self.keys(now, KeyInput::UsageLimitNear(c)),
            Input::Tick => match self.state {
                State::Running(_) => self.keys(now, KeyInput::Tick),
                _ => Ok(()),
            },
        };
        self.collect();
        let recorded = self
            .session()
            .is_some_and(|s| s.members().any(|m| m.role == Role::Recorder));
        if recorded != self.recorded {
            self.recorded = recorded;
            self.event(Event::Recording(recorded));
        }
        r
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        let o = self.outputs.pop_front()?;
        if matches!(o, Output::Event(_)) {
            self.events -= 1;
        }
        Some(o)
    }

    fn on_relay(&mut self, now: Instant, msg: &ServerMessage) -> Result<(), Refusal> {
        match msg {
            ServerMessage::Joined(j) => self.on_joined(now, j),
            ServerMessage::ParticipantJoined(p) => self.on_participant_joined(now, p),
            ServerMessage::ParticipantLeft(l) => self.on_participant_left(now, l),
            ServerMessage::Rekey(r) => {
                // Who asked, as the relay names them; an id that does not parse asked nothing.
                let by = r.by.iter().filter_map(|p| participant_id(p).ok()).collect();
                self.membership(now, r.seq, Change::RekeyRequested(by))
            }
            ServerMessage::E2ee(e) => {
                let from = participant_id(&e.from)?;
                let bytes = e.payload.as_bytes();
                if let State::Waiting(p) = &mut self.state {
                    if p.early.len() >= MAX_EARLY_MESSAGES {
                        return Err(Refusal::Keys(Error::Envelope(
                            hush_keys::EnvelopeError::BufferFull,
                        )));
                    }
                    p.early.push((from, bytes.to_vec()));
                    return Ok(());
                }
                // Always with the relay-named sender: the session refuses a message whose
                // claimed sender index belongs to another member (`forged`).
                self.keys(now, KeyInput::MessageFrom { from: &from, bytes })
            }
            _ => Err(Refusal::NotAKeyEvent),
        }
    }

    fn on_joined(&mut self, now: Instant, j: &Joined) -> Result<(), Refusal> {
        let room = room_id(&j.room)?;
        let me = participant_id(&j.you)?;
        let State::Waiting(p) = &self.state else {
            return Err(Refusal::AlreadyJoined);
        };
        if p.room.as_deref().is_some_and(|r| r != j.room.as_str()) {
            return Err(Refusal::WrongRoom);
        }
        let own = Member {
            participant: me.clone(),
            sender_index: sender_index(j.sender_index)?,
            join_seq: j.join_seq,
            identity: self.identity,
            attestation: None,
            role: p.role,
        };
        self.event(Event::Joined {
            you: j.you.clone(),
            sender_index: j.sender_index.0,
        });
        let mut members = vec![own];
        for p in &j.participants {
            match member(p) {
                Ok(m) => members.push(m),
                Err(why) => self.refused(p.id.as_str(), why.into()),
            }
        }
        let State::Waiting(pending) = core::mem::replace(&mut self.state, State::Gone) else {
            return Err(Refusal::AlreadyJoined);
        };
        let Pending {
            identity,
            rng,
            shared,
            membership,
            early,
            ..
        } = *pending;
        let mut cfg = Config::new(room);
        if let Membership::VouchedBy(k) = membership {
            cfg.attestation_key = Some(k);
        }
        if let Some(s) = shared {
            cfg.mode = KeyMode::SharedSecret(s);
        }
        cfg.room_instance = j.room_instance.map(|i| *i.as_bytes());
        let mut session = Box::new(Session::new(cfg, identity, me, rng));
        let r = session.handle_input(
            now,
            KeyInput::Joined {
                seq: j.join_seq,
                members,
            },
        );
        if r.is_ok() {
            // What came early, in the order it came; each is checked as if it came now.
            for (from, bytes) in &early {
                let _ = session.handle_input(now, KeyInput::MessageFrom { from, bytes });
            }
        }
        // A refused snapshot leaves the session unjoined for good: this identity was announced
        // for that join, so the client must start over (new identity, new join).
        self.state = State::Running(session);
        r.map_err(Refusal::from)
    }

    fn on_participant_joined(
        &mut self,
        now: Instant,
        p: &ParticipantJoined,
    ) -> Result<(), Refusal> {
        let info = &p.participant;
        self.event(Event::MemberJoined {
            participant: info.id.clone(),
            sender_index: info.sender_index.0,
        });
        let change = match member(info) {
            Ok(m) => Change::Join(m),
            Err(why) => {
                self.refused(info.id.as_str(), why.into());
                // Still fed, so the sequence number is consumed and the log goes on.
                Change::Refused(participant_id(&info.id)?)
            }
        };
        self.membership(now, p.seq, change)
    }

    fn on_participant_left(&mut self, now: Instant, l: &ParticipantLeft) -> Result<(), Refusal> {
        self.event(Event::MemberLeft {
            participant: l.participant.clone(),
            reason: l.reason,
        });
        let who = participant_id(&l.participant)?;
        let change = match l.reason {
            LeaveReason::Removed => Change::Remove(who),
            _ => Change::Leave(who),
        };
        self.membership(now, l.seq, change)
    }

    fn membership(&mut self, now: Instant, seq: u64, change: Change) -> Result<(), Refusal> {
        self.keys(now, KeyInput::Membership(MembershipEvent { seq, change }))
    }

    fn keys(&mut self, now: Instant, input: KeyInput<'_>) -> Result<(), Refusal> {
        match &mut self.state {
            State::Running(s) => s.handle_input(now, input).map_err(Refusal::from),
            _ => Err(Refusal::NotJoined),
        }
    }

    fn refused(&mut self, participant: &str, reason: Refusal) {
        self.event(Event::MemberRefused {
            participant: participant.to_owned(),
            reason,
        });
    }

    fn event(&mut self, e: Event) {
        if self.events >= MAX_PENDING_EVENTS
            && let Some(i) = self
                .outputs
                .iter()
                .position(|o| matches!(o, Output::Event(_)))
        {
            self.outputs.remove(i);
            self.events -= 1;
        }
        self.outputs.push_back(Output::Event(e));
        self.events += 1;
    }

    /// Moves the session's outputs into ours, translated.
    fn collect(&mut self) {
        let State::Running(s) = &mut self.state else {
            return;
        };
        let mut out = Vec::new();
        while let Some(o) = s.poll_output() {
            match o {
                KeyOutput::Transmit(t) => {
                    let payload = OpaqueBytes::new(t.payload);
                    match t.to {
                        Destination::Member(p) => {
                            if let Some(to) = proto_id(&p) {
                                out.push(Output::Send(ClientMessage::E2ee(E2eeTo { to, payload })));
                            }
                        }
                        // One message; the relay fans it out to every other member.
                        Destination::AllMembers => {
                            out.push(Output::Send(ClientMessage::E2eeBroadcast(E2eeBroadcast {
                                payload,
                            })));
                        }
                    }
                }
                KeyOutput::RequestRekey(why) => {
                    let reason = match why {
                        RekeyReason::Timer => hush_proto::RekeyReason::Timer,
                        RekeyReason::UsageLimit => hush_proto::RekeyReason::UsageLimit,
                        _ => hush_proto::RekeyReason::Other,
                    };
                    out.push(Output::Send(ClientMessage::Rekey(RekeyRequest {
                        reason: Some(reason),
                    })));
                }
                KeyOutput::Key(k) => out.push(Output::Key(k)),
                KeyOutput::Event(e) => {
                    let e = match e {
                        hush_keys::Event::EpochInstalled { epoch } => Event::EpochInstalled(epoch),
                        hush_keys::Event::Switched { epoch } => Event::Switched(epoch),
                        hush_keys::Event::KeyframeWanted => Event::KeyframeWanted,
                        hush_keys::Event::SafetyCodeChanged(c) => Event::SafetyCode(c),
                        hush_keys::Event::SafetyCodePending { epoch } => {
                            Event::SafetyCodePending(epoch)
                        }
                        hush_keys::Event::MemberRefused {
                            participant,
                            reason,
                        } => Event::MemberRefused {
                            participant: String::from_utf8_lossy(participant.as_bytes())
                                .into_owned(),
                            reason: reason.into(),
                        },
                        hush_keys::Event::Removed => Event::Removed,
                        hush_keys::Event::KeyAwaited { epoch } => Event::KeyAwaited(epoch),
                        hush_keys::Event::CommitterStalled { epoch, committer } => {
                            Event::CommitterStalled {
                                epoch,
                                committer: String::from_utf8_lossy(committer.as_bytes())
                                    .into_owned(),
                            }
                        }
                        hush_keys::Event::RekeyOverdue { epoch } => Event::RekeyOverdue(epoch),
                        hush_keys::Event::RosterMismatch { epoch, committer } => {
                            Event::RosterMismatch {
                                epoch,
                                committer: String::from_utf8_lossy(committer.as_bytes())
                                    .into_owned(),
                            }
                        }
                        _ => continue,
                    };
                    out.push(Output::Event(e));
                }
                _ => {}
            }
        }
        for o in out {
            match o {
                Output::Event(e) => self.event(e),
                other => self.outputs.push_back(other),
            }
        }
    }
}
