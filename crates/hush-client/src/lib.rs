//! # hush-client: a native Hush participant
//!
//! Joins a relay room over signaling, publishes frames encrypted with hush-frame under keys from
//! hush-keys, subscribes to the other participants and decrypts what arrives. Used by tests and
//! the load tool (`hush-load`).
//!
//! - [`Client`]: `connect` (WebSocket `/v1/rtc`, `join` with the token, one webrtc-rs
//!   PeerConnection with mDNS off, the polite peer of the relay's renegotiations), `send_frame`
//!   (encrypt, then packetize), `stats`, `leave`; [`ClientEvent`]s through a bounded queue.
//! - [`crypto`]: encryptors per stream context, one decryptor, counters per sender and reason.
//! - [`ivf`]: a minimal IVF reader and writer for VP8 frames.
//! - [`synth`]: synthetic VP8 and Opus frames that carry a plaintext marker.
//!
//! The key exchange is the participant core's (`hush-participant`, shared with the browser's
//! Worker): [`keys::KeyAgent`] feeds it every relay message and carries out what it decides.
//! Member attestations are not sent or checked yet.

mod client;
pub mod crypto;
mod driver;
mod error;
pub mod ivf;
pub mod keys;
mod publish;
mod receive;
mod silent_rtcp;
pub mod synth;

pub use client::{
    Client, ClientEvent, ClientOptions, FrameSink, JoinInfo, MediaKind, ReceivedFrame,
};
pub use crypto::{RecvStats, SendStats, Stats};
pub use error::ClientError;
pub use hush_frame::{DecryptStats, DropReason};
pub use publish::MAX_SIMULCAST_LAYERS;
