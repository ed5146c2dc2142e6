//! The key exchange in the browser Worker: hush-keys' sans-IO [`Session`] driven by the relay's
//! hush-proto events, so identity keys, epoch secrets and frame keys never leave the Worker.
//!
//! [`KeyCore`] is the logic, plain Rust (tested natively): relay events in as JSON text
//! (`ServerMessage`), [`CoreOutput`]s out: `ClientMessage` JSON for the relay, key updates for
//! the Worker's key ring, events for the page. [`KeySession`] is its wasm-bindgen face.
//!
//! The RNG is ChaCha20 seeded with 32 bytes the page draws from `crypto.getRandomValues`
//! (no getrandom in the module). Attestations are not configured here: members' `attestation`
//! fields are ignored.

use std::collections::VecDeque;

use hush_keys::{
    Change, Config, Destination, EnvelopeError, Error, Event, IdentityKeyPair, IdentityPublicKey,
    Input, InputError, Instant, KeyMode, KeyUpdate, Member, MembershipError, MembershipEvent,
    Output, RekeyReason, Session, SharedSecret, StreamContext, UsageError,
};
use hush_proto::{
    ClientMessage, E2eeTo, LeaveReason, OpaqueBytes, ParticipantInfo, RekeyRequest, ServerMessage,
};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use wasm_bindgen::prelude::*;

/// Most outputs kept between two polls; past it the oldest events are dropped, never key updates
/// or relay messages (a session that is polled after every input never gets near it).
const MAX_PENDING_EVENTS: usize = 1024;

/// A frame-layer key change for the Worker's key ring.
#[derive(Debug)]
pub enum KeyOp {
    /// `keyRing.setSend(context, kid, key)`.
    SetSend {
        /// Stream context.
        context: u8,
        /// KID.
        kid: u64,
        /// Base key.
        key: hush_keys::FrameKey,
    },
    /// `keyRing.stopSend(context)`.
    StopSend {
        /// Stream context.
        context: u8,
    },
    /// `keyRing.addRecv(kid, key)`.
    AddRecv {
        /// KID.
        kid: u64,
        /// Base key.
        key: hush_keys::FrameKey,
    },
    /// `keyRing.removeRecv(kid)`.
    RemoveRecv {
        /// KID.
        kid: u64,
    },
}

/// Something for the page to show (the `keyEvent` message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyEvent {
    /// Receive keys for this epoch are installed.
    Epoch(u64),
    /// Local streams send on this epoch.
    Switched(u64),
    /// The safety code, `0123 4567 8901`.
    SafetyCode(String),
    /// Ask publishers for a keyframe.
    KeyframeWanted,
    /// A member was refused.
    MemberRefused {
        /// Who.
        participant: String,
        /// Why (a stable code).
        reason: &'static str,
    },
    /// This member was removed: every key is retired.
    Removed,
}

/// One output of [`KeyCore`].
#[derive(Debug)]
pub enum CoreOutput {
    /// A `ClientMessage` for the page to send to the relay as is (JSON text).
    RelaySend(String),
    /// A key ring change.
    Key(KeyOp),
    /// An event for the page.
    Event(KeyEvent),
}

/// What a member holds before the relay's `joined`.
struct Pending {
    identity: IdentityKeyPair,
    rng: ChaCha20Rng,
    shared: Option<SharedSecret>,
}

enum State {
    /// Before the relay's `joined`: the room and our participant id are not known yet.
    Waiting(Box<Pending>),
    Running(Box<Session<ChaCha20Rng>>),
    /// Between the two above, and after a failed start.
    Gone,
}

/// The key exchange of one member, fed relay events; see the module docs.
pub struct KeyCore {
    state: State,
    identity: IdentityPublicKey,
    outputs: VecDeque<CoreOutput>,
}

/// A stable snake_case code for a refusal (never secret material).
pub fn reason(e: &Error) -> &'static str {
    match e {
        Error::Envelope(e) => match e {
            EnvelopeError::Malformed => "malformed",
            EnvelopeError::UnsupportedVersion => "unsupported_version",
            EnvelopeError::Misaddressed => "misaddressed",
            EnvelopeError::UnknownSender => "unknown_sender",
            EnvelopeError::NotCommitter => "not_committer",
            EnvelopeError::Stale => "stale",
            EnvelopeError::Replayed => "replayed",
            EnvelopeError::UnexpectedEpoch => "unexpected_epoch",
            EnvelopeError::Forged => "forged",
            EnvelopeError::BufferFull => "buffer_full",
            EnvelopeError::BadRecipientKey => "bad_recipient_key",
            _ => "envelope_refused",
        },
        Error::Membership(e) => membership_reason(*e),
        Error::Usage(e) => match e {
            UsageError::NotJoined => "not_joined",
            UsageError::AlreadyJoined => "already_joined",
            UsageError::Removed => "removed",
            _ => "usage",
        },
        Error::Input(e) => match e {
            InputError::BadId => "bad_id",
            InputError::BadIdentityKey => "bad_identity_key",
            InputError::SharedSecretTooShort => "shared_secret_too_short",
            _ => "bad_input",
        },
        _ => "refused",
    }
}

