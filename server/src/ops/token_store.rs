//! Used token ids kept beyond the routing core's memory, so that a token stays single use
//! across a restart and across relays: a file of the relay's own by default ([`file`]), or
//! Redis shared by several relays ([`redis`]).
//!
//! The core asks ([`crate::routing::Output::ClaimToken`]) only for a token whose signature and
//! claims passed, and the driver answers with [`crate::routing::Relay::token_claimed`]. Ids are
//! stored as `SHA-256("hush token id" || jti)` in hex (fixed length, no escaping, and nothing of
//! the token itself), each until its token would have expired anyway. Anything that goes wrong
//! answers [`TokenClaim::Unavailable`]: the join is refused (fail closed) and the error logged.

pub mod file;
pub mod redis;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::routing::TokenClaim;

/// Where used token ids go, as configured (`token_store` / `--token-store`).
#[derive(Clone, PartialEq, Eq)]
pub enum TokenStoreSpec {
    /// An append-only file, synced before each join is admitted.
    File(PathBuf),
    /// A Redis server (`redis://`, `rediss://` for TLS, `redis+unix://`): `SET NX EXAT`.
    Redis {
        /// The server's URL (may hold a password: never shown).
        url: String,
        /// Prefix of every key (default [`redis::DEFAULT_PREFIX`]).
        prefix: String,
    },
}

impl FromStr for TokenStoreSpec {
    type Err = String;

    /// A Redis URL, or a file path.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty token store".into());
        }
        if ["redis://", "rediss://", "redis+unix://", "unix://"]
            .iter()
            .any(|scheme| s.starts_with(scheme))
        {
            return Ok(Self::Redis {
                url: s.to_owned(),
                prefix: redis::DEFAULT_PREFIX.to_owned(),
            });
        }
        Ok(Self::File(PathBuf::from(s)))
    }
}

impl fmt::Debug for TokenStoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for TokenStoreSpec {
    /// The file, or the Redis server without its credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "file {}", path.display()),
            Self::Redis { url, prefix } => {
                write!(
                    f,
                    "redis {} (keys {prefix}*)",
                    redis::without_credentials(url)
                )
            }
        }
    }
}

impl TokenStoreSpec {
    /// The store to use: `given` (a path, a Redis URL, or `memory` for none), else a file
    /// `used-tokens` in systemd's `$STATE_DIRECTORY` (its first entry) when the relay runs
    /// with `StateDirectory=`, else none (single use until a restart only).
    pub fn choose(
        given: Option<&str>,
        state_directory: Option<&std::ffi::OsStr>,
    ) -> Result<Option<Self>, String> {
        match given.map(str::trim) {
            Some("memory") => Ok(None),
            Some(given) => given.parse().map(Some),
            None => Ok(state_directory
                .and_then(|dirs| std::env::split_paths(dirs).next())
                .filter(|dir| !dir.as_os_str().is_empty())
                .map(|dir| Self::File(dir.join("used-tokens")))),
        }
    }
}

/// An open token store.
#[derive(Debug)]
pub enum TokenStore {
    /// See [`file::FileStore`].
    File(file::FileStore),
    /// See [`redis::RedisStore`].
    Redis(redis::RedisStore),
}

/// Why a token store could not be opened.
#[derive(Debug)]
pub struct OpenError(pub String);

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OpenError {}

impl TokenStore {
    /// Opens the store: the file is read (expired ids dropped) and compacted; Redis must answer
    /// a `PING`. `capacity` bounds the unexpired ids a file holds.
    pub async fn open(spec: &TokenStoreSpec, capacity: usize) -> Result<Self, OpenError> {
        match spec {
            TokenStoreSpec::File(path) => {
                let path = path.clone();
                let now = unix_now();
                tokio::task::spawn_blocking(move || file::FileStore::open(&path, capacity, now))
                    .await
                    .map_err(|e| OpenError(format!("token store: {e}")))?
                    .map(Self::File)
            }
            TokenStoreSpec::Redis { url, prefix } => {
                redis::RedisStore::open(url, prefix).await.map(Self::Redis)
            }
        }
    }

    /// Marks `jti` used until `forget_after` (Unix seconds), or says it was used before.
    pub async fn claim(&self, jti: &str, forget_after: u64) -> TokenClaim {
        let id = token_id(jti);
        match self {
            Self::File(store) => store.claim(id, forget_after, unix_now()).await,
            Self::Redis(store) => store.claim(&id, forget_after).await,
        }
    }

    /// Whether the store answers now (for `/readyz`).
    pub async fn ready(&self) -> bool {
        match self {
            Self::File(_) => true,
            Self::Redis(store) => store.ping().await,
        }
    }
}

/// What a token id is stored as: 64 hex digits.
pub(crate) fn token_id(jti: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"hush token id\0")
        .chain_update(jti.as_bytes())
        .finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_name_redis_by_scheme_and_never_show_a_password() {
        let spec: TokenStoreSpec = "redis://:s3cret@10.0.0.5:6379/2".parse().unwrap();
        assert!(matches!(spec, TokenStoreSpec::Redis { .. }));
        let shown = format!("{spec} {spec:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("10.0.0.5:6379/2"), "{shown}");
        let spec: TokenStoreSpec = "rediss://user:pw@r.example:6380".parse().unwrap();
        assert!(!spec.to_string().contains("pw@"), "{spec}");
        assert_eq!(
            "/var/lib/hush/used-tokens".parse::<TokenStoreSpec>(),
            Ok(TokenStoreSpec::File("/var/lib/hush/used-tokens".into()))
        );
        assert!("  ".parse::<TokenStoreSpec>().is_err());
    }

    #[test]
    fn the_default_is_a_file_in_systemds_state_directory() {
        let state = std::ffi::OsStr::new("/var/lib/hush:/var/lib/other");
        assert_eq!(
            TokenStoreSpec::choose(None, Some(state)),
            Ok(Some(TokenStoreSpec::File(
                "/var/lib/hush/used-tokens".into()
            )))
        );
        assert_eq!(TokenStoreSpec::choose(None, None), Ok(None));
        assert_eq!(
            TokenStoreSpec::choose(Some("memory"), Some(state)),
            Ok(None)
        );
        assert!(matches!(
            TokenStoreSpec::choose(Some("redis://127.0.0.1"), Some(state)),
            Ok(Some(TokenStoreSpec::Redis { .. }))
        ));
    }

    #[test]
    fn ids_are_fixed_length_hex_and_distinct() {
        let a = token_id("a");
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, token_id("b"));
        assert_ne!(token_id("a b\nc"), token_id("a b c"));
    }
}
