//! Opening a recording with the recorder's private key (`hush-record decrypt`; feature
//! `open`). The recording holds what the relay gave the recorder member: its `joined`, the
//! membership events and the envelopes sealed to it (`events.hrf`), and every track's frames
//! still SFrame ciphertext. Opening replays the events through the same participant core the
//! browsers run ([`hush_participant::Participant::recorder`]), at the times they were
//! recorded, so the recorder installs exactly the epochs it was sealed; frames are decrypted
//! in the order the relay received them, each with the keys the recorder held at that moment.
//! Events up to [`LOOKAHEAD_US`] later are applied first (an envelope may reach the relay just
//! after the first frames under its epoch), but never past a departure: a member's keys are
//! retired at its leave or removal, so its frames count up to that moment and not after.
//!
//! What it refuses, precisely: a key that is not the recording's recorder (nothing written),
//! a recording that is not one (manifest), and per frame every reason the frame layer has
//! (`auth_failed` for a tampered frame, `unknown_kid` for frames under keys the recorder was
//! never given: before it joined, after it left). Refused frames are counted and skipped; the
//! rest is still opened. A truncated file is read up to its last whole record.
//!
//! Without `--backend-key` the members in the events are taken as the relay announced them:
//! a relay could then add a member of its own to the recording's key exchange. With the app's
//! backend key (the Ed25519 key that vouches for members) a member without the backend's
//! attestation is refused, as it is in the browsers.

mod output;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use hush_frame::{BaseKey, CipherSuite, Codec, Decryptor, Layout};
use hush_keys::ed25519_dalek::VerifyingKey;
use hush_keys::{IdentityKeyPair, Kid, StreamContext};
use hush_participant::{Input, Instant, KeyUpdate, Output, Participant, ParticipantConfig};
use hush_proto::ServerMessage;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

use crate::manifest::{TrackInfo, TrackKind};
use crate::records::{Record, RecordError};
use crate::{FormatError, RecordingDir};
use output::TrackOutput;

/// How far ahead of a frame the events are applied (an envelope that the relay received just
/// after the first frames under its epoch).
pub const LOOKAHEAD_US: u64 = 2_000_000;

/// Why a recording could not be opened at all.
#[derive(Debug)]
#[non_exhaustive]
pub enum OpenError {
    /// The directory is not a readable recording (its manifest).
    Format(FormatError),
    /// The events file cannot be read.
    Events(RecordError),
    /// The key given is not the recording's recorder's: nothing was written.
    WrongKey,
    /// The output directory or a file in it could not be written.
    Output(std::io::Error),
    /// The randomness for the replayed key session could not be drawn.
    Rng,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Format(e) => write!(f, "not a readable recording: {e}"),
            Self::Events(e) => write!(f, "the events file cannot be read: {e}"),
            Self::WrongKey => f.write_str(
                "this private key is not the recording's recorder key (nothing was written)",
            ),
            Self::Output(e) => write!(f, "cannot write the output: {e}"),
            Self::Rng => f.write_str("no randomness from the OS"),
        }
    }
}

impl std::error::Error for OpenError {}

/// What opening did with one track.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrackReport {
    /// The track as the manifest lists it.
    pub participant: String,
    /// `audio` or `video`.
    pub kind: String,
    /// The codec.
    pub codec: String,
    /// Frames read from its file.
    pub frames: u64,
    /// Frames decrypted and written.
    pub written: u64,
    /// Frames refused, by reason (`auth_failed`, `unknown_kid`, `before_keyframe`, ...).
    pub refused: BTreeMap<&'static str, u64>,
    /// The sender's stream its frames are (`microphone`, `camera`, `screen`, `screen_audio`),
    /// as their keys say, once one opened: not the relay's word, as `kind` is.
    pub stream: Option<String>,
    /// Media time written, in milliseconds.
    pub duration_ms: u64,
    /// Bytes of ciphertext read.
    pub bytes: u64,
    /// The file written, if any frame was.
    pub output: Option<PathBuf>,
    /// Problems with its record file (truncated, checksums).
    pub damage: Vec<String>,
    /// When the relay received the first and the last frame written (Unix ms).
    pub written_between: Option<(u64, u64)>,
}

/// What opening did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// One entry per track, in the manifest's order.
    pub tracks: Vec<TrackReport>,
    /// Events replayed.
    pub events: u64,
    /// Problems with the events file.
    pub events_damage: Vec<String>,
    /// Safety codes the recorder computed, in order (what the participants compared).
    pub safety_codes: Vec<String>,
    /// Whether the members were checked against the app's backend key.
    pub members_checked: bool,
    /// What the recorder's key session refused, by code: relay messages (`forged`, `stale`,
    /// `roster_mismatch`, ...) and members (`member_refused: bad_attestation`, ...). Frames
    /// that do not open (`unknown_kid`, say) often have their reason here.
    pub key_refusals: BTreeMap<String, u64>,
    /// Whether the recorder's `joined` was applied (without it no key opens).
    pub joined: bool,
}