fn membership_reason(e: MembershipError) -> &'static str {
    match e {
        MembershipError::StaleEvent => "stale_event",
        MembershipError::EventBufferFull => "event_buffer_full",
        MembershipError::DuplicateParticipant => "duplicate_participant",
        MembershipError::SenderIndexReused => "sender_index_reused",
        MembershipError::SenderIndexOutOfRange => "sender_index_out_of_range",
        MembershipError::BadJoinSequence => "bad_join_sequence",
        MembershipError::BadIdentityKey => "bad_identity_key",
        MembershipError::MissingAttestation => "missing_attestation",
        MembershipError::BadAttestation => "bad_attestation",
        MembershipError::NotInSnapshot => "not_in_snapshot",
        MembershipError::SequenceTooLarge => "sequence_too_large",
        _ => "membership_refused",
    }
}

/// The envelope every relay message shares: `{"v": 1, "type": ...}`.
#[derive(serde::Deserialize)]
struct Head<'a> {
    v: u64,
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
}

fn parse<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, Refused> {
    serde_json::from_str(json).map_err(|_| Refused("malformed_event"))
}

/// Decodes the five key events with hush-proto's types and limits. Not through
/// `ServerMessage::decode`: deserializing that internally tagged enum buffers every message and
/// instantiates all fourteen variants' deserializers, tens of KB of wasm for messages this
/// module refuses anyway. Fields a type does not define (`v`, `type`) are ignored, as in
/// hush-proto.
fn decode(json: &str) -> Result<ServerMessage, Refused> {
    if json.len() > hush_proto::MAX_MESSAGE_BYTES {
        return Err(Refused("malformed_event"));
    }
    let head: Head<'_> = serde_json::from_str(json).map_err(|_| Refused("malformed_event"))?;
    if head.v != hush_proto::PROTOCOL_VERSION {
        return Err(Refused("malformed_event"));
    }
    let msg = match &*head.kind {
        "joined" => ServerMessage::Joined(parse(json)?),
        "participant_joined" => ServerMessage::ParticipantJoined(parse(json)?),
        "participant_left" => ServerMessage::ParticipantLeft(parse(json)?),
        "rekey" => ServerMessage::Rekey(parse(json)?),
        "e2ee" => ServerMessage::E2ee(parse(json)?),
        _ => return Err(Refused("not_a_key_event")),
    };
    msg.check_limits().map_err(|_| Refused("malformed_event"))?;
    Ok(msg)
}

/// A refusal of a relay event: the code the page sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused(pub &'static str);

impl From<Error> for Refused {
    fn from(e: Error) -> Self {
        Refused(reason(&e))
    }
}

fn pid(id: &hush_proto::ParticipantId) -> Result<hush_keys::ParticipantId, Refused> {
    hush_keys::ParticipantId::new(id.as_str()).map_err(|_| Refused("bad_id"))
}

/// A hush-proto participant as a hush-keys member, or why it cannot be one.
fn member(p: &ParticipantInfo) -> Result<Member, MembershipError> {
    let participant = hush_keys::ParticipantId::new(p.id.as_str())
        .map_err(|_| MembershipError::BadIdentityKey)?;
    let identity = IdentityPublicKey::from_slice(p.identity_key.as_bytes())
        .map_err(|_| MembershipError::BadIdentityKey)?;
    let sender_index = hush_keys::SenderIndex::new(p.sender_index.0)
        .ok_or(MembershipError::SenderIndexOutOfRange)?;
    Ok(Member {
        participant,
        sender_index,
        join_seq: p.join_seq,
        identity,
        attestation: None,
    })
}

impl KeyCore {
    /// A member with a fresh identity drawn from `seed`; `shared` selects shared-secret mode.
    pub fn new(seed: [u8; 32], shared: Option<&[u8]>) -> Result<Self, Refused> {
        let shared = match shared {
            Some(s) => Some(SharedSecret::new(s).map_err(|e| Refused::from(Error::Input(e)))?),
            None => None,
        };
        let mut rng = ChaCha20Rng::from_seed(seed);
        let identity = IdentityKeyPair::generate(&mut rng);
        Ok(Self {
            identity: *identity.public(),
            state: State::Waiting(Box::new(Pending {
                identity,
                rng,
                shared,
            })),
            outputs: VecDeque::new(),
        })
    }

    /// The X25519 public key for `join.identity_key`.
    pub fn identity_key(&self) -> [u8; 32] {
        *self.identity.as_bytes()
    }

    /// The session, once joined.
    pub fn session(&self) -> Option<&Session<ChaCha20Rng>> {
        match &self.state {
            State::Running(s) => Some(s),
            _ => None,
        }
    }

