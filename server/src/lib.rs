//! The Hush relay: authenticates participants and forwards their still-encrypted media.
//!
//! # Layers
//!
//! Each module uses only those listed before it (`tests/layers.rs` checks this):
//!
//! 1. The sans-IO core. [`time`] is the clock reading every input carries; [`token`] verifies
//!    and mints access tokens; [`routing`] keeps rooms, members, grants, publications and
//!    subscriptions, decides what goes where, and decides the app backend's admin commands
//!    ([`routing::Relay::admin`]). They take the time as an argument and read no clock, draw no
//!    random numbers and start no tasks, so tests drive them step by step.
//! 2. [`ops`]: metrics, the audit trail, per-IP limits, TLS and the admin token, fed with the
//!    core's types; none holds relay state.
//! 3. The adapters. `bus` holds the messages between the driver and the adapters; [`media`]
//!    runs one webrtc-rs `PeerConnection` per participant and forwards RTP; [`driver`] is the
//!    tokio task that owns the core, feeds it input, carries out its output and keeps [`ops`]
//!    in step; [`http`] (axum) serves signaling, `/healthz`, `/metrics`, the static files, in
//!    dev mode `/dev/token`, and the admin API, and only parses, authorizes and serializes:
//!    every decision is the core's, reached through the driver.
//! 4. [`config`] reads the configuration file into the options of the layers below; `main.rs`
//!    wires it up.
//!
//! The core used on its own:
//!
//! ```
//! use std::time::{Duration, Instant};
//!
//! use hush_proto::{AccessToken, Audience, ClientMessage, Grants, Join, OpaqueBytes, ServerMessage};
//! use hush_relay::routing::{Output, Relay, RelayConfig};
//! use hush_relay::time::Now;
//! use hush_relay::token::{SigningKey, TokenPolicy, TokenVerifier, VerifyingKeys, mint};
//!
//! let secret = [42u8; 32]; // from configuration; shared with the app's backend
//! let mut keys = VerifyingKeys::new();
//! keys.add_hs256("2026-01", &secret).unwrap();
//! let mut relay = Relay::new(RelayConfig::default(), TokenVerifier::new(keys, TokenPolicy::new("hush")));
//!
//! // The app's backend mints a token for one participant and one room.
//! let now = Now::new(Instant::now(), Duration::from_secs(1_800_000_000));
//! let claims = hush_proto::TokenClaims {
//!     sub: "p-7f3a".try_into().unwrap(),
//!     room: "standup".try_into().unwrap(),
//!     aud: Audience::from("hush"),
//!     exp: now.unix_secs() + 300,
//!     nbf: None,
//!     iat: Some(now.unix_secs()),
//!     jti: Some("b5e0c1d2".into()),
//!     grants: Grants { publish: true, subscribe: true, ..Grants::default() },
//! };
//! let token = mint(&claims, &SigningKey::hs256("2026-01", &secret).unwrap()).unwrap();
//!
//! // The signaling adapter accepts a WebSocket and passes its text messages in.
//! let conn = relay.connect(now);
//! let join = ClientMessage::Join(Join {
//!     token: AccessToken::new(token),
//!     room: None,
//!     identity_key: OpaqueBytes::new([9u8; 32]),
//!     attestation: None,
//!     offers_first: None,
//! });
//! relay.handle_text(now, conn, &join.encode());
//!
//! // ... and carries out what comes back.
//! while let Some(output) = relay.poll_output() {
//!     match output {
//!         Output::Send { conn: to, message } => {
//!             assert_eq!(to, conn);
//!             assert!(matches!(message, ServerMessage::Joined(_)));
//!         }
//!         Output::Audit(_) => {} // to the audit log
//!         other => unreachable!("{other:?}"),
//!     }
//! }
//! ```

mod bus;
pub mod config;
pub mod driver;
pub mod http;
pub mod media;
pub mod ops;
pub mod recording;
pub mod routing;
pub mod time;
pub mod token;
pub mod turn;
