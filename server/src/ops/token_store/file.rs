//! The embedded token store: one append-only file of lines `<forget-after> <id>`, synced to disk
//! before a join is admitted, read back (expired ids dropped) and compacted at start.
//!
//! A crash can leave at most a partial last line, which is skipped when read. A failed write is
//! cut off again (the file is truncated to its last whole line) and the join refused.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use super::OpenError;
use crate::routing::TokenClaim;

/// The longest line read back (a longer one is damage, skipped).
const MAX_LINE: usize = 128;

/// Used token ids in a file of the relay's own.
#[derive(Debug, Clone)]
pub struct FileStore {
    inner: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct State {
    path: PathBuf,
    file: File,
    /// Bytes in the file, all whole lines.
    len: u64,
    /// Id → forget-after (Unix seconds).
    seen: HashMap<String, u64>,
    /// Lines in the file (live or expired): compacted when far above `seen.len()`.
    lines: usize,
    capacity: usize,
    /// `<path>.lock`, locked while the store is open: two relays on one file would each miss
    /// the other's ids (share Redis instead).
    _lock: File,
}

impl FileStore {
    /// Reads `path` (created if missing, mode 0600), drops ids expired at `now`, and rewrites
    /// it with the rest.
    pub fn open(path: &Path, capacity: usize, now: u64) -> Result<Self, OpenError> {
        let fail = |what: &str, e: std::io::Error| {
            OpenError(format!("token store {}: {what}: {e}", path.display()))
        };
        let mut lock_path = path.as_os_str().to_owned();
        lock_path.push(".lock");
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| fail("lock file", e))?;
        lock.try_lock().map_err(|_| {
            OpenError(format!(
                "token store {}: in use by another process (give each relay its own file, or \
                 share Redis)",
                path.display()
            ))
        })?;
        let mut seen = HashMap::new();
        let mut damaged = 0usize;
        match File::open(path) {
            Ok(file) => {
                for line in BufReader::new(file).split(b'\n') {
                    let line = line.map_err(|e| fail("read", e))?;
                    match parse(&line) {
                        Some((at, id)) if at >= now => {
                            let kept = seen.entry(id).or_insert(at);
                            *kept = (*kept).max(at);
                        }
                        Some(_) => {}
                        None => damaged += 1,
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail("open", e)),
        }
        if damaged > 0 {
            tracing::warn!(
                path = %path.display(),
                damaged,
                "token store: skipped damaged lines (a crash mid-write leaves one)"
            );
        }
        let (file, len) = rewrite(path, &seen).map_err(|e| fail("rewrite", e))?;
        tracing::info!(path = %path.display(), ids = seen.len(), "token store opened");
        let lines = seen.len();
        Ok(Self {
            inner: Arc::new(Mutex::new(State {
                path: path.to_owned(),
                file,
                len,
                seen,
                lines,
                capacity,
                _lock: lock,
            })),
        })
    }

    /// Marks `id` used until `forget_after`, on disk before answering (a blocking task).
    pub async fn claim(&self, id: String, forget_after: u64, now: u64) -> TokenClaim {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            inner
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .claim(id, forget_after, now)
        })
        .await
        .unwrap_or(TokenClaim::Unavailable)
    }

    /// The same, on this thread.
    #[cfg(test)]
    fn claim_blocking(&self, id: String, forget_after: u64, now: u64) -> TokenClaim {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .claim(id, forget_after, now)
    }
}

impl State {
    fn claim(&mut self, id: String, forget_after: u64, now: u64) -> TokenClaim {
        if self.seen.get(&id).is_some_and(|&at| at >= now) {
            return TokenClaim::Used;
        }
        if self.seen.len() >= self.capacity || self.lines > 2 * self.seen.len() + 1024 {
            self.seen.retain(|_, at| *at >= now);
            match rewrite(&self.path, &self.seen) {
                Ok((file, len)) => {
                    self.file = file;
                    self.len = len;
                    self.lines = self.seen.len();
                }
                Err(e) => {
                    tracing::error!(path = %self.path.display(), error = %e, "token store: compaction failed");
                    return TokenClaim::Unavailable;
                }
            }
            if self.seen.len() >= self.capacity {
                tracing::warn!(
                    capacity = self.capacity,
                    "token store full of unexpired ids"
                );
                return TokenClaim::Unavailable;
            }
        }
        let line = format!("{forget_after} {id}\n");
        let written = self
            .file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            tracing::error!(path = %self.path.display(), error = %e, "token store: write failed");
            // Cut a partial line off, so the next one starts on its own line.
            let _ = self.file.set_len(self.len);
            return TokenClaim::Unavailable;
        }
        self.len += line.len() as u64;
        self.lines += 1;
        self.seen.insert(id, forget_after);
        TokenClaim::Fresh
    }
}

