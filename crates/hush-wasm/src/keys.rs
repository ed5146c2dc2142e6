//! The key exchange in the browser Worker: the participant core (`hush-participant`) fed the
//! relay's messages as JSON text, so identity keys, epoch secrets and frame keys never leave the
//! Worker.
//!
//! [`KeyCore`] is the adapter, plain Rust (tested natively): JSON text in, decoded with
//! hush-proto's types and limits, [`hush_participant::Output`]s out. [`js::KeySession`] is its
//! wasm-bindgen face. Every decision about what a relay message means is the core's; this
//! module only decodes, and moves time and randomness in.
//!
//! Randomness is born in the Worker: every draw (the identity key, each fresh epoch secret,
//! each HPKE ephemeral key) comes from the Worker's own `crypto.getRandomValues` through
//! getrandom, so no seed or state crosses from the page, nothing needs reseeding, and a page
//! that replaces its own `crypto.getRandomValues` changes nothing here (the Worker is another
//! global). Only native tests use [`KeyCore::with_seed`].
//!
//! Membership is authenticated by default: a session is built with the app backend's Ed25519
//! verification key ([`Membership::VouchedBy`], read with [`backend_key`]) and refuses every
//! member the relay announces without the backend's attestation of its identity key (no
//! envelope, no frame key, not in the safety code). [`Membership::Unauthenticated`] exists for
//! tests and for apps that compare safety codes out of band on every change; the JS face names
//! it `KeySession.insecureUnvouchedMembers`.

pub mod js;

use hush_keys::ed25519_dalek::VerifyingKey;
pub use hush_participant::Membership;
use hush_participant::{
    Input, Instant, Output, Participant, ParticipantConfig, Refusal, StreamContext,
};
use hush_proto::ServerMessage;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_core::{TryCryptoRng, TryRng, UnwrapErr};

/// Decodes one relay message for the key exchange with hush-proto's slim decoder
/// ([`ServerMessage::decode_key_event`]): a message that is not about keys is
/// [`Refusal::NotAKeyEvent`], anything undecodable [`Refusal::MalformedEvent`].
pub fn decode(json: &str) -> Result<ServerMessage, Refusal> {
    ServerMessage::decode_key_event(json).map_err(|e| match e {
        hush_proto::DecodeError::UnknownType => Refusal::NotAKeyEvent,
        _ => Refusal::MalformedEvent,
    })
}

/// Why the app's backend key was refused (API misuse: the app passed the wrong bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadBackendKey {
    /// Not 32 bytes.
    Length,
    /// Not a valid Ed25519 public key (not a curve point, or a small-order one that every
    /// signature would verify against).
    NotAKey,
}

impl core::fmt::Display for BadBackendKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            BadBackendKey::Length => "backendKey must be the backend's 32-byte Ed25519 public key",
            BadBackendKey::NotAKey => "backendKey is not a valid Ed25519 public key",
        })
    }
}

impl std::error::Error for BadBackendKey {}

/// Reads the app backend's Ed25519 verification key (32 bytes, RFC 8032 encoding) for
/// [`Membership::VouchedBy`]; weak (small-order) keys are refused.
pub fn backend_key(bytes: &[u8]) -> Result<VerifyingKey, BadBackendKey> {
    let b: &[u8; 32] = bytes.try_into().map_err(|_| BadBackendKey::Length)?;
    let key = VerifyingKey::from_bytes(b).map_err(|_| BadBackendKey::NotAKey)?;
    if key.is_weak() {
        return Err(BadBackendKey::NotAKey);
    }
    Ok(key)
}

/// Where the key exchange's randomness comes from.
#[derive(Debug)]
pub enum WorkerRng {
    /// The platform's CSPRNG on every draw (in the Worker: its `crypto.getRandomValues`).
    /// Should it ever fail, the Worker stops (a panic ends the call) rather than make a key.
    Os(UnwrapErr<getrandom::SysRng>),
    /// A seeded generator: native tests only, where reproducible keys are the point.
    Seeded(Box<ChaCha20Rng>),
}

impl TryRng for WorkerRng {
    type Error = core::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        match self {
            WorkerRng::Os(r) => r.try_next_u32(),
            WorkerRng::Seeded(r) => r.try_next_u32(),
        }
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        match self {
            WorkerRng::Os(r) => r.try_next_u64(),
            WorkerRng::Seeded(r) => r.try_next_u64(),
        }
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        match self {
            WorkerRng::Os(r) => r.try_fill_bytes(dst),
            WorkerRng::Seeded(r) => r.try_fill_bytes(dst),
        }
    }
}

