//! The relay's configuration file (TOML). Every field is optional: with no file at all the
//! relay listens on 127.0.0.1:8080, serves `web/`, and accepts no tokens (add keys, or run
//! with `--dev`). Command-line flags and `HUSH_*` environment variables override the file.
//!
//! ```toml
//! bind = "0.0.0.0:443"
//! static_dir = "/srv/hush/web"
//! audience = "hush"
//! media_ip = "10.0.0.5"      # where media sockets bind
//! public_ip = "203.0.113.7"  # announced in ICE host candidates (1:1 NAT)
//! media_ports = "50000-50999" # one UDP port per participant, from this range (the firewall's)
//! media_threads = 4          # threads running rooms' media, a room to a thread (default: cores)
//!
//! [tls]
//! cert = "/etc/hush/cert.pem"
//! key = "/etc/hush/key.pem"
//!
//! metrics_bind = "127.0.0.1:9100"   # /metrics on its own listener (see crate::http)
//! audit_key_file = "/etc/hush/audit.key"  # pseudonym key of the audit trail (else random)
//! admin_token_file = "/etc/hush/admin.token"  # bearer token of the admin API (else no API)
//! trusted_proxies = ["10.0.0.0/8"]  # reverse proxies whose forwarding header counts
//! proxy_header = "x-forwarded-for"  # the header they append to (or "forwarded")
//! token_store = "/var/lib/hush/used-tokens"  # or "redis://10.0.0.9:6379/0" shared by relays
//!
//! [turn]                         # TURN servers handed to clients in `joined` (crate::turn)
//! urls = ["turn:turn.example.org:3478?transport=tcp", "turns:turn.example.org:5349"]
//! secret_file = "/etc/hush/turn.secret"  # coturn's static-auth-secret (use-auth-secret)
//! ttl_secs = 43200               # credential lifetime (12 h)
//!
//! [recording]                    # encrypted recordings (crate::recording); none without it
//! dir = "/var/lib/hush/recordings"
//! max_room_mb = 2048             # one recording at most (2048)
//! max_total_mb = 20480           # all recordings under dir together (20480)
//! sync_ms = 1000                 # records synced to disk this often (1000)
//!
//! [limits]                       # every field optional; defaults in parentheses
//! max_rooms = 10000              # rooms at once (10000)
//! max_participants_per_room = 100  # server cap; a room's own limit can only be lower (100)
//! empty_room_timeout_secs = 300  # how long an empty room lives (300)
//! join_timeout_secs = 10         # a connection must send `join` within this (10)
//! message_burst = 200            # signaling messages per connection: bucket size (200)
//! message_rate = 50              # ... and refill per second (50)
//! idle_timeout_secs = 60         # close a WebSocket silent this long; pinged at half (60)
//! ip_connect_burst = 20          # new WebSockets per IP (per /64): bucket size (20)
//! ip_connect_rate = 5            # ... and refill per second (5)
//! ip_max_connections = 32        # WebSockets open at once per IP (32); TCP: twice, at least 64
//! ip_free_auth_failures = 5      # refused tokens per IP before a doubling backoff (5)
//!
//! [[keys]]
//! kid = "2026-01"
//! alg = "HS256"
//! secret_file = "/etc/hush/hs256-2026-01.key"   # raw bytes, at least 32
//!
//! [[keys]]
//! kid = "backend-ed"
//! alg = "EdDSA"
//! public_key = "base64 of the 32-byte Ed25519 public key"
//! ```

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use zeroize::Zeroizing;

pub use crate::http::DEFAULT_IDLE_TIMEOUT;
use crate::ops::admin_token::{AdminToken, AdminTokenError};
use crate::ops::limits::IpLimits;
use crate::routing::{RateLimit, RelayConfig};
use crate::token::{KeyError, VerifyingKeys};

/// The default listen address: loopback only.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";