/// Frame refusals that an honest recording has too: frames under keys the recorder never got
/// (sealed before it joined, or after it left), video before its first keyframe, and codecs
/// this tool does not write.
const EXPECTED_REFUSALS: [&str; 3] = ["unknown_kid", "before_keyframe", "codec"];

/// Key-session refusals an honest recording can have: an envelope for an epoch already
/// superseded when it arrived. Any other (a forged or misaddressed envelope, a roster that
/// differs, a refused member, a `joined` for another room) says the events were altered.
const EXPECTED_KEY_REFUSALS: [&str; 1] = ["stale"];

impl Report {
    /// What says the recording was altered or damaged since it was sealed: frames refused for
    /// any reason but [`EXPECTED_REFUSALS`] (failed authentication, another sender's key,
    /// replayed, malformed), damaged record files and events that are no relay message, any
    /// key-session refusal but [`EXPECTED_KEY_REFUSALS`] (a ghost member the relay added, a
    /// forged envelope, a `joined` for another room than the manifest's), no `joined` at all.
    /// One line each; empty for a recording that opened clean.
    pub fn alterations(&self) -> Vec<String> {
        let mut found = Vec::new();
        for t in &self.tracks {
            for (reason, n) in &t.refused {
                if !EXPECTED_REFUSALS.contains(reason) {
                    found.push(format!(
                        "{} {}: {n} frames refused as {reason}",
                        t.participant, t.kind
                    ));
                }
            }
            for d in &t.damage {
                found.push(format!("{} {}: damaged: {d}", t.participant, t.kind));
            }
        }
        for d in &self.events_damage {
            found.push(format!("events damaged: {d}"));
        }
        for (code, n) in &self.key_refusals {
            if !EXPECTED_KEY_REFUSALS.contains(&code.as_str()) {
                found.push(format!("key session refused: {code} {n}"));
            }
        }
        if !self.joined {
            found.push("the recorder's joined never arrived: no key could be opened".into());
        }
        found
    }
}

/// How to open.
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    /// The app backend's Ed25519 key: members must carry its attestation.
    pub backend_key: Option<VerifyingKey>,
}

/// The frame layout of a recorded track's codec.
fn layout(track: &TrackInfo) -> Option<Layout> {
    match track.codec.as_str() {
        "opus" => Some(Layout::Media(Codec::Opus)),
        "vp8" => Some(Layout::Media(Codec::Vp8)),
        _ => None,
    }
}

/// One track's reader and what is read next from it.
struct Source {
    index: usize,
    records: crate::RecordReader<std::io::BufReader<std::fs::File>>,
    next: Option<crate::FrameRecord>,
}

impl Source {
    fn advance(&mut self, report: &mut TrackReport) {
        self.next = None;
        for r in self.records.by_ref() {
            match r {
                Ok(Record::Frame(f)) => {
                    self.next = Some(f);
                    return;
                }
                Ok(Record::Event(_)) => {}
                Err(e) => report.damage.push(e.to_string()),
            }
        }
    }
}

