//! The membership log: the snapshot, relay events applied in order, joins, leaves and removals.

use alloc::vec::Vec;

use rand_core::CryptoRng;

use super::{
    Event, KeyMode, KeyUpdate, MAX_QUEUED_EVENT_BYTES, MAX_QUEUED_EVENTS, MAX_SHARED_SECRET_SEQ,
    Session, Wait,
};
use crate::envelope::Reason;
use crate::error::{Error, MembershipError, UsageError};
use crate::ids::ParticipantId;
use crate::kid::{Kid, SenderIndex};
use crate::member::{Change, Member, MembershipEvent};
use crate::time::Instant;

impl<R: CryptoRng> Session<R> {
    pub(super) fn require_joined(&self) -> Result<SenderIndex, Error> {
        self.me.ok_or(Error::Usage(UsageError::NotJoined))
    }

    /// The earliest joined active member (a recorder never commits: it cannot send).
    pub(super) fn committer(&self) -> Option<&Member> {
        self.members.values().find(|m| m.role.is_active())
    }

    pub(super) fn member_by_index(&self, idx: SenderIndex) -> Option<&Member> {
        self.members.values().find(|m| m.sender_index == idx)
    }

    /// Checks `m` before it is admitted. `now`: check its attestation's expiry at that time (a
    /// join event); `None` for an entry of the snapshot, a member that was there before this
    /// one, whose attestation the members then checked when it joined (see
    /// [`crate::Attestation::verify_signature_as`]).
    pub(super) fn validate(&self, now: Option<Instant>, m: &Member) -> Result<(), MembershipError> {
        if self
            .members
            .values()
            .any(|x| x.participant == m.participant)
        {
            return Err(MembershipError::DuplicateParticipant);
        }
        if self.seen_indexes.contains(&m.sender_index) {
            return Err(MembershipError::SenderIndexReused);
        }
        if self.members.contains_key(&m.join_seq) {
            return Err(MembershipError::BadJoinSequence);
        }
        if !self.identity.agrees_with(&m.identity) {
            return Err(MembershipError::BadIdentityKey);
        }
        if let Some(vk) = &self.cfg.attestation_key {
            let a = m
                .attestation
                .as_ref()
                .ok_or(MembershipError::MissingAttestation)?;
            match now {
                Some(now) => {
                    a.verify_as(vk, m.role, &self.cfg.room, &m.participant, &m.identity, now)?
                }
                None => {
                    a.verify_signature_as(vk, m.role, &self.cfg.room, &m.participant, &m.identity)?
                }
            }
        }
        Ok(())
    }

    pub(super) fn admit(&mut self, now: Option<Instant>, m: Member) -> bool {
        match self.validate(now, &m) {
            Ok(()) => {
                let seq = m.join_seq;
                self.seen_indexes.insert(m.sender_index);
                self.members.insert(seq, m);
                self.membership_dirty = true;
                // The code shown described the roster before this join.
                self.withdraw_code(seq);
                true
            }
            Err(reason) => {
                self.event(Event::MemberRefused {
                    participant: m.participant,
                    reason,
                });
                false
            }
        }
    }

