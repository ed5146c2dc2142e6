//! `GET /readyz`: 200 when the relay takes calls (token keys loaded, a media socket binds on the
//! media address, the token store answers), 503 with the reason otherwise or while draining.
//!
//! The probes that cost something (a UDP bind, a Redis `PING`) run at most once per
//! [`PROBE_TTL`], one at a time, whoever asks (a request during a probe gets the last answer):
//! `/readyz` is served on the public listener without authentication, and each request ran
//! both before, so a flood of them became a flood of `PING`s on the store that token claims
//! share.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::sync::Mutex;

use super::AppState;

/// How long a probe's answer is reused.
pub(crate) const PROBE_TTL: Duration = Duration::from_secs(1);

/// How much older than [`PROBE_TTL`] the last answer may be and still be given while a probe
/// runs (the token store's own timeout is 2 s); past it a request waits for the probe.
pub(crate) const PROBE_GRACE: Duration = Duration::from_secs(3);

/// The answer when a probe ended without one (its task panicked or was cancelled).
const UNFINISHED: &str = "the readiness probe did not finish\n";

/// The last probe's answer (`None`: ready) and when that probe finished. One probe runs at a
/// time, in a task of its own, so it finishes and is stored even when the request that started
/// it goes away (a checker's timeout shorter than the store's); a request that arrives while it
/// runs gets the last answer if that is recent, or waits for the probe.
#[derive(Debug, Default)]
pub(crate) struct ProbeCache {
    last: std::sync::Mutex<Option<(Instant, Option<&'static str>)>>,
    running: Arc<Mutex<()>>,
}

impl ProbeCache {
    fn last(&self) -> Option<(Instant, Option<&'static str>)> {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The answer of a probe that finished within [`PROBE_TTL`] (by `clock`), the last answer
    /// while another probe runs (if within [`PROBE_GRACE`] more), or `probe`'s, run now in a
    /// task and stamped when it finishes.
    pub(crate) async fn answer<C, F>(self: &Arc<Self>, clock: C, probe: F) -> Option<&'static str>
    where
        C: Fn() -> Instant + Send + Sync + 'static,
        F: std::future::Future<Output = Option<&'static str>> + Send + 'static,
    {
        // The last answer, if its probe finished less than `limit` ago.
        let recent = |limit: Duration| {
            self.last()
                .filter(|(at, _)| clock().saturating_duration_since(*at) < limit)
                .map(|(_, answer)| answer)
        };
        if let Some(answer) = recent(PROBE_TTL) {
            return answer;
        }
        let guard = match Arc::clone(&self.running).try_lock_owned() {
            Ok(guard) => guard,
            Err(_) => {
                if let Some(answer) = recent(PROBE_TTL + PROBE_GRACE) {
                    return answer;
                }
                // Wait for the probe that runs, and give its answer.
                drop(self.running.lock().await);
                return self.last().map_or(Some(UNFINISHED), |(_, answer)| answer);
            }
        };
        // Another probe may have finished while this request took the lock.
        if let Some(answer) = recent(PROBE_TTL) {
            return answer;
        }
        let me = Arc::clone(self);
        let task = tokio::spawn(async move {
            let answer = probe.await;
            *me.last.lock().unwrap_or_else(PoisonError::into_inner) = Some((clock(), answer));
            drop(guard);
            answer
        });
        task.await.unwrap_or(Some(UNFINISHED))
    }
}

pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let unavailable = |why: &'static str| (StatusCode::SERVICE_UNAVAILABLE, why).into_response();
    if state.draining.load(Ordering::Relaxed) {
        return unavailable("draining: shutting down\n");
    }
    if !state.keys_loaded {
        return unavailable("no token keys loaded\n");
    }
    let (media_ip, store) = (state.media_ip, state.token_store.clone());
    let answer = state
        .ready_probe
        .answer(Instant::now, async move {
            if std::net::UdpSocket::bind((media_ip, 0)).is_err() {
                return Some("no media socket binds on the media address\n");
            }
            if let Some(store) = store
                && !store.ready().await
            {
                return Some("the token store does not answer\n");
            }
            None
        })
        .await;
    match answer {
        Some(why) => unavailable(why),
        None => "ready\n".into_response(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// A clock the test moves.
    #[derive(Clone)]
    struct Clock(Arc<std::sync::Mutex<Instant>>);

    impl Clock {
        fn new() -> Self {
            Self(Arc::new(std::sync::Mutex::new(Instant::now())))
        }
        fn now(&self) -> Instant {
            *self.0.lock().unwrap()
        }
        fn advance(&self, by: Duration) {
            *self.0.lock().unwrap() += by;
        }
        fn reader(&self) -> impl Fn() -> Instant + Send + Sync + 'static {
            let me = self.clone();
            move || me.now()
        }
    }

    #[tokio::test]
    async fn a_probe_runs_once_a_second_whoever_asks() {
        let cache = Arc::new(ProbeCache::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let probe = || {
            let runs = Arc::clone(&runs);
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                Some("the token store does not answer\n")
            }
        };
        let clock = Clock::new();
        for _ in 0..100 {
            clock.advance(Duration::from_millis(5));
            assert!(cache.answer(clock.reader(), probe()).await.is_some());
        }
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "100 requests in 0.5 s, one probe"
        );
        clock.advance(PROBE_TTL);
        assert!(cache.answer(clock.reader(), probe()).await.is_some());
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    /// A store that answers only at its 2 s timeout, and a checker that gives up sooner: the
    /// probe finishes in its own task and its answer is stored, stamped when it ended (stamped
    /// at its start, every answer was stale on arrival; run in the request, a checker that went
    /// away took the probe with it, and the others got an old "ready" for ever).
    #[tokio::test]
    async fn a_slow_probe_outlives_its_request_and_is_stamped_when_it_ends() {
        let cache = Arc::new(ProbeCache::default());
        let clock = Clock::new();
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let slow = {
            let clock = clock.clone();
            async move {
                let _ = released.await;
                clock.advance(Duration::from_secs(2));
                Some("the token store does not answer\n")
            }
        };
        // The request gives up while the probe runs.
        let asked = tokio::time::timeout(
            Duration::from_millis(20),
            cache.answer(clock.reader(), slow),
        )
        .await;
        assert!(asked.is_err(), "still probing");
        release.send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (at, answer) = cache.last().expect("stored by the probe's own task");
        assert_eq!(at, clock.now(), "stamped when it ended");
        assert!(answer.is_some());
        // Fresh: reused without a probe.
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = || {
            let runs = Arc::clone(&runs);
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                None
            }
        };
        assert!(cache.answer(clock.reader(), counted()).await.is_some());
        assert_eq!(runs.load(Ordering::SeqCst), 0);
        // While a probe runs, a recent answer is given at once; an old one is not.
        let guard = Arc::clone(&cache.running).try_lock_owned().unwrap();
        clock.advance(PROBE_TTL);
        assert!(cache.answer(clock.reader(), counted()).await.is_some());
        clock.advance(PROBE_GRACE);
        let waiting = tokio::time::timeout(
            Duration::from_millis(20),
            cache.answer(clock.reader(), counted()),
        )
        .await;
        assert!(waiting.is_err(), "an answer that old waits for the probe");
        drop(guard);
        assert_eq!(cache.answer(clock.reader(), counted()).await, None);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}
