//! Encrypted recording, the adapter (DESIGN.md section 4; the decisions are the routing core's,
//! `routing::recording`). A recording is the recorder member's connection: what the core sends
//! it (its `joined`, membership events, the envelopes sealed to it) is written to the events
//! file, and every track forwarded to it is tapped from its fan-out and written, frame by
//! frame, still SFrame ciphertext, to a file of its own (the container is `hush-record`'s).
//! Nothing here can open a frame or an envelope: the recorder's private key never leaves the
//! app, and `hush-record decrypt` opens the recording offline.
//!
//! - Writing happens on a thread per recording ([`writer`]) behind a bounded queue
//!   ([`queue`]); frames that do not fit are dropped and counted, never buffered without
//!   bound, and never crowd out an event (an epoch's envelope).
//! - Synced every [`RecordingOptions::sync_interval`] (1 s by default): `kill -9` loses at most
//!   that much.
//! - Disk use is bounded per room and per relay; a full disk, a write error or a limit stops
//!   the recording (the recorder leaves the key exchange), reported to the participants, the
//!   audit trail and the metrics; the call goes on.

mod queue;
mod tap;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hush_proto::{OpaqueBytes, ParticipantId, RecordingEnd, RoomId, ServerMessage, TrackId};
use hush_record::{EventRecord, Manifest, RecordKind, RecordWriter, RecorderInfo};
use tokio::sync::mpsc;

use crate::bus::Input;
use crate::media::fanout::Fanout;
use crate::ops::metrics::Metrics;
use crate::routing::ConnId;
use writer::{Item, Writer};

/// Where and how much the relay records.
#[derive(Clone, Debug)]
pub struct RecordingOptions {
    /// The directory recordings are written under (one directory each).
    pub dir: PathBuf,
    /// Most bytes one recording may take.
    pub max_room_bytes: u64,
    /// Most bytes all recordings under `dir` may take together (what is there at start
    /// included).
    pub max_total_bytes: u64,
    /// How often written records are synced to disk.
    pub sync_interval: Duration,
    /// Most frames waiting for one recording's writer (events and new tracks have
    /// [`queue::CONTROL_SLOTS`] more of their own, which frames never take).
    pub queue: usize,
    /// Most bytes of frames waiting for one recording's writer.
    pub queue_bytes: usize,
}

impl RecordingOptions {
    /// Defaults under `dir`: 2 GiB a recording, 20 GiB in all, synced every second, 4,096
    /// queued frames (a few seconds of a call) of at most 64 MiB.
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            max_room_bytes: 2 << 30,
            max_total_bytes: 20 << 30,
            sync_interval: Duration::from_secs(1),
            queue: 4096,
            queue_bytes: 64 << 20,
        }
    }
}

/// Unix time in milliseconds.
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One recording in progress.
struct Active {
    started: Instant,
    tx: queue::Queue,
    thread: JoinHandle<()>,
    /// Tracks tapped, by (publisher, track): their tasks.
    taps: HashMap<(ConnId, TrackId), tokio::task::JoinHandle<()>>,
    next_file: u32,
}

/// The recordings of this relay, driven by the driver.
pub(crate) struct Recordings {
    options: Option<Arc<RecordingOptions>>,
    total: Arc<AtomicU64>,
    active: HashMap<ConnId, Active>,
    /// Writers that were told to stop, joined at shutdown.
    stopping: Vec<JoinHandle<()>>,
    metrics: Arc<Metrics>,
    failures: mpsc::Sender<writer::Failure>,
}

impl Recordings {
    /// Recordings under `options` (none: recording is disabled). Returns the receiver of the
    /// writers' failure reports, for the driver.
    pub(crate) fn new(
        options: Option<RecordingOptions>,
        metrics: Arc<Metrics>,
    ) -> (Self, mpsc::Receiver<writer::Failure>) {
        let (failures, rx) = mpsc::channel(64);
        let used = options.as_ref().map_or(0, |o| dir_size(&o.dir));
        let this = Self {
            options: options.map(Arc::new),
            total: Arc::new(AtomicU64::new(used)),
            active: HashMap::new(),
            stopping: Vec::new(),
            metrics,
            failures,
        };
        (this, rx)
    }

    /// Whether `conn` is a recording (not a socket).
    pub(crate) fn is_recording(&self, conn: ConnId) -> bool {
        self.active.contains_key(&conn)
    }