/// The configuration file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Listen address for HTTP and WebSocket.
    pub bind: Option<SocketAddr>,
    /// The web root (see [`crate::http::RelayOptions::static_dir`]).
    pub static_dir: Option<PathBuf>,
    /// Dev mode (loopback only).
    pub dev: Option<bool>,
    /// The token audience this relay accepts.
    pub audience: Option<String>,
    /// Where media sockets bind.
    pub media_ip: Option<IpAddr>,
    /// The address announced in ICE host candidates.
    pub public_ip: Option<IpAddr>,
    /// UDP ports for media, `"first-last"` (one per participant; see
    /// [`crate::media::ports`]). Default: any free port.
    pub media_ports: Option<String>,
    /// Threads running media, each whole rooms (see [`crate::media::threads`]). Default: one
    /// per CPU core.
    pub media_threads: Option<usize>,
    /// TLS for HTTP and WebSocket.
    pub tls: Option<TlsFiles>,
    /// A separate listen address for `GET /metrics` (and `/healthz`).
    pub metrics_bind: Option<SocketAddr>,
    /// A file whose bytes key the audit trail's pseudonyms (at least 32 bytes; see
    /// [`crate::ops::audit`]). Without it the key is random per process.
    pub audit_key_file: Option<PathBuf>,
    /// A file holding the admin API's bearer token (at least 32 visible ASCII bytes; see
    /// [`crate::ops::admin_token`], [`crate::http::admin`]). Without it there is no admin API.
    pub admin_token_file: Option<PathBuf>,
    /// Reverse proxies (CIDRs) whose `Forwarded` / `X-Forwarded-For` headers name the client
    /// ([`crate::ops::proxy`]).
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// The header those proxies append the client to: `x-forwarded-for` (the default) or
    /// `forwarded` ([`crate::ops::proxy::ProxyHeader`]). Only that one is read.
    pub proxy_header: Option<String>,
    /// Where used token ids are kept beyond the process: a file path, a `redis://` URL, or
    /// `memory` ([`crate::ops::token_store`]; default: `$STATE_DIRECTORY/used-tokens` under
    /// systemd, else memory).
    pub token_store: Option<String>,
    /// TURN servers for clients.
    pub turn: Option<TurnFileConfig>,
    /// Encrypted recordings.
    pub recording: Option<RecordingFileConfig>,
    /// Limits and timers.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Token verification keys.
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
}

/// The `[recording]` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingFileConfig {
    /// Where recordings are written (one directory each).
    pub dir: PathBuf,
    /// Most megabytes (MiB) one recording may take.
    pub max_room_mb: Option<u64>,
    /// Most megabytes (MiB) all recordings under `dir` may take.
    pub max_total_mb: Option<u64>,
    /// How often records are synced to disk, in milliseconds (at least 10).
    pub sync_ms: Option<u64>,
}

impl RecordingFileConfig {
    /// The options these settings give.
    pub fn options(&self) -> crate::recording::RecordingOptions {
        let mut o = crate::recording::RecordingOptions::new(self.dir.clone());
        if let Some(mb) = self.max_room_mb {
            o.max_room_bytes = mb.saturating_mul(1 << 20);
        }
        if let Some(mb) = self.max_total_mb {
            o.max_total_bytes = mb.saturating_mul(1 << 20);
        }
        if let Some(ms) = self.sync_ms {
            o.sync_interval = Duration::from_millis(ms.max(10));
        }
        o
    }
}

/// The `[turn]` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TurnFileConfig {
    /// `turn:`, `turns:` or `stun:` URLs, handed to clients as they are.
    pub urls: Vec<String>,
    /// A file holding the secret shared with the TURN server (coturn's `static-auth-secret`).
    pub secret_file: PathBuf,
    /// Credential lifetime in seconds (default [`crate::turn::DEFAULT_TTL`]).
    pub ttl_secs: Option<u64>,
}

/// The `[limits]` section: every field optional, unset ones keep their defaults
/// ([`RelayConfig::default`], [`IpLimits::default`], [`DEFAULT_IDLE_TIMEOUT`]).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Rooms at once.
    pub max_rooms: Option<usize>,
    /// Participants per room (the server cap).
    pub max_participants_per_room: Option<u32>,
    /// Seconds an empty room lives.
    pub empty_room_timeout_secs: Option<u64>,
    /// Seconds a connection has to send `join`.
    pub join_timeout_secs: Option<u64>,
    /// Signaling messages per connection: the bucket's size.
    pub message_burst: Option<u32>,
    /// Signaling messages per connection: refill per second.
    pub message_rate: Option<u32>,
    /// Seconds a WebSocket may stay silent before it is closed (pinged at half of it).
    pub idle_timeout_secs: Option<u64>,
    /// New WebSockets per IP address (per /64 for IPv6): the bucket's size.
    pub ip_connect_burst: Option<u32>,
    /// New WebSockets per IP address: refill per second.
    pub ip_connect_rate: Option<u32>,
    /// WebSockets open at once per IP address.
    pub ip_max_connections: Option<u32>,
    /// Refused tokens per IP address before the backoff starts.
    pub ip_free_auth_failures: Option<u32>,
}