/// One line: `<forget-after> <64 hex digits>`.
fn parse(line: &[u8]) -> Option<(u64, String)> {
    if line.len() > MAX_LINE {
        return None;
    }
    let line = std::str::from_utf8(line).ok()?;
    let (at, id) = line.split_once(' ')?;
    let at = at.parse().ok()?;
    (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| (at, id.to_owned()))
}

/// Writes `seen` to a temporary file, syncs it and renames it over `path` (then syncs the
/// directory); returns it opened for appending, and its length.
fn rewrite(path: &Path, seen: &HashMap<String, u64>) -> std::io::Result<(File, u64)> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut body = String::with_capacity(seen.len() * 80);
    for (id, at) in seen {
        body.push_str(&format!("{at} {id}\n"));
    }
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(body.as_bytes())?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    let file = OpenOptions::new().append(true).open(path)?;
    Ok((file, body.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::super::token_id;
    use super::*;

    fn dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "hush-token-store-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn claim(store: &FileStore, jti: &str, forget_after: u64, now: u64) -> TokenClaim {
        store.claim_blocking(token_id(jti), forget_after, now)
    }

    #[test]
    fn ids_stay_used_after_a_reopen_until_they_expire() {
        let path = dir().join("used");
        let store = FileStore::open(&path, 100, 1000).unwrap();
        assert_eq!(claim(&store, "a", 2000, 1000), TokenClaim::Fresh);
        assert_eq!(claim(&store, "b", 1500, 1000), TokenClaim::Fresh);
        assert_eq!(claim(&store, "a", 2000, 1001), TokenClaim::Used);
        drop(store);
        // After a restart: "a" is still used; "b" has expired by then and is dropped.
        let store = FileStore::open(&path, 100, 1600).unwrap();
        assert_eq!(claim(&store, "a", 2000, 1600), TokenClaim::Used);
        assert_eq!(claim(&store, "b", 2500, 1600), TokenClaim::Fresh);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(!text.contains(" a\n"), "ids are hashed: {text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[test]
    fn a_torn_last_line_and_garbage_are_skipped() {
        let path = dir().join("used");
        let good = format!("5000 {}\n", token_id("kept"));
        let torn = format!("5000 {}", &token_id("torn")[..20]);
        fs::write(&path, format!("{good}garbage\n\u{0}\u{1}\n{torn}")).unwrap();
        let store = FileStore::open(&path, 100, 1000).unwrap();
        assert_eq!(claim(&store, "kept", 5000, 1000), TokenClaim::Used);
        assert_eq!(claim(&store, "torn", 5000, 1000), TokenClaim::Fresh);
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.lines().all(|l| parse(l.as_bytes()).is_some()),
            "{text:?}"
        );
    }

    #[test]
    fn a_full_store_refuses_until_ids_expire() {
        let path = dir().join("used");
        let store = FileStore::open(&path, 2, 0).unwrap();
        assert_eq!(claim(&store, "a", 100, 0), TokenClaim::Fresh);
        assert_eq!(claim(&store, "b", 200, 0), TokenClaim::Fresh);
        assert_eq!(claim(&store, "c", 200, 50), TokenClaim::Unavailable);
        // "a" expired: compacted away, room again.
        assert_eq!(claim(&store, "c", 300, 101), TokenClaim::Fresh);
        assert_eq!(claim(&store, "b", 300, 101), TokenClaim::Used);
        assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 2);
    }

    #[test]
    fn one_file_is_one_relays() {
        let path = dir().join("used");
        let store = FileStore::open(&path, 10, 0).unwrap();
        let err = FileStore::open(&path, 10, 0).unwrap_err();
        assert!(err.0.contains("in use by another process"), "{err}");
        drop(store);
        FileStore::open(&path, 10, 0).unwrap();
    }

    #[test]
    fn an_unwritable_place_is_an_open_error() {
        let path = dir().join("no-such-dir").join("used");
        let err = FileStore::open(&path, 10, 0).unwrap_err();
        assert!(err.0.contains("no-such-dir"), "{err}");
    }
}