/// Opens the recording in `dir` with the recorder's `key` into `out` (created if needed): one
/// IVF file per video track, one Ogg Opus file per audio track. `progress` is called after each
/// frame with the bytes of track records read so far (of [`tracks_bytes`]).
pub fn open(
    dir: &Path,
    key: IdentityKeyPair,
    out: &Path,
    options: &OpenOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<Report, OpenError> {
    let rec = RecordingDir::open(dir).map_err(OpenError::Format)?;
    let manifest = rec.manifest().clone();
    let theirs = hush_proto::OpaqueBytes::new(key.public().as_bytes().to_vec());
    let ours = serde_json::to_value(&theirs).ok();
    if ours.as_ref().and_then(|v| v.as_str()) != Some(manifest.recorder.identity_key.as_str()) {
        return Err(OpenError::WrongKey);
    }
    // The events, whole (small: signaling), in order.
    let mut report = Report {
        members_checked: options.backend_key.is_some(),
        ..Report::default()
    };
    let mut events = Vec::new();
    for r in rec.open_events().map_err(OpenError::Events)? {
        match r {
            Ok(Record::Event(e)) => {
                let message = ServerMessage::decode(&e.json).ok();
                if message.is_none() {
                    // Checksummed but no protocol message: written so, not damaged on disk.
                    report
                        .events_damage
                        .push(format!("event at {} us: not a relay message", e.at_us));
                }
                events.push((e.at_us, message));
            }
            Ok(Record::Frame(_)) => {}
            Err(e) => report.events_damage.push(e.to_string()),
        }
    }
    report.events = events.len() as u64;
    let config = match options.backend_key {
        Some(k) => ParticipantConfig::vouched_by(k),
        None => ParticipantConfig::unauthenticated(),
    };
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|_| OpenError::Rng)?;
    let mut me = Participant::recorder(config, key, ChaCha20Rng::from_seed(seed));
    // The manifest's room is the relay's word: the recorder's `joined` must name it (a real
    // recording relabelled as another room's is refused, `wrong_room`, and opens nothing).
    if let Err(r) = me.expect_room(&manifest.room) {
        *report.key_refusals.entry(r.code().into()).or_default() += 1;
    }
    let mut dec = Decryptor::new(CipherSuite::Aes128GcmSha256_128);
    // Every member the key session admitted, by sender index (never reused in a room), kept
    // after it leaves: its frames recorded just before the leave still name it.
    let mut senders = HashMap::new();
    // Each track's stream, from its first opened frame.
    let mut streams: Vec<Option<StreamContext>> = vec![None; manifest.tracks.len()];

    std::fs::create_dir_all(out).map_err(OpenError::Output)?;
    let mut sources = Vec::new();
    let mut outputs = Vec::new();
    for (index, track) in manifest.tracks.iter().enumerate() {
        let mut tr = TrackReport {
            participant: track.participant.clone(),
            kind: match track.kind {
                TrackKind::Audio => "audio".into(),
                TrackKind::Video => "video".into(),
            },
            codec: track.codec.clone(),
            ..TrackReport::default()
        };
        outputs.push(TrackOutput::new(out, index, track));
        match rec.open_track(index) {
            Some(Ok(records)) => {
                let mut s = Source {
                    index,
                    records,
                    next: None,
                };
                s.advance(&mut tr);
                sources.push(s);
            }
            Some(Err(e)) => tr.damage.push(e.to_string()),
            None => {}
        }
        report.tracks.push(tr);
    }

    let start_ms = manifest.started_at_ms;
    let at = |us: u64| Instant::from_millis(start_ms.saturating_add(us / 1000));
    let mut next_event = 0usize;
    let mut handled = 0u64;
    // The earliest frame of all tracks, each time.
    while let Some(si) = sources
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.next.as_ref().map(|f| (i, f.at_us)))
        .min_by_key(|&(_, t)| t)
        .map(|(i, _)| i)
    {
        let Some(frame) = sources[si].next.take() else {
            break;
        };
        let record_len = (crate::records::RECORD_HEADER_LEN
            + crate::records::FRAME_FIXED_LEN
            + frame.data.len()) as u64;
        let index = sources[si].index;
        // Events due by then (and shortly after), and the timers they set.
        let horizon = frame.at_us.saturating_add(LOOKAHEAD_US);
        while let Some((t, msg)) = events.get(next_event).filter(|(t, msg)| {
            *t <= frame.at_us
                || (*t <= horizon && !matches!(msg, Some(ServerMessage::ParticipantLeft(_))))
        }) {
            apply_event(
                &mut me,
                &mut dec,
                &mut report,
                &mut senders,
                at(*t),
                msg.as_ref(),
            );
            next_event += 1;
        }
        tick(&mut me, at(frame.at_us), &mut dec, &mut report);
        let tr = &mut report.tracks[index];
        tr.frames += 1;
        tr.bytes += frame.data.len() as u64;
        let track = manifest.tracks.get(index);
        match track.and_then(|t| layout(t).map(|l| (t, l))) {
            None => *tr.refused.entry("codec").or_default() += 1,
            Some((track, l)) => {
                let mut buf = frame.data;
                let stream = &mut streams[index];
                match open_frame(&mut dec, l, &mut buf, track, &senders, stream) {
                    Ok(()) => match outputs[index].write(&buf, frame.rtp_timestamp) {
                        Ok(true) => {
                            tr.written += 1;
                            let t = start_ms.saturating_add(frame.at_us / 1000);
                            let first = tr.written_between.map_or(t, |(f, _)| f);
                            tr.written_between = Some((first, t));
                        }
                        Ok(false) => *tr.refused.entry("before_keyframe").or_default() += 1,
                        Err(e) => return Err(OpenError::Output(e)),
                    },
                    Err(reason) => *tr.refused.entry(reason).or_default() += 1,
                }
            }
        }
        let tr = &mut report.tracks[index];
        sources[si].advance(tr);
        handled += record_len;
        progress(handled);
    }
    // The events after the last frame too: the whole log is checked (a forged envelope there
    // is an alteration all the same), and a recording without frames still shows its joined.
    for (t, msg) in events.iter().skip(next_event) {
        apply_event(
            &mut me,
            &mut dec,
            &mut report,
            &mut senders,
            at(*t),
            msg.as_ref(),
        );
    }
    report.joined = me.session().is_some();
    for (i, o) in outputs.into_iter().enumerate() {
        let (path, duration_ms) = o.finish().map_err(OpenError::Output)?;
        if let Some(tr) = report.tracks.get_mut(i) {
            tr.output = path;
            tr.duration_ms = duration_ms;
            tr.stream = streams.get(i).copied().flatten().map(stream_name);
        }
    }
    Ok(report)
}