impl TryCryptoRng for WorkerRng {}

/// The key exchange of one member in the Worker; see the module docs.
#[derive(Debug)]
pub struct KeyCore {
    core: Participant<WorkerRng>,
}

fn at(now_ms: u64) -> Instant {
    Instant::from_millis(now_ms)
}

impl KeyCore {
    /// A member with a fresh identity drawn from the Worker's CSPRNG, admitting members by
    /// `membership` (products: [`Membership::VouchedBy`]); `shared` selects shared-secret mode.
    pub fn new(membership: Membership, shared: Option<&[u8]>) -> Result<Self, Refusal> {
        let rng = WorkerRng::Os(UnwrapErr(getrandom::SysRng));
        Self::with_rng(membership, rng, shared)
    }

    /// A member whose every secret derives from `seed`: for native tests that replay a
    /// transcript, never for a call (whoever knows the seed knows every key).
    pub fn with_seed(
        membership: Membership,
        seed: [u8; 32],
        shared: Option<&[u8]>,
    ) -> Result<Self, Refusal> {
        let rng = WorkerRng::Seeded(Box::new(ChaCha20Rng::from_seed(seed)));
        Self::with_rng(membership, rng, shared)
    }

    fn with_rng(
        membership: Membership,
        rng: WorkerRng,
        shared: Option<&[u8]>,
    ) -> Result<Self, Refusal> {
        let config = ParticipantConfig {
            membership,
            shared_secret: None,
        };
        let config = match shared {
            Some(s) => config.with_shared_secret(s)?,
            None => config,
        };
        let core = Participant::new(config, rng)?;
        Ok(Self { core })
    }

    /// The participant core (read-only: epochs, members, safety code).
    pub fn core(&self) -> &Participant<WorkerRng> {
        &self.core
    }

    /// The X25519 public key for `join.identity_key`.
    pub fn identity_key(&self) -> [u8; 32] {
        self.core.identity_key()
    }

    /// Feeds one relay message (JSON text of a `ServerMessage`). Messages that are not key
    /// events (`offer`, `pong`, ...) are refused with `not_a_key_event`.
    pub fn handle_relay_event(&mut self, now_ms: u64, json: &str) -> Result<(), Refusal> {
        let msg = decode(json)?;
        self.core.handle_input(at(now_ms), Input::Relay(&msg))
    }

    /// Time passed: runs the timers.
    pub fn handle_tick(&mut self, now_ms: u64) {
        // A tick is never refused once joined, and before that there is nothing to run.
        let _ = self.core.handle_input(at(now_ms), Input::Tick);
    }

    /// When to call [`KeyCore::handle_tick`] next (ms, same clock), if any timer runs.
    pub fn next_timeout(&self) -> Option<u64> {
        self.core.next_timeout().map(Instant::as_millis)
    }

    /// A local send transform started on `context` (it gets its key right away if one exists).
    pub fn local_stream_started(&mut self, now_ms: u64, context: u8) -> Result<(), Refusal> {
        let input = Input::LocalStreamStarted(StreamContext(context));
        self.core.handle_input(at(now_ms), input)
    }

    /// A local send transform stopped.
    pub fn local_stream_stopped(&mut self, now_ms: u64, context: u8) -> Result<(), Refusal> {
        let input = Input::LocalStreamStopped(StreamContext(context));
        self.core.handle_input(at(now_ms), input)
    }

    /// A local stream's key nears its usage limit: the core asks the relay for a rekey.
    pub fn usage_limit_near(&mut self, now_ms: u64, context: u8) -> Result<(), Refusal> {
        let input = Input::UsageLimitNear(StreamContext(context));
        self.core.handle_input(at(now_ms), input)
    }

    /// The next output, if any.
    pub fn poll(&mut self) -> Option<Output> {
        self.core.poll_output()
    }

    /// Whose frames the receive key `kid` opens: the current member with the KID's sender index
    /// (hush-keys' KID layout, [`hush_keys::Kid::unpack`]); `None` when no current member has
    /// it, or before the join. The Worker binds each receive key to its sender with this, so a
    /// track only opens the frames of the participant it carries.
    pub fn key_owner(&self, kid: u64) -> Option<&hush_keys::ParticipantId> {
        let (_, sender, _) = hush_keys::Kid::unpack(kid)?;
        let session = self.core.session()?;
        let mut members = session.members();
        members
            .find(|m| m.sender_index == sender)
            .map(|m| &m.participant)
    }

