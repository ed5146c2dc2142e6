//! hush-keys join snapshots: `Input::Joined` with members built from fuzz bytes (ids that
//! collide with ours or each other, reused sender indexes, join sequences at, before or after
//! ours, small-order and unknown identity keys, valid, expired, foreign and garbage
//! attestations), in exchange or shared-secret mode, with or without a backend key; then a few
//! arbitrary inputs. A snapshot is accepted or refused, never a panic; an accepted one leaves a
//! consistent member list, a refused one leaves the session unjoined; the frame layer's key
//! contract holds throughout.
#![no_main]

use std::collections::BTreeSet;

use arbitrary::Arbitrary;
use hush_fuzz::room::{ArbEvent, ArbKey, masked_index, pid};
use hush_fuzz::{KeyLedger, identity, rng};
use hush_keys::ed25519_dalek::SigningKey;
use hush_keys::{
    Attestation, Config, Input, Instant, KeyMode, Member, Output, ParticipantId, RoomId, Session,
    StreamContext,
};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Seq {
    /// `seq - n`.
    Before(u8),
    Raw(u64),
}

#[derive(Arbitrary, Debug)]
enum Attest {
    None,
    /// Signed by the backend key, expiring `secs` after now (negative: expired).
    Signed(i16),
    /// Signed by some other key.
    Foreign,
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct SnapMember {
    who: u8,
    index: u32,
    join_seq: Seq,
    key: ArbKey,
    attestation: Attest,
}

#[derive(Arbitrary, Debug)]
enum After {
    Event(ArbEvent),
    StreamStart(u8),
    StreamStop(u8),
    Tick(u16),
    Message { from: u8, bytes: Vec<u8> },
}

#[derive(Arbitrary, Debug)]
struct Run {
    shared: bool,
    vouched: bool,
    contexts: u8,
    seq: u32,
    /// Our own entry: left out, or with this sender index.
    own: Option<u32>,
    own_attestation: Attest,
    members: Vec<SnapMember>,
    after: Vec<After>,
}

const NOW_MS: u64 = 1_800_000_000_000;

/// The participant the fuzzer's number names: one of eight, `pid(0)` being us.
fn named(n: u8) -> ParticipantId {
    pid(usize::from(n % 8))
}

fn attestation(a: Attest, room: &RoomId, m: &Member, backend: &SigningKey) -> Option<Attestation> {
    let now = NOW_MS / 1000;
    match a {
        Attest::None => None,
        Attest::Signed(d) => {
            let exp = now.saturating_add_signed(i64::from(d));
            Some(Attestation::sign(
                backend,
                room,
                &m.participant,
                &m.identity,
                exp,
            ))
        }
        Attest::Foreign => {
            let other = SigningKey::from_bytes(&[8; 32]);
            Some(Attestation::sign(
                &other,
                room,
                &m.participant,
                &m.identity,
                now + 60,
            ))
        }
        Attest::Raw(b) => Attestation::from_bytes(&b).ok(),
    }
}

fuzz_target!(|run: Run| {
    let room = RoomId::new("fuzz-room").expect("valid");
    let backend = SigningKey::from_bytes(&[9; 32]);
    let mut cfg = Config::new(room.clone());
    cfg.contexts = run.contexts % 8;
    if run.shared {
        cfg.mode = KeyMode::SharedSecret(hush_fuzz::shared_secret());
    }
    if run.vouched {
        cfg.attestation_key = Some(backend.verifying_key());
    }
    let seq = u64::from(run.seq);
    let me = identity(0);
    let my_key = *me.public();
    let mut session = Session::new(cfg, me, pid(0), rng(1));
    let mut members = Vec::new();
    for m in run.members.into_iter().take(12) {
        let mut member = Member {
            participant: named(m.who),
            sender_index: masked_index(m.index),
            join_seq: match m.join_seq {
                Seq::Before(n) => seq.saturating_sub(u64::from(n)),
                Seq::Raw(s) => s,
            },
            identity: m.key.key(8, my_key),
            attestation: None,
            role: hush_keys::Role::Participant,
        };
        member.attestation = attestation(m.attestation, &room, &member, &backend);
        members.push(member);
    }
    let own_index = run.own.map(masked_index);
    if let Some(sender_index) = own_index {
        let mut own = Member {
            participant: pid(0),
            sender_index,
            join_seq: seq,
            identity: my_key,
            attestation: None,
            role: hush_keys::Role::Participant,
        };
        own.attestation = attestation(run.own_attestation, &room, &own, &backend);
        members.push(own);
    }
    let own_entry = members
        .iter()
        .find(|m| m.participant == pid(0) && m.identity == my_key)
        .map(|m| (m.sender_index, m.join_seq));
    let now = Instant::from_millis(NOW_MS);
    let joined = session.handle_input(now, Input::Joined { seq, members });

    let mut ledger = KeyLedger::default();
    let drain = |s: &mut Session<_>, ledger: &mut KeyLedger| {
        let me = s.sender_index();
        while let Some(out) = s.poll_output() {
            if let Output::Key(k) = out {
                ledger.apply(me, &k);
            }
        }
        if let Some(e) = s.sending_epoch() {
            assert!(s.latest_epoch().is_some_and(|l| e <= l));
        }
    };
    drain(&mut session, &mut ledger);
    match &joined {
        Ok(()) => {
            // The first entry with our id and key names us, at our join sequence.
            let (own_index, own_seq) = own_entry.expect("joined without our own entry");
            assert_eq!(
                own_seq, seq,
                "joined with our entry at another sequence number"
            );
            assert_eq!(session.sender_index(), Some(own_index));
            let n = session.members().count();
            let ids: BTreeSet<_> = session.members().map(|m| m.participant.clone()).collect();
            let idx: BTreeSet<_> = session.members().map(|m| m.sender_index).collect();
            assert!(
                ids.len() == n && idx.len() == n,
                "duplicate members admitted"
            );
            assert!(session.members().any(|m| m.participant == pid(0)));
            for m in session.members().filter(|m| m.participant != pid(0)) {
                assert!(m.join_seq < seq, "a member joined after us in our snapshot");
                assert!(
                    !run.vouched || m.attestation.is_some(),
                    "unvouched member admitted"
                );
            }
        }
        Err(_) => {
            assert_eq!(
                session.sender_index(),
                None,
                "a refused snapshot left us joined"
            );
            assert!(ledger.receive.is_empty() && ledger.send.is_empty());
        }
    }

    let mut t = NOW_MS;
    for a in run.after.into_iter().take(16) {
        let now = Instant::from_millis(t);
        let _ = match a {
            After::Event(e) => {
                let event = e.event(session.applied_seq(), named, 8, my_key);
                session.handle_input(now, Input::Membership(event))
            }
            After::StreamStart(c) => {
                session.handle_input(now, Input::LocalStreamStarted(StreamContext(c)))
            }
            After::StreamStop(c) => {
                ledger.send.remove(&StreamContext(c));
                session.handle_input(now, Input::LocalStreamStopped(StreamContext(c)))
            }
            After::Tick(ms) => {
                t += u64::from(ms) * 16;
                session.handle_input(Instant::from_millis(t), Input::Tick)
            }
            After::Message { from, bytes } => {
                let from = named(from);
                session.handle_input(
                    now,
                    Input::MessageFrom {
                        from: &from,
                        bytes: &bytes,
                    },
                )
            }
        };
        drain(&mut session, &mut ledger);
    }
});
