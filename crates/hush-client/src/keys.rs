//! The native client's key adapter: the participant core (`hush-participant`) with an OS-seeded
//! CSPRNG, fed every relay message the driver receives. It decides nothing itself: relay
//! messages, local stream changes and ticks go in, and [`KeyAgent::poll_output`] hands back the
//! core's outputs for the driver to carry out (messages to the relay, keys to [`FrameCrypto`],
//! events to the application).
//!
//! [`FrameCrypto`]: crate::crypto::FrameCrypto

use hush_participant::{
    Input, Instant, Membership, Output, Participant, ParticipantConfig, Refusal,
};
use hush_proto::ServerMessage;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

use crate::error::ClientError;

/// One participant's key exchange, as the native client drives it.
#[derive(Debug)]
pub struct KeyAgent {
    core: Participant<ChaCha20Rng>,
    refused: u64,
    attestation: Option<Vec<u8>>,
}

impl KeyAgent {
    /// A participant admitting members as `membership` says, whose identity and secrets come
    /// from a ChaCha20 CSPRNG seeded from the OS (its own: nothing else draws from it).
    ///
    /// The two-step join: make the agent, have the app backend vouch for
    /// [`KeyAgent::identity_key`], hand the result to [`KeyAgent::set_attestation`], then
    /// [`crate::Client::join`].
    pub fn new(membership: Membership) -> Result<Self, ClientError> {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut_slice())
            .map_err(|_| ClientError::Media("no OS randomness".into()))?;
        Self::with_seed(membership, *seed)
    }

    /// A participant seeded with `seed`: for tests and reproducible runs only (whoever knows
    /// the seed knows every key).
    pub fn with_seed(membership: Membership, seed: [u8; 32]) -> Result<Self, ClientError> {
        let seed = zeroize::Zeroizing::new(seed);
        let config = ParticipantConfig {
            membership,
            shared_secret: None,
        };
        let core =
            Participant::new(config, ChaCha20Rng::from_seed(*seed)).map_err(ClientError::Keys)?;
        Ok(Self {
            core,
            refused: 0,
            attestation: None,
        })
    }

    /// The backend's attestation of [`KeyAgent::identity_key`] (the wire form of
    /// `hush_keys::Attestation`), sent with `join` so that vouching members admit us.
    pub fn set_attestation(&mut self, attestation: Vec<u8>) {
        self.attestation = Some(attestation);
    }

    /// The attestation to send with `join`, if any.
    pub fn attestation(&self) -> Option<&[u8]> {
        self.attestation.as_deref()
    }

    /// The X25519 public key for `join.identity_key`.
    pub fn identity_key(&self) -> [u8; 32] {
        self.core.identity_key()
    }

    /// The participant core (read-only: epochs, safety code, members).
    pub fn core(&self) -> &Participant<ChaCha20Rng> {
        &self.core
    }

    /// The room this client sets out to join: a `joined` naming another is refused
    /// ([`Refusal::WrongRoom`]; see [`hush_participant::Participant::expect_room`]).
    pub fn expect_room(&mut self, room: &str) -> Result<(), Refusal> {
        self.core.expect_room(room)
    }

    /// Feeds one relay message. Messages that are not about keys are refused with
    /// [`Refusal::NotAKeyEvent`] and not counted; other refusals are counted.
    pub fn on_server(&mut self, now: Instant, msg: &ServerMessage) -> Result<(), Refusal> {
        self.input(now, Input::Relay(msg))
    }

    /// Feeds a local input (stream started or stopped, usage limit, tick).
    pub fn input(&mut self, now: Instant, input: Input<'_>) -> Result<(), Refusal> {
        let r = self.core.handle_input(now, input);
        if let Err(e) = r
            && e != Refusal::NotAKeyEvent
        {
            self.refused += 1;
        }
        r
    }

    /// Inputs the core refused so far (relay messages and local inputs).
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.core.poll_output()
    }
}