    /// Feeds one relay message (JSON text of a `ServerMessage`). Messages that are not key
    /// events (`offer`, `pong`, ...) are refused with `not_a_key_event`; a refused event
    /// changes nothing.
    pub fn handle_relay_event(&mut self, now_ms: u64, json: &str) -> Result<(), Refused> {
        let msg = decode(json)?;
        let now = Instant::from_millis(now_ms);
        let r = match msg {
            ServerMessage::Joined(j) => self.on_joined(now, j),
            ServerMessage::ParticipantJoined(p) => {
                let change = match member(&p.participant) {
                    Ok(m) => Change::Join(m),
                    Err(why) => {
                        self.event(KeyEvent::MemberRefused {
                            participant: p.participant.id.as_str().to_owned(),
                            reason: membership_reason(why),
                        });
                        Change::Refused(pid(&p.participant.id)?)
                    }
                };
                self.input(
                    now,
                    Input::Membership(MembershipEvent { seq: p.seq, change }),
                )
            }
            ServerMessage::ParticipantLeft(l) => {
                let who = pid(&l.participant)?;
                let change = match l.reason {
                    LeaveReason::Removed => Change::Remove(who),
                    _ => Change::Leave(who),
                };
                self.input(
                    now,
                    Input::Membership(MembershipEvent { seq: l.seq, change }),
                )
            }
            ServerMessage::Rekey(r) => self.input(
                now,
                Input::Membership(MembershipEvent {
                    seq: r.seq,
                    change: Change::Rekey,
                }),
            ),
            ServerMessage::E2ee(e) => {
                let from = pid(&e.from)?;
                let bytes = e.payload.as_bytes();
                self.input(now, Input::MessageFrom { from: &from, bytes })
            }
            _ => Err(Refused("not_a_key_event")),
        };
        // Whatever happened, outputs the session produced (refusal events included) go out.
        self.collect();
        r
    }

    fn on_joined(&mut self, now: Instant, j: hush_proto::Joined) -> Result<(), Refused> {
        let State::Waiting(_) = self.state else {
            return Err(Refused("already_joined"));
        };
        let room = hush_keys::RoomId::new(j.room.as_str()).map_err(|_| Refused("bad_id"))?;
        let me = pid(&j.you)?;
        let own = Member {
            participant: me.clone(),
            sender_index: hush_keys::SenderIndex::new(j.sender_index.0)
                .ok_or(Refused("sender_index_out_of_range"))?,
            join_seq: j.join_seq,
            identity: self.identity,
            attestation: None,
        };
        let mut members = vec![own];
        for p in &j.participants {
            match member(p) {
                Ok(m) => members.push(m),
                Err(why) => self.event(KeyEvent::MemberRefused {
                    participant: p.id.as_str().to_owned(),
                    reason: membership_reason(why),
                }),
            }
        }
        let State::Waiting(pending) = core::mem::replace(&mut self.state, State::Gone) else {
            return Err(Refused("already_joined"));
        };
        let Pending {
            identity,
            rng,
            shared,
        } = *pending;
        let mut cfg = Config::new(room);
        if let Some(s) = shared {
            cfg.mode = KeyMode::SharedSecret(s);
        }
        cfg.room_instance = j.room_instance.map(|i| *i.as_bytes());
        let mut session = Box::new(Session::new(cfg, identity, me, rng));
        let r = session.handle_input(
            now,
            Input::Joined {
                seq: j.join_seq,
                members,
            },
        );
        // A refused snapshot leaves the session unjoined for good: this Worker's identity was
        // announced for that join, so the page must start over (new keysStart, new join).
        self.state = State::Running(session);
        r.map_err(Refused::from)
    }

    fn input(&mut self, now: Instant, input: Input<'_>) -> Result<(), Refused> {
        match &mut self.state {
            State::Running(s) => s.handle_input(now, input).map_err(Refused::from),
            _ => Err(Refused("not_joined")),
        }
    }

    /// Time passed: runs the session's timers.
    pub fn handle_tick(&mut self, now_ms: u64) {
        let _ = self.input(Instant::from_millis(now_ms), Input::Tick);
        self.collect();
    }

    /// When to call [`KeyCore::handle_tick`] next (ms, same clock), if any timer runs.
    pub fn next_timeout(&self) -> Option<u64> {
        self.session()?.next_timeout().map(Instant::as_millis)
    }

    /// A local send transform started on `context` (it gets its key right away if one exists).
    pub fn local_stream_started(&mut self, now_ms: u64, context: u8) -> Result<(), Refused> {
        let now = Instant::from_millis(now_ms);
        let r = self.input(now, Input::LocalStreamStarted(StreamContext(context)));
        self.collect();
        r
    }

    /// A local send transform stopped.
    pub fn local_stream_stopped(&mut self, now_ms: u64, context: u8) -> Result<(), Refused> {
        let now = Instant::from_millis(now_ms);
        let r = self.input(now, Input::LocalStreamStopped(StreamContext(context)));
        self.collect();
        r
    }

    /// A local stream's key nears its usage limit: the session asks the relay for a rekey.
    pub fn usage_limit_near(&mut self, now_ms: u64, context: u8) -> Result<(), Refused> {
        let now = Instant::from_millis(now_ms);
        let r = self.input(now, Input::UsageLimitNear(StreamContext(context)));
        self.collect();
        r
    }

