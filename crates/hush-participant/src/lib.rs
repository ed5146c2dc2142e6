//! # hush-participant: one Hush participant's key exchange, sans-IO
//!
//! The one bridge between the relay's signaling ([`hush_proto::ServerMessage`]) and the key
//! session ([`hush_keys::Session`]), shared by every client: the browser Worker (through
//! `hush-wasm`), the native client and load tool (`hush-client`) and the test kit. Adapters move
//! JSON or bytes, the time and randomness; every decision about what a relay message means for
//! the keys is made here, once.
//!
//! No I/O, no clock, no randomness of its own: time comes with every input and the RNG is the
//! caller's (a CSPRNG; a seeded one in tests). The run loop is the one of str0m and quinn-proto:
//!
//! ```
//! use hush_participant::{Event, Input, Instant, Output, Participant, ParticipantConfig, StreamContext};
//! use hush_proto::ServerMessage;
//! # struct Rng(u64);
//! # impl hush_keys::rand_core::TryRng for Rng {
//! #     type Error = core::convert::Infallible;
//! #     fn try_next_u32(&mut self) -> Result<u32, Self::Error> { Ok(self.try_next_u64()? as u32) }
//! #     fn try_next_u64(&mut self) -> Result<u64, Self::Error> { self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1); Ok(self.0) }
//! #     fn try_fill_bytes(&mut self, d: &mut [u8]) -> Result<(), Self::Error> { for b in d { *b = self.try_next_u64()? as u8 } Ok(()) }
//! # }
//! # impl hush_keys::rand_core::TryCryptoRng for Rng {}
//! // Without a backend key only for this example: products pass `vouched_by(backend_key)`.
//! let mut me = Participant::new(ParticipantConfig::unauthenticated(), Rng(7))?;
//! // `join.identity_key` carries `me.identity_key()`; the relay answers `joined`.
//! let joined = r#"{"v":1,"type":"joined","you":"alice","sender_index":1,"join_seq":1,
//!     "room":"standup","locked":false,"grants":{"publish":true,"subscribe":true},
//!     "participants":[],"tracks":[]}"#;
//! let msg = ServerMessage::decode(joined)?;
//! me.handle_input(Instant::from_millis(0), Input::Relay(&msg))?;
//! me.handle_input(Instant::from_millis(0), Input::LocalStreamStarted(StreamContext::MICROPHONE))?;
//! while let Some(out) = me.poll_output() {
//!     match out {
//!         Output::Send(msg) => { /* msg.encode() to the relay */ let _ = msg; }
//!         Output::Key(update) => { /* to the frame layer's key ring */ let _ = update; }
//!         Output::Event(Event::SafetyCode(code)) => assert_eq!(code.to_string().len(), 29),
//!         Output::Event(_) => {}
//!     }
//! }
//! assert_eq!(me.sending_epoch(), Some(1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - [`participant`]: the state machine, [`Participant`].
//! - [`convert`]: hush-proto's participants and ids as hush-keys' members, and back.
//! - [`refusal`]: the one vocabulary of refusals ([`Refusal`]), with stable codes.
//! - [`output`]: what comes out: messages for the relay, frame-key updates, [`Event`]s.
//!
//! What the relay says is not trusted: a message from a member is fed with the relay-named
//! sender (so a member cannot pass off acks or switch notices as another's), a participant whose
//! identity key cannot be used is refused *and its sequence number still consumed* (so one bad
//! join cannot freeze the membership log), and every refusal has a code.

pub mod convert;
pub mod output;
pub mod participant;
pub mod refusal;

pub use hush_keys::{Instant, KeyUpdate, SafetyCode, StreamContext};
pub use output::{Event, Output};
pub use participant::{Input, Membership, Participant, ParticipantConfig};
pub use refusal::Refusal;
