//! Epochs: ratchet or fresh draw, installing receive keys, the ack and switch round.

use alloc::vec::Vec;

use rand_core::CryptoRng;

use super::{Destination, EpochState, Event, KeyMode, KeyUpdate, Session, Wait};
use crate::envelope::{self, EnvelopeHeader, Reason};
use crate::epoch::EpochSecret;
use crate::error::MembershipError;
use crate::identity::IdentityPublicKey;
use crate::kid::{EPOCH_BITS, Kid, SenderIndex, StreamContext};
use crate::member::Member;
use crate::time::Instant;

impl<R: CryptoRng> Session<R> {
    /// The room moves to epoch `epoch` (the sequence number of the event that caused it).
    pub(super) fn new_epoch(
        &mut self,
        now: Instant,
        epoch: u64,
        reason: Reason,
        newcomer: Option<SenderIndex>,
    ) {
        if let KeyMode::SharedSecret(_) = self.cfg.mode {
            if let Some(h) = self.head
                && let Some(st) = self.epochs.get(&h)
            {
                let mut e = st.secret.ratchet(h + 1);
                // Events are applied one by one, so this gap is the count of events since the
                // head that started no epoch (refused joins): one ratchet per event received.
                for n in h + 2..=epoch {
                    e = e.ratchet(n);
                }
                self.install(now, epoch, e, false);
            }
            return;
        }
        // Bound to the member list as this member has it now (the event applied).
        let roster = self.roster_digest();
        let head_secret = self
            .head
            .and_then(|h| self.epochs.get(&h))
            .map(|st| st.secret.ratchet_for(epoch, &roster));
        match (reason, head_secret) {
            (Reason::Join, Some(next)) => {
                let committer = self.is_committer();
                if committer
                    && let Some(m) = newcomer.and_then(|i| self.member_by_index(i)).cloned()
                {
                    self.seal_to(epoch, reason, &m, &next, &roster);
                }
                self.install(now, epoch, next, false);
            }
            _ if self.is_committer() => self.fresh_epoch(now, epoch, reason),
            (Reason::Join, None) => {}
            _ => {
                if let Some(c) = self.committer().map(|c| c.sender_index) {
                    self.wait = Some(Wait::new(epoch, c, now));
                    self.try_early_envelopes(now);
                }
            }
        }
    }

    /// A rekey point only other members asked for: everyone ratchets from the head, with no
    /// envelope (see [`crate::Change::RekeyRequested`]).
    pub(super) fn ratchet_epoch(&mut self, now: Instant, epoch: u64) {
        if let KeyMode::SharedSecret(_) = self.cfg.mode {
            // Shared-secret mode ratchets on every event anyway.
            return self.new_epoch(now, epoch, Reason::Rekey, None);
        }
        let roster = self.roster_digest();
        let Some(next) = self
            .head
            .and_then(|h| self.epochs.get(&h))
            .map(|st| st.secret.ratchet_for(epoch, &roster))
        else {
            return;
        };
        self.install(now, epoch, next, false);
    }

    /// Committer: draws a fresh secret and sends it to every other member.
    pub(super) fn fresh_epoch(&mut self, now: Instant, epoch: u64, reason: Reason) {
        let secret = EpochSecret::random(&mut self.rng);
        let others: Vec<Member> = self
            .members
            .values()
            .filter(|m| Some(m.sender_index) != self.me)
            .cloned()
            .collect();
        // One digest for all: the roster does not change while sealing.
        let roster = self.roster_digest();
        for m in &others {
            self.seal_to(epoch, reason, m, &secret, &roster);
        }
        self.last_fresh_at = now;
        self.rekey_overdue_reported = false;
        self.rekey_requested_at = None;
        self.install(now, epoch, secret, false);
    }

    pub(super) fn seal_to(
        &mut self,
        epoch: u64,
        reason: Reason,
        to: &Member,
        secret: &EpochSecret,
        roster: &crate::roster::RosterDigest,
    ) {
        let Some(me) = self.me else { return };
        let header = EnvelopeHeader {
            epoch,
            sender: me,
            recipient: to.sender_index,
            reason,
            roster: *roster,
        };
        match envelope::seal(
            &mut self.rng,
            self.cfg.room.as_bytes(),
            &header,
            &self.identity,
            &to.identity,
            secret,
        ) {
            Ok(payload) => self.transmit(Destination::Member(to.participant.clone()), payload),
            // Keys are checked when members are admitted; an unusable one gets no envelope.
            Err(_) => self.event(Event::MemberRefused {
                participant: to.participant.clone(),
                reason: MembershipError::BadIdentityKey,
            }),
        }
    }

