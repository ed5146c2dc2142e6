//! The safety-code round: commit, then reveal, then show (see [`crate::safety`] for the
//! protocol and why it cannot be ground).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use rand_core::CryptoRng;
use zeroize::Zeroizing;

use super::{Destination, Event, Session};
use crate::envelope;
use crate::epoch::LabelKey;
use crate::error::{EnvelopeError, Error};
use crate::identity::IdentityPublicKey;
use crate::ids::ParticipantId;
use crate::kid::SenderIndex;
use crate::safety::{self, NONCE_LEN, SafetyCode};
use crate::time::Instant;

/// Commits and reveals kept for a round this member has not started yet (it has not installed
/// that membership epoch): two per member of a 512-member room.
const MAX_EARLY_CODE: usize = 1024;

/// One round: the members of one membership epoch, their commits and reveals.
pub(super) struct CodeRound {
    epoch: u64,
    /// The epoch's code key, not the epoch secret: the round may outlive the epoch's
    /// retirement (a withheld reveal), and only this key is needed for it.
    key: LabelKey,
    nonce: Zeroizing<[u8; NONCE_LEN]>,
    view: BTreeMap<SenderIndex, (ParticipantId, IdentityPublicKey)>,
    /// Members of the view that take no part in the round (recorders): they are in the code
    /// with [`safety::PASSIVE_NONCE`] and nothing is awaited from them.
    passive: BTreeSet<SenderIndex>,
    commits: BTreeMap<SenderIndex, [u8; NONCE_LEN]>,
    /// Reveals whose commit has not arrived yet (messages may be reordered).
    pending: BTreeMap<SenderIndex, [u8; NONCE_LEN]>,
    reveals: BTreeMap<SenderIndex, [u8; NONCE_LEN]>,
    revealed: bool,
}

impl CodeRound {
    /// Checks `nonce` against `sender`'s commit and keeps it.
    fn accept_reveal(
        &mut self,
        room: &crate::ids::RoomId,
        sender: SenderIndex,
        nonce: [u8; NONCE_LEN],
    ) -> Result<(), EnvelopeError> {
        let (Some(commit), Some((participant, identity))) =
            (self.commits.get(&sender), self.view.get(&sender))
        else {
            return Err(EnvelopeError::UnknownSender);
        };
        if safety::commitment(room, self.epoch, participant, identity, &nonce) != *commit {
            return Err(EnvelopeError::CommitmentMismatch);
        }
        self.reveals.insert(sender, nonce);
        Ok(())
    }
}

impl<R: CryptoRng> Session<R> {
    /// Starts the round of membership epoch `epoch` (installed just now): a fresh nonce, a
    /// commit to every member, and the code shown as pending until the round completes.
    pub(super) fn start_code_round(&mut self, now: Instant, epoch: u64) {
        let (Some(me), Some(st)) = (self.me, self.epochs.get(&epoch)) else {
            return;
        };
        let key = envelope::code_key(&st.secret);
        let mut nonce = Zeroizing::new([0u8; NONCE_LEN]);
        self.rng.fill_bytes(nonce.as_mut());
        let view: BTreeMap<_, _> = self
            .members
            .values()
            .map(|m| (m.sender_index, (m.participant.clone(), m.identity)))
            .collect();
        let passive: BTreeSet<_> = self
            .members
            .values()
            .filter(|m| !m.role.is_active())
            .map(|m| m.sender_index)
            .collect();
        let me_active = !passive.contains(&me);
        let room = &self.cfg.room;
        let mine = safety::commitment(
            room,
            epoch,
            &self.participant,
            self.identity.public(),
            &nonce,
        );
        let commit = envelope::code(false, room.as_bytes(), epoch, me, &mine, &key);
        let mut round = CodeRound {
            epoch,
            key,
            nonce,
            view,
            passive,
            commits: BTreeMap::new(),
            pending: BTreeMap::new(),
            reveals: BTreeMap::new(),
            revealed: false,
        };
        // A recorder replaying its recording offline computes the code without taking part.
        if me_active {
            round.commits.insert(me, mine);
        }
        let alone = round.view.len() - round.passive.len() <= 1;
        self.code_round = Some(round);
        self.code_epoch = Some(epoch);
        self.withdraw_code(epoch);
        if !alone && me_active {
            self.transmit(Destination::AllMembers, commit);
        }
        // Commits and reveals that came before this member installed the epoch.
        self.early_code.retain(|(e, _)| *e >= epoch);
        let (now_due, later): (Vec<_>, Vec<_>) = core::mem::take(&mut self.early_code)
            .into_iter()
            .partition(|(e, _)| *e == epoch);
        self.early_code = later;
        for (_, bytes) in now_due {
            // Bad ones are the sender's problem; they change nothing.
            let _ = self.on_message(now, &bytes);
        }
        self.advance_code_round();
    }

