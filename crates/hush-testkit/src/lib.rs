//! # hush-testkit: one kit for Hush's integration tests (not published)
//!
//! The relay's and hush-client's integration tests set up through this crate instead of each
//! starting its own relay and minting its own tokens:
//!
//! - [`relay`]: [`TestRelay`](relay::TestRelay), the real relay in process on `127.0.0.1:0`,
//!   with a builder for the knobs tests turn (per-IP limits, idle timeout, admin token, dev mode,
//!   TLS, audit sink, a separate metrics listener, the media forwarding [`Tap`](relay::Tap));
//!   [`RelayProcess`](relay::RelayProcess), the `hush-relay` binary. Both stop when dropped.
//! - [`tokens`]: [`Tokens`](tokens::Tokens), the one HS256 key a `TestRelay` verifies with, and
//!   a builder for claims (`tokens.mint(room, sub).publish().subscribe().moderator()`), a fresh
//!   `jti` on every token.
//! - [`client`]: native [`hush_client::Client`]s joined to a `TestRelay`
//!   (`relay.client(room, sub).publish(..).connect()`), media pumps and waits bounded in time,
//!   and [`RawSignal`](client::RawSignal), a bare signaling WebSocket for playing a misbehaving
//!   participant.
//! - [`sim`]: a deterministic room over the participant core (stepped clock, seeded
//!   randomness) whose relay hooks drop, delay, duplicate, rewrite or inject messages: the
//!   hostile relay of the security tests, and transcripts to replay through each adapter.
//! - [`http`]: one-shot HTTP requests (`/metrics`, `/dev/token`, the admin API) and reading
//!   Prometheus text.
//!
//! Every helper panics with a message when a step fails or takes longer than [`STEP`]: it is
//! the test's failure.
//!
//! ```no_run
//! # async fn example() {
//! use hush_proto::Source;
//! use hush_testkit::client::{Media, decrypted_from, pump_until_decrypted};
//! use hush_testkit::relay::TestRelay;
//!
//! let relay = TestRelay::builder().tap().start().await;
//! let alice = relay.client("standup", "alice").publish(&[Source::Microphone]).connect().await;
//! let bob = relay.client("standup", "bob").connect().await;
//! pump_until_decrypted(&alice, &[&bob], 100, Media::Audio, 10).await;
//! assert!(decrypted_from(&bob, alice.info().sender_index) > 100);
//! # }
//! ```
// A test kit: a step that fails fails the test that called it, with the message given.
#![allow(clippy::expect_used, clippy::panic)]

pub mod client;
pub mod http;
pub mod recording;
pub mod relay;
pub mod sim;
pub mod tokens;

use std::time::Duration;

/// How long any single wait (a handshake, a message, an HTTP response) may take.
pub const STEP: Duration = Duration::from_secs(10);