    /// The next output, if any.
    pub fn poll(&mut self) -> Option<CoreOutput> {
        self.outputs.pop_front()
    }

    fn event(&mut self, e: KeyEvent) {
        let events = self
            .outputs
            .iter()
            .filter(|o| matches!(o, CoreOutput::Event(_)))
            .count();
        if events >= MAX_PENDING_EVENTS
            && let Some(i) = self
                .outputs
                .iter()
                .position(|o| matches!(o, CoreOutput::Event(_)))
        {
            self.outputs.remove(i);
        }
        self.outputs.push_back(CoreOutput::Event(e));
    }

    /// Moves the session's outputs into ours, translated.
    fn collect(&mut self) {
        let State::Running(s) = &mut self.state else {
            return;
        };
        let mut out = Vec::new();
        while let Some(o) = s.poll_output() {
            match o {
                Output::Transmit(t) => {
                    let payload = OpaqueBytes::new(t.payload);
                    let to: Vec<hush_keys::ParticipantId> = match t.to {
                        Destination::Member(p) => vec![p],
                        // The relay forwards to one named member: the page fans out.
                        Destination::AllMembers => s
                            .members()
                            .filter(|m| Some(m.sender_index) != s.sender_index())
                            .map(|m| m.participant.clone())
                            .collect(),
                    };
                    for p in to {
                        let Some(to) = core::str::from_utf8(p.as_bytes())
                            .ok()
                            .and_then(|t| hush_proto::ParticipantId::new(t).ok())
                        else {
                            continue;
                        };
                        let msg = ClientMessage::E2ee(E2eeTo {
                            to,
                            payload: payload.clone(),
                        });
                        out.push(CoreOutput::RelaySend(msg.encode()));
                    }
                }
                Output::RequestRekey(why) => {
                    let reason = match why {
                        RekeyReason::Timer => hush_proto::RekeyReason::Timer,
                        RekeyReason::UsageLimit => hush_proto::RekeyReason::UsageLimit,
                        _ => hush_proto::RekeyReason::Other,
                    };
                    let msg = ClientMessage::Rekey(RekeyRequest {
                        reason: Some(reason),
                    });
                    out.push(CoreOutput::RelaySend(msg.encode()));
                }
                Output::Key(k) => out.push(CoreOutput::Key(match k {
                    KeyUpdate::InstallReceive { kid, key } => KeyOp::AddRecv {
                        kid: kid.get(),
                        key,
                    },
                    KeyUpdate::RetireReceive { kid } => KeyOp::RemoveRecv { kid: kid.get() },
                    KeyUpdate::SetSend { context, kid, key } => KeyOp::SetSend {
                        context: context.0,
                        kid: kid.get(),
                        key,
                    },
                    KeyUpdate::StopSend { context } => KeyOp::StopSend { context: context.0 },
                    _ => continue,
                })),
                Output::Event(e) => out.push(CoreOutput::Event(match e {
                    Event::EpochInstalled { epoch } => KeyEvent::Epoch(epoch),
                    Event::Switched { epoch } => KeyEvent::Switched(epoch),
                    Event::KeyframeWanted => KeyEvent::KeyframeWanted,
                    Event::SafetyCodeChanged(c) => KeyEvent::SafetyCode(c.to_string()),
                    Event::MemberRefused {
                        participant,
                        reason,
                    } => KeyEvent::MemberRefused {
                        participant: String::from_utf8_lossy(participant.as_bytes()).into_owned(),
                        reason: membership_reason(reason),
                    },
                    Event::Removed => KeyEvent::Removed,
                    _ => continue,
                })),
                _ => {}
            }
        }
        for o in out {
            match o {
                CoreOutput::Event(e) => self.event(e),
                other => self.outputs.push_back(other),
            }
        }
    }
}

// ---------------------------------------------------------------------------- wasm face

/// The key exchange session of this Worker (see the module docs). Times are `Date.now()`
/// milliseconds; KIDs are `BigInt`s.
#[wasm_bindgen]
pub struct KeySession {
    core: KeyCore,
}

fn set(obj: &js_sys::Object, k: &str, v: &JsValue) {
    // Setting a property on a fresh plain object cannot fail.
    let _ = js_sys::Reflect::set(obj, &JsValue::from_str(k), v);
}

fn ms(now_ms: f64) -> u64 {
    if now_ms.is_finite() && now_ms > 0.0 {
        now_ms as u64
    } else {
        0
    }
}

#[wasm_bindgen]
impl KeySession {
    /// A session in `mode` (`"exchange"` or `"shared"` with `shared_secret`, at least 32 bytes),
    /// with its RNG seeded from `seed` (exactly 32 bytes from `crypto.getRandomValues`).
    #[wasm_bindgen(constructor)]
    pub fn new(
        mode: &str,
        seed: &[u8],
        shared_secret: Option<Vec<u8>>,
    ) -> Result<KeySession, JsError> {
        let seed: [u8; 32] = seed
            .try_into()
            .map_err(|_| JsError::new("seed must be 32 bytes"))?;
        let shared = match (mode, shared_secret.as_deref()) {
            ("exchange", None) => None,
            ("shared", Some(s)) => Some(s),
            _ => {
                return Err(JsError::new(
                    "mode must be 'exchange', or 'shared' with a secret",
                ));
            }
        };
        let core = KeyCore::new(seed, shared).map_err(|r| JsError::new(r.0))?;
        Ok(KeySession { core })
    }

