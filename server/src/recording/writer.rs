//! The writer of one recording: a thread of its own that owns the files, fed through a bounded
//! queue, so a slow disk never stalls the driver or a publisher's receive loop (a full queue
//! drops the frame, counted). It syncs every [`RecordingOptions::sync_interval`] (a recording
//! cut by `kill -9` reads back up to the last sync), keeps the room's and the relay's byte
//! limits, and on any write error stops writing and reports why, once.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::Instant;

use hush_proto::RecordingEnd;
use hush_record::manifest::MAX_TRACKS;
use hush_record::{
    EventRecord, FormatError, FrameRecord, Manifest, RecordKind, RecordWriter, StopReason,
    TrackInfo,
};

use super::RecordingOptions;
use crate::ops::metrics::Metrics;

/// One thing for the writer thread.
pub(super) enum Item {
    /// A signaling message the recorder received.
    Event(EventRecord),
    /// A new track: its file is created, then the manifest lists it.
    Track(TrackInfo),
    /// A frame of the track whose file is `file`.
    Frame { file: Arc<str>, record: FrameRecord },
    /// The recording ends.
    Stop(RecordingEnd),
}

/// What the writer reports back: the recording could not go on.
pub(super) type Failure = (crate::routing::ConnId, RecordingEnd);

pub(super) struct Writer {
    pub(super) conn: crate::routing::ConnId,
    pub(super) dir: PathBuf,
    pub(super) manifest: Manifest,
    pub(super) events: RecordWriter,
    pub(super) tracks: Vec<(Arc<str>, RecordWriter)>,
    pub(super) options: Arc<RecordingOptions>,
    /// Bytes written by every recording of this relay (its limit is per relay).
    pub(super) total: Arc<AtomicU64>,
    pub(super) room_bytes: u64,
    pub(super) metrics: Arc<Metrics>,
    pub(super) failures: tokio::sync::mpsc::Sender<Failure>,
}

impl Writer {
    /// Runs until `Stop` (or the sender is gone), then closes the recording.
    pub(super) fn run(mut self, rx: super::queue::Dequeue) {
        let mut failed: Option<RecordingEnd> = None;
        let mut last_sync = Instant::now();
        let end = loop {
            let timeout = self
                .options
                .sync_interval
                .saturating_sub(last_sync.elapsed());
            let item = match rx.recv_timeout(timeout) {
                Ok(item) => Some(item),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break RecordingEnd::Shutdown,
            };
            if let Some(Item::Stop(end)) = item {
                break end;
            }
            if failed.is_none() {
                let step = match item {
                    Some(item) => self.write(item),
                    None => Ok(()),
                };
                let step = step.and_then(|()| {
                    if last_sync.elapsed() >= self.options.sync_interval {
                        last_sync = Instant::now();
                        self.sync()
                    } else {
                        Ok(())
                    }
                });
                if let Err(end) = step {
                    tracing::warn!(
                        recording = self.manifest.recording_id.as_str(),
                        reason = end.as_str(),
                        "recording stopped"
                    );
                    self.metrics.recording_failed(end);
                    failed = Some(end);
                    // Blocking is fine here: this is the writer's own thread.
                    let _ = self.failures.blocking_send((self.conn, end));
                }
            }
        };
        let end = failed.unwrap_or(end);
        let _ = self.sync();
        self.manifest.stopped_at_ms = Some(super::unix_ms());
        self.manifest.stop_reason = Some(stop_reason(end));
        if let Err(e) = self.manifest.write_atomic(&self.dir) {
            tracing::warn!(error = %e, "recording manifest not rewritten at the end");
        }
        self.metrics.recording_closed();
    }

