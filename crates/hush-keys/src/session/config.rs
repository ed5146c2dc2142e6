//! [`Config`]: the session's settings and their defaults.

use core::time::Duration;

use ed25519_dalek::VerifyingKey;

use crate::epoch::SharedSecret;
use crate::ids::RoomId;

/// How the room gets its epoch secrets.
#[derive(Debug)]
#[non_exhaustive]
pub enum KeyMode {
    /// The default: the committer draws epochs and sends them in HPKE envelopes; ratchet on
    /// join, fresh secret on leave, removal and rekey.
    Exchange,
    /// Shared-secret mode, for apps that distribute one high-entropy room secret themselves:
    /// `E_0` comes from the secret and every relay event ratchets (`E_s = ratchet^s(E_0)`), with
    /// no envelopes. **Weaker**: anyone who ever held the secret (a member who left, a late
    /// joiner) can compute every epoch, past and future; it only keeps the relay out.
    SharedSecret(SharedSecret),
}

/// Session settings. [`Config::new`] gives the defaults.
#[derive(Debug)]
pub struct Config {
    /// The room id, bound into envelopes and the safety code.
    pub room: RoomId,
    /// Where epoch secrets come from.
    pub mode: KeyMode,
    /// How long a member waits for the committer's switch notice before it sends on a newly
    /// installed epoch anyway (default 1.5 s).
    pub switch_timeout: Duration,
    /// How long a receiver keeps an older epoch's keys after it switched (default 10 s).
    pub grace: Duration,
    /// After another member leaves or is removed, how long this member may go on sending on
    /// the epoch that member holds while it waits for the next one (default 2 s). Past it, the
    /// member stops every local stream ([`crate::KeyUpdate::StopSend`]: the frame layer drops
    /// frames instead of encrypting them) and reports [`crate::Event::KeyAwaited`] until that
    /// epoch (or a later one) is installed. The deadline runs from when the leave event
    /// arrives, so it also covers a leave queued behind an envelope that never comes.
    ///
    /// Why 2 s: it must exceed `switch_timeout` (1.5 s) plus one relay hop for the envelope, so
    /// that an honest but slow round (everyone switching on the timeout) never trips it; and it
    /// must stay well under `grace` (10 s), the time after which the members who moved on stop
    /// reading the old epoch anyway: a member still on it past that is heard by nobody but
    /// the one who left. 2 s bounds what the departed member can read to the deadline plus
    /// `switch_timeout` (3.5 s) instead of forever. See [`crate::manual`].
    pub stall_timeout: Duration,
    /// How long a member waits for the committer's envelope (after a join, leave, removal or
    /// rekey) before it reports [`crate::Event::CommitterStalled`] (default 10 s, the grace
    /// period: a committer that has not answered by the time the others drop the old epoch is
    /// not slow but silent). Reporting changes no key; a leave keeps failing closed.
    pub committer_timeout: Duration,
    /// The committer asks for a rekey this long after the last fresh epoch (default 10 min;
    /// `None`: never). A rekey keeps the safety code.
    pub rekey_interval: Option<Duration>,
    /// How many stream contexts (0..n) to install receive keys for, per member (default 4:
    /// microphone, camera, screen, screen audio).
    pub contexts: u8,
    /// With a key set, members refuse anyone without a valid backend attestation.
    pub attestation_key: Option<VerifyingKey>,
    /// The relay's nonce for this life of the room (`joined.room_instance`). Shared-secret mode
    /// mixes it into `E_0`: a room the relay forgot (empty timeout) and created again restarts
    /// its sequence numbers and sender indexes at 0, and without it would repeat every key and
    /// nonce of the earlier life. Exchange mode draws fresh epochs and does not need it.
    pub room_instance: Option<[u8; 16]>,
}

impl Config {
    /// Defaults for `room`: exchange mode, 1.5 s switch timeout, 10 s grace, 2 s stall
    /// deadline, 10 s committer deadline, 10 min rekey, 4 contexts, no attestations.
    pub fn new(room: RoomId) -> Self {
        Self {
            room,
            mode: KeyMode::Exchange,
            switch_timeout: Duration::from_millis(1500),
            grace: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(2),
            committer_timeout: Duration::from_secs(10),
            rekey_interval: Some(Duration::from_secs(600)),
            contexts: 4,
            attestation_key: None,
            room_instance: None,
        }
    }
}