/// Adds the key session's current members to `senders` (sender index to participant id).
fn learn_senders(me: &Participant<ChaCha20Rng>, senders: &mut HashMap<u32, Vec<u8>>) {
    for m in me.session().into_iter().flat_map(|s| s.members()) {
        senders
            .entry(m.sender_index.get())
            .or_insert_with(|| m.participant.as_bytes().to_vec());
    }
}

/// Opens one frame of `track`, refusing it unopened (`wrong_sender`) when its KID is not the
/// key of the sender the manifest names, by index and by participant id as the key session
/// admitted it: the manifest is the relay's word, and a relay that merges one member's frames
/// into another's track, or swaps the tracks' labels, would otherwise have them written out
/// under the wrong name; and (`wrong_stream`) when the KID names another of the sender's
/// streams than the track's (`stream`: set by its first frame that opens) or one of the other
/// kind. Any other refusal is the decryptor's reason.
fn open_frame(
    dec: &mut Decryptor,
    layout: Layout,
    buf: &mut Vec<u8>,
    track: &TrackInfo,
    senders: &HashMap<u32, Vec<u8>>,
    stream: &mut Option<StreamContext>,
) -> Result<(), &'static str> {
    let plan = dec.plan(layout, buf).map_err(|e| e.reason().as_str())?;
    let unpacked = Kid::unpack(plan.kid());
    let sender = unpacked.map(|(_, s, _)| s.get());
    let named = sender.and_then(|s| senders.get(&s));
    if sender != Some(track.sender_index)
        || named.map(Vec::as_slice) != Some(track.participant.as_bytes())
    {
        return Err("wrong_sender");
    }
    // The sender's other streams open under its keys too (its screen's frames in its camera's
    // track, say): a track holds one stream, of its kind, the one its first opened frame's KID
    // names (authenticated, unlike the manifest's labels).
    if let Some((context, _, _)) = unpacked
        && (is_audio(context) != (track.kind == TrackKind::Audio)
            || stream.is_some_and(|s| s != context))
    {
        return Err("wrong_stream");
    }
    dec.open(&plan, buf).map_err(|e| e.reason().as_str())?;
    dec.commit(&plan, buf).map_err(|e| e.reason().as_str())?;
    if let Some((context, _, _)) = unpacked {
        stream.get_or_insert(context);
    }
    Ok(())
}

/// Whether frames of stream `context` are audio (Hush's microphone and screen audio).
fn is_audio(context: StreamContext) -> bool {
    context == StreamContext::MICROPHONE || context == StreamContext::SCREEN_AUDIO
}

/// The name of stream `context`, as the report shows it.
fn stream_name(context: StreamContext) -> String {
    match context {
        StreamContext::MICROPHONE => "microphone".into(),
        StreamContext::CAMERA => "camera".into(),
        StreamContext::SCREEN => "screen".into(),
        StreamContext::SCREEN_AUDIO => "screen_audio".into(),
        StreamContext(n) => format!("stream {n}"),
    }
}

/// Applies one recorded relay event at its time `now`, after the timers due by then, and
/// learns the members it admitted (only relay events change who is a member).
fn apply_event(
    me: &mut Participant<ChaCha20Rng>,
    dec: &mut Decryptor,
    report: &mut Report,
    senders: &mut HashMap<u32, Vec<u8>>,
    now: Instant,
    msg: Option<&ServerMessage>,
) {
    tick(me, now, dec, report);
    if let Some(msg) = msg {
        match me.handle_input(now, Input::Relay(msg)) {
            // Media signaling (tracks, offers) is not the key session's: not a refusal.
            Err(hush_participant::Refusal::NotAKeyEvent) | Ok(()) => {}
            Err(r) => *report.key_refusals.entry(r.code().into()).or_default() += 1,
        }
    }
    drain(me, dec, report);
    learn_senders(me, senders);
}