    /// Installs receive keys for `epoch` and starts the ack / switch round.
    pub(super) fn install(
        &mut self,
        now: Instant,
        epoch: u64,
        secret: EpochSecret,
        from_envelope: bool,
    ) {
        let Some(me) = self.me else { return };
        if self.epochs.contains_key(&epoch) {
            return;
        }
        // KID wrap: an older epoch with the same low bits gives way first (one key per KID).
        let mask = (1u64 << EPOCH_BITS) - 1;
        let clash: Vec<u64> = self
            .epochs
            .keys()
            .copied()
            .filter(|e| e & mask == epoch & mask)
            .collect();
        for e in clash {
            if let Some(st) = self.epochs.remove(&e) {
                for kid in st.kids {
                    self.key(KeyUpdate::RetireReceive { kid });
                }
            }
        }
        let mut kids = Vec::new();
        // A recorder sends nothing: no receive keys for it.
        let senders: Vec<(SenderIndex, IdentityPublicKey)> = self
            .members
            .values()
            .filter(|m| m.sender_index != me && m.role.is_active())
            .map(|m| (m.sender_index, m.identity))
            .collect();
        for (s, identity) in senders {
            for c in 0..self.cfg.contexts {
                let ctx = StreamContext(c);
                let kid = Kid::new(ctx, s, epoch);
                let key = secret.base_key(s, ctx, &identity);
                kids.push(kid);
                self.key(KeyUpdate::InstallReceive { kid, key });
            }
        }
        self.epochs.insert(
            epoch,
            EpochState {
                secret,
                kids,
                retire_at: None,
            },
        );
        self.head = Some(epoch);
        // Every departure up to this event is answered: the epoch excludes those members.
        self.departures.retain(|s, _| *s > epoch);
        self.event(Event::EpochInstalled { epoch });
        if from_envelope {
            self.event(Event::KeyframeWanted);
        }
        if self.membership_dirty {
            self.membership_dirty = false;
            self.start_code_round(now, epoch);
        }
        self.switch_deadlines
            .insert(epoch, now.saturating_add(self.cfg.switch_timeout));
        if self.is_committer() {
            // A recorder never acknowledges: no switch waits for it.
            let missing = self
                .members
                .values()
                .filter(|m| m.role.is_active())
                .map(|m| m.sender_index)
                .filter(|s| *s != me)
                .collect();
            self.collecting.insert(epoch, missing);
            let early = core::mem::take(&mut self.early_acks);
            for bytes in early {
                // Early acks for other epochs are dropped; errors here are the sender's.
                let _ = self.on_message(now, &bytes);
            }
            self.maybe_complete_collect(now);
        } else if let (Some(c), Some(st)) = (self.committer().cloned(), self.epochs.get(&epoch)) {
            let ack = envelope::ack(self.cfg.room.as_bytes(), epoch, me, &st.secret);
            self.transmit(Destination::Member(c.participant), ack);
        }
        if let Some((e, bytes)) = self.early_switch.take() {
            if e <= epoch {
                let _ = self.on_message(now, &bytes);
            } else {
                self.early_switch = Some((e, bytes));
            }
        }
    }

    pub(super) fn maybe_complete_collect(&mut self, now: Instant) {
        // The newest epoch whose round is complete; older rounds are moot once it switches.
        let Some(epoch) = self
            .collecting
            .iter()
            .rev()
            .find(|(_, m)| m.is_empty())
            .map(|(e, _)| *e)
        else {
            return;
        };
        self.collecting.retain(|e, _| *e > epoch);
        if let (Some(me), Some(st)) = (self.me, self.epochs.get(&epoch))
            && self.members.len() > 1
        {
            let sw = envelope::switch(self.cfg.room.as_bytes(), epoch, me, &st.secret);
            self.transmit(Destination::AllMembers, sw);
        }
        self.switch_to(now, epoch);
    }

    pub(super) fn switch_to(&mut self, now: Instant, epoch: u64) {
        if self.sending.is_some_and(|s| s >= epoch) || !self.epochs.contains_key(&epoch) {
            return;
        }
        self.sending = Some(epoch);
        // While stalled the move is silent (no key, no event): `resume` announces it.
        self.announce_sending(epoch);
        let retire_at = now.saturating_add(self.cfg.grace);
        for (e, st) in self.epochs.iter_mut() {
            if *e < epoch && st.retire_at.is_none() {
                st.retire_at = Some(retire_at);
            }
        }
        self.switch_deadlines.retain(|e, _| *e > epoch);
        self.collecting.retain(|e, _| *e > epoch);
    }

    /// Gives every local stream its key for `epoch` and reports the switch (nothing while
    /// stalled).
    pub(super) fn announce_sending(&mut self, epoch: u64) {
        if self.stalled.is_some() {
            return;
        }
        let streams: Vec<_> = self.local_streams.iter().copied().collect();
        for ctx in streams {
            self.emit_send_key(ctx, epoch);
        }
        self.event(Event::Switched { epoch });
    }

    /// A send key for one local stream; none while a key is awaited (fail closed).
    pub(super) fn emit_send_key(&mut self, ctx: StreamContext, epoch: u64) {
        if self.stalled.is_some() {
            return;
        }
        let (Some(me), Some(st)) = (self.me, self.epochs.get(&epoch)) else {
            return;
        };
        let key = st.secret.base_key(me, ctx, self.identity.public());
        self.key(KeyUpdate::SetSend {
            context: ctx,
            kid: Kid::new(ctx, me, epoch),
            key,
        });
    }
}
