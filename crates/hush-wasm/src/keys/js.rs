//! The wasm-bindgen face of [`super::KeyCore`]: `KeySession` for `web/src/worker-keys.ts`.

use hush_participant::{Event, KeyUpdate, Output};
use hush_proto::LeaveReason;
use wasm_bindgen::prelude::*;

use super::{KeyCore, Membership};

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
    /// A session in `mode` (`"exchange"` or `"shared"` with `shared_secret`, at least 32 bytes)
    /// that admits only members the app backend vouched for: `backend_key` is the backend's
    /// 32-byte Ed25519 public key, and a member the relay announces without the backend's
    /// attestation of its identity key is refused (`memberRefused`). Its randomness comes from
    /// this Worker's `crypto.getRandomValues`, never from the page.
    #[wasm_bindgen(constructor)]
    pub fn new(
        mode: &str,
        shared_secret: Option<Vec<u8>>,
        backend_key: &[u8],
    ) -> Result<KeySession, JsError> {
        // Owned so that wasm-bindgen's copy of the room secret is zeroed, not just freed.
        let shared_secret = shared_secret.map(zeroize::Zeroizing::new);
        let key = super::backend_key(backend_key).map_err(|e| JsError::new(&e.to_string()))?;
        Self::start(
            Membership::VouchedBy(key),
            mode,
            shared_secret.as_deref().map(Vec::as_slice),
        )
    }

    /// A session that admits every member the relay announces, vouched for or not: the relay
    /// can then add a member of its own that every epoch is sealed to. Only for tests and apps
    /// that compare safety codes out of band on every change.
    #[wasm_bindgen(js_name = insecureUnvouchedMembers)]
    pub fn insecure_unvouched_members(
        mode: &str,
        shared_secret: Option<Vec<u8>>,
    ) -> Result<KeySession, JsError> {
        let shared_secret = shared_secret.map(zeroize::Zeroizing::new);
        Self::start(
            Membership::Unauthenticated,
            mode,
            shared_secret.as_deref().map(Vec::as_slice),
        )
    }

    fn start(
        membership: Membership,
        mode: &str,
        shared_secret: Option<&[u8]>,
    ) -> Result<KeySession, JsError> {
        let shared = match (mode, shared_secret) {
            ("exchange", None) => None,
            ("shared", Some(s)) => Some(s),
            _ => {
                return Err(JsError::new(
                    "mode must be 'exchange', or 'shared' with a secret",
                ));
            }
        };
        let core = KeyCore::new(membership, shared).map_err(|r| JsError::new(r.code()))?;
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
            .map(|r| r.code().to_owned())
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
        r.err().map(|r| r.code().to_owned())
    }

    /// A local send transform stopped.
    #[wasm_bindgen(js_name = localStreamStopped)]
    pub fn local_stream_stopped(&mut self, now_ms: f64, context: u8) -> Option<String> {
        let r = self.core.local_stream_stopped(ms(now_ms), context);
        r.err().map(|r| r.code().to_owned())
    }

    /// A local stream's key nears its usage limit.
    #[wasm_bindgen(js_name = usageLimitNear)]
    pub fn usage_limit_near(&mut self, now_ms: f64, context: u8) -> Option<String> {
        let r = self.core.usage_limit_near(ms(now_ms), context);
        r.err().map(|r| r.code().to_owned())
    }

    /// The participant whose frames receive key `kid` opens (the current member with the KID's
    /// sender index), or `undefined` (no such member, or an id that is not UTF-8). The Worker
    /// binds each `addRecv` key to its sender with it (web/src/worker-keys.ts).
    #[wasm_bindgen(js_name = keyOwner)]
    pub fn key_owner(&self, kid: u64) -> Option<String> {
        let id = self.core.key_owner(kid)?;
        String::from_utf8(id.as_bytes().to_vec()).ok()
    }

    /// Whether a frame under `kid` that no receive key opens was sealed before this member's
    /// join (a newcomer's first frames can be: expected, no failure). The Worker's receive
    /// transforms count those as `before_join` (web/src/receivers.ts).
    #[wasm_bindgen(js_name = predatesJoin)]
    pub fn predates_join(&self, now_ms: f64, kid: u64) -> bool {
        self.core.predates_join(ms(now_ms), kid)
    }

    /// The epoch local streams send on, if any.
    #[wasm_bindgen(js_name = sendingEpoch)]
    pub fn sending_epoch(&self) -> Option<f64> {
        self.core.core().sending_epoch().map(|e| e as f64)
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
                Output::Send(msg) => {
                    set(&obj, "kind", &"relaySend".into());
                    set(&obj, "json", &msg.encode().into());
                }
                Output::Key(k) => {
                    let Some(()) = key_op(&obj, &k) else { continue };
                }
                Output::Event(e) => {
                    set(&obj, "kind", &"event".into());
                    set(&obj, "event", &event(&e).into());
                }
            }
            arr.push(&obj);
        }
        arr
    }
}

