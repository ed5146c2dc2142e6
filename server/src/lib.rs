//! The Hush relay: authenticates participants and forwards their still-encrypted media.
//!
//! This crate is the relay's core, with no I/O: [`token`] verifies and mints access tokens,
//! [`routing`] keeps rooms, members, grants, publications and subscriptions and decides what goes
//! where. Both take the time as an argument and read no clock, draw no random numbers and start
//! no tasks, so tests drive them step by step. The adapters (axum for signaling, webrtc-rs for
//! media, tokio) feed them input and carry out their output.
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

pub mod config;
pub mod driver;
pub mod http;
pub mod media;
pub mod ops;
pub mod routing;
pub mod time;
pub mod token;
