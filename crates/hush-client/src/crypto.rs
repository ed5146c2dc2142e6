//! The frame layer of one client: an SFrame [`Encryptor`] per local stream context with keys
//! from the key session, one [`Decryptor`] for everything received, and the counters.

use std::collections::{BTreeMap, HashMap};

use hush_frame::{
    BaseKey, CipherSuite, Codec, DecryptError, DecryptStats, Decryptor, Encryptor, Layout,
};
use hush_keys::{JoinHorizon, KeyUpdate, Kid};
use hush_proto::Source;
use subtle::ConstantTimeEq;

/// What happened to one local stream's frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendStats {
    /// Frames encrypted and handed to the packetizer.
    pub encrypted: u64,
    /// Frames dropped because no send key was set yet (never sent in the clear).
    pub dropped_no_key: u64,
    /// Frames the encryptor refused (usage limit, oversized).
    pub encrypt_errors: u64,
    /// Frames the media engine refused after encryption (not negotiated yet, closed).
    pub write_errors: u64,
}

/// What arrived from one remote sender (by sender index).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecvStats {
    /// RTP packets received.
    pub packets: u64,
    /// Whole frames reassembled and handed to the decryptor.
    pub frames: u64,
    /// Frames lost in reassembly (a missing packet).
    pub incomplete: u64,
    /// What the decryptor did with this sender's frames: decrypted, or dropped by
    /// [`hush_frame::DropReason`].
    pub decrypt: DecryptStats,
    /// Frames this sender sealed before this client joined, under an epoch it never holds
    /// (`hush_keys::Session::predates_join`): dropped, expected after a join, no failure (not
    /// in [`RecvStats::decrypt`]; `before_join` in the relay's drop metrics, as browsers
    /// report them).
    pub before_join: u64,
    /// Frames on this sender's track under another member's key (the KID names another
    /// sender): dropped unopened, as the browser's `wrong_sender`. A relay that relabels one
    /// member's media as another's gets this; counted in [`Stats::dropped_total`].
    pub wrong_sender: u64,
}

/// A snapshot of a client's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Per published source.
    pub sent: BTreeMap<Source, SendStats>,
    /// Per remote sender index.
    pub received: BTreeMap<u32, RecvStats>,
    /// Packets on tracks whose stream id names no sender (`p<index>`).
    pub unmapped_packets: u64,
    /// Events dropped because the application's queue was full.
    pub events_dropped: u64,
    /// Key messages or relay events the key session refused.
    pub key_inputs_refused: u64,
    /// The epoch local streams send on.
    pub sending_epoch: Option<u64>,
    /// The newest epoch installed.
    pub latest_epoch: Option<u64>,
    /// The safety code (25 digits as a number), once the round of the latest membership change
    /// completed.
    pub safety_code: Option<u128>,
}

impl Stats {
    /// Sum of frames decrypted from every sender.
    pub fn decrypted_total(&self) -> u64 {
        self.received.values().map(|r| r.decrypt.decrypted).sum()
    }

    /// Sum of frames dropped as failures, every sender: by the decryptor, and those under
    /// another sender's key ([`RecvStats::wrong_sender`]).
    pub fn dropped_total(&self) -> u64 {
        self.received
            .values()
            .map(|r| r.decrypt.dropped() + r.wrong_sender)
            .sum()
    }
}

/// The stream context (hush-keys KID layout) of a source, as the browser's Worker numbers them.
pub fn context_of(source: Source) -> hush_keys::StreamContext {
    match source {
        Source::Microphone => hush_keys::StreamContext::MICROPHONE,
        Source::Camera => hush_keys::StreamContext::CAMERA,
        _ => hush_keys::StreamContext::SCREEN,
    }
}

/// The frame layout of a source's codec (VP8 video, Opus audio).
pub fn layout_of(source: Source) -> Layout {
    match source {
        Source::Microphone => Layout::Media(Codec::Opus),
        _ => Layout::Media(Codec::Vp8),
    }
}

