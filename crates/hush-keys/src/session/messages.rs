//! Key messages: envelopes, acks and switch notices, and the bounded buffers for early ones.

use alloc::vec::Vec;

use rand_core::CryptoRng;

use super::{EARLY_EPOCH_WINDOW, Event, KeyMode, MAX_EARLY_ACKS, MAX_EARLY_ENVELOPES, Session};
use crate::envelope::{self, EnvelopeHeader, Message, Reason};
use crate::error::{EnvelopeError, Error};
use crate::ids::ParticipantId;
use crate::kid::SenderIndex;
use crate::time::Instant;

impl<R: CryptoRng> Session<R> {
    /// Refuses a message whose claimed sender index is not that of `from`, when `from` is a
    /// current member (messages from members not applied yet are checked when opened).
    pub(super) fn check_claimed_sender(
        &self,
        from: &ParticipantId,
        bytes: &[u8],
    ) -> Result<(), Error> {
        let (_, claimed) = Message::parse(bytes)?.epoch_and_sender();
        match self.members.values().find(|m| m.participant == *from) {
            Some(m) if m.sender_index != claimed => Err(EnvelopeError::Forged.into()),
            _ => Ok(()),
        }
    }

    pub(super) fn on_message(&mut self, now: Instant, bytes: &[u8]) -> Result<(), Error> {
        let msg = Message::parse(bytes)?;
        match msg {
            Message::Envelope { header, bytes } => self.on_envelope(now, header, bytes),
            Message::Ack {
                epoch,
                sender,
                bytes,
            } => self.on_ack(now, epoch, sender, bytes),
            Message::Switch {
                epoch,
                sender,
                bytes,
            } => self.on_switch(now, epoch, sender, bytes),
            Message::Code {
                reveal,
                epoch,
                sender,
                value,
                bytes,
            } => self.on_code(reveal, epoch, sender, value, bytes),
        }
    }

    /// The furthest epoch a key message may name and still be kept for later: the newest relay
    /// event received (applied or queued) plus [`EARLY_EPOCH_WINDOW`]. `None` before the
    /// snapshot (nothing is known yet; the buffer's size bounds what is kept).
    pub(super) fn early_bound(&self) -> Option<u64> {
        self.me?;
        let newest = self
            .events
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
            .max(self.applied_seq);
        Some(newest.saturating_add(EARLY_EPOCH_WINDOW))
    }

    /// Keeps an envelope for an epoch whose event has not been applied yet. Bounded twice: by
    /// epoch ([`Session::early_bound`]) and by count. When full, the sender (as the envelope
    /// claims it; a current member cannot claim another's index, see
    /// [`Session::check_claimed_sender`]) holding the most entries gives way, its entry for the
    /// furthest epoch first; if that is the newcomer's own sender, the newcomer is refused. So a
    /// member flooding envelopes, before or after the committer's, only ever displaces its own.
    pub(super) fn buffer_envelope(
        &mut self,
        epoch: u64,
        sender: SenderIndex,
        bytes: &[u8],
    ) -> Result<(), Error> {
        if self.early_bound().is_some_and(|b| epoch > b) {
            return Err(EnvelopeError::UnexpectedEpoch.into());
        }
        if self.early_envelopes.iter().any(|(_, _, b)| b == bytes) {
            return Err(EnvelopeError::Replayed.into());
        }
        if self.early_envelopes.len() >= MAX_EARLY_ENVELOPES {
            let count = |s: SenderIndex| {
                self.early_envelopes
                    .iter()
                    .filter(|(_, x, _)| *x == s)
                    .count()
            };
            let top = self
                .early_envelopes
                .iter()
                .map(|(_, s, _)| *s)
                .max_by_key(|s| count(*s));
            let Some(top) = top.filter(|t| count(*t) > count(sender)) else {
                return Err(EnvelopeError::BufferFull.into());
            };
            let far = self
                .early_envelopes
                .iter()
                .filter(|(_, s, _)| *s == top)
                .map(|(e, _, _)| *e)
                .max();
            if let Some(i) = self
                .early_envelopes
                .iter()
                .position(|(e, s, _)| *s == top && Some(*e) == far)
            {
                self.early_envelopes.remove(i);
            }
        }
        self.early_envelopes.push((epoch, sender, bytes.to_vec()));
        Ok(())
    }

    /// Drops buffered key messages that the bound refuses now (after the snapshot).
    pub(super) fn prune_early(&mut self) {
        let Some(bound) = self.early_bound() else {
            return;
        };
        let floor = self.applied_seq;
        self.early_envelopes.retain(|(e, _, _)| {
            *e <= bound && (*e > floor || self.wait.is_some_and(|w| w.epoch == *e))
        });
        self.early_acks
            .retain(|b| control_epoch(b).is_some_and(|e| e <= bound));
        if self.early_switch.as_ref().is_some_and(|(e, _)| *e > bound) {
            self.early_switch = None;
        }
    }

