//! # hush-keys: who holds which media key in a Hush room
//!
//! Identity keys, room epochs with ratchet-on-join and rekey-on-leave, HPKE epoch envelopes, the
//! safety code and optional member attestations, as a sans-IO state machine (DESIGN.md section
//! 3, modelled on RFC 9605 section 5.2 "SFrame with MLS" with our own epoch secret in place of
//! the MLS exporter). No I/O, no clock, no OS randomness: time comes with every input and the
//! RNG is the caller's, so the same code runs natively, in tests with a seeded RNG and a stepped
//! clock, and in the browser's Worker through wasm.
//!
//! - [`identity`]: X25519 identity key pairs.
//! - [`kid`]: the KID layout (context, sender index, epoch mod 2^8) and its limits.
//! - [`epoch`]: epoch secrets, the ratchet, base keys, shared-secret mode.
//! - [`envelope`]: the wire format of envelopes (HPKE Auth mode, RFC 9180), acks and switch
//!   notices.
//! - [`roster`]: the member-list digest that binds each envelope to the committer's roster.
//! - [`safety`]: the 25-digit safety code.
//! - [`attest`]: Ed25519 member attestations.
//! - [`session`]: the state machine.
//! - [`manual`]: the protocol, in prose.
//!
//! ## Run loop
//!
//! ```
//! use hush_keys::{
//!     Config, IdentityKeyPair, Input, Instant, KeyUpdate, Member, Output, ParticipantId, Role,
//!     RoomId, SenderIndex, Session, StreamContext,
//! };
//! # struct Rng(u64);
//! # impl hush_keys::rand_core::TryRng for Rng {
//! #     type Error = core::convert::Infallible;
//! #     fn try_next_u32(&mut self) -> Result<u32, Self::Error> { Ok(self.try_next_u64()? as u32) }
//! #     fn try_next_u64(&mut self) -> Result<u64, Self::Error> { self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1); Ok(self.0) }
//! #     fn try_fill_bytes(&mut self, d: &mut [u8]) -> Result<(), Self::Error> { for b in d { *b = self.try_next_u64()? as u8 } Ok(()) }
//! # }
//! # impl hush_keys::rand_core::TryCryptoRng for Rng {}
//! # let mut rng = Rng(1); // a real driver passes a CSPRNG (getrandom in the Worker)
//! let room = RoomId::new("room-1")?;
//! let id = IdentityKeyPair::generate(&mut rng);
//! let me = ParticipantId::new("alice")?;
//! let member = Member {
//!     participant: me.clone(),
//!     sender_index: SenderIndex::new(1).ok_or("index")?,
//!     join_seq: 1,
//!     identity: *id.public(),
//!     attestation: None,
//!     role: Role::Participant,
//! };
//! let mut session = Session::new(Config::new(room), id, me, rng);
//! let now = Instant::from_millis(0);
//! // The relay's snapshot: alone in the room, so this member draws epoch 1 and sends on it.
//! session.handle_input(now, Input::Joined { seq: 1, members: vec![member] })?;
//! session.handle_input(now, Input::LocalStreamStarted(StreamContext::MICROPHONE))?;
//! while let Some(out) = session.poll_output() {
//!     match out {
//!         Output::Key(KeyUpdate::SetSend { kid, key, .. }) => {
//!             // encryptor.set_key(kid.get(), &BaseKey::new(key.as_bytes())?)
//!             let _ = (kid, key);
//!         }
//!         Output::Transmit(_t) => { /* to the relay */ }
//!         _ => {}
//!     }
//! }
//! assert_eq!(session.sending_epoch(), Some(1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

extern crate alloc;

pub mod attest;
pub mod envelope;
pub mod epoch;
pub mod error;
pub mod identity;
pub mod ids;
pub mod kid;
pub mod manual;
pub mod member;
pub mod roster;
pub mod safety;
mod secret;
pub mod session;
mod time;

pub use attest::{ATTESTATION_LEN, Attestation};
pub use envelope::Reason;
pub use epoch::{EpochSecret, MIN_SHARED_SECRET_LEN, SharedSecret};
pub use error::{EnvelopeError, Error, InputError, MembershipError, UsageError};
pub use identity::{IdentityKeyPair, IdentityPublicKey};
pub use ids::{MAX_ID_LEN, ParticipantId, RoomId};
pub use kid::{EPOCH_BITS, Kid, SENDER_INDEX_BITS, SenderIndex, StreamContext};
pub use member::{Change, Member, MembershipEvent, Role};
pub use safety::SafetyCode;
pub use secret::{FrameKey, SECRET_LEN};
pub use session::{
    Config, Destination, Event, Input, JoinHorizon, KeyMode, KeyUpdate, Output, RekeyReason,
    Session, Transmit,
};
pub use time::Instant;

/// The `ed25519-dalek` version of [`Config::attestation_key`] and [`Attestation::sign`].
pub use ed25519_dalek;
/// The `rand_core` version this crate's RNG bound ([`rand_core::CryptoRng`]) comes from.
pub use rand_core;