/// Outcome of [`FrameCrypto::encrypt`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Sealed {
    /// Encrypted in place; `rotate` when the key nears its usage limit.
    Ok { rotate: bool },
    /// No key yet: drop the frame.
    NoKey,
    /// The encryptor refused.
    Failed,
}

/// Why [`FrameCrypto::open`] dropped a frame.
enum Refused {
    /// The decryptor's reason.
    Decrypt(DecryptError),
    /// The frame's KID names a sender other than the track's.
    WrongSender,
}

impl From<DecryptError> for Refused {
    fn from(e: DecryptError) -> Self {
        Self::Decrypt(e)
    }
}

/// One outgoing context's encryptor, kept for the client's life once made: `StopSend` only
/// pauses it. Its counter never goes back, so a `SetSend` that resumes a KID and key already
/// sent on (the key session does after a stall) goes on from where it stopped. Dropping the
/// encryptor at `StopSend`, as before, restarted the counter at 0 under a key already used:
/// AES-GCM nonces used twice, which a relay able to stall and unstall the session could cause.
struct SendSlot {
    enc: Encryptor,
    /// The base key in use: a resumed one keeps its usage count, a new one starts its own.
    key: BaseKey,
    paused: bool,
}

/// Encryptors, decryptor and counters, behind the client's lock.
pub(crate) struct FrameCrypto {
    suite: CipherSuite,
    send: HashMap<u8, SendSlot>,
    recv: Decryptor,
    /// What tells frames sealed before the join, and until when on this process's clock.
    pre_join: Option<(JoinHorizon, std::time::Instant)>,
    pub(crate) stats: Stats,
}

impl FrameCrypto {
    pub(crate) fn new(suite: CipherSuite) -> Self {
        Self {
            suite,
            send: HashMap::new(),
            recv: Decryptor::new(suite),
            pre_join: None,
            stats: Stats::default(),
        }
    }

    /// The key session's [`JoinHorizon`] and the instant its grace period ends (refreshed by
    /// the driver after every input).
    pub(crate) fn set_join_horizon(&mut self, horizon: Option<(JoinHorizon, std::time::Instant)>) {
        self.pre_join = horizon;
    }

    /// Whether a frame under `kid`, for which no key is installed, arrived on `sender`'s track
    /// sealed by `sender` before this client joined.
    fn before_join(&self, sender: u32, kid: u64) -> bool {
        let Some((horizon, until)) = &self.pre_join else {
            return false;
        };
        let Some((ctx, s, low)) = Kid::unpack(kid) else {
            return false;
        };
        s.get() == sender
            && std::time::Instant::now() < *until
            && horizon.predates_kid(Kid::new(ctx, s, u64::from(low)))
    }

    /// Applies one key change from the session. Keys are never logged.
    pub(crate) fn apply(&mut self, update: KeyUpdate) {
        match update {
            KeyUpdate::InstallReceive { kid, key } => {
                if let Ok(k) = BaseKey::new(key.as_bytes()) {
                    let _ = self.recv.add_key(kid.get(), &k);
                }
            }
            KeyUpdate::RetireReceive { kid } => {
                self.recv.remove_key(kid.get());
            }
            KeyUpdate::SetSend { context, kid, key } => {
                if let Ok(k) = BaseKey::new(key.as_bytes()) {
                    self.set_send(context.0, kid.get(), k);
                }
            }
            KeyUpdate::StopSend { context } => self.stop_send(context.0),
            _ => {}
        }
    }

    /// Sends on `context` under `kid` and `key`: resumed where a paused slot has them already
    /// (counter and usage go on), switched to otherwise (the counter still goes on).
    fn set_send(&mut self, context: u8, kid: u64, key: BaseKey) {
        match self.send.get_mut(&context) {
            Some(slot) => {
                let same = slot.enc.kid() == kid
                    && bool::from(slot.key.expose_secret().ct_eq(key.expose_secret()));
                if !same {
                    slot.enc.set_key(kid, &key);
                    slot.key = key;
                }
                slot.paused = false;
            }
            None => {
                let enc = Encryptor::new(self.suite, kid, &key);
                self.send.insert(
                    context,
                    SendSlot {
                        enc,
                        key,
                        paused: false,
                    },
                );
            }
        }
    }

