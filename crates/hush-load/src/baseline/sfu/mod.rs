//! The third reference: the same fan-out as [`super::forward`] on **str0m** (sans-IO WebRTC in
//! RTP mode), so that the media stack itself is measured against webrtc-rs, which the relay is
//! built on: ICE, DTLS-SRTP, RTCP reports, NACK/RTX buffers and transport-wide congestion
//! control feedback, all of it str0m's, with no Hush logic in between.
//!
//! - [`forward`] is the forwarder: one UDP socket, one `Rtc` per participant, ICE-lite and the
//!   DTLS server; every RTP packet a participant sends is written to a stream of each of its
//!   room-mates' `Rtc`s (the payload shared, not copied).
//! - [`drive`] is the generator and the receivers: one `Rtc` and one socket per participant,
//!   the packet stream of [`Stream`], latency from the stamp in every payload.
//!
//! # Signaling
//!
//! One TCP connection per participant to the forwarder's address (the UDP port's number): the
//! participant writes one JSON line, an [`Offer`], and reads one, an [`Answer`]. Media streams
//! are not negotiated: both ends derive every SSRC and MID from (room, participant) as the other
//! references do ([`sender_ssrc`], [`leg_ssrc`]), and declare them through str0m's direct API.

use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use str0m::config::CryptoProvider;
use str0m::media::{MediaKind, Mid};
use str0m::rtp::Ssrc;
use str0m::{Rtc, RtcConfig};

use super::{leg_ssrc, mix, sender_ssrc};

mod drive;
mod forward;

pub use drive::drive;
pub use forward::{SfuStats, forward};

/// Longest signaling line read, bytes.
const MAX_LINE: usize = 4096;

/// A participant's half of the handshake.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Offer {
    /// Room number.
    pub room: u32,
    /// Participant number in the room (0 to `per_room` − 1).
    pub participant: u32,
    /// Participants in the room.
    pub per_room: u32,
    /// ICE username fragment.
    pub ufrag: String,
    /// ICE password.
    pub pass: String,
    /// DTLS certificate fingerprint, as in SDP (`sha-256 AB:CD:…`).
    pub fingerprint: String,
    /// The participant's UDP address (its one host candidate).
    pub addr: SocketAddr,
}

/// The forwarder's half.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Answer {
    /// ICE username fragment.
    pub ufrag: String,
    /// ICE password.
    pub pass: String,
    /// DTLS certificate fingerprint.
    pub fingerprint: String,
}

impl Offer {
    /// `rtc`'s credentials and fingerprint, offered for `participant` at `addr`.
    fn of(rtc: &mut Rtc, room: u32, participant: u32, per_room: u32, addr: SocketAddr) -> Self {
        let api = rtc.direct_api();
        let creds = api.local_ice_credentials();
        Self {
            room,
            participant,
            per_room,
            ufrag: creds.ufrag,
            pass: creds.pass,
            fingerprint: api.local_dtls_fingerprint().to_string(),
            addr,
        }
    }
}

/// The one crypto provider of the process (RustCrypto).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(str0m::crypto::from_feature_flags())
}

/// An `Rtc` in RTP mode with `provider`'s crypto.
fn rtc_config(provider: &Arc<CryptoProvider>) -> RtcConfig {
    Rtc::builder()
        .set_rtp_mode(true)
        .set_crypto_provider(Arc::clone(provider))
}

/// The MID of `kind` from `sender` on every leg that carries it.
fn mid(kind: MediaKind, sender: u32) -> Mid {
    let tag = if kind == MediaKind::Audio { 'a' } else { 'v' };
    Mid::from(format!("{tag}{sender}").as_str())
}

/// The SSRC of `sender`'s `kind` stream as it sends it.
fn up_ssrc(room: u32, sender: u32, kind: MediaKind) -> Ssrc {
    Ssrc::from(sender_ssrc(
        room,
        sender,
        u64::from(kind == MediaKind::Video),
    ))
}

/// The SSRC that `sender`'s `kind` stream carries on `receiver`'s leg.
fn down_ssrc(room: u32, receiver: u32, sender: u32, kind: MediaKind) -> Ssrc {
    Ssrc::from(leg_ssrc(room, receiver, *up_ssrc(room, sender, kind)))
}

/// The RTX SSRC paired with video stream `ssrc`.
fn rtx_of(ssrc: Ssrc) -> Ssrc {
    Ssrc::from((mix(u64::from(*ssrc)) as u32).max(1))
}

/// Declares, on `rtc`, `participant`'s own streams (`send`: what it sends; else what the
/// forwarder receives from it) and those of every room-mate on its leg (the other direction).
fn declare(rtc: &mut Rtc, room: u32, participant: u32, per_room: u32, own_send: bool) {
    let mut api = rtc.direct_api();
    for kind in [MediaKind::Audio, MediaKind::Video] {
        for sender in 0..per_room {
            let mid = mid(kind, sender);
            api.declare_media(mid, kind);
            let mine = sender == participant;
            let ssrc = if mine {
                up_ssrc(room, sender, kind)
            } else {
                down_ssrc(room, participant, sender, kind)
            };
            let rtx = (kind == MediaKind::Video).then(|| rtx_of(ssrc));
            if mine == own_send {
                api.declare_stream_tx(ssrc, rtx, mid, None);
            } else {
                api.expect_stream_rx(ssrc, rtx, mid, None);
            }
        }
    }
}

#[cfg(test)]
mod tests;