    /// The identity public key (32 bytes) for `join.identity_key`.
    #[wasm_bindgen(js_name = identityKey)]
    pub fn identity_key(&self) -> Vec<u8> {
        self.core.identity_key().to_vec()
    }

    /// Feeds a relay event (`ServerMessage` JSON text); returns the refusal code, or
    /// `undefined` when it was taken.
    #[wasm_bindgen(js_name = handleRelayEvent)]
    pub fn handle_relay_event(&mut self, now_ms: f64, json: &str) -> Option<String> {
        self.core
            .handle_relay_event(ms(now_ms), json)
            .err()
            .map(|r| r.0.to_owned())
    }

    /// Runs the timers at `now_ms`.
    #[wasm_bindgen(js_name = handleTick)]
    pub fn handle_tick(&mut self, now_ms: f64) {
        self.core.handle_tick(ms(now_ms));
    }

    /// When to call `handleTick` next (`Date.now()` ms), or `undefined`.
    #[wasm_bindgen(js_name = nextTimeout)]
    pub fn next_timeout(&self) -> Option<f64> {
        self.core.next_timeout().map(|t| t as f64)
    }

    /// A local send transform started on `context`; returns a refusal code or `undefined`.
    #[wasm_bindgen(js_name = localStreamStarted)]
    pub fn local_stream_started(&mut self, now_ms: f64, context: u8) -> Option<String> {
        let r = self.core.local_stream_started(ms(now_ms), context);
        r.err().map(|r| r.0.to_owned())
    }

    /// A local send transform stopped.
    #[wasm_bindgen(js_name = localStreamStopped)]
    pub fn local_stream_stopped(&mut self, now_ms: f64, context: u8) -> Option<String> {
        let r = self.core.local_stream_stopped(ms(now_ms), context);
        r.err().map(|r| r.0.to_owned())
    }

    /// A local stream's key nears its usage limit.
    #[wasm_bindgen(js_name = usageLimitNear)]
    pub fn usage_limit_near(&mut self, now_ms: f64, context: u8) -> Option<String> {
        let r = self.core.usage_limit_near(ms(now_ms), context);
        r.err().map(|r| r.0.to_owned())
    }

    /// The epoch local streams send on, if any.
    #[wasm_bindgen(js_name = sendingEpoch)]
    pub fn sending_epoch(&self) -> Option<f64> {
        self.core.session()?.sending_epoch().map(|e| e as f64)
    }

    /// Every output since the last call, in order: `{kind:'relaySend', json}`,
    /// `{kind:'key', op:'setSend'|'stopSend'|'addRecv'|'removeRecv', context?, kid?, key?}` or
    /// `{kind:'event', event:{type, ...}}`.
    #[wasm_bindgen(js_name = pollOutputs)]
    pub fn poll_outputs(&mut self) -> js_sys::Array {
        let arr = js_sys::Array::new();
        while let Some(o) = self.core.poll() {
            let obj = js_sys::Object::new();
            match o {
                CoreOutput::RelaySend(json) => {
                    set(&obj, "kind", &"relaySend".into());
                    set(&obj, "json", &json.into());
                }
                CoreOutput::Key(k) => {
                    set(&obj, "kind", &"key".into());
                    let (op, context, kid, key) = match &k {
                        KeyOp::SetSend { context, kid, key } => {
                            ("setSend", Some(*context), Some(*kid), Some(key.as_bytes()))
                        }
                        KeyOp::StopSend { context } => ("stopSend", Some(*context), None, None),
                        KeyOp::AddRecv { kid, key } => {
                            ("addRecv", None, Some(*kid), Some(key.as_bytes()))
                        }
                        KeyOp::RemoveRecv { kid } => ("removeRecv", None, Some(*kid), None),
                    };
                    set(&obj, "op", &op.into());
                    if let Some(c) = context {
                        set(&obj, "context", &c.into());
                    }
                    if let Some(kid) = kid {
                        set(&obj, "kid", &js_sys::BigInt::from(kid).into());
                    }
                    if let Some(key) = key {
                        set(&obj, "key", &js_sys::Uint8Array::from(&key[..]).into());
                    }
                }
                CoreOutput::Event(e) => {
                    set(&obj, "kind", &"event".into());
                    let ev = js_sys::Object::new();
                    match e {
                        KeyEvent::Epoch(n) => {
                            set(&ev, "type", &"epoch".into());
                            set(&ev, "epoch", &(n as f64).into());
                        }
                        KeyEvent::Switched(n) => {
                            set(&ev, "type", &"switched".into());
                            set(&ev, "epoch", &(n as f64).into());
                        }
                        KeyEvent::SafetyCode(c) => {
                            set(&ev, "type", &"safetyCode".into());
                            set(&ev, "code", &c.into());
                        }
                        KeyEvent::KeyframeWanted => set(&ev, "type", &"keyframeWanted".into()),
                        KeyEvent::MemberRefused {
                            participant,
                            reason,
                        } => {
                            set(&ev, "type", &"memberRefused".into());
                            set(&ev, "participant", &participant.into());
                            set(&ev, "reason", &reason.into());
                        }
                        KeyEvent::Removed => set(&ev, "type", &"removed".into()),
                    }
                    set(&obj, "event", &ev.into());
                }
            }
            arr.push(&obj);
        }
        arr
    }
}