    /// Stops sending on `context` until the next [`Self::set_send`]: its frames are dropped.
    fn stop_send(&mut self, context: u8) {
        if let Some(slot) = self.send.get_mut(&context) {
            slot.paused = true;
        }
    }

    /// Encrypts `frame` in place for `source`; fails closed without a key.
    pub(crate) fn encrypt(&mut self, source: Source, frame: &mut Vec<u8>) -> Sealed {
        let stats = self.stats.sent.entry(source).or_default();
        let slot = self
            .send
            .get_mut(&context_of(source).0)
            .filter(|slot| !slot.paused);
        let Some(SendSlot { enc, .. }) = slot else {
            stats.dropped_no_key += 1;
            return Sealed::NoKey;
        };
        match enc.encrypt(layout_of(source), frame) {
            Ok(_) => {
                stats.encrypted += 1;
                Sealed::Ok {
                    rotate: enc.needs_rotation(),
                }
            }
            Err(_) => {
                stats.encrypt_errors += 1;
                Sealed::Failed
            }
        }
    }

    /// Decrypts a whole received frame from `sender` (the track's `p<index>`) in place; counts
    /// the outcome.
    pub(crate) fn decrypt(&mut self, sender: u32, layout: Layout, frame: &mut Vec<u8>) -> bool {
        let r = self.open(sender, layout, frame);
        let pre_join = matches!(r, Err(Refused::Decrypt(DecryptError::UnknownKid(kid)))
            if self.before_join(sender, kid));
        let stats = self.stats.received.entry(sender).or_default();
        stats.frames += 1;
        match r {
            Ok(()) => {
                stats.decrypt.decrypted += 1;
                true
            }
            Err(_) if pre_join => {
                stats.before_join += 1;
                false
            }
            Err(Refused::WrongSender) => {
                stats.wrong_sender += 1;
                false
            }
            Err(Refused::Decrypt(e)) => {
                stats.decrypt.count(e);
                false
            }
        }
    }

    /// Plans the frame, checks that its KID is `sender`'s before anything is opened or its
    /// counter recorded (so a relabelled frame leaves the real sender's replay window alone),
    /// then opens and commits it.
    fn open(&mut self, sender: u32, layout: Layout, frame: &mut Vec<u8>) -> Result<(), Refused> {
        let plan = self.recv.plan(layout, frame)?;
        if Kid::unpack(plan.kid()).map(|(_, s, _)| s.get()) != Some(sender) {
            return Err(Refused::WrongSender);
        }
        self.recv.open(&plan, frame)?;
        self.recv.commit(&plan, frame)?;
        Ok(())
    }

