//! The sans-IO key state machine: [`Session::handle_input`] with an explicit time, then
//! [`Session::poll_output`] until it returns `None`. No I/O, no clock, no OS randomness: the RNG
//! is the caller's. See [`crate::manual`] for the protocol.
//!
//! The machine is split along its seams: [`config`](Config) and the inputs and outputs
//! (`io.rs`), the membership log (`membership.rs`), epochs and the switch round (`epochs.rs`),
//! key messages (`messages.rs`), the safety-code round (`code.rs`) and timers, the stall deadline included (`timers.rs`).

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;
use core::time::Duration;

use rand_core::CryptoRng;

use crate::epoch::EpochSecret;
use crate::error::{Error, UsageError};
use crate::identity::IdentityKeyPair;
use crate::ids::ParticipantId;
use crate::kid::{Kid, SenderIndex, StreamContext};
use crate::member::{Member, MembershipEvent};
use crate::safety::SafetyCode;
use crate::time::Instant;

mod code;
mod config;
mod epochs;
mod io;
mod membership;
mod messages;
mod pre_join;
mod timers;

pub use config::{Config, KeyMode};
pub use io::{Destination, Event, Input, KeyUpdate, Output, RekeyReason, Transmit};
pub use pre_join::JoinHorizon;

const MAX_QUEUED_EVENTS: usize = 4096;
/// What the queued events may take in memory, about (see `event_bytes`): a relay that parks
/// thousands of large events behind a gap it never fills cannot grow a Worker's heap past it.
const MAX_QUEUED_EVENT_BYTES: usize = 1 << 20;
const MAX_EARLY_ENVELOPES: usize = 32;
const MAX_EARLY_ACKS: usize = 4096;
/// Key messages for epochs further ahead than this (past the newest relay event received) are
/// refused, not buffered: a member cannot park envelopes for epoch 2^63 and keep them forever.
pub const EARLY_EPOCH_WINDOW: u64 = 64;
/// Shared-secret mode ratchets `E_0` once per relay event up to the join sequence; a snapshot
/// whose sequence number is larger than this is refused ([`MembershipError::SequenceTooLarge`])
/// instead of hanging the client in the ratchet loop.
///
/// [`MembershipError::SequenceTooLarge`]: crate::MembershipError::SequenceTooLarge
pub const MAX_SHARED_SECRET_SEQ: u64 = 1 << 16;
const REKEY_RETRY: Duration = Duration::from_secs(30);
/// How long past its rekey timer the committer waits for a fresh epoch before it reports
/// [`Event::RekeyOverdue`]: three times the retry, so a rekey lost once or twice is not one.
const REKEY_OVERDUE_AFTER: Duration = Duration::from_secs(90);

struct EpochState {
    secret: EpochSecret,
    kids: Vec<Kid>,
    retire_at: Option<Instant>,
}

/// An envelope this member waits for before it applies more of the log.
#[derive(Clone, Copy)]
struct Wait {
    epoch: u64,
    committer: SenderIndex,
    /// When the wait began (the committer's deadline runs from here).
    since: Instant,
    /// [`Event::CommitterStalled`] was reported for this wait.
    reported: bool,
}

impl Wait {
    fn new(epoch: u64, committer: SenderIndex, since: Instant) -> Self {
        Self {
            epoch,
            committer,
            since,
            reported: false,
        }
    }
}

/// A member's key state for one room. See the crate docs for the run loop.
pub struct Session<R> {
    cfg: Config,
    rng: R,
    identity: IdentityKeyPair,
    participant: ParticipantId,
    me: Option<SenderIndex>,
    /// This member's join: its sequence number and when it was applied.
    joined: Option<(u64, Instant)>,
    removed: bool,
    /// Current members (this one included), by join sequence: the first is the committer.
    members: BTreeMap<u64, Member>,
    seen_indexes: BTreeSet<SenderIndex>,
    applied_seq: u64,
    events: BTreeMap<u64, MembershipEvent>,
    epochs: BTreeMap<u64, EpochState>,
    /// The newest epoch whose secret this member holds and can ratchet from.
    head: Option<u64>,
    wait: Option<Wait>,
    sending: Option<u64>,
    /// Per installed epoch not yet sent on: when to switch to it without a notice.
    switch_deadlines: BTreeMap<u64, Instant>,
    /// Committer: the ack rounds in progress, by epoch.
    collecting: BTreeMap<u64, BTreeSet<SenderIndex>>,
    /// The sending epoch when a usage-limit rekey was last asked for.
    usage_rekey_for: Option<u64>,
    /// Envelopes for epochs not applied yet: (epoch, claimed sender, bytes).
    early_envelopes: Vec<(u64, SenderIndex, Vec<u8>)>,
    early_acks: Vec<Vec<u8>>,
    early_switch: Option<(u64, Vec<u8>)>,
    /// The newest epoch whose committer's switch notice was accepted (a second copy of it is a
    /// replay; a first copy for an epoch already sent on is late).
    switch_noticed: Option<u64>,
    last_envelope_epoch: Option<u64>,
    local_streams: BTreeSet<StreamContext>,
    membership_dirty: bool,
    /// The last complete safety code; `None` while a round is in progress.
    safety: Option<SafetyCode>,
    /// `Event::SafetyCodePending` was said since the last code (said once per wait).
    code_pending_said: bool,
    /// The safety-code round in progress, if any.
    code_round: Option<code::CodeRound>,
    /// The membership epoch of the latest round started (in progress or complete).
    code_epoch: Option<u64>,
    /// Commits and reveals for a round not started yet: (epoch, bytes).
    early_code: Vec<(u64, Vec<u8>)>,
    last_fresh_at: Instant,
    rekey_requested_at: Option<Instant>,
    /// [`Event::RekeyOverdue`] was reported since the last fresh epoch.
    rekey_overdue_reported: bool,
    /// The last epoch for which [`Event::RosterMismatch`] was reported.
    roster_mismatch_reported: Option<u64>,
    /// Another member's leave or removal, received but not yet answered by an installed epoch:
    /// event sequence number (the epoch that excludes the departed member) -> when it came.
    departures: BTreeMap<u64, Instant>,
    /// While the stall deadline of a departure has passed: the epoch awaited (local streams are
    /// stopped).
    stalled: Option<u64>,
    outputs: VecDeque<Output>,
}