/// `{kind:'key', op, context?, kid?, key?}`; `None` for an update this Worker does not know.
fn key_op(obj: &js_sys::Object, k: &KeyUpdate) -> Option<()> {
    set(obj, "kind", &"key".into());
    let (op, context, kid, key) = match k {
        KeyUpdate::SetSend { context, kid, key } => (
            "setSend",
            Some(context.0),
            Some(kid.get()),
            Some(key.as_bytes()),
        ),
        KeyUpdate::StopSend { context } => ("stopSend", Some(context.0), None, None),
        KeyUpdate::InstallReceive { kid, key } => {
            ("addRecv", None, Some(kid.get()), Some(key.as_bytes()))
        }
        KeyUpdate::RetireReceive { kid } => ("removeRecv", None, Some(kid.get()), None),
        _ => return None,
    };
    set(obj, "op", &op.into());
    if let Some(c) = context {
        set(obj, "context", &c.into());
    }
    if let Some(kid) = kid {
        set(obj, "kid", &js_sys::BigInt::from(kid).into());
    }
    if let Some(key) = key {
        set(obj, "key", &js_sys::Uint8Array::from(&key[..]).into());
    }
    Some(())
}

/// `{type: event.name(), ...fields}`.
fn event(e: &Event) -> js_sys::Object {
    let ev = js_sys::Object::new();
    set(&ev, "type", &e.name().into());
    match e {
        Event::Joined {
            you: participant,
            sender_index,
        }
        | Event::MemberJoined {
            participant,
            sender_index,
        } => {
            set(&ev, "participant", &participant.as_str().into());
            set(&ev, "senderIndex", &(*sender_index).into());
        }
        Event::MemberLeft {
            participant,
            reason,
        } => {
            set(&ev, "participant", &participant.as_str().into());
            let reason = match reason {
                LeaveReason::Left => "left",
                LeaveReason::Disconnected => "disconnected",
                LeaveReason::Removed => "removed",
                LeaveReason::Replaced => "replaced",
                _ => "other",
            };
            set(&ev, "reason", &reason.into());
        }
        Event::MemberRefused {
            participant,
            reason,
        } => {
            set(&ev, "participant", &participant.as_str().into());
            set(&ev, "reason", &reason.code().into());
        }
        Event::EpochInstalled(n)
        | Event::Switched(n)
        | Event::KeyAwaited(n)
        | Event::SafetyCodePending(n)
        | Event::RekeyOverdue(n) => set(&ev, "epoch", &(*n as f64).into()),
        Event::CommitterStalled { epoch, committer }
        | Event::RosterMismatch { epoch, committer } => {
            set(&ev, "epoch", &(*epoch as f64).into());
            set(&ev, "committer", &committer.as_str().into());
        }
        Event::SafetyCode(c) => set(&ev, "code", &c.to_string().into()),
        Event::Recording(on) => set(&ev, "active", &(*on).into()),
        Event::KeyframeWanted | Event::Removed => {}
    }
    ev
}
