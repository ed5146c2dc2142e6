//! The media adapter: one webrtc-rs `PeerConnection` per participant, forwarding RTP between
//! them with payloads untouched.
//!
//! Each participant's connection is an actor task (`peer`) fed by the driver through a bounded
//! command queue. A published track's packets go from the publisher's receive loop through a
//! `fanout::Fanout` into each subscriber's bounded queue, and from there to the subscriber's
//! local track with only the header rewritten: SSRC, payload type (as the subscriber numbered
//! the codec), and header extensions (the few that describe the media are renumbered for the
//! subscriber's leg, per-hop ones are dropped; see `header::FORWARDED_EXTENSIONS`).
//!
//! Simulcast: a publisher may send up to three encodings of a video (`layers`). Each subscriber
//! leg estimates its bandwidth (GCC on transport-wide feedback, `peer::allocation`), the
//! `allocator` picks one encoding per forwarded video, and the fan-out switches the subscriber at
//! a keyframe it recognises without decrypting (`keyframe`), renumbering sequence numbers and
//! timestamps so the decoder sees one stream. Retransmissions to a subscriber come from a
//! two-second history and stay within a share of its estimate (`retransmit`).
//! Negotiation follows the contract in the crate's signaling docs: the client offers what it
//! sends, the relay offers what it forwards, and the relay is the impolite peer.
//!
//! What webrtc-rs 0.21 needs to interoperate with browsers, each documented where it is done:
//! forwarded tracks get their own send-only transceivers (`add_track` would reuse the client's
//! own send m-line); an interceptor (`feedback`) lets subscribers' PLI/FIR reach the relay;
//! no receiver reports, so browsers keep naming simulcast encodings by `rid` (webrtc-rs forgets
//! the mapping at each renegotiation; `peer::build_pc`); the relay answers NACKs itself
//! (`retransmit`: webrtc-rs's responder keeps 1,024 packets a stream and resends without limit);
//! the relay's first offer waits briefly for the client's so that header-extension ids are the
//! client's; answers keep the DTLS role of the running transport (`sdp`); candidates name the
//! bundle's mid.

mod allocator;
pub(crate) mod fanout;
mod feedback;
mod header;
pub mod keyframe;
mod layers;
pub(crate) mod peer;
pub mod ports;
mod retransmit;
pub mod sdp;
pub(crate) mod threads;

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use hush_proto::TrackId;

/// Called with every forwarded RTP payload and the track it belongs to, on the publisher's
/// receive path (once per packet, before fan-out). For tests that assert the relay only ever
/// sees ciphertext; keep it cheap, it runs on the media path.
pub type ForwardTap = Arc<dyn Fn(TrackId, &[u8]) + Send + Sync>;

/// How the media side binds and what it tells peers.
#[derive(Clone)]
pub struct MediaOptions {
    /// The local address media sockets bind to (one UDP port per participant, from
    /// [`MediaOptions::udp_ports`] when set). A loopback
    /// address gives loopback host candidates only (development, tests).
    pub udp_ip: IpAddr,
    /// The public address to announce in host candidates instead of `udp_ip` (1:1 NAT).
    pub public_ip: Option<IpAddr>,
    /// See [`ForwardTap`].
    pub forward_tap: Option<ForwardTap>,
    /// How long the relay's first offer waits for the client's own first offer when the
    /// client's `join` did not say whether it offers first (default
    /// [`FIRST_OFFER_HOLD`]; the `join` field `offers_first` explains why it waits at all).
    pub first_offer_hold: Duration,
    /// TURN servers handed to clients in `joined`, with credentials minted per participant.
    pub turn: Option<crate::turn::TurnConfig>,
    /// The UDP ports media sessions bind (one each, see [`ports`]); `None`: any free port.
    pub udp_ports: Option<Arc<ports::PortRange>>,
    /// Retransmissions refused by the subscriber legs' budgets (`retransmit`), for /metrics.
    pub retransmits_refused: Arc<std::sync::atomic::AtomicU64>,
    /// Media threads, each running whole rooms (see [`threads`]); 0: one per CPU core.
    pub threads: usize,
}

/// The default [`MediaOptions::first_offer_hold`].
///
/// A publishing client offers right after `joined`. Answering that first lets the relay adopt
/// the client's header-extension ids (webrtc-rs reuses negotiated ids in later offers); offering
/// first makes webrtc-rs number them itself (`sdes:mid` = 1 where Chromium uses 9), and Chromium
/// then refuses its own next offer ("codec collision") or, after a glare rollback, the relay's
/// ("RTP extension ID reassignment not supported"). It also avoids the glare round trip. A
/// client that says it publishes nothing (`join` with `offers_first: false`) gets the relay's
/// offer at once; one that does not say gets it after this delay.
pub const FIRST_OFFER_HOLD: Duration = Duration::from_millis(1000);

impl Default for MediaOptions {
    fn default() -> Self {
        Self {
            udp_ip: IpAddr::from([127, 0, 0, 1]),
            public_ip: None,
            forward_tap: None,
            first_offer_hold: FIRST_OFFER_HOLD,
            turn: None,
            udp_ports: None,
            retransmits_refused: Arc::default(),
            threads: 0,
        }
    }
}

impl fmt::Debug for MediaOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaOptions")
            .field("udp_ip", &self.udp_ip)
            .field("public_ip", &self.public_ip)
            .field("forward_tap", &self.forward_tap.is_some())
            .field("first_offer_hold", &self.first_offer_hold)
            .field("turn", &self.turn)
            .field(
                "udp_ports",
                &self.udp_ports.as_ref().map(ToString::to_string),
            )
            .field("threads", &self.threads)
            .finish()
    }
}
