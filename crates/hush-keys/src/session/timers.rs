//! Timers: the switch deadline, retiring old epochs after the grace period, the rekey timer,
//! and failing closed on a stalled epoch (the stall and committer deadlines).

use alloc::vec::Vec;

use rand_core::CryptoRng;

use super::{
    Event, KeyMode, KeyUpdate, Output, REKEY_OVERDUE_AFTER, REKEY_RETRY, RekeyReason, Session, Wait,
};
use crate::time::Instant;

impl<R: CryptoRng> Session<R> {
    pub(super) fn rekey_due(&self) -> Option<Instant> {
        if !matches!(self.cfg.mode, KeyMode::Exchange)
            || !self.is_committer()
            || self.members.len() < 2
        {
            return None;
        }
        let interval = self.cfg.rekey_interval?;
        let due = self.last_fresh_at.saturating_add(interval);
        Some(match self.rekey_requested_at {
            Some(r) => due.max(r.saturating_add(REKEY_RETRY)),
            None => due,
        })
    }

    /// When the committer reports that no fresh epoch came although its timer asked
    /// ([`Event::RekeyOverdue`]), once per overdue period.
    pub(super) fn rekey_overdue_due(&self) -> Option<Instant> {
        if self.rekey_overdue_reported {
            return None;
        }
        // Only where the rekey timer runs; counted from its due time, not from a retry's
        // (retries push `rekey_due` on).
        self.rekey_due()?;
        let interval = self.cfg.rekey_interval?;
        Some(
            self.last_fresh_at
                .saturating_add(interval)
                .saturating_add(REKEY_OVERDUE_AFTER),
        )
    }

    pub(super) fn request_rekey(&mut self, now: Instant, reason: RekeyReason) {
        if self
            .rekey_requested_at
            .is_some_and(|r| now < r.saturating_add(REKEY_RETRY))
        {
            return;
        }
        self.rekey_requested_at = Some(now);
        self.outputs.push_back(Output::RequestRekey(reason));
    }

    pub(super) fn on_tick(&mut self, now: Instant) {
        // First, so that a switch due in this same tick is silent when the member stalls.
        self.check_stall(now);
        // The newest epoch whose deadline passed (older ones are moot once it switches).
        if let Some(e) = self
            .switch_deadlines
            .iter()
            .filter(|(_, d)| now >= **d)
            .map(|(e, _)| *e)
            .max()
        {
            self.switch_to(now, e);
        }
        let due: Vec<u64> = self
            .epochs
            .iter()
            .filter(|(_, st)| st.retire_at.is_some_and(|r| now >= r))
            .map(|(e, _)| *e)
            .collect();
        for e in due {
            if Some(e) == self.head || Some(e) == self.sending {
                continue;
            }
            if let Some(st) = self.epochs.remove(&e) {
                for kid in st.kids {
                    self.key(KeyUpdate::RetireReceive { kid });
                }
            }
        }
        if self.rekey_due().is_some_and(|d| now >= d) {
            self.request_rekey(now, RekeyReason::Timer);
        }
        if self.rekey_overdue_due().is_some_and(|d| now >= d) {
            self.rekey_overdue_reported = true;
            let epoch = self.head.unwrap_or(self.applied_seq);
            self.event(Event::RekeyOverdue { epoch });
        }
        self.check_committer(now);
    }

    // ------------------------------------------------------------ stalled epochs

    /// When the oldest unanswered departure's stall deadline passes (none while stalled: what
    /// ends a stall is an input, never time).
    pub(super) fn stall_due(&self) -> Option<Instant> {
        if self.stalled.is_some() {
            return None;
        }
        let first = self.departures.values().min()?;
        Some(first.saturating_add(self.cfg.stall_timeout))
    }

    /// When the committer's silence is to be reported, if this member waits for it.
    pub(super) fn committer_due(&self) -> Option<Instant> {
        let w = self.wait.filter(|w| !w.reported)?;
        Some(w.since.saturating_add(self.cfg.committer_timeout))
    }

    /// Stalled exactly while some departure older than the stall deadline has no epoch yet.
    fn check_stall(&mut self, now: Instant) {
        let overdue = self
            .departures
            .iter()
            .filter(|(_, t)| now >= t.saturating_add(self.cfg.stall_timeout))
            .map(|(s, _)| *s)
            .max();
        match (overdue, self.stalled) {
            (Some(epoch), None) => {
                self.stalled = Some(epoch);
                let streams: Vec<_> = self.local_streams.iter().copied().collect();
                for context in streams {
                    self.key(KeyUpdate::StopSend { context });
                }
                self.event(Event::KeyAwaited { epoch });
            }
            (Some(epoch), Some(was)) if epoch != was => {
                self.stalled = Some(epoch);
                self.event(Event::KeyAwaited { epoch });
            }
            (None, Some(_)) => self.resume(now),
            _ => {}
        }
    }

    /// The awaited epoch came: send again, on the newest epoch at once (it excludes every
    /// departed member; the room has normally switched to it already, the stall deadline being
    /// past the switch timeout), never on the one the departed member holds.
    fn resume(&mut self, now: Instant) {
        self.stalled = None;
        match (self.head, self.sending) {
            (Some(h), s) if s.is_none_or(|s| s < h) => self.switch_to(now, h),
            (_, Some(s)) => self.announce_sending(s),
            _ => {}
        }
    }

    /// Reports, once per wait, a committer that has not answered within its deadline.
    fn check_committer(&mut self, now: Instant) {
        let Some(w) = self.wait else { return };
        if w.reported || now < w.since.saturating_add(self.cfg.committer_timeout) {
            return;
        }
        self.wait = Some(Wait {
            reported: true,
            ..w
        });
        if let Some(committer) = self
            .member_by_index(w.committer)
            .map(|m| m.participant.clone())
        {
            self.event(Event::CommitterStalled {
                epoch: w.epoch,
                committer,
            });
        }
    }
}