    /// A recording of `room` starts on `conn`. An error is reported as the end to tell the core.
    pub(crate) fn start(
        &mut self,
        room: &RoomId,
        conn: ConnId,
        recorder: &ParticipantId,
        identity_key: &OpaqueBytes,
    ) -> Result<(), RecordingEnd> {
        let Some(options) = self.options.clone() else {
            return Err(RecordingEnd::WriteError);
        };
        let started_at_ms = unix_ms();
        let id = format!("{started_at_ms}-{}", conn.get());
        let dir = options
            .dir
            .join(format!("{}-{id}", safe_name(room.as_str())));
        let fail = |e: std::io::Error| {
            tracing::warn!(error = %e, "recording could not start");
            match e.raw_os_error() {
                Some(28) | Some(122) => RecordingEnd::DiskFull,
                _ => RecordingEnd::WriteError,
            }
        };
        std::fs::create_dir_all(&dir).map_err(fail)?;
        let manifest = Manifest {
            recording_id: id,
            room: room.as_str().to_owned(),
            recorder: RecorderInfo {
                participant: recorder.as_str().to_owned(),
                identity_key: serde_json::to_value(identity_key)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
            },
            started_at_ms,
            stopped_at_ms: None,
            stop_reason: None,
            events_file: hush_record::manifest::EVENTS_FILE.to_owned(),
            tracks: Vec::new(),
        };
        manifest.write_atomic(&dir).map_err(fail)?;
        let events = RecordWriter::create(dir.join(&manifest.events_file), RecordKind::Events)
            .map_err(fail)?;
        let (tx, rx) = queue::queue(options.queue, options.queue_bytes);
        let writer = Writer {
            conn,
            dir,
            manifest,
            events,
            tracks: Vec::new(),
            options: Arc::clone(&options),
            total: Arc::clone(&self.total),
            room_bytes: 0,
            metrics: Arc::clone(&self.metrics),
            failures: self.failures.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("hush-recording".into())
            .spawn(move || writer.run(rx))
            .map_err(fail)?;
        self.metrics.recording_started();
        self.active.insert(
            conn,
            Active {
                started: Instant::now(),
                tx,
                thread,
                taps: HashMap::new(),
                next_file: 0,
            },
        );
        Ok(())
    }

    /// A message the core sent the recorder: to the events file.
    pub(crate) fn event(&mut self, conn: ConnId, message: &ServerMessage) {
        let Some(active) = self.active.get(&conn) else {
            return;
        };
        let record = EventRecord {
            at_us: u64::try_from(active.started.elapsed().as_micros()).unwrap_or(u64::MAX),
            json: message.encode(),
        };
        if active.tx.control(Item::Event(record)).is_err() {
            // An event lost is a key the recording may miss: counted, and visible offline.
            self.metrics.recording_dropped("event_queue_full", 1);
        }
    }

    /// `track` of `publisher` is forwarded to the recording on `conn`: tap its fan-out.
    pub(crate) fn add_track(
        &mut self,
        conn: ConnId,
        publisher: ConnId,
        participant: String,
        fanout: Arc<Fanout>,
        driver: mpsc::WeakSender<Input>,
    ) {
        let metrics = Arc::clone(&self.metrics);
        let Some(active) = self.active.get_mut(&conn) else {
            return;
        };
        let key = (publisher, fanout.track);
        if active.taps.contains_key(&key) {
            return;
        }
        let file = hush_record::manifest::track_file_name(active.next_file);
        active.next_file += 1;
        let cx = tap::TapContext {
            recorder: conn,
            track: fanout.track,
            participant,
            file,
            started: active.started,
            writer: active.tx.clone(),
            driver,
            metrics,
        };
        let task = tokio::spawn(tap::run(fanout, cx));
        active.taps.insert(key, task);
    }

    /// Stops tapping a track (it was unpublished, or the recording stops).
    pub(crate) fn remove_track(&mut self, conn: ConnId, publisher: ConnId, track: TrackId) {
        if let Some(task) = self
            .active
            .get_mut(&conn)
            .and_then(|a| a.taps.remove(&(publisher, track)))
        {
            task.abort();
        }
    }

    /// The recording on `conn` ends; its writer closes it on its own thread.
    pub(crate) fn stop(&mut self, conn: ConnId, end: RecordingEnd, fanouts: &[Arc<Fanout>]) {
        let Some(active) = self.active.remove(&conn) else {
            return;
        };
        for task in active.taps.into_values() {
            task.abort();
        }
        for fanout in fanouts {
            fanout.remove_sink(conn);
        }
        // A full queue still takes the stop once the writer catches up: this thread waits.
        let tx = active.tx;
        let stopper = std::thread::spawn(move || {
            tx.wait_send(Item::Stop(end));
        });
        tracing::info!(
            conn = conn.get(),
            reason = end.as_str(),
            "recording stopped"
        );
        self.stopping.push(active.thread);
        self.stopping.push(stopper);
        self.stopping.retain(|t| !t.is_finished());
    }

    /// Shutdown: every recording ends and its files are closed before this returns.
    pub(crate) fn stop_all(&mut self, end: RecordingEnd, fanouts: &[Arc<Fanout>]) {
        let conns: Vec<ConnId> = self.active.keys().copied().collect();
        for conn in conns {
            self.stop(conn, end, fanouts);
        }
        for t in self.stopping.drain(..) {
            let _ = t.join();
        }
    }
}

/// A room id as a directory name: ASCII letters, digits, `-` and `_` kept, the rest `_`, at
/// most 48 characters (the recording id after it keeps names unique).
fn safe_name(room: &str) -> String {
    room.chars()
        .take(48)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Bytes in the files under `dir`, two levels deep (recordings and their files).
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut total = 0u64;
    for e in entries.flatten() {
        let Ok(meta) = e.metadata() else { continue };
        if meta.is_dir() {
            if let Ok(files) = std::fs::read_dir(e.path()) {
                for f in files.flatten() {
                    total = total.saturating_add(f.metadata().map_or(0, |m| m.len()));
                }
            }
        } else {
            total = total.saturating_add(meta.len());
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_ids_become_plain_directory_names() {
        assert_eq!(safe_name("standup-42_a"), "standup-42_a");
        assert_eq!(safe_name("../etc/passwd"), "___etc_passwd");
        assert_eq!(safe_name(&"x".repeat(100)).len(), 48);
    }
}