impl LimitsConfig {
    /// The routing core's configuration: the defaults with this section's values.
    pub fn relay_config(&self) -> Result<RelayConfig, ConfigError> {
        let mut config = RelayConfig::default();
        if let Some(v) = self.max_rooms {
            config.max_rooms = positive("max_rooms", v)?;
        }
        if let Some(v) = self.max_participants_per_room {
            config.max_participants_per_room = positive("max_participants_per_room", v)?;
        }
        if let Some(v) = self.empty_room_timeout_secs {
            config.empty_room_timeout = Duration::from_secs(v);
        }
        if let Some(v) = self.join_timeout_secs {
            config.join_timeout = Duration::from_secs(positive("join_timeout_secs", v)?);
        }
        config.message_rate = RateLimit {
            burst: positive(
                "message_burst",
                self.message_burst.unwrap_or(config.message_rate.burst),
            )?,
            per_second: positive(
                "message_rate",
                self.message_rate.unwrap_or(config.message_rate.per_second),
            )?,
        };
        Ok(config)
    }

    /// The per-IP limits: the defaults with this section's values.
    pub fn ip_limits(&self) -> Result<IpLimits, ConfigError> {
        let mut limits = IpLimits::default();
        limits.connect_rate = RateLimit {
            burst: positive(
                "ip_connect_burst",
                self.ip_connect_burst.unwrap_or(limits.connect_rate.burst),
            )?,
            per_second: positive(
                "ip_connect_rate",
                self.ip_connect_rate
                    .unwrap_or(limits.connect_rate.per_second),
            )?,
        };
        if let Some(v) = self.ip_max_connections {
            limits.max_concurrent = positive("ip_max_connections", v)?;
        }
        if let Some(v) = self.ip_free_auth_failures {
            limits.free_auth_failures = v;
        }
        Ok(limits)
    }

    /// The WebSocket idle timeout.
    pub fn idle_timeout(&self) -> Result<Duration, ConfigError> {
        match self.idle_timeout_secs {
            Some(v) => Ok(Duration::from_secs(positive("idle_timeout_secs", v)?)),
            None => Ok(DEFAULT_IDLE_TIMEOUT),
        }
    }
}

/// Refuses a zero where zero would lock everyone out (or never let anyone in).
fn positive<T: PartialEq + Default>(name: &'static str, value: T) -> Result<T, ConfigError> {
    if value == T::default() {
        return Err(ConfigError::Limit(name, "must be greater than 0"));
    }
    Ok(value)
}

/// A certificate chain and its private key, PEM.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// One token verification key.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// The key id tokens name in their header.
    pub kid: String,
    /// `HS256` or `EdDSA`.
    pub alg: String,
    /// HS256: a file holding the shared secret (raw bytes; one trailing newline is ignored).
    pub secret_file: Option<PathBuf>,
    /// EdDSA: the 32-byte public key, standard base64.
    pub public_key: Option<String>,
}

/// A configuration that cannot be used.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// A file could not be read.
    Read(PathBuf, std::io::Error),
    /// The TOML is invalid (the message says where).
    Parse(String),
    /// A key entry is wrong.
    Key(String, String),
    /// A `[limits]` value is out of range (the field, why).
    Limit(&'static str, &'static str),
    /// The audit key file is too short.
    AuditKey(PathBuf),
    /// The admin token file does not hold a usable token.
    AdminToken(PathBuf, AdminTokenError),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read(path, err) => write!(f, "cannot read {}: {err}", path.display()),
            Self::Parse(msg) => write!(f, "invalid configuration: {msg}"),
            Self::Key(kid, msg) => write!(f, "key {kid:?}: {msg}"),
            Self::Limit(name, msg) => write!(f, "[limits] {name}: {msg}"),
            Self::AuditKey(path) => write!(
                f,
                "{}: an audit key file needs at least 32 bytes",
                path.display()
            ),
            Self::AdminToken(path, err) => write!(f, "{}: {err}", path.display()),
        }
    }
}

impl std::error::Error for ConfigError {}