    /// A commit or reveal from another member.
    pub(super) fn on_code(
        &mut self,
        reveal: bool,
        epoch: u64,
        sender: SenderIndex,
        value: [u8; NONCE_LEN],
        bytes: &[u8],
    ) -> Result<(), Error> {
        match self.code_epoch {
            // An older round's message, or one of a round already complete: moot. (Rounds
            // overlap under churn; a late commit is no fault of its sender's.)
            Some(latest) if epoch < latest => return Ok(()),
            Some(latest) if epoch == latest && self.code_round.is_none() => return Ok(()),
            Some(latest) if epoch == latest => {}
            // A round this member has not started (its epoch is not installed yet): keep it.
            _ => {
                if self.early_bound().is_some_and(|b| epoch > b) {
                    return Err(EnvelopeError::UnexpectedEpoch.into());
                }
                if self.early_code.iter().any(|(_, b)| b == bytes) {
                    return Err(EnvelopeError::Replayed.into());
                }
                if self.early_code.len() >= MAX_EARLY_CODE {
                    return Err(EnvelopeError::BufferFull.into());
                }
                self.early_code.push((epoch, bytes.to_vec()));
                return Ok(());
            }
        }
        let room = self.cfg.room.clone();
        let me = self.me;
        let Some(r) = self.code_round.as_mut() else {
            return Err(EnvelopeError::Stale.into());
        };
        if !r.view.contains_key(&sender) || r.passive.contains(&sender) {
            return Err(EnvelopeError::UnknownSender.into());
        }
        envelope::verify_code(room.as_bytes(), bytes, &r.key)?;
        if Some(sender) == me {
            // Our own message reflected back.
            return Err(EnvelopeError::Replayed.into());
        }
        if reveal {
            if r.reveals.contains_key(&sender) || r.pending.contains_key(&sender) {
                return Err(EnvelopeError::Replayed.into());
            }
            if r.commits.contains_key(&sender) {
                r.accept_reveal(&room, sender, value)?;
            } else {
                r.pending.insert(sender, value);
            }
        } else {
            match r.commits.get(&sender) {
                Some(c) if *c == value => return Err(EnvelopeError::Replayed.into()),
                // A second, different commit: the first one stands.
                Some(_) => return Err(EnvelopeError::CommitmentMismatch.into()),
                None => {
                    r.commits.insert(sender, value);
                    if let Some(nonce) = r.pending.remove(&sender) {
                        r.accept_reveal(&room, sender, nonce)?;
                    }
                }
            }
        }
        self.advance_code_round();
        Ok(())
    }

    /// Reveals once every commit is in; shows the code once every reveal is.
    fn advance_code_round(&mut self) {
        let Some(me) = self.me else { return };
        let room = self.cfg.room.clone();
        let Some(r) = self.code_round.as_mut() else {
            return;
        };
        let active = |r: &CodeRound, s: &SenderIndex| !r.passive.contains(s);
        if !r.revealed
            && r.view
                .keys()
                .filter(|s| active(r, s))
                .all(|s| r.commits.contains_key(s))
        {
            r.revealed = true;
            // A passive member (a recorder replaying offline) has nothing to reveal.
            if !r.passive.contains(&me) {
                r.reveals.insert(me, *r.nonce);
            }
            if r.view.len() - r.passive.len() > 1 && !r.passive.contains(&me) {
                let reveal = envelope::code(true, room.as_bytes(), r.epoch, me, &r.nonce, &r.key);
                self.transmit(Destination::AllMembers, reveal);
            }
        }
        let Some(r) = self.code_round.as_ref() else {
            return;
        };
        let complete = r
            .view
            .keys()
            .filter(|s| active(r, s))
            .all(|s| r.reveals.contains_key(s));
        if !r.revealed || !complete {
            return;
        }
        let code = SafetyCode::compute(
            &room,
            r.view.iter().filter_map(|(s, (p, k))| {
                if r.passive.contains(s) {
                    Some((p, k, &safety::PASSIVE_NONCE))
                } else {
                    r.reveals.get(s).map(|n| (p, k, n))
                }
            }),
        );
        self.code_round = None;
        self.safety = Some(code);
        self.code_pending_said = false;
        self.event(Event::SafetyCodeChanged(code));
    }