    /// Lends the decryptor (for tests that replay recorded frames).
    pub(crate) fn decryptor_mut(&mut self) -> &mut Decryptor {
        &mut self.recv
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hush_frame::DropReason;
    use hush_keys::{Kid, SenderIndex, StreamContext};

    #[test]
    fn fails_closed_without_a_key_and_counts_by_reason() {
        let mut c = FrameCrypto::new(CipherSuite::Aes128GcmSha256_128);
        let mut f = crate::synth::opus_frame(0, 80);
        let plain = f.clone();
        assert_eq!(c.encrypt(Source::Microphone, &mut f), Sealed::NoKey);
        assert_eq!(f, plain, "untouched, and the caller drops it");
        assert_eq!(c.stats.sent[&Source::Microphone].dropped_no_key, 1);
        // Plaintext arriving at the receiver is dropped, never passed on.
        assert!(!c.decrypt(4, layout_of(Source::Microphone), &mut f));
        let received = c.stats.received[&4].decrypt;
        assert_eq!(received.decrypted, 0);
        assert_eq!(received.dropped(), 1);
        // An Opus payload read as an SFrame header names a KID nobody has.
        assert_eq!(received.dropped_for(DropReason::UnknownKid), 1);
        let _ = (Kid::new(
            StreamContext::MICROPHONE,
            SenderIndex::new(1).unwrap(),
            1,
        ),);
    }

    /// The SFrame counter of a sealed frame (its header follows the codec's clear prefix:
    /// the TOC byte for Opus).
    fn counter_of(frame: &[u8], clear: usize) -> u64 {
        hush_frame::Header::decode(&frame[clear..]).unwrap().0.ctr
    }

    #[test]
    fn a_send_key_resumed_after_a_stop_goes_on_from_its_counter() {
        let mut c = FrameCrypto::new(CipherSuite::Aes128GcmSha256_128);
        let ctx = context_of(Source::Microphone).0;
        let kid = 0x0102;
        let key = || BaseKey::new(&[7u8; 32]).unwrap();
        let seal = |c: &mut FrameCrypto| {
            let mut f = crate::synth::opus_frame(0, 80);
            (c.encrypt(Source::Microphone, &mut f), f)
        };
        c.set_send(ctx, kid, key());
        let (_, first) = seal(&mut c);
        let (_, second) = seal(&mut c);
        let left = c.send[&ctx].enc.frames_left();
        c.stop_send(ctx);
        assert_eq!(seal(&mut c).0, Sealed::NoKey, "stopped: dropped");
        // The key session resumes the same epoch (same KID and key) after a stall.
        c.set_send(ctx, kid, key());
        let (sealed, resumed) = seal(&mut c);
        assert_eq!(sealed, Sealed::Ok { rotate: false });
        let counters: Vec<u64> = [&first, &second, &resumed]
            .iter()
            .map(|f| counter_of(f, 1))
            .collect();
        assert_eq!(counters, vec![0, 1, 2], "no counter twice under one key");
        // The resumed key's usage went on too (it did not start again).
        assert_eq!(c.send[&ctx].enc.frames_left(), left - 1);
        // A new key on the same context: the counter still goes on.
        c.set_send(ctx, kid + 1, BaseKey::new(&[8u8; 32]).unwrap());
        assert_eq!(counter_of(&seal(&mut c).1, 1), 3);
    }

    /// Bob joined at sequence 2, after alice (index 1): his key session's horizon.
    fn bobs_horizon() -> JoinHorizon {
        use hush_participant::Membership;
        use hush_proto::{
            Grants, Joined, OpaqueBytes, ParticipantId, ParticipantInfo, RoomId, ServerMessage,
        };
        let id = |s: &str| ParticipantId::new(s).unwrap();
        let alice = crate::keys::KeyAgent::with_seed(Membership::Unauthenticated, [1; 32])
            .unwrap()
            .identity_key();
        let mut bob =
            crate::keys::KeyAgent::with_seed(Membership::Unauthenticated, [2; 32]).unwrap();
        let joined = ServerMessage::Joined(Joined {
            you: id("bob"),
            sender_index: hush_proto::SenderIndex(2),
            join_seq: 2,
            room: RoomId::new("room-pre").unwrap(),
            room_instance: None,
            locked: false,
            grants: Grants::default(),
            participants: vec![ParticipantInfo {
                id: id("alice"),
                sender_index: hush_proto::SenderIndex(1),
                join_seq: 1,
                identity_key: OpaqueBytes::new(alice.to_vec()),
                attestation: None,
                grants: Grants::default(),
                role: Default::default(),
            }],
            tracks: Vec::new(),
            ice_servers: Vec::new(),
        });
        bob.on_server(hush_participant::Instant::from_millis(1_000), &joined)
            .unwrap();
        bob.core().session().unwrap().join_horizon().unwrap()
    }

    /// A frame of sender `index` under `epoch`, sealed with a key nobody installed.
    fn sealed(index: u32, epoch: u64) -> Vec<u8> {
        let kid = Kid::new(
            StreamContext::MICROPHONE,
            SenderIndex::new(index).unwrap(),
            epoch,
        );
        let key = BaseKey::new(&[7; 16]).unwrap();
        let mut e = Encryptor::new(CipherSuite::Aes128GcmSha256_128, kid.get(), &key);
        let mut f = crate::synth::opus_frame(0, 80);
        e.encrypt(layout_of(Source::Microphone), &mut f).unwrap();
        f
    }

    #[test]
    fn frames_sealed_before_the_join_are_counted_apart_and_only_those() {
        let mut c = FrameCrypto::new(CipherSuite::Aes128GcmSha256_128);
        let later = std::time::Instant::now() + std::time::Duration::from_secs(10);
        c.set_join_horizon(Some((bobs_horizon(), later)));
        let audio = layout_of(Source::Microphone);
        // Alice's frame under epoch 1, on alice's track: before bob's join.
        assert!(!c.decrypt(1, audio, &mut sealed(1, 1)));
        assert_eq!(c.stats.received[&1].before_join, 1);
        assert_eq!(c.stats.received[&1].decrypt.dropped(), 0, "no failure");
        // The same frame on another track, alice's under the join's epoch, a stranger's.
        assert!(!c.decrypt(3, audio, &mut sealed(1, 1)));
        assert!(!c.decrypt(1, audio, &mut sealed(1, 2)));
        assert!(!c.decrypt(9, audio, &mut sealed(9, 1)));
        for sender in [3, 1, 9] {
            let r = c.stats.received[&sender];
            assert_eq!(
                r.decrypt.dropped_for(DropReason::UnknownKid),
                1,
                "{sender}: {r:?}"
            );
        }
        assert_eq!(c.stats.received[&1].before_join, 1);
        assert_eq!(c.stats.dropped_total(), 3);
        // Past the grace period: a failure like any other.
        let past = std::time::Instant::now();
        c.set_join_horizon(Some((bobs_horizon(), past)));
        assert!(!c.decrypt(1, audio, &mut sealed(1, 1)));
        assert_eq!(c.stats.received[&1].before_join, 1);
        assert_eq!(
            c.stats.received[&1]
                .decrypt
                .dropped_for(DropReason::UnknownKid),
            2
        );
    }

    /// A relay that puts alice's frames on the track it says is bob's: dropped unopened as
    /// `wrong_sender`, a failure; alice's replay window stays untouched, so the same frame on
    /// her own track still opens. (Before the check it decrypted as bob's.)
    #[test]
    fn a_frame_under_another_senders_key_is_dropped_as_wrong_sender() {
        let mut c = FrameCrypto::new(CipherSuite::Aes128GcmSha256_128);
        let kid = Kid::new(StreamContext::MICROPHONE, SenderIndex::new(1).unwrap(), 3);
        let key = BaseKey::new(&[7; 16]).unwrap();
        c.decryptor_mut().add_key(kid.get(), &key).unwrap();
        let mut e = Encryptor::new(CipherSuite::Aes128GcmSha256_128, kid.get(), &key);
        let audio = layout_of(Source::Microphone);
        let mut frame = crate::synth::opus_frame(0, 80);
        let plain = frame.clone();
        e.encrypt(audio, &mut frame).unwrap();
        let wire = frame.clone();
        assert!(
            !c.decrypt(2, audio, &mut frame),
            "alice's frame on bob's track"
        );
        let bob = c.stats.received[&2];
        assert_eq!((bob.wrong_sender, bob.decrypt.decrypted), (1, 0));
        assert_eq!(bob.decrypt.dropped(), 0, "not a decryptor drop");
        assert_eq!(c.stats.dropped_total(), 1, "a failure");
        let mut frame = wire;
        assert!(c.decrypt(1, audio, &mut frame), "on alice's own track");
        assert_eq!(frame, plain);
        assert_eq!(c.stats.received[&1].decrypt.decrypted, 1);
    }
}