impl<R> core::fmt::Debug for Session<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("me", &self.me)
            .field("members", &self.members.len())
            .field("applied_seq", &self.applied_seq)
            .field("head", &self.head)
            .field("sending", &self.sending)
            .field("stalled", &self.stalled)
            .finish_non_exhaustive()
    }
}

impl<R: CryptoRng> Session<R> {
    /// A session for `participant` with `identity`; it starts when [`Input::Joined`] arrives.
    pub fn new(cfg: Config, identity: IdentityKeyPair, participant: ParticipantId, rng: R) -> Self {
        Self {
            cfg,
            rng,
            identity,
            participant,
            me: None,
            joined: None,
            removed: false,
            members: BTreeMap::new(),
            seen_indexes: BTreeSet::new(),
            applied_seq: 0,
            events: BTreeMap::new(),
            epochs: BTreeMap::new(),
            head: None,
            wait: None,
            sending: None,
            switch_deadlines: BTreeMap::new(),
            collecting: BTreeMap::new(),
            usage_rekey_for: None,
            early_envelopes: Vec::new(),
            early_acks: Vec::new(),
            early_switch: None,
            switch_noticed: None,
            last_envelope_epoch: None,
            local_streams: BTreeSet::new(),
            membership_dirty: false,
            safety: None,
            code_pending_said: false,
            code_round: None,
            code_epoch: None,
            early_code: Vec::new(),
            last_fresh_at: Instant::default(),
            rekey_requested_at: None,
            rekey_overdue_reported: false,
            roster_mismatch_reported: None,
            departures: BTreeMap::new(),
            stalled: None,
            outputs: VecDeque::new(),
        }
    }