    /// The code shown no longer describes the members (a change at `seq` was applied, or the
    /// round of epoch `seq` starts): withdrawn at once and said pending, once until the next
    /// code. Before, it stayed shown until the new epoch was installed, which a relay
    /// withholding that epoch could put off for good.
    pub(super) fn withdraw_code(&mut self, seq: u64) {
        self.safety = None;
        if !self.code_pending_said {
            self.code_pending_said = true;
            self.event(Event::SafetyCodePending { epoch: seq });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::RoomId;

    fn round(room: &RoomId) -> (CodeRound, SenderIndex, [u8; NONCE_LEN]) {
        let bob = SenderIndex::new(2).unwrap();
        let pid = ParticipantId::new("bob").unwrap();
        let key = IdentityPublicKey::from_bytes([7; 32]).unwrap();
        let nonce = [3u8; NONCE_LEN];
        let mut r = CodeRound {
            epoch: 5,
            key: envelope::code_key(&crate::epoch::EpochSecret::from_array([1; 32])),
            nonce: Zeroizing::new([0; NONCE_LEN]),
            view: BTreeMap::from([(bob, (pid.clone(), key))]),
            passive: BTreeSet::new(),
            commits: BTreeMap::new(),
            pending: BTreeMap::new(),
            reveals: BTreeMap::new(),
            revealed: false,
        };
        r.commits
            .insert(bob, safety::commitment(room, 5, &pid, &key, &nonce));
        (r, bob, nonce)
    }

    #[test]
    fn a_reveal_must_open_its_commitment() {
        let room = RoomId::new("room").unwrap();
        let (mut r, bob, nonce) = round(&room);
        let mut other = nonce;
        other[0] ^= 1;
        // A member (who can MAC) reveals a nonce other than the one it committed to.
        assert_eq!(
            r.accept_reveal(&room, bob, other),
            Err(EnvelopeError::CommitmentMismatch)
        );
        assert!(r.reveals.is_empty());
        assert_eq!(r.accept_reveal(&room, bob, nonce), Ok(()));
        assert_eq!(r.reveals.get(&bob), Some(&nonce));
    }

    /// A round keeps the epoch's code key, not the epoch secret (it may outlive the epoch's
    /// retirement); messages tagged with the secret's code label verify under it, others not.
    #[test]
    fn a_round_holds_the_code_key_only_and_it_checks_code_messages() {
        let secret = crate::epoch::EpochSecret::from_array([9; 32]);
        let key = envelope::code_key(&secret);
        let bob = SenderIndex::new(2).unwrap();
        let commit = envelope::code(false, b"room", 5, bob, &[4; 32], &key);
        assert_eq!(envelope::verify_code(b"room", &commit, &key), Ok(()));
        // The same bytes through the epoch secret's own check (acks, switch notices, codes).
        assert_eq!(envelope::verify_control(b"room", &commit, &secret), Ok(()));
        assert_eq!(
            envelope::verify_code(b"roon", &commit, &key),
            Err(EnvelopeError::Forged)
        );
        let other = envelope::code_key(&crate::epoch::EpochSecret::from_array([8; 32]));
        assert_eq!(
            envelope::verify_code(b"room", &commit, &other),
            Err(EnvelopeError::Forged)
        );
        let ack = envelope::ack(b"room", 5, bob, &secret);
        assert_eq!(
            envelope::verify_code(b"room", &ack, &key),
            Err(EnvelopeError::Malformed)
        );
    }
}