impl FileConfig {
    /// Reads and parses a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.to_owned(), e))?;
        Self::parse(&text)
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))
    }

    /// The verification keys, secrets read from their files.
    pub fn verifying_keys(&self) -> Result<VerifyingKeys, ConfigError> {
        let mut keys = VerifyingKeys::new();
        for entry in &self.keys {
            let fail = |msg: String| ConfigError::Key(entry.kid.clone(), msg);
            let key_err = |e: KeyError| ConfigError::Key(entry.kid.clone(), e.to_string());
            match entry.alg.as_str() {
                "HS256" => {
                    let path = entry
                        .secret_file
                        .as_ref()
                        .ok_or_else(|| fail("HS256 needs secret_file".into()))?;
                    let secret = read_secret_file(path)?;
                    keys.add_hs256(entry.kid.clone(), &secret)
                        .map_err(key_err)?;
                }
                "EdDSA" => {
                    let text = entry
                        .public_key
                        .as_ref()
                        .ok_or_else(|| fail("EdDSA needs public_key".into()))?;
                    let bytes = STANDARD
                        .decode(text.trim())
                        .map_err(|_| fail("public_key is not base64".into()))?;
                    let key: [u8; 32] = bytes
                        .try_into()
                        .map_err(|_| fail("public_key must be 32 bytes".into()))?;
                    keys.add_ed25519(entry.kid.clone(), &key).map_err(key_err)?;
                }
                other => return Err(fail(format!("unsupported alg {other:?}"))),
            }
        }
        Ok(keys)
    }
}

/// The audit trail's pseudonym key from `path`: SHA-256 of the file's bytes (at least 32,
/// one trailing newline ignored). Wiped on drop.
pub fn read_audit_key(path: &Path) -> Result<Zeroizing<[u8; 32]>, ConfigError> {
    use sha2::Digest as _;
    let bytes = read_secret_file(path)?;
    if bytes.len() < 32 {
        return Err(ConfigError::AuditKey(path.to_owned()));
    }
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&sha2::Sha256::digest(bytes.as_slice()));
    Ok(key)
}

/// The admin API's token from `path` (one trailing newline ignored).
pub fn read_admin_token(path: &Path) -> Result<AdminToken, ConfigError> {
    let bytes = read_secret_file(path)?;
    AdminToken::new(&bytes).map_err(|e| ConfigError::AdminToken(path.to_owned(), e))
}