#[cfg(test)]
mod tests {
    //! A fake relay in Rust over several [`KeyCore`]s: membership events in order, e2ee
    //! forwarded with `from`, rekey requests sequenced; keys checked with real hush-frame frames.
    use std::collections::BTreeMap;

    use hush_frame::{BaseKey, CipherSuite, Decryptor, Encryptor, Layout};
    use hush_proto::{
        E2eeFrom, Grants, Joined, ParticipantJoined, ParticipantLeft, RekeyEvent, RoomId,
        SenderIndex,
    };

    use super::*;

    const SUITE: CipherSuite = CipherSuite::Aes128GcmSha256_128;

    #[derive(Default)]
    struct Ring {
        send: BTreeMap<u8, (u64, [u8; 32])>,
        recv: BTreeMap<u64, [u8; 32]>,
        events: Vec<KeyEvent>,
    }

    struct Relay {
        seq: u64,
        next_index: u32,
        /// (id, sender index, join seq, identity key), oldest first.
        members: Vec<(String, u32, u64, Vec<u8>)>,
        cores: BTreeMap<String, KeyCore>,
        rings: BTreeMap<String, Ring>,
        /// Refusals returned to the relay's deliveries (code, recipient).
        refusals: Vec<(&'static str, String)>,
        /// Every e2ee payload forwarded: (from, to, payload).
        sent: Vec<(String, String, OpaqueBytes)>,
    }

    fn pid(s: &str) -> hush_proto::ParticipantId {
        hush_proto::ParticipantId::new(s).unwrap()
    }

    fn info(m: &(String, u32, u64, Vec<u8>)) -> ParticipantInfo {
        ParticipantInfo {
            id: pid(&m.0),
            sender_index: SenderIndex(m.1),
            join_seq: m.2,
            identity_key: OpaqueBytes::new(m.3.clone()),
            attestation: None,
            grants: Grants::default(),
        }
    }

    impl Relay {
        fn new() -> Self {
            Self {
                seq: 0,
                next_index: 1,
                members: Vec::new(),
                cores: BTreeMap::new(),
                rings: BTreeMap::new(),
                refusals: Vec::new(),
                sent: Vec::new(),
            }
        }

        fn deliver(&mut self, to: &str, msg: &ServerMessage) {
            let json = msg.encode();
            let core = self.cores.get_mut(to).unwrap();
            if let Err(Refused(code)) = core.handle_relay_event(1_000, &json) {
                self.refusals.push((code, to.to_owned()));
            }
        }

        fn broadcast(&mut self, msg: &ServerMessage, except: Option<&str>) {
            let names: Vec<String> = self.members.iter().map(|m| m.0.clone()).collect();
            for n in names.iter().filter(|n| Some(n.as_str()) != except) {
                self.deliver(n, msg);
            }
        }

        fn join_with_key(&mut self, name: &str, seed: u8, key: Option<Vec<u8>>) {
            let core = KeyCore::new([seed; 32], None).unwrap();
            let identity = key.unwrap_or_else(|| core.identity_key().to_vec());
            self.seq += 1;
            let me = (name.to_owned(), self.next_index, self.seq, identity);
            self.next_index += 1;
            self.cores.insert(name.to_owned(), core);
            self.rings.insert(name.to_owned(), Ring::default());
            let joined = ServerMessage::Joined(Joined {
                you: pid(name),
                sender_index: SenderIndex(me.1),
                join_seq: me.2,
                room: RoomId::new("room-k").unwrap(),
                room_instance: None,
                locked: false,
                grants: Grants::default(),
                participants: self.members.iter().map(info).collect(),
                tracks: Vec::new(),
            });
            self.deliver(name, &joined);
            let ev = ServerMessage::ParticipantJoined(ParticipantJoined {
                seq: me.2,
                participant: info(&me),
            });
            self.members.push(me);
            self.broadcast(&ev, Some(name));
            self.pump();
        }

        fn join(&mut self, name: &str, seed: u8) {
            self.join_with_key(name, seed, None);
        }

        fn leave(&mut self, name: &str) {
            self.seq += 1;
            let i = self.members.iter().position(|m| m.0 == name).unwrap();
            let gone = self.members.remove(i);
            let ev = ServerMessage::ParticipantLeft(ParticipantLeft {
                seq: self.seq,
                participant: pid(name),
                sender_index: SenderIndex(gone.1),
                reason: LeaveReason::Left,
            });
            self.broadcast(&ev, None);
            self.pump();
        }

