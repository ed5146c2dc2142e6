//! One recording's queue to its writer thread. Media may fill only its own share of it, by
//! count ([`super::RecordingOptions::queue`]) and by bytes
//! ([`super::RecordingOptions::queue_bytes`]); the [`CONTROL_SLOTS`] left over belong to events
//! and new tracks. An event the recorder receives can be the envelope of an epoch: lost, every
//! frame of that epoch on every track stays unreadable, so frames arriving faster than the disk
//! takes them are dropped (and counted) without ever crowding an event out.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use hush_record::FrameRecord;

use super::writer::Item;

/// Slots of the queue that frames never take: for events and new tracks.
pub(super) const CONTROL_SLOTS: usize = 1024;

/// Why an item was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum NotQueued {
    /// No room for it now: dropped.
    Full,
    /// The writer is gone.
    Closed,
}

/// What frames hold of the queue now.
#[derive(Debug)]
struct Backlog {
    frames: AtomicUsize,
    bytes: AtomicUsize,
    max_frames: usize,
    max_bytes: usize,
}

impl Backlog {
    /// Takes room for one frame of `len` bytes, if both budgets have it.
    fn take(&self, len: usize) -> bool {
        if self.frames.fetch_add(1, Ordering::AcqRel) >= self.max_frames {
            self.frames.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        if self
            .bytes
            .fetch_add(len, Ordering::AcqRel)
            .saturating_add(len)
            > self.max_bytes
        {
            self.bytes.fetch_sub(len, Ordering::AcqRel);
            self.frames.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    fn give_back(&self, len: usize) {
        self.frames.fetch_sub(1, Ordering::AcqRel);
        self.bytes.fetch_sub(len, Ordering::AcqRel);
    }
}

/// The sending side, one clone per tap and one for the recording's events.
#[derive(Clone, Debug)]
pub(super) struct Queue {
    tx: SyncSender<Item>,
    backlog: Arc<Backlog>,
}

/// The writer's side: items in order; each frame taken gives its room back.
#[derive(Debug)]
pub(super) struct Dequeue {
    rx: Receiver<Item>,
    backlog: Arc<Backlog>,
}

/// A queue for at most `max_frames` frames of `max_bytes` in all, plus [`CONTROL_SLOTS`].
pub(super) fn queue(max_frames: usize, max_bytes: usize) -> (Queue, Dequeue) {
    let (tx, rx) = sync_channel(max_frames.saturating_add(CONTROL_SLOTS));
    let backlog = Arc::new(Backlog {
        frames: AtomicUsize::new(0),
        bytes: AtomicUsize::new(0),
        max_frames,
        max_bytes,
    });
    (
        Queue {
            tx,
            backlog: Arc::clone(&backlog),
        },
        Dequeue { rx, backlog },
    )
}

impl Queue {
    /// Queues a frame of the track whose file is `file`, if the frames' share has room.
    pub(super) fn frame(&self, file: Arc<str>, record: FrameRecord) -> Result<(), NotQueued> {
        let len = record.data.len();
        if !self.backlog.take(len) {
            return Err(NotQueued::Full);
        }
        self.tx.try_send(Item::Frame { file, record }).map_err(|e| {
            self.backlog.give_back(len);
            match e {
                TrySendError::Full(_) => NotQueued::Full,
                TrySendError::Disconnected(_) => NotQueued::Closed,
            }
        })
    }

    /// Queues an event or a new track (never `Frame`: see [`Queue::frame`]), in the room frames
    /// cannot take.
    pub(super) fn control(&self, item: Item) -> Result<(), NotQueued> {
        debug_assert!(!matches!(item, Item::Frame { .. }));
        self.tx.try_send(item).map_err(|e| match e {
            TrySendError::Full(_) => NotQueued::Full,
            TrySendError::Disconnected(_) => NotQueued::Closed,
        })
    }

    /// Queues `item`, waiting for room (the stop, sent from a thread of its own).
    pub(super) fn wait_send(&self, item: Item) {
        let _ = self.tx.send(item);
    }
}

impl Dequeue {
    /// The next item, waiting at most `timeout`.
    pub(super) fn recv_timeout(
        &self,
        timeout: std::time::Duration,
    ) -> Result<Item, std::sync::mpsc::RecvTimeoutError> {
        let item = self.rx.recv_timeout(timeout)?;
        if let Item::Frame { record, .. } = &item {
            self.backlog.give_back(record.data.len());
        }
        Ok(item)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hush_record::EventRecord;

    use super::*;

    fn record(bytes: usize) -> FrameRecord {
        FrameRecord {
            at_us: 1,
            rtp_timestamp: 2,
            keyframe: false,
            gap: false,
            data: vec![7; bytes],
        }
    }

    fn event() -> Item {
        Item::Event(EventRecord {
            at_us: 3,
            json: r#"{"type":"e2ee"}"#.to_owned(),
        })
    }

    /// A writer that fell behind: frames past their share are dropped, and every event still
    /// gets in (before, frames and events shared one queue, and an envelope behind a full
    /// queue was lost).
    #[test]
    fn frames_past_their_share_are_dropped_and_events_still_get_in() {
        let (q, rx) = queue(2, 1 << 20);
        let file: Arc<str> = Arc::from("track-0.hrf");
        let sent: Vec<_> = (0..5)
            .map(|_| q.frame(Arc::clone(&file), record(100)))
            .collect();
        assert_eq!(
            sent,
            [
                Ok(()),
                Ok(()),
                Err(NotQueued::Full),
                Err(NotQueued::Full),
                Err(NotQueued::Full)
            ]
        );
        for _ in 0..CONTROL_SLOTS {
            assert_eq!(q.control(event()), Ok(()));
        }
        // The control slots are bounded too.
        assert_eq!(q.control(event()), Err(NotQueued::Full));
        // The writer catches up: a frame taken gives its room back.
        assert!(matches!(
            rx.recv_timeout(Duration::ZERO),
            Ok(Item::Frame { .. })
        ));
        assert_eq!(q.frame(Arc::clone(&file), record(100)), Ok(()));
        assert_eq!(q.frame(file, record(100)), Err(NotQueued::Full));
    }

    /// Large frames are bounded by bytes, not only by count.
    #[test]
    fn frames_are_bounded_by_bytes() {
        let (q, rx) = queue(100, 1000);
        let file: Arc<str> = Arc::from("track-0.hrf");
        assert_eq!(q.frame(Arc::clone(&file), record(600)), Ok(()));
        assert_eq!(
            q.frame(Arc::clone(&file), record(600)),
            Err(NotQueued::Full)
        );
        assert_eq!(q.frame(Arc::clone(&file), record(400)), Ok(()));
        assert!(rx.recv_timeout(Duration::ZERO).is_ok());
        assert_eq!(q.frame(Arc::clone(&file), record(600)), Ok(()));
        drop(rx);
        assert_eq!(q.frame(file, record(0)), Err(NotQueued::Closed));
    }
}