    pub(super) fn on_envelope(
        &mut self,
        now: Instant,
        h: EnvelopeHeader,
        bytes: &[u8],
    ) -> Result<(), Error> {
        if let KeyMode::SharedSecret(_) = self.cfg.mode {
            return Err(EnvelopeError::UnexpectedEpoch.into());
        }
        let Some(me) = self.me else {
            // Before the snapshot: keep it for when we know who we are.
            return self.buffer_envelope(h.epoch, h.sender, bytes);
        };
        if h.recipient != me {
            return Err(EnvelopeError::Misaddressed.into());
        }
        match self.last_envelope_epoch {
            Some(l) if h.epoch == l => return Err(EnvelopeError::Replayed.into()),
            Some(l) if h.epoch < l => return Err(EnvelopeError::Stale.into()),
            _ => {}
        }
        if h.epoch > self.applied_seq {
            return self.buffer_envelope(h.epoch, h.sender, bytes);
        }
        let w = match self.wait {
            Some(w) if w.epoch == h.epoch => w,
            Some(w) if h.epoch < w.epoch => return Err(EnvelopeError::Stale.into()),
            _ if self.head.is_some_and(|hd| h.epoch <= hd) => {
                return Err(EnvelopeError::Stale.into());
            }
            _ => return Err(EnvelopeError::UnexpectedEpoch.into()),
        };
        let sender = self
            .member_by_index(h.sender)
            .ok_or(EnvelopeError::UnknownSender)?;
        if h.sender != w.committer {
            return Err(EnvelopeError::NotCommitter.into());
        }
        let committer = sender.participant.clone();
        let secret = envelope::open(
            self.cfg.room.as_bytes(),
            bytes,
            &self.identity,
            &sender.identity,
        )?;
        // Authentic, and sealed for the members this member knows at this epoch, or not used:
        // a secret someone it refused (or was never shown) holds is no key to send under.
        if h.roster != self.roster_digest() {
            drop(secret);
            if self.roster_mismatch_reported != Some(h.epoch) {
                self.roster_mismatch_reported = Some(h.epoch);
                self.event(Event::RosterMismatch {
                    epoch: h.epoch,
                    committer,
                });
            }
            return Err(EnvelopeError::RosterMismatch.into());
        }
        self.wait = None;
        self.last_envelope_epoch = Some(h.epoch);
        if h.reason != Reason::Join {
            self.last_fresh_at = now;
            self.rekey_overdue_reported = false;
            self.rekey_requested_at = None;
        }
        self.early_envelopes.retain(|(e, _, _)| *e > h.epoch);
        self.install(now, h.epoch, secret, true);
        self.process_queue(now);
        Ok(())
    }

    pub(super) fn try_early_envelopes(&mut self, now: Instant) {
        let Some(w) = self.wait else { return };
        let mine: Vec<Vec<u8>> = self
            .early_envelopes
            .iter()
            .filter(|(e, _, _)| *e == w.epoch)
            .map(|(_, _, b)| b.clone())
            .collect();
        self.early_envelopes.retain(|(e, _, _)| *e != w.epoch);
        for b in mine {
            // A bad one (forged, misaddressed) is dropped; a good one ends the wait.
            let _ = self.on_message(now, &b);
            if self.wait.is_none() {
                return;
            }
        }
    }

    pub(super) fn on_ack(
        &mut self,
        now: Instant,
        epoch: u64,
        sender: SenderIndex,
        bytes: &[u8],
    ) -> Result<(), Error> {
        if self.me.is_none() || epoch > self.applied_seq {
            if self.early_bound().is_some_and(|b| epoch > b) {
                return Err(EnvelopeError::UnexpectedEpoch.into());
            }
            if self.early_acks.len() >= MAX_EARLY_ACKS {
                return Err(EnvelopeError::BufferFull.into());
            }
            self.early_acks.push(bytes.to_vec());
            return Ok(());
        }
        if self.member_by_index(sender).is_none() {
            return Err(EnvelopeError::UnknownSender.into());
        }
        if !self.collecting.contains_key(&epoch) {
            return Err(EnvelopeError::Stale.into());
        }
        let st = self.epochs.get(&epoch).ok_or(EnvelopeError::Stale)?;
        envelope::verify_control(self.cfg.room.as_bytes(), bytes, &st.secret)?;
        let fresh = self
            .collecting
            .get_mut(&epoch)
            .is_some_and(|m| m.remove(&sender));
        if !fresh {
            return Err(EnvelopeError::Replayed.into());
        }
        self.maybe_complete_collect(now);
        Ok(())
    }

    pub(super) fn on_switch(
        &mut self,
        now: Instant,
        epoch: u64,
        sender: SenderIndex,
        bytes: &[u8],
    ) -> Result<(), Error> {
        let Some(st) = self.epochs.get(&epoch) else {
            if self.me.is_none()
                || epoch > self.applied_seq
                || self.wait.is_some_and(|w| w.epoch == epoch)
            {
                if self.early_bound().is_some_and(|b| epoch > b) {
                    return Err(EnvelopeError::UnexpectedEpoch.into());
                }
                if self.early_switch.as_ref().is_none_or(|(e, _)| *e < epoch) {
                    self.early_switch = Some((epoch, bytes.to_vec()));
                }
                return Ok(());
            }
            return Err(EnvelopeError::Stale.into());
        };
        if self.member_by_index(sender).is_none() {
            return Err(EnvelopeError::UnknownSender.into());
        }
        if self.committer().map(|c| c.sender_index) != Some(sender) {
            return Err(EnvelopeError::NotCommitter.into());
        }
        envelope::verify_control(self.cfg.room.as_bytes(), bytes, &st.secret)?;
        match self.switch_noticed {
            Some(n) if n == epoch => return Err(EnvelopeError::Replayed.into()),
            Some(n) if n > epoch => return Err(EnvelopeError::Stale.into()),
            _ => {}
        }
        self.switch_noticed = Some(epoch);
        // Already sending on it or a newer one (its deadline passed, or the member resumed from
        // a stall on the envelope): the notice is late, not a replay.
        if self.sending.is_some_and(|s| s >= epoch) {
            return Err(EnvelopeError::Stale.into());
        }
        self.switch_to(now, epoch);
        Ok(())
    }
}

/// The epoch an ack or switch notice names, if it parses.
fn control_epoch(bytes: &[u8]) -> Option<u64> {
    match Message::parse(bytes).ok()? {
        Message::Ack { epoch, .. } | Message::Switch { epoch, .. } => Some(epoch),
        Message::Envelope { .. } | Message::Code { .. } => None,
    }
}