    fn write(&mut self, item: Item) -> Result<(), RecordingEnd> {
        match item {
            Item::Event(e) => {
                let len = (e.json.len() + 16) as u64;
                self.reserve(len)?;
                let n = self.events.append_event(&e).map_err(io_end)?;
                self.account(n, len);
            }
            Item::Frame { file, record } => {
                // The track first: a frame of a track with no file reserves nothing.
                let Some(i) = self.tracks.iter().position(|(f, _)| *f == file) else {
                    return Ok(());
                };
                let len = (record.data.len() + 21) as u64;
                self.reserve(len)?;
                let n = self.tracks[i].1.append_frame(&record).map_err(io_end)?;
                self.account(n, len);
                self.metrics.recording_frame(n);
            }
            Item::Track(info) => {
                // Bounded: a participant who publishes and unpublishes in a loop stops the
                // recording (participants are told), rather than growing a manifest past what
                // `hush-record` opens.
                if self.manifest.tracks.len() >= MAX_TRACKS {
                    return Err(RecordingEnd::SizeLimit);
                }
                let path = self.dir.join(&info.file);
                let file = Arc::from(info.file.as_str());
                self.manifest.tracks.push(info);
                if let Err(e) = self.manifest.to_json() {
                    // Never kept in the manifest: the final rewrite would fail too.
                    self.manifest.tracks.pop();
                    return Err(match e {
                        FormatError::TooLarge => RecordingEnd::SizeLimit,
                        _ => RecordingEnd::WriteError,
                    });
                }
                let created = RecordWriter::create(path, RecordKind::Frames)
                    .and_then(|mut w| w.sync().map(|()| w));
                let w = match created {
                    Ok(w) => w,
                    Err(e) => {
                        self.manifest.tracks.pop();
                        return Err(io_end(e));
                    }
                };
                self.tracks.push((file, w));
                // Only the new file is synced before the manifest names it (the others are,
                // every `sync_interval`): syncing all of them made each new track cost one
                // sync per track already recorded.
                self.manifest.write_atomic(&self.dir).map_err(io_end)?;
            }
            Item::Stop(_) => {}
        }
        Ok(())
    }

    /// Takes `len` bytes from the room's and the relay's allowance, or says the limit is hit.
    fn reserve(&mut self, len: u64) -> Result<(), RecordingEnd> {
        if self.room_bytes.saturating_add(len) > self.options.max_room_bytes {
            return Err(RecordingEnd::SizeLimit);
        }
        let before = self.total.fetch_add(len, Ordering::Relaxed);
        if before.saturating_add(len) > self.options.max_total_bytes {
            self.total.fetch_sub(len, Ordering::Relaxed);
            return Err(RecordingEnd::SizeLimit);
        }
        self.room_bytes += len;
        Ok(())
    }

    /// Corrects the reservation to what was written.
    fn account(&mut self, written: u64, reserved: u64) {
        if written != reserved {
            self.room_bytes = self
                .room_bytes
                .saturating_sub(reserved)
                .saturating_add(written);
            if written > reserved {
                self.total.fetch_add(written - reserved, Ordering::Relaxed);
            } else {
                self.total.fetch_sub(reserved - written, Ordering::Relaxed);
            }
        }
    }

    fn sync(&mut self) -> Result<(), RecordingEnd> {
        self.events.sync().map_err(io_end)?;
        for (_, w) in &mut self.tracks {
            w.sync().map_err(io_end)?;
        }
        Ok(())
    }
}

/// A write error's end: a full disk (or quota) is told apart from the rest.
fn io_end(e: io::Error) -> RecordingEnd {
    // ENOSPC, EDQUOT (Linux).
    match e.raw_os_error() {
        Some(28) | Some(122) => RecordingEnd::DiskFull,
        _ if e.kind() == io::ErrorKind::StorageFull => RecordingEnd::DiskFull,
        _ => {
            tracing::warn!(error = %e, "recording write failed");
            RecordingEnd::WriteError
        }
    }
}