    pub(super) fn on_joined(
        &mut self,
        now: Instant,
        seq: u64,
        members: Vec<Member>,
    ) -> Result<(), Error> {
        if self.me.is_some() {
            return Err(UsageError::AlreadyJoined.into());
        }
        if matches!(self.cfg.mode, KeyMode::SharedSecret(_)) && seq > MAX_SHARED_SECRET_SEQ {
            // `E_seq = ratchet^seq(E_0)`: one HMAC per step, and `seq` is the relay's.
            return Err(MembershipError::SequenceTooLarge.into());
        }
        let own = members
            .iter()
            .find(|m| m.participant == self.participant && m.identity == *self.identity.public())
            .ok_or(MembershipError::NotInSnapshot)?;
        if own.join_seq != seq {
            return Err(MembershipError::BadJoinSequence.into());
        }
        let me = own.sender_index;
        let my_identity = *self.identity.public();
        // Our index is taken before any other entry is checked: a snapshot that lists someone
        // else with our sender index ahead of our own entry must not get both admitted (found
        // by fuzz/fuzz_targets/keys_snapshot.rs).
        self.seen_indexes.insert(me);
        for m in members {
            if m.participant == self.participant {
                // Only our own exact entry is taken unchecked. Any other entry under our id
                // (a relay inventing a second "us" with its own key and an earlier join, to
                // become the committer) is refused like any duplicate.
                let exact = m.join_seq == seq
                    && m.identity == my_identity
                    && !self.members.contains_key(&seq);
                if exact {
                    self.seen_indexes.insert(m.sender_index);
                    self.members.insert(m.join_seq, m);
                } else {
                    self.event(Event::MemberRefused {
                        participant: m.participant,
                        reason: MembershipError::DuplicateParticipant,
                    });
                }
            } else if m.join_seq >= seq {
                self.event(Event::MemberRefused {
                    participant: m.participant,
                    reason: MembershipError::BadJoinSequence,
                });
            } else {
                self.admit(None, m);
            }
        }
        self.me = Some(me);
        self.joined = Some((seq, now));
        self.applied_seq = seq;
        self.membership_dirty = true;
        self.last_fresh_at = now;
        self.rekey_overdue_reported = false;
        self.events.retain(|s, _| *s > seq);
        self.departures.retain(|s, _| *s > seq);
        match &self.cfg.mode {
            KeyMode::SharedSecret(s) => {
                let mut e = s.epoch_zero(self.cfg.room.as_bytes(), self.cfg.room_instance);
                for n in 1..=seq {
                    e = e.ratchet(n);
                }
                self.install(now, seq, e, false);
            }
            KeyMode::Exchange => {
                if self.is_committer() {
                    self.fresh_epoch(now, seq, Reason::Join);
                } else if let Some(c) = self.committer().map(|c| c.sender_index) {
                    self.wait = Some(Wait::new(seq, c, now));
                    self.try_early_envelopes(now);
                }
            }
        }
        self.prune_early();
        self.process_queue(now);
        Ok(())
    }

    pub(super) fn on_event(&mut self, now: Instant, ev: MembershipEvent) -> Result<(), Error> {
        if ev.seq <= self.applied_seq || self.events.contains_key(&ev.seq) {
            return Err(MembershipError::StaleEvent.into());
        }
        if self.events.len() >= MAX_QUEUED_EVENTS {
            return Err(MembershipError::EventBufferFull.into());
        }
        let queued: usize = self.events.values().map(event_bytes).sum();
        if queued.saturating_add(event_bytes(&ev)) > MAX_QUEUED_EVENT_BYTES {
            return Err(MembershipError::EventBufferFull.into());
        }
        // Another member's departure starts the stall deadline now, when it arrives, even if
        // it waits in the queue behind an envelope that never comes.
        if let Change::Leave(p) | Change::Remove(p) = &ev.change
            && *p != self.participant
            && matches!(self.cfg.mode, KeyMode::Exchange)
        {
            self.departures.insert(ev.seq, now);
        }
        self.events.insert(ev.seq, ev);
        if self.me.is_some() {
            self.process_queue(now);
        }
        Ok(())
    }

    /// Applies queued events in order while no envelope is awaited.
    pub(super) fn process_queue(&mut self, now: Instant) {
        loop {
            if self.removed {
                return;
            }
            if let Some(w) = self.wait {
                // The committer we wait for leaves later in the log: it may never answer. Give
                // up on that epoch; the next committer answers the leave with a fresh one.
                let pid = self
                    .member_by_index(w.committer)
                    .map(|m| m.participant.clone());
                let leaves = self.events.values().any(|ev| match (&ev.change, &pid) {
                    (Change::Leave(p) | Change::Remove(p), Some(c)) => p == c,
                    (_, None) => true,
                    _ => false,
                });
                if !leaves {
                    return;
                }
                self.wait = None;
                self.head = None;
            }
            // A relay-chosen sequence number can be u64::MAX: then no event can follow it.
            let Some(next) = self.applied_seq.checked_add(1) else {
                return;
            };
            let Some(ev) = self.events.remove(&next) else {
                return;
            };
            self.apply(now, ev);
        }
    }