/// Runs the key session's timers up to `now`.
fn tick(me: &mut Participant<ChaCha20Rng>, now: Instant, dec: &mut Decryptor, r: &mut Report) {
    while me.next_timeout().is_some_and(|t| t <= now) {
        let Some(t) = me.next_timeout() else { break };
        let _ = me.handle_input(t, Input::Tick);
        drain(me, dec, r);
    }
}

/// Applies the key session's outputs: receive keys to the decryptor; what the recorder would
/// send goes nowhere (it never answers).
fn drain(me: &mut Participant<ChaCha20Rng>, dec: &mut Decryptor, r: &mut Report) {
    while let Some(o) = me.poll_output() {
        match o {
            Output::Key(KeyUpdate::InstallReceive { kid, key }) => {
                if let Ok(k) = BaseKey::new(key.as_bytes()) {
                    let _ = dec.add_key(kid.get(), &k);
                }
            }
            Output::Key(KeyUpdate::RetireReceive { kid }) => {
                dec.remove_key(kid.get());
            }
            Output::Event(hush_participant::Event::SafetyCode(c)) => {
                r.safety_codes.push(c.to_string());
            }
            Output::Event(hush_participant::Event::MemberRefused { reason, .. }) => {
                let code = format!("member_refused: {}", reason.code());
                *r.key_refusals.entry(code).or_default() += 1;
            }
            _ => {}
        }
    }
}

/// Bytes of the tracks' files (a progress bar's length for [`open`]'s `progress`), from their
/// sizes: nothing is read.
pub fn tracks_bytes(dir: &Path) -> Result<u64, OpenError> {
    let rec = RecordingDir::open(dir).map_err(OpenError::Format)?;
    let n = (0..rec.manifest().tracks.len())
        .filter_map(|i| rec.track_path(i))
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    Ok(n)
}

#[cfg(test)]
mod tests {
    use hush_frame::Encryptor;
    use hush_keys::SenderIndex;

    use super::*;

    fn track(kind: TrackKind) -> TrackInfo {
        TrackInfo {
            file: "track-0.hrf".into(),
            track_id: "t0".into(),
            participant: "alice".into(),
            sender_index: 1,
            kind,
            codec: "vp8".into(),
            clock_rate: 90_000,
            added_at_ms: 0,
        }
    }

    /// A relay splicing alice's screen frames into her camera's track (or her microphone's
    /// into it): they open under her keys, so only the KID's stream tells them apart. The
    /// track keeps the stream of its first opened frame; the others are `wrong_stream`.
    #[test]
    fn a_track_holds_one_stream_of_its_sender() {
        let suite = CipherSuite::Aes128GcmSha256_128;
        let key = BaseKey::new(&[7; 16]).expect("key");
        let kid = |c| Kid::new(c, SenderIndex::new(1).expect("index"), 0).get();
        let (camera, screen, mic) = (
            StreamContext::CAMERA,
            StreamContext::SCREEN,
            StreamContext::MICROPHONE,
        );
        let mut dec = Decryptor::new(suite);
        let mut sealers = HashMap::new();
        for c in [camera, screen, mic] {
            dec.add_key(kid(c), &key).expect("added");
            sealers.insert(c.0, Encryptor::new(suite, kid(c), &key));
        }
        let mut seal = |c: StreamContext| {
            let mut frame = b"a frame of media".to_vec();
            sealers
                .get_mut(&c.0)
                .expect("sealer")
                .encrypt(Layout::Pure, &mut frame)
                .expect("sealed");
            frame
        };
        let senders = HashMap::from([(1u32, b"alice".to_vec())]);
        let video = track(TrackKind::Video);
        let mut stream = None;
        let mut open = |mut frame: Vec<u8>, stream: &mut Option<StreamContext>| {
            open_frame(&mut dec, Layout::Pure, &mut frame, &video, &senders, stream)
        };
        assert_eq!(open(seal(camera), &mut stream), Ok(()));
        assert_eq!(stream, Some(camera));
        assert_eq!(open(seal(screen), &mut stream), Err("wrong_stream"));
        assert_eq!(open(seal(mic), &mut stream), Err("wrong_stream"));
        assert_eq!(open(seal(camera), &mut stream), Ok(()));
        // A video track whose first frame is audio takes no stream from it.
        let mut fresh = None;
        assert_eq!(open(seal(mic), &mut fresh), Err("wrong_stream"));
        assert_eq!(fresh, None);
        assert_eq!(stream_name(screen), "screen");
    }
}
