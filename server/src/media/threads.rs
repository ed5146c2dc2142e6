//! Media threads: every room's media runs on one thread of its own choosing.
//!
//! A forwarded packet passes through several tasks: the publisher's receive loop, which the
//! fan-out writes each subscriber's copy from, and each subscriber's webrtc-rs connection
//! driver, which runs the interceptors, SRTP and the socket. On one multi-threaded runtime those tasks wake
//! one another across threads for every packet. Here each thread runs a single-threaded tokio
//! runtime, and every participant of a room builds its PeerConnection on the room's thread, so
//! webrtc-rs spawns its driver and binds its socket there too: a packet crosses no thread from
//! the publisher's socket to the subscribers'. Rooms are placed on the thread with the fewest
//! media sessions when their first session starts (mediasoup's workers, a room to a worker,
//! do the same). Signaling, HTTP, the driver and recording taps stay on the main runtime.
//!
//! [`Placement`] is the choice alone (no threads, no clock), so it is tested as a value.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use hush_proto::RoomId;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// Which room runs on which thread, and how many media sessions each thread has.
#[derive(Debug, Default)]
pub(crate) struct Placement {
    /// A room with sessions: its thread and how many sessions it has.
    rooms: HashMap<RoomId, (usize, usize)>,
    /// Sessions per thread.
    sessions: Vec<usize>,
}

impl Placement {
    /// A placement over `threads` threads (at least one).
    pub(crate) fn new(threads: usize) -> Self {
        Self {
            rooms: HashMap::new(),
            sessions: vec![0; threads.max(1)],
        }
    }

    /// One more session in `room`: the room's thread, chosen now (the one with the fewest
    /// sessions, the lowest index on a tie) if the room has no session yet.
    pub(crate) fn place(&mut self, room: &RoomId) -> usize {
        let thread = match self.rooms.get_mut(room) {
            Some((thread, count)) => {
                *count += 1;
                *thread
            }
            None => {
                let thread = self
                    .sessions
                    .iter()
                    .enumerate()
                    .min_by_key(|&(i, n)| (*n, i))
                    .map_or(0, |(i, _)| i);
                self.rooms.insert(room.clone(), (thread, 1));
                thread
            }
        };
        if let Some(n) = self.sessions.get_mut(thread) {
            *n += 1;
        }
        thread
    }

    /// A session in `room` ended; the room is forgotten with its last one.
    pub(crate) fn release(&mut self, room: &RoomId) {
        let Some((thread, count)) = self.rooms.get_mut(room) else {
            return;
        };
        let thread = *thread;
        *count -= 1;
        if *count == 0 {
            self.rooms.remove(room);
        }
        if let Some(n) = self.sessions.get_mut(thread) {
            *n = n.saturating_sub(1);
        }
    }

    /// Sessions per thread.
    pub(crate) fn sessions(&self) -> &[usize] {
        &self.sessions
    }
}

/// The media threads of one relay. Dropping this stops them, and with them every media
/// session still running there.
pub(crate) struct MediaThreads {
    handles: Vec<Handle>,
    placement: Arc<Mutex<Placement>>,
    /// Each thread runs until its sender is dropped.
    _stops: Vec<oneshot::Sender<()>>,
}

/// A media session's place on a thread; the session count goes down when it is dropped.
pub(crate) struct ThreadLease {
    placement: Arc<Mutex<Placement>>,
    room: RoomId,
}

impl Drop for ThreadLease {
    fn drop(&mut self) {
        lock(&self.placement).release(&self.room);
    }
}