    /// Whether a frame under `kid`, which no receive key opens, was sealed before this member's
    /// join ([`hush_keys::Session::predates_join`]): expected for a newcomer's first frames,
    /// not a failure. `false` for a KID hush-keys could not have made, and before the join.
    pub fn predates_join(&self, now_ms: u64, kid: u64) -> bool {
        let Some((ctx, sender, epoch)) = hush_keys::Kid::unpack(kid) else {
            return false;
        };
        let kid = hush_keys::Kid::new(ctx, sender, u64::from(epoch));
        self.core
            .session()
            .is_some_and(|s| s.predates_join(at(now_ms), kid))
    }
}

#[cfg(test)]
mod tests {
    //! The adapter's own job: decoding. What the messages mean is tested over the participant
    //! core in hush-testkit (`tests/participant.rs`, `tests/same_transcript.rs`).
    use super::*;

    fn joined_json() -> String {
        use hush_proto::SenderIndex;
        use hush_proto::{Grants, Joined, OpaqueBytes, ParticipantId, ParticipantInfo, RoomId};
        let id = |s: &str| ParticipantId::new(s).unwrap();
        let alice = KeyCore::with_seed(Membership::Unauthenticated, [1; 32], None)
            .unwrap()
            .identity_key();
        ServerMessage::Joined(Joined {
            you: id("bob"),
            sender_index: SenderIndex(2),
            join_seq: 2,
            room: RoomId::new("room-k").unwrap(),
            room_instance: None,
            locked: false,
            grants: Grants::default(),
            participants: vec![ParticipantInfo {
                id: id("alice"),
                sender_index: SenderIndex(1),
                join_seq: 1,
                identity_key: OpaqueBytes::new(alice.to_vec()),
                attestation: None,
                grants: Grants::default(),
                role: Default::default(),
            }],
            tracks: Vec::new(),
            ice_servers: Vec::new(),
        })
        .encode()
    }

    fn joined() -> KeyCore {
        let mut c = KeyCore::with_seed(Membership::Unauthenticated, [2; 32], None).unwrap();
        c.handle_relay_event(1_000, &joined_json()).unwrap();
        while c.poll().is_some() {}
        c
    }