        fn rekey(&mut self) {
            self.seq += 1;
            let ev = ServerMessage::Rekey(RekeyEvent { seq: self.seq });
            self.broadcast(&ev, None);
        }

        /// Routes every output until all cores are quiet (bounded).
        fn pump(&mut self) {
            for _ in 0..10_000 {
                let mut moved = false;
                let names: Vec<String> = self.cores.keys().cloned().collect();
                for n in names {
                    let Some(o) = self.cores.get_mut(&n).unwrap().poll() else {
                        continue;
                    };
                    moved = true;
                    let ring = self.rings.get_mut(&n).unwrap();
                    match o {
                        CoreOutput::Key(KeyOp::SetSend { context, kid, key }) => {
                            ring.send.insert(context, (kid, *key.as_bytes()));
                        }
                        CoreOutput::Key(KeyOp::StopSend { context }) => {
                            ring.send.remove(&context);
                        }
                        CoreOutput::Key(KeyOp::AddRecv { kid, key }) => {
                            ring.recv.insert(kid, *key.as_bytes());
                        }
                        CoreOutput::Key(KeyOp::RemoveRecv { kid }) => {
                            ring.recv.remove(&kid);
                        }
                        CoreOutput::Event(e) => ring.events.push(e),
                        CoreOutput::RelaySend(json) => {
                            match ClientMessage::decode(&json).unwrap() {
                                ClientMessage::E2ee(e) => {
                                    if self.members.iter().any(|m| m.0 == e.to.as_str()) {
                                        let rec = (n.clone(), e.to.as_str().to_owned());
                                        self.sent.push((rec.0, rec.1, e.payload.clone()));
                                        let msg = ServerMessage::E2ee(E2eeFrom {
                                            from: pid(&n),
                                            payload: e.payload,
                                        });
                                        self.deliver(e.to.as_str(), &msg);
                                    }
                                }
                                ClientMessage::Rekey(_) => self.rekey(),
                                other => panic!("unexpected {other:?}"),
                            }
                        }
                    }
                }
                if !moved {
                    return;
                }
            }
            panic!("never quiet");
        }

        fn code(&self, n: &str) -> Option<String> {
            self.rings[n].events.iter().rev().find_map(|e| match e {
                KeyEvent::SafetyCode(c) => Some(c.clone()),
                _ => None,
            })
        }

        fn sending(&self, n: &str) -> Option<u64> {
            self.cores[n].session()?.sending_epoch()
        }

        /// A frame from `from`'s microphone, then whether `to` decrypts it with its ring.
        fn frame(&self, from: &str, to: &str) -> Result<(), String> {
            let (kid, key) = self.rings[from].send.get(&0).ok_or("no send key")?;
            let mut enc = Encryptor::new(SUITE, *kid, &BaseKey::new(key).unwrap());
            let mut buf = b"a frame of audio".to_vec();
            enc.encrypt(Layout::Pure, &mut buf).unwrap();
            let mut dec = Decryptor::new(SUITE);
            for (k, v) in &self.rings[to].recv {
                dec.add_key(*k, &BaseKey::new(v).unwrap()).unwrap();
            }
            dec.decrypt(Layout::Pure, &mut buf)
                .map(|_| ())
                .map_err(|e| format!("{e:?}"))?;
            if buf == b"a frame of audio" {
                Ok(())
            } else {
                Err("wrong plaintext".into())
            }
        }

        fn start_mic(&mut self, n: &str) {
            self.cores
                .get_mut(n)
                .unwrap()
                .local_stream_started(1_000, 0)
                .unwrap();
            self.pump();
        }
    }

    fn room(names: &[&str]) -> Relay {
        let mut r = Relay::new();
        for (i, n) in names.iter().enumerate() {
            r.join(n, i as u8 + 1);
        }
        for n in names {
            r.start_mic(n);
        }
        r
    }

    #[test]
    fn members_agree_and_decrypt_each_other() {
        let r = room(&["alice", "bob", "carol"]);
        assert!(r.refusals.is_empty(), "{:?}", r.refusals);
        let code = r.code("alice").unwrap();
        assert_eq!(code.len(), 14, "{code}");
        for n in ["alice", "bob", "carol"] {
            assert_eq!(r.code(n).as_deref(), Some(code.as_str()), "{n}");
            assert_eq!(r.sending(n), Some(3), "{n}");
        }
        for (a, b) in [("alice", "bob"), ("bob", "carol"), ("carol", "alice")] {
            assert_eq!(r.frame(a, b), Ok(()), "{a} -> {b}");
        }
    }

    #[test]
    fn after_a_leave_the_leaver_cannot_decrypt() {
        let mut r = room(&["alice", "bob", "carol"]);
        let before = r.code("alice").unwrap();
        r.leave("carol");
        for n in ["alice", "bob"] {
            assert_eq!(r.sending(n), Some(4), "{n}");
        }
        let after = r.code("alice").unwrap();
        assert_eq!(r.code("bob").as_deref(), Some(after.as_str()));
        assert_ne!(before, after, "membership changed, so does the code");
        assert_eq!(r.frame("alice", "bob"), Ok(()));
        let e = r.frame("alice", "carol").unwrap_err();
        assert!(e.contains("UnknownKid") || e.contains("AuthFailed"), "{e}");
    }