fn lock(placement: &Mutex<Placement>) -> std::sync::MutexGuard<'_, Placement> {
    placement.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MediaThreads {
    /// Starts `threads` media threads (0: one per CPU core the process may use).
    pub(crate) fn start(threads: usize) -> io::Result<Self> {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, usize::from)
        } else {
            threads
        };
        let mut handles = Vec::with_capacity(threads);
        let mut stops = Vec::with_capacity(threads);
        for i in 0..threads {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(runtime.handle().clone());
            let (stop, stopped) = oneshot::channel::<()>();
            stops.push(stop);
            std::thread::Builder::new()
                .name(format!("hush-media{i}"))
                .spawn(move || {
                    // Ends when the stop sender is dropped; the runtime, and every task still
                    // on it, is dropped here, outside any runtime.
                    let _ = runtime.block_on(stopped);
                })?;
        }
        Ok(Self {
            handles,
            placement: Arc::new(Mutex::new(Placement::new(threads))),
            _stops: stops,
        })
    }

    /// Where a new media session in `room` runs, and its lease there.
    pub(crate) fn place(&self, room: &RoomId) -> (Handle, ThreadLease) {
        let thread = lock(&self.placement).place(room);
        // The placement has as many threads as `handles`: the fallback is never taken.
        let handle = self
            .handles
            .get(thread)
            .cloned()
            .unwrap_or_else(Handle::current);
        let lease = ThreadLease {
            placement: Arc::clone(&self.placement),
            room: room.clone(),
        };
        (handle, lease)
    }

    /// Media sessions per thread now.
    pub(crate) fn sessions(&self) -> Vec<usize> {
        lock(&self.placement).sessions().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(name: &str) -> RoomId {
        RoomId::new(name).expect("room id")
    }

    #[test]
    fn a_rooms_sessions_share_its_thread_and_new_rooms_go_to_the_least_loaded() {
        let mut p = Placement::new(2);
        let (a, b, c) = (room("a"), room("b"), room("c"));
        assert_eq!(p.place(&a), 0);
        assert_eq!(p.place(&a), 0);
        assert_eq!(p.place(&a), 0, "a room stays on its thread");
        assert_eq!(p.place(&b), 1, "a new room goes to the emptier thread");
        assert_eq!(p.place(&c), 1, "still the emptier one (1 against 3)");
        assert_eq!(p.sessions(), &[3, 2]);
        p.release(&a);
        p.release(&a);
        assert_eq!(p.sessions(), &[1, 2]);
        assert_eq!(
            p.place(&c),
            1,
            "c stays where its sessions are, though 0 is emptier"
        );
    }

    #[test]
    fn a_room_whose_sessions_all_ended_is_placed_afresh() {
        let mut p = Placement::new(2);
        let (a, b) = (room("a"), room("b"));
        assert_eq!(p.place(&a), 0);
        assert_eq!(p.place(&b), 1);
        assert_eq!(p.place(&b), 1);
        p.release(&a);
        assert_eq!(p.sessions(), &[0, 2]);
        assert_eq!(p.place(&b), 1);
        assert_eq!(p.place(&a), 0, "a comes back to the empty thread");
        p.release(&room("never"));
        assert_eq!(
            p.sessions(),
            &[1, 3],
            "releasing an unknown room changes nothing"
        );
    }

    #[tokio::test]
    async fn sessions_run_on_their_rooms_thread_and_stop_with_the_threads() {
        let threads = MediaThreads::start(2).expect("threads");
        let (a, b) = (room("a"), room("b"));
        let name = || std::thread::current().name().map(str::to_owned);
        let (on_a, lease_a) = threads.place(&a);
        let (on_b, _lease_b) = threads.place(&b);
        let ta = on_a.spawn(async move { name() }).await.expect("ran");
        let tb = on_b.spawn(async move { name() }).await.expect("ran");
        assert_eq!(ta.as_deref(), Some("hush-media0"));
        assert_eq!(tb.as_deref(), Some("hush-media1"));
        assert_eq!(threads.sessions(), vec![1, 1]);
        drop(lease_a);
        assert_eq!(threads.sessions(), vec![0, 1]);

        // A task still running when the threads stop is dropped with its runtime.
        let (dropped_tx, dropped_rx) = oneshot::channel::<()>();
        on_a.spawn(async move {
            let _guard = dropped_tx;
            std::future::pending::<()>().await;
        });
        drop(threads);
        assert!(
            tokio::time::timeout(std::time::Duration::from_secs(5), dropped_rx)
                .await
                .is_ok(),
            "the pending task ended with its thread"
        );
    }
}
