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

/// The last probe's answer (`None`: ready) and when that probe finished. One probe runs at a
/// time; a request that arrives while it runs gets the last answer (or, before any, waits for
/// the first), so a store that hangs until its timeout holds no queue of probes behind it.
#[derive(Debug, Default)]
pub(crate) struct ProbeCache {
    last: std::sync::Mutex<Option<(Instant, Option<&'static str>)>>,
    running: Mutex<()>,
}

impl ProbeCache {
    /// The answer of a probe that finished within [`PROBE_TTL`] (by `clock`), the last answer
    /// while another probe runs, or `probe`'s, run now and stamped when it finishes.
    pub(crate) async fn answer<F>(
        &self,
        clock: impl Fn() -> Instant,
        probe: F,
    ) -> Option<&'static str>
    where
        F: std::future::Future<Output = Option<&'static str>>,
    {
        let fresh = |last: Option<(Instant, Option<&'static str>)>| {
            last.filter(|(at, _)| clock().saturating_duration_since(*at) < PROBE_TTL)
        };
        let cached = *self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, answer)) = fresh(cached) {
            return answer;
        }
        let _running = match self.running.try_lock() {
            Ok(guard) => guard,
            Err(_) => match cached {
                Some((_, answer)) => return answer,
                None => self.running.lock().await,
            },
        };
        // Another probe may have finished while this request waited for the first one.
        let cached = *self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, answer)) = fresh(cached) {
            return answer;
        }
        let answer = probe.await;
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some((clock(), answer));
        answer
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
    let probes = Arc::clone(&state.ready_probe);
    let answer = probes
        .answer(Instant::now, async {
            if std::net::UdpSocket::bind((state.media_ip, 0)).is_err() {
                return Some("no media socket binds on the media address\n");
            }
            if let Some(store) = &state.token_store
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
    use std::cell::Cell;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[tokio::test]
    async fn a_probe_runs_once_a_second_whoever_asks() {
        let cache = ProbeCache::default();
        let runs = AtomicUsize::new(0);
        let probe = || async {
            runs.fetch_add(1, Ordering::SeqCst);
            Some("the token store does not answer\n")
        };
        let t0 = Instant::now();
        for i in 0..100 {
            let at = t0 + Duration::from_millis(i * 5);
            assert!(cache.answer(|| at, probe()).await.is_some());
        }
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "100 requests in 0.5 s, one probe"
        );
        assert!(cache.answer(|| t0 + PROBE_TTL, probe()).await.is_some());
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    /// A store that answers only at its 2 s timeout: the answer is stamped when the probe
    /// finished (stamped when it started, every answer was stale on arrival and each request
    /// ran a probe of its own), and a request during a probe gets the last answer at once.
    #[tokio::test]
    async fn a_slow_probe_is_stamped_when_it_ends_and_holds_nobody_up() {
        let cache = ProbeCache::default();
        let now = Cell::new(Instant::now());
        let clock = || now.get();
        let slow = || async {
            now.set(now.get() + Duration::from_secs(2));
            Some("the token store does not answer\n")
        };
        assert!(cache.answer(clock, slow()).await.is_some());
        let runs = AtomicUsize::new(0);
        let counted = || async {
            runs.fetch_add(1, Ordering::SeqCst);
            None
        };
        assert!(
            cache.answer(clock, counted()).await.is_some(),
            "fresh: reused"
        );
        assert_eq!(runs.load(Ordering::SeqCst), 0);
        // While a probe runs, others get the last answer without waiting for it.
        let guard = cache.running.try_lock().expect("free");
        now.set(now.get() + PROBE_TTL);
        assert!(cache.answer(clock, counted()).await.is_some());
        assert_eq!(runs.load(Ordering::SeqCst), 0);
        drop(guard);
        assert_eq!(cache.answer(clock, counted()).await, None);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}