/// Reads an HS256 secret: the file's raw bytes, one trailing newline ignored. Wiped on drop.
pub fn read_secret_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, ConfigError> {
    let mut bytes =
        Zeroizing::new(std::fs::read(path).map_err(|e| ConfigError::Read(path.to_owned(), e))?);
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deploy_example_parses_with_every_section() {
        let c = FileConfig::parse(include_str!("../../deploy/hush.toml")).unwrap();
        assert!(c.tls.is_some() && c.recording.is_some() && c.admin_token_file.is_some());
        assert_eq!(c.token_store.as_deref(), Some("/var/lib/hush/used-tokens"));
        assert_eq!(c.media_threads, Some(0));
        assert_eq!(c.keys.len(), 1);
        assert!(c.limits.relay_config().is_ok());
    }

    #[test]
    fn empty_file_is_all_defaults() {
        let c = FileConfig::parse("").unwrap();
        assert!(c.bind.is_none() && c.keys.is_empty() && c.tls.is_none());
        assert!(c.verifying_keys().unwrap().is_empty());
    }

    #[test]
    fn unknown_fields_and_bad_keys_are_refused() {
        assert!(matches!(
            FileConfig::parse("bnid = \"x\""),
            Err(ConfigError::Parse(_))
        ));
        let c = FileConfig::parse("[[keys]]\nkid = \"a\"\nalg = \"none\"\n").unwrap();
        assert!(matches!(c.verifying_keys(), Err(ConfigError::Key(..))));
        let c = FileConfig::parse("[[keys]]\nkid = \"a\"\nalg = \"HS256\"\n").unwrap();
        assert!(matches!(c.verifying_keys(), Err(ConfigError::Key(..))));
        let c =
            FileConfig::parse("[[keys]]\nkid = \"a\"\nalg = \"EdDSA\"\npublic_key = \"AAAA\"\n")
                .unwrap();
        assert!(matches!(c.verifying_keys(), Err(ConfigError::Key(..))));
    }

    #[test]
    fn limits_map_onto_the_core_and_the_ip_limiter() {
        let c = FileConfig::parse(
            "[limits]\nmax_participants_per_room = 3\nempty_room_timeout_secs = 7\n\
             message_burst = 4\nmessage_rate = 2\nidle_timeout_secs = 9\n\
             ip_connect_burst = 6\nip_max_connections = 1\nip_free_auth_failures = 0\n",
        )
        .unwrap();
        let relay = c.limits.relay_config().unwrap();
        assert_eq!(relay.max_participants_per_room, 3);
        assert_eq!(relay.empty_room_timeout, Duration::from_secs(7));
        assert_eq!(
            relay.message_rate,
            RateLimit {
                burst: 4,
                per_second: 2
            }
        );
        // Unset values keep their defaults.
        assert_eq!(relay.max_rooms, RelayConfig::default().max_rooms);
        assert_eq!(relay.join_timeout, RelayConfig::default().join_timeout);
        let ip = c.limits.ip_limits().unwrap();
        assert_eq!(ip.connect_rate.burst, 6);
        assert_eq!(
            ip.connect_rate.per_second,
            IpLimits::default().connect_rate.per_second
        );
        assert_eq!(ip.max_concurrent, 1);
        assert_eq!(ip.free_auth_failures, 0);
        assert_eq!(c.limits.idle_timeout().unwrap(), Duration::from_secs(9));
        // No section: all defaults.
        let d = FileConfig::parse("").unwrap();
        assert_eq!(d.limits.relay_config().unwrap(), RelayConfig::default());
        assert_eq!(d.limits.ip_limits().unwrap(), IpLimits::default());
        assert_eq!(d.limits.idle_timeout().unwrap(), DEFAULT_IDLE_TIMEOUT);
    }

    #[test]
    fn bad_limits_are_refused_by_name() {
        for (field, text) in [
            ("message_rate", "[limits]\nmessage_rate = 0\n"),
            (
                "max_participants_per_room",
                "[limits]\nmax_participants_per_room = 0\n",
            ),
            ("ip_connect_rate", "[limits]\nip_connect_rate = 0\n"),
            ("idle_timeout_secs", "[limits]\nidle_timeout_secs = 0\n"),
        ] {
            let c = FileConfig::parse(text).unwrap();
            let err = c
                .limits
                .relay_config()
                .and_then(|_| c.limits.ip_limits())
                .and_then(|_| c.limits.idle_timeout())
                .unwrap_err();
            assert!(
                matches!(err, ConfigError::Limit(name, _) if name == field),
                "{err}"
            );
        }
        // A typo is an error, not a silently ignored limit; so is a negative number.
        assert!(FileConfig::parse("[limits]\nmax_participant = 3\n").is_err());
        assert!(FileConfig::parse("[limits]\nmessage_rate = -1\n").is_err());
    }

    #[test]
    fn admin_token_files_are_read_and_checked() {
        let dir = std::env::temp_dir().join(format!("hush-admin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("admin.token");
        std::fs::write(&good, format!("{}\n", "t".repeat(40))).unwrap();
        let short = dir.join("short.token");
        std::fs::write(&short, b"short\n").unwrap();
        let text = format!("admin_token_file = {:?}\n", good.display().to_string());
        let c = FileConfig::parse(&text).unwrap();
        let token = read_admin_token(c.admin_token_file.as_deref().unwrap()).unwrap();
        // The trailing newline is not part of the token.
        assert!(token.matches("t".repeat(40).as_bytes()));
        assert!(matches!(
            read_admin_token(&short),
            Err(ConfigError::AdminToken(_, AdminTokenError::TooShort))
        ));
        assert!(matches!(
            read_admin_token(&dir.join("missing")),
            Err(ConfigError::Read(..))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn hs256_secret_files_are_read_and_checked() {
        let dir = std::env::temp_dir().join(format!("hush-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.key");
        std::fs::write(
            &good,
            [7u8; 32].iter().chain(b"\n").copied().collect::<Vec<_>>(),
        )
        .unwrap();
        let short = dir.join("short.key");
        std::fs::write(&short, b"too short\n").unwrap();
        let text = format!(
            "bind = \"127.0.0.1:9\"\n[[keys]]\nkid = \"k1\"\nalg = \"HS256\"\nsecret_file = {:?}\n",
            good.display().to_string()
        );
        let c = FileConfig::parse(&text).unwrap();
        assert_eq!(c.verifying_keys().unwrap().len(), 1);
        assert_eq!(read_secret_file(&good).unwrap().len(), 32);
        let text = format!(
            "[[keys]]\nkid = \"k1\"\nalg = \"HS256\"\nsecret_file = {:?}\n",
            short.display().to_string()
        );
        let c = FileConfig::parse(&text).unwrap();
        assert!(matches!(c.verifying_keys(), Err(ConfigError::Key(..))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
