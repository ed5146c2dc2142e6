//! `GET /readyz`: 200 when the relay takes calls (token keys loaded, a media socket binds on the
//! media address, the token store answers), 503 with the reason otherwise or while draining.
//!
//! The probes that cost something (a UDP bind, a Redis `PING`) run at most once per
//! [`PROBE_TTL`], whoever asks: `/readyz` is served on the public listener without
//! authentication, and each request ran both before, so a flood of them became a flood of
//! `PING`s on the store that token claims share.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::sync::Mutex;

use super::AppState;

/// How long a probe's answer is reused.
pub(crate) const PROBE_TTL: Duration = Duration::from_secs(1);

/// The last probe's answer (`None`: ready) and when it was taken. Requests that arrive while a
/// probe runs wait for it and share its answer.
#[derive(Debug, Default)]
pub(crate) struct ProbeCache {
    last: Mutex<Option<(Instant, Option<&'static str>)>>,
}

impl ProbeCache {
    /// The answer of a probe taken within [`PROBE_TTL`] before `now`, or of `probe`, run now.
    pub(crate) async fn answer<F>(&self, now: Instant, probe: F) -> Option<&'static str>
    where
        F: std::future::Future<Output = Option<&'static str>>,
    {
        let mut last = self.last.lock().await;
        if let Some((at, answer)) = *last
            && now.saturating_duration_since(at) < PROBE_TTL
        {
            return answer;
        }
        let answer = probe.await;
        *last = Some((now, answer));
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
        .answer(Instant::now(), async {
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
            assert!(cache.answer(at, probe()).await.is_some());
        }
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "100 requests in 0.5 s, one probe"
        );
        assert!(cache.answer(t0 + PROBE_TTL, probe()).await.is_some());
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }
}