    #[test]
    fn a_usage_limit_brings_a_relay_rekey() {
        let mut r = room(&["alice", "bob"]);
        let code = r.code("bob").unwrap();
        r.cores
            .get_mut("bob")
            .unwrap()
            .usage_limit_near(2_000, 0)
            .unwrap();
        r.pump();
        for n in ["alice", "bob"] {
            assert_eq!(r.sending(n), Some(3), "{n}: rekey event 3 is a fresh epoch");
        }
        assert_eq!(
            r.code("alice").as_deref(),
            Some(code.as_str()),
            "a rekey keeps the code"
        );
        assert_eq!(r.frame("bob", "alice"), Ok(()));
    }

    #[test]
    fn malformed_and_foreign_events_are_refused_and_change_nothing() {
        let mut r = room(&["alice", "bob"]);
        let bob = r.cores.get_mut("bob").unwrap();
        let before = (
            bob.session().unwrap().sending_epoch(),
            bob.session().unwrap().applied_seq(),
        );
        let bad = |payload: Vec<u8>| {
            ServerMessage::E2ee(E2eeFrom {
                from: pid("alice"),
                payload: OpaqueBytes::new(payload),
            })
            .encode()
        };
        let cases: Vec<(String, &str)> = vec![
            (bad(vec![1, 2, 3]), "malformed"),
            (bad(vec![9; 99]), "unsupported_version"),
            (bad({
                // An envelope whose sender index is out of range.
                let mut v = vec![0u8; 99];
                v[0] = 1;
                v[1] = 1;
                v[10..14].copy_from_slice(&[0xff; 4]);
                v
            }), "malformed"),
            ("not json".into(), "malformed_event"),
            (r#"{"v":1,"type":"e2ee","from":"alice","payload":"%%%"}"#.into(), "malformed_event"),
            (r#"{"v":2,"type":"rekey","seq":9}"#.into(), "malformed_event"),
            (r#"{"v":1,"type":"pong","seq":1}"#.into(), "not_a_key_event"),
            (r#"{"v":1,"type":"participant_left","seq":1,"participant":"alice","sender_index":1,"reason":"left"}"#.into(), "stale_event"),
        ];
        for (json, want) in cases {
            assert_eq!(
                bob.handle_relay_event(3_000, &json),
                Err(Refused(want)),
                "{json}"
            );
            assert!(bob.poll().is_none(), "no output for {json}");
        }
        let after = (
            bob.session().unwrap().sending_epoch(),
            bob.session().unwrap().applied_seq(),
        );
        assert_eq!(before, after);
        assert_eq!(r.frame("alice", "bob"), Ok(()));
    }

    #[test]
    fn a_member_cannot_send_as_the_committer() {
        let mut r = room(&["alice", "bob", "carol"]);
        r.rekey();
        r.pump();
        // Alice's switch notice to Bob (kind 3), handed in again by Carol as hers.
        let switch = r
            .sent
            .iter()
            .find(|(f, t, p)| f == "alice" && t == "bob" && p.as_bytes().get(1) == Some(&3))
            .map(|(_, _, p)| p.clone())
            .expect("alice sent a switch notice");
        let forged = ServerMessage::E2ee(E2eeFrom {
            from: pid("carol"),
            payload: switch,
        })
        .encode();
        let bob = r.cores.get_mut("bob").unwrap();
        assert_eq!(
            bob.handle_relay_event(4_000, &forged),
            Err(Refused("forged"))
        );
    }

    #[test]
    fn a_join_with_a_bad_key_is_refused_and_the_log_goes_on() {
        let mut r = room(&["alice", "bob"]);
        r.join_with_key("mallory", 9, Some(vec![7; 5]));
        let refused = r.rings["alice"].events.iter().any(|e| {
            *e == KeyEvent::MemberRefused {
                participant: "mallory".into(),
                reason: "bad_identity_key",
            }
        });
        assert!(refused, "{:?}", r.rings["alice"].events);
        // Mallory's own snapshot works (its own key is its own), but nobody seals to it.
        r.members.retain(|m| m.0 != "mallory");
        r.cores.remove("mallory");
        r.join("carol", 3);
        r.start_mic("carol");
        for n in ["alice", "bob", "carol"] {
            assert_eq!(
                r.sending(n),
                Some(4),
                "{n}: the refused join (3) changed nothing"
            );
        }
        assert_eq!(r.frame("carol", "alice"), Ok(()));
    }

    #[test]
    fn start_errors_are_typed() {
        assert_eq!(
            KeyCore::new([1; 32], Some(&[5; 40])).err(),
            Some(Refused("shared_secret_too_short"))
        );
        let mut c = KeyCore::new([1; 32], None).unwrap();
        let ev = ServerMessage::Rekey(RekeyEvent { seq: 4 }).encode();
        assert_eq!(c.handle_relay_event(0, &ev), Err(Refused("not_joined")));
        assert!(c.poll().is_none());
    }
}
