//! `hush-load`: what a Hush relay costs per forwarded packet, measured against references in the
//! same run on the same machine.
//!
//! - [`clients`]: N rooms × M native clients (webrtc-rs, real key exchange, SFrame), Opus-sized
//!   audio and VP8 at a chosen bitrate, each frame stamped with its send time inside the
//!   encrypted payload; latency read after decryption.
//! - [`relay`]: the relay binary started with a config of the run's own (or a remote one), its
//!   CPU and memory from /proc, forwarded packets from `/metrics`.
//! - [`baseline`]: a bare UDP forwarder (same fan-out, same packet stream), the same with
//!   SRTP decrypt-once, encrypt-per-receiver, and the same fan-out on str0m, a whole WebRTC
//!   stack ([`baseline::sfu`]): the references the relay's cost is a ratio of.
//! - [`report`]: the table and the JSON file.
//! - [`procfs`]: CPU time and RSS from /proc.

pub mod baseline;
pub mod clients;
pub mod procfs;
pub mod relay;
pub mod report;
