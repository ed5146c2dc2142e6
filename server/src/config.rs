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
//!
//! [tls]
//! cert = "/etc/hush/cert.pem"
//! key = "/etc/hush/key.pem"
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

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use zeroize::Zeroizing;

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
    /// TLS for HTTP and WebSocket.
    pub tls: Option<TlsFiles>,
    /// Token verification keys.
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
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
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read(path, err) => write!(f, "cannot read {}: {err}", path.display()),
            Self::Parse(msg) => write!(f, "invalid configuration: {msg}"),
            Self::Key(kid, msg) => write!(f, "key {kid:?}: {msg}"),
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