    pub(super) fn apply(&mut self, now: Instant, ev: MembershipEvent) {
        self.applied_seq = ev.seq;
        let seq = ev.seq;
        match ev.change {
            Change::Join(m) => {
                if m.join_seq != seq {
                    self.event(Event::MemberRefused {
                        participant: m.participant,
                        reason: MembershipError::BadJoinSequence,
                    });
                    return;
                }
                let idx = m.sender_index;
                if self.admit(Some(now), m) {
                    self.new_epoch(now, seq, Reason::Join, Some(idx));
                }
            }
            Change::Leave(pid) | Change::Remove(pid) if pid == self.participant => {
                self.on_removed()
            }
            Change::Leave(pid) => self.on_leave(now, seq, &pid, Reason::Leave),
            Change::Remove(pid) => self.on_leave(now, seq, &pid, Reason::Removal),
            Change::Rekey => self.new_epoch(now, seq, Reason::Rekey, None),
            Change::RekeyRequested(by) => {
                let fresh = self
                    .committer()
                    .is_some_and(|c| by.contains(&c.participant));
                if fresh {
                    self.new_epoch(now, seq, Reason::Rekey, None);
                } else {
                    self.ratchet_epoch(now, seq);
                }
            }
            Change::Refused(_) => {}
        }
        self.early_envelopes
            .retain(|(e, _, _)| *e > seq || self.wait.is_some_and(|w| w.epoch == *e));
    }

    pub(super) fn on_leave(&mut self, now: Instant, seq: u64, pid: &ParticipantId, reason: Reason) {
        let Some(js) = self
            .members
            .iter()
            .find(|(_, m)| m.participant == *pid)
            .map(|(k, _)| *k)
        else {
            // Not a member (a refused ghost, say): nothing changes, no epoch to wait for.
            self.departures.remove(&seq);
            return;
        };
        let Some(gone) = self.members.remove(&js) else {
            return;
        };
        self.membership_dirty = true;
        // The code shown described the roster before this departure.
        self.withdraw_code(seq);
        // Its keys stop working at once, in every epoch still held.
        let idx = gone.sender_index;
        let mut retired = Vec::new();
        for st in self.epochs.values_mut() {
            st.kids.retain(|k| {
                let keep = Kid::unpack(k.get()).is_none_or(|(_, s, _)| s != idx);
                if !keep {
                    retired.push(*k);
                }
                keep
            });
        }
        for kid in retired {
            self.key(KeyUpdate::RetireReceive { kid });
        }
        for missing in self.collecting.values_mut() {
            missing.remove(&idx);
        }
        self.new_epoch(now, seq, reason, None);
        self.maybe_complete_collect(now);
    }

    pub(super) fn on_removed(&mut self) {
        self.removed = true;
        let epochs = core::mem::take(&mut self.epochs);
        for st in epochs.into_values() {
            for kid in st.kids {
                self.key(KeyUpdate::RetireReceive { kid });
            }
        }
        let streams: Vec<_> = self.local_streams.iter().copied().collect();
        for context in streams {
            self.key(KeyUpdate::StopSend { context });
        }
        self.head = None;
        self.sending = None;
        self.wait = None;
        self.collecting.clear();
        self.switch_deadlines.clear();
        self.departures.clear();
        self.stalled = None;
        self.event(Event::Removed);
    }
}

/// About what a queued event takes in memory: a fixed part, and its ids and keys.
fn event_bytes(ev: &MembershipEvent) -> usize {
    const FIXED: usize = 64;
    FIXED
        + match &ev.change {
            Change::Join(m) => {
                m.participant.as_bytes().len() + 32 + m.attestation.as_ref().map_or(0, |_| 128)
            }
            Change::Leave(p) | Change::Remove(p) | Change::Refused(p) => p.as_bytes().len(),
            Change::RekeyRequested(by) => by.iter().map(|p| p.as_bytes().len() + 24).sum(),
            _ => 0,
        }
}
