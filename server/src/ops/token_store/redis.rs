//! The shared token store: Redis, one key per used id, `SET <prefix><id> 1 NX EXAT
//! <forget-after>` (atomic: of two relays that claim one id at once, exactly one gets `OK`).
//! Keys expire with their tokens, so Redis holds only unexpired ids. Needs Redis 6.2 or later
//! (`EXAT`). The connection is re-established on its own after Redis comes back; meanwhile
//! every claim answers [`TokenClaim::Unavailable`] within [`TIMEOUT`].

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::OpenError;
use crate::routing::TokenClaim;

/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "hush:jti:";

/// How long one claim (or the first connection) may take.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// Used token ids in Redis.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to `url` (it must answer now).
    pub async fn open(url: &str, prefix: &str) -> Result<Self, OpenError> {
        let shown = without_credentials(url);
        let fail = |e: String| OpenError(format!("token store redis {shown}: {e}"));
        let client = redis::Client::open(url).map_err(|e| fail(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let conn = tokio::time::timeout(
            TIMEOUT * 2,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| fail("no answer".into()))?
        .map_err(|e| fail(e.to_string()))?;
        let store = Self {
            conn,
            prefix: prefix.to_owned(),
        };
        if !store.ping().await {
            return Err(fail("no answer to PING".into()));
        }
        tracing::info!(redis = %shown, prefix, "token store opened");
        Ok(store)
    }

    /// Marks `id` used until `forget_after`.
    pub async fn claim(&self, id: &str, forget_after: u64) -> TokenClaim {
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("SET");
        cmd.arg(format!("{}{id}", self.prefix))
            .arg(1)
            .arg("NX")
            .arg("EXAT")
            .arg(forget_after);
        let set = cmd.query_async::<Option<String>>(&mut conn);
        match tokio::time::timeout(TIMEOUT, set).await {
            Ok(Ok(Some(_))) => TokenClaim::Fresh,
            Ok(Ok(None)) => TokenClaim::Used,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "token store: redis refused or failed");
                TokenClaim::Unavailable
            }
            Err(_) => {
                tracing::warn!("token store: redis did not answer in time");
                TokenClaim::Unavailable
            }
        }
    }

    /// Whether Redis answers a `PING` in time.
    pub async fn ping(&self) -> bool {
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("PING");
        let ping = cmd.query_async::<String>(&mut conn);
        matches!(tokio::time::timeout(TIMEOUT, ping).await, Ok(Ok(_)))
    }
}

/// `url` without a user name or password (for logs).
pub fn without_credentials(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://{host}")
        }
        None => "(unreadable url)".to_owned(),
    }
}