    /// Feeds one input at time `now`. An error refuses that input only; the session stays
    /// usable (except after [`UsageError::Removed`]).
    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) -> Result<(), Error> {
        if self.removed {
            return Err(UsageError::Removed.into());
        }
        let r = match input {
            Input::Joined { seq, members } => self.on_joined(now, seq, members),
            Input::Membership(ev) => self.on_event(now, ev),
            Input::Message(bytes) => self.on_message(now, bytes),
            Input::MessageFrom { from, bytes } => {
                self.check_claimed_sender(from, bytes)?;
                self.on_message(now, bytes)
            }
            Input::LocalStreamStarted(ctx) => {
                self.require_joined()?;
                if self.local_streams.insert(ctx)
                    && let Some(e) = self.sending
                {
                    self.emit_send_key(ctx, e);
                }
                Ok(())
            }
            Input::LocalStreamStopped(ctx) => {
                self.local_streams.remove(&ctx);
                Ok(())
            }
            Input::UsageLimitNear(_) => {
                self.require_joined()?;
                // Once per sending epoch: the next epoch brings fresh keys for every stream.
                if self.usage_rekey_for != self.sending || self.sending.is_none() {
                    self.usage_rekey_for = self.sending;
                    self.rekey_requested_at = None;
                    self.request_rekey(now, RekeyReason::UsageLimit);
                }
                Ok(())
            }
            Input::Tick => {
                self.on_tick(now);
                Ok(())
            }
        };
        // Time-driven work also runs on every input, so a late Tick never loses a deadline.
        if !self.removed && self.me.is_some() {
            self.on_tick(now);
        }
        r
    }

    /// The next output, or `None` when there is nothing to do until the next input.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When to feed [`Input::Tick`] next, if any timer runs.
    pub fn next_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = self.switch_deadlines.values().min().copied();
        let mut min = |x: Instant| t = Some(t.map_or(x, |y| y.min(x)));
        for st in self.epochs.values() {
            if let Some(r) = st.retire_at {
                min(r);
            }
        }
        if let Some(r) = self.rekey_due() {
            min(r);
        }
        if let Some(s) = self.stall_due() {
            min(s);
        }
        if let Some(c) = self.committer_due() {
            min(c);
        }
        if let Some(o) = self.rekey_overdue_due() {
            min(o);
        }
        t
    }

    /// The safety code to show: `None` from the moment a membership change is applied until
    /// the round of the new roster has completed (show it as pending).
    pub fn safety_code(&self) -> Option<SafetyCode> {
        self.safety
    }

    /// The epoch local streams send on; `None` before the first one and while a key is awaited
    /// ([`Session::awaited_epoch`]).
    pub fn sending_epoch(&self) -> Option<u64> {
        self.sending.filter(|_| self.stalled.is_none())
    }

    /// While local streams are stopped because the epoch that follows a leave or removal has not
    /// come within [`Config::stall_timeout`]: that epoch (see [`Event::KeyAwaited`]).
    pub fn awaited_epoch(&self) -> Option<u64> {
        self.stalled
    }

    /// The newest epoch installed.
    pub fn latest_epoch(&self) -> Option<u64> {
        self.epochs.keys().next_back().copied()
    }

    /// This member's sender index, once joined.
    pub fn sender_index(&self) -> Option<SenderIndex> {
        self.me
    }

    /// True when this member is the committer (the earliest joined).
    pub fn is_committer(&self) -> bool {
        self.me.is_some() && self.committer().map(|m| m.sender_index) == self.me
    }

    /// The current members (this one included), in join order.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// The digest of the members admitted now ([`crate::roster`]): what an envelope this member
    /// seals carries, and what one it opens must carry.
    pub fn roster_digest(&self) -> crate::roster::RosterDigest {
        crate::roster::digest(&self.cfg.room, self.members.values())
    }

    /// The sequence number of the last relay event applied.
    pub fn applied_seq(&self) -> u64 {
        self.applied_seq
    }

    /// Whether a frame under `kid`, which no installed key opens, was sealed before this member
    /// joined: its sender is a current member who joined earlier, and its epoch lies up to 16
    /// before the join.
    ///
    /// A newcomer never holds those epochs (each join moves the room to a new one, so the past
    /// stays closed to newcomers), and the others go on sealing under the old epoch until the
    /// newcomer has the new one: a newcomer's first frames can be such frames. They are
    /// expected, not a failure; the browser's transforms count them as `before_join` and raise
    /// no failure event.
    ///
    /// Only for the grace period after the join ([`Config::grace`], how long an old epoch stays
    /// open anywhere): later, a frame under a pre-join epoch is no honest sender's. `false`
    /// before the join, and once the room is 240 epochs past it (a KID's 8 epoch bits no
    /// longer tell those epochs from later ones). The KID is not authenticated (no key opens
    /// the frame), so a relay can pass any frame off as one: it hides such a frame from the
    /// failure count for at most the grace period, and only frames nobody could open anyway.
    pub fn predates_join(&self, now: Instant, kid: Kid) -> bool {
        let (Some((join, at)), Some(_)) = (self.joined, self.me) else {
            return false;
        };
        let Some((_, sender, low)) = Kid::unpack(kid.get()) else {
            return false;
        };
        now < at.saturating_add(self.cfg.grace)
            && self
                .member_by_index(sender)
                .is_some_and(|m| m.join_seq < join)
            && pre_join::precedes(join, self.newest_seq(), low)
    }

    /// The newest membership event this member knows of: applied, or waiting for an earlier
    /// one.
    fn newest_seq(&self) -> u64 {
        self.events
            .keys()
            .next_back()
            .map_or(self.applied_seq, |&seq| seq.max(self.applied_seq))
    }

    /// What [`Session::predates_join`] decides on, as a value another thread can keep (the
    /// native client's receive tasks): valid until the next input. `None` before the join.
    pub fn join_horizon(&self) -> Option<JoinHorizon> {
        let (join, at) = self.joined?;
        self.me?;
        Some(JoinHorizon {
            join,
            newest: self.newest_seq(),
            until: at.saturating_add(self.cfg.grace),
            senders: self
                .members
                .values()
                // This member's own join_seq is `join`: it is left out too.
                .filter(|m| m.join_seq < join)
                .map(|m| m.sender_index)
                .collect(),
        })
    }

    // ---------------------------------------------------------------- outputs

    fn transmit(&mut self, to: Destination, payload: Vec<u8>) {
        self.outputs
            .push_back(Output::Transmit(Transmit { to, payload }));
    }

    fn key(&mut self, k: KeyUpdate) {
        self.outputs.push_back(Output::Key(k));
    }

    fn event(&mut self, e: Event) {
        self.outputs.push_back(Output::Event(e));
    }
}