    #[test]
    fn malformed_and_foreign_events_are_refused_and_change_nothing() {
        let mut bob = joined();
        let before = (
            bob.core().latest_epoch(),
            bob.core().session().unwrap().applied_seq(),
        );
        let cases: &[(&str, &str)] = &[
            (
                r#"{"v":1,"type":"e2ee","from":"alice","payload":"AQID"}"#,
                "malformed",
            ),
            ("not json", "malformed_event"),
            (
                r#"{"v":1,"type":"e2ee","from":"alice","payload":"%%%"}"#,
                "malformed_event",
            ),
            (r#"{"v":2,"type":"rekey","seq":9}"#, "malformed_event"),
            (r#"{"v":1,"type":"pong","seq":1}"#, "not_a_key_event"),
            (r#"{"v":1,"type":"offer","sdp":"v=0"}"#, "not_a_key_event"),
            (
                r#"{"v":1,"type":"participant_left","seq":1,"participant":"alice","sender_index":1,"reason":"left"}"#,
                "stale_event",
            ),
        ];
        for (json, want) in cases {
            let got = bob.handle_relay_event(3_000, json).map_err(Refusal::code);
            assert_eq!(got, Err(*want), "{json}");
        }
        // A refused message produces no key update and no relay message.
        while let Some(o) = bob.poll() {
            assert!(matches!(o, Output::Event(_)), "{o:?}");
        }
        let after = (
            bob.core().latest_epoch(),
            bob.core().session().unwrap().applied_seq(),
        );
        assert_eq!(before, after);
    }

    #[test]
    fn frames_from_before_the_join_are_told_apart_for_a_grace_period() {
        use hush_keys::{Kid, SenderIndex, StreamContext};
        let kid = |index: u32, epoch: u64| {
            let sender = SenderIndex::new(index).unwrap();
            Kid::new(StreamContext::MICROPHONE, sender, epoch).get()
        };
        let before = KeyCore::with_seed(Membership::Unauthenticated, [2; 32], None).unwrap();
        assert!(
            !before.predates_join(1_000, kid(1, 1)),
            "nothing before the join"
        );
        // Bob joined at sequence 2 (at 1 000 ms); alice (index 1) was there before him.
        let bob = joined();
        assert!(bob.predates_join(1_500, kid(1, 1)), "alice's epoch 1");
        assert!(!bob.predates_join(1_500, kid(1, 2)), "the join's epoch");
        assert!(!bob.predates_join(1_500, kid(1, 3)), "a later epoch");
        assert!(!bob.predates_join(1_500, kid(2, 1)), "his own index");
        assert!(!bob.predates_join(1_500, kid(3, 1)), "no member's index");
        assert!(
            !bob.predates_join(11_000, kid(1, 1)),
            "past the grace period"
        );
        assert!(!bob.predates_join(1_500, 1 << 40), "no KID hush-keys makes");
    }

    #[test]
    fn each_receive_key_belongs_to_the_member_with_its_sender_index() {
        use hush_keys::{Kid, SenderIndex, StreamContext};
        let kid = |index: u32, epoch: u64| {
            let sender = SenderIndex::new(index).unwrap();
            Kid::new(StreamContext::CAMERA, sender, epoch).get()
        };
        let owner = |c: &KeyCore, k: u64| c.key_owner(k).map(|p| p.as_bytes().to_vec());
        let before = KeyCore::with_seed(Membership::Unauthenticated, [2; 32], None).unwrap();
        assert_eq!(
            owner(&before, kid(1, 1)),
            None,
            "no members before the join"
        );
        let bob = joined();
        assert_eq!(owner(&bob, kid(1, 7)), Some(b"alice".to_vec()));
        assert_eq!(owner(&bob, kid(2, 200)), Some(b"bob".to_vec()));
        // No member with that index, and no KID hush-keys could have made.
        assert_eq!(owner(&bob, kid(3, 1)), None);
        assert_eq!(owner(&bob, (1 << 40) | (1 << 8)), None);
    }

    #[test]
    fn oversized_messages_are_refused_before_parsing() {
        let mut bob = joined();
        let big = format!(
            r#"{{"v":1,"type":"e2ee","from":"alice","payload":"{}"}}"#,
            "A".repeat(hush_proto::MAX_MESSAGE_BYTES)
        );
        assert_eq!(
            bob.handle_relay_event(0, &big),
            Err(Refusal::MalformedEvent)
        );
    }

    #[test]
    fn identities_come_from_the_os_each_time() {
        let a = KeyCore::new(Membership::Unauthenticated, None)
            .unwrap()
            .identity_key();
        let b = KeyCore::new(Membership::Unauthenticated, None)
            .unwrap()
            .identity_key();
        assert_ne!(a, b);
        let s = KeyCore::with_seed(Membership::Unauthenticated, [3; 32], None)
            .unwrap()
            .identity_key();
        assert_eq!(
            s,
            KeyCore::with_seed(Membership::Unauthenticated, [3; 32], None)
                .unwrap()
                .identity_key()
        );
    }

    #[test]
    fn start_errors_are_typed() {
        assert_eq!(
            KeyCore::new(Membership::Unauthenticated, Some(&[5; 40]))
                .err()
                .map(Refusal::code),
            Some("shared_secret_too_short")
        );
        let mut c = KeyCore::new(Membership::Unauthenticated, None).unwrap();
        let ev = r#"{"v":1,"type":"rekey","seq":4}"#;
        assert_eq!(c.handle_relay_event(0, ev), Err(Refusal::NotJoined));
        assert!(c.poll().is_none());
        assert_eq!(c.local_stream_started(0, 0), Err(Refusal::NotJoined));
    }

    mod vouched {
        //! Vouched membership through the adapter: the relay's announcements carry the
        //! backend's attestations as base64; a ghost without a valid one gets nothing.
        use super::*;
        use hush_keys::ed25519_dalek::SigningKey;
        use hush_keys::{Attestation, IdentityPublicKey};
        use hush_participant::Event;
        use hush_proto::{
            Grants, Joined, OpaqueBytes, ParticipantId, ParticipantInfo, ParticipantJoined, RoomId,
            SenderIndex,
        };

        const ROOM: &str = "room-v";
        /// Unix ms: attestations below expire at 10_000 s.
        const NOW: u64 = 1_000_000;

        fn info(
            name: &str,
            index: u32,
            seq: u64,
            key: [u8; 32],
            att: Option<Vec<u8>>,
        ) -> ParticipantInfo {
            ParticipantInfo {
                id: ParticipantId::new(name).unwrap(),
                sender_index: SenderIndex(index),
                join_seq: seq,
                identity_key: OpaqueBytes::new(key.to_vec()),
                attestation: att.map(OpaqueBytes::new),
                grants: Grants::default(),
                role: Default::default(),
            }
        }

        fn attest(backend: &SigningKey, name: &str, key: [u8; 32]) -> Vec<u8> {
            let room = hush_keys::RoomId::new(ROOM).unwrap();
            let who = hush_keys::ParticipantId::new(name).unwrap();
            let key = IdentityPublicKey::from_bytes(key).unwrap();
            Attestation::sign(backend, &room, &who, &key, 10_000)
                .to_bytes()
                .to_vec()
        }

        /// Bob (first in the room, so the committer) in `membership`; then alice (vouched), a
        /// ghost with no attestation and one with a forged one join. Returns the refusals
        /// (participant, code) and the recipients of every envelope bob sealed.
        fn room(membership: Membership) -> (Vec<(String, &'static str)>, Vec<String>) {
            let backend = SigningKey::from_bytes(&[7; 32]);
            let forger = SigningKey::from_bytes(&[8; 32]);
            let mut bob = KeyCore::with_seed(membership, [2; 32], None).unwrap();
            let key = |seed| {
                let c = KeyCore::with_seed(Membership::Unauthenticated, [seed; 32], None);
                c.unwrap().identity_key()
            };
            let joined = ServerMessage::Joined(Joined {
                you: ParticipantId::new("bob").unwrap(),
                sender_index: SenderIndex(1),
                join_seq: 1,
                room: RoomId::new(ROOM).unwrap(),
                room_instance: None,
                locked: false,
                grants: Grants::default(),
                participants: Vec::new(),
                tracks: Vec::new(),
                ice_servers: Vec::new(),
            });
            bob.handle_relay_event(NOW, &joined.encode()).unwrap();
            let newcomers = [
                info(
                    "alice",
                    2,
                    2,
                    key(1),
                    Some(attest(&backend, "alice", key(1))),
                ),
                info("ghost", 3, 3, key(3), None),
                info(
                    "forged",
                    4,
                    4,
                    key(4),
                    Some(attest(&forger, "forged", key(4))),
                ),
            ];
            for p in newcomers {
                let seq = p.join_seq;
                let m = ServerMessage::ParticipantJoined(ParticipantJoined {
                    seq,
                    participant: p,
                });
                // A refused member is an event, not a refused relay message.
                let _ = bob.handle_relay_event(NOW, &m.encode());
            }
            let mut t = NOW;
            while let Some(due) = bob.next_timeout().filter(|d| *d <= NOW + 60_000) {
                t = t.max(due);
                bob.handle_tick(t);
            }
            let (mut refused, mut sealed) = (Vec::new(), Vec::new());
            while let Some(o) = bob.poll() {
                match o {
                    Output::Event(Event::MemberRefused {
                        participant,
                        reason,
                    }) => refused.push((participant, reason.code())),
                    Output::Send(hush_proto::ClientMessage::E2ee(e)) => {
                        sealed.push(e.to.as_str().to_owned())
                    }
                    _ => {}
                }
            }
            sealed.sort();
            sealed.dedup();
            (refused, sealed)
        }

        #[test]
        fn ghosts_without_the_backends_attestation_get_no_envelope() {
            let vk = SigningKey::from_bytes(&[7; 32]).verifying_key();
            let (refused, sealed) = room(Membership::VouchedBy(vk));
            assert_eq!(
                refused,
                [
                    ("ghost".to_owned(), "missing_attestation"),
                    ("forged".to_owned(), "bad_attestation")
                ]
            );
            assert_eq!(sealed, ["alice"]);
        }

        #[test]
        fn unauthenticated_mode_admits_the_ghosts() {
            let (refused, sealed) = room(Membership::Unauthenticated);
            assert!(refused.is_empty(), "{refused:?}");
            assert_eq!(sealed, ["alice", "forged", "ghost"]);
        }

        #[test]
        fn backend_keys_are_checked() {
            let vk = SigningKey::from_bytes(&[7; 32]).verifying_key();
            assert_eq!(backend_key(vk.as_bytes()), Ok(vk));
            assert_eq!(backend_key(&[1; 31]), Err(BadBackendKey::Length));
            assert_eq!(backend_key(&[1; 33]), Err(BadBackendKey::Length));
            // The identity point (small order): every signature would verify against it.
            let mut identity = [0u8; 32];
            identity[0] = 1;
            assert_eq!(backend_key(&identity), Err(BadBackendKey::NotAKey));
        }
    }
}