/// The manifest's word for how the recording ended.
pub(super) fn stop_reason(end: RecordingEnd) -> StopReason {
    match end {
        RecordingEnd::Stopped => StopReason::Stopped,
        RecordingEnd::DiskFull => StopReason::DiskFull,
        RecordingEnd::SizeLimit => StopReason::SizeLimit,
        RecordingEnd::RoomEmpty => StopReason::RoomClosed,
        RecordingEnd::Shutdown => StopReason::Shutdown,
        RecordingEnd::Removed => StopReason::RecorderRemoved,
        _ => StopReason::WriteError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hush_record::{RecorderInfo, TrackKind};

    fn writer(dir: &std::path::Path) -> Writer {
        let manifest = Manifest {
            recording_id: "r1".into(),
            room: "room".into(),
            recorder: RecorderInfo {
                participant: "rec".into(),
                // Base64 of 32 zero bytes: the manifest checks the key's shape.
                identity_key: format!("{}=", "A".repeat(43)),
            },
            started_at_ms: 1,
            stopped_at_ms: None,
            stop_reason: None,
            events_file: hush_record::manifest::EVENTS_FILE.to_owned(),
            tracks: Vec::new(),
        };
        let events = RecordWriter::create(dir.join(&manifest.events_file), RecordKind::Events)
            .expect("events file");
        let (failures, _) = tokio::sync::mpsc::channel(1);
        Writer {
            conn: crate::routing::ConnId(1),
            dir: dir.to_owned(),
            manifest,
            events,
            tracks: Vec::new(),
            options: Arc::new(RecordingOptions::new(dir.to_owned())),
            total: Arc::new(AtomicU64::new(0)),
            room_bytes: 0,
            metrics: Arc::new(Metrics::new()),
            failures,
        }
    }

    fn frame(file: &str, bytes: usize) -> Item {
        Item::Frame {
            file: Arc::from(file),
            record: FrameRecord {
                at_us: 1,
                rtp_timestamp: 2,
                keyframe: true,
                gap: false,
                data: vec![7; bytes],
            },
        }
    }

    #[test]
    fn a_frame_of_an_unknown_track_takes_no_allowance() {
        let dir = std::env::temp_dir().join(format!("hush-writer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let mut w = writer(&dir);
        w.write(Item::Track(TrackInfo {
            file: "t1.hrec".into(),
            track_id: "t1".into(),
            participant: "alice".into(),
            sender_index: 0,
            kind: TrackKind::Video,
            codec: "vp8".into(),
            clock_rate: 90_000,
            added_at_ms: 1,
        }))
        .expect("track");

        w.write(frame("nobody.hrec", 1_000))
            .expect("dropped quietly");
        assert_eq!(
            w.room_bytes, 0,
            "an unknown track's frame kept its reservation"
        );
        assert_eq!(w.total.load(Ordering::Relaxed), 0);

        w.write(frame("t1.hrec", 1_000)).expect("written");
        assert!(w.room_bytes >= 1_000, "{}", w.room_bytes);
        assert_eq!(w.total.load(Ordering::Relaxed), w.room_bytes);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A participant who publishes and unpublishes in a loop: the recording stops at
    /// `MAX_TRACKS` tracks with `size_limit`, and the manifest it leaves, with the longest ids,
    /// still opens (it grew past what `Manifest::read` takes, unbounded, before).
    #[test]
    fn tracks_past_the_limit_stop_the_recording_and_the_manifest_still_opens() {
        let dir = std::env::temp_dir().join(format!("hush-writer-tracks-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let mut w = writer(&dir);
        let track = |n: u32| {
            Item::Track(TrackInfo {
                file: hush_record::manifest::track_file_name(n),
                track_id: format!("{n:0>64}"),
                participant: "p".repeat(128),
                sender_index: n,
                kind: TrackKind::Video,
                codec: "vp8".into(),
                clock_rate: 90_000,
                added_at_ms: u64::MAX,
            })
        };
        for n in 0..MAX_TRACKS as u32 {
            w.write(track(n)).expect("under the limit");
        }
        assert!(matches!(
            w.write(track(MAX_TRACKS as u32)),
            Err(RecordingEnd::SizeLimit)
        ));
        let read = Manifest::read(&dir).expect("the manifest opens");
        assert_eq!(read.tracks.len(), MAX_TRACKS);
        // A track the manifest refuses for another reason is not kept in it either (the final
        // rewrite would fail on it).
        w.manifest.tracks.truncate(1);
        let Item::Track(mut bad) = track(9_999) else {
            unreachable!()
        };
        bad.file = "../outside".into();
        assert!(matches!(
            w.write(Item::Track(bad)),
            Err(RecordingEnd::WriteError)
        ));
        assert_eq!(w.manifest.tracks.len(), 1);
        assert!(
            !dir.join(hush_record::manifest::track_file_name(MAX_TRACKS as u32))
                .exists()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
