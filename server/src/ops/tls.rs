//! TLS for the signaling endpoint: a rustls [`ServerConfig`] from a PEM certificate chain and a
//! PEM private key, with the `ring` provider (the one tokio-rustls is built with here).
//!
//! PEM is parsed with `rustls-pki-types` (`PemObject`); `rustls-pemfile` is deprecated. Every
//! failure names the file and what is wrong with it, never the key's bytes. Protocol versions
//! are rustls' safe defaults (TLS 1.3 and 1.2); ALPN offers `http/1.1`, which the WebSocket
//! upgrade needs.

use core::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls::crypto::ring::default_provider;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

/// The largest PEM file read (a chain of a few certificates is a few KB).
pub const MAX_PEM_FILE_BYTES: u64 = 1 << 20;

/// Why the TLS configuration could not be loaded.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is larger than [`MAX_PEM_FILE_BYTES`].
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The certificate file holds no `CERTIFICATE` section.
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no private key (`PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`).
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// A file is not valid PEM.
    BadPem {
        /// The file.
        path: PathBuf,
        /// What the parser said (no key material).
        detail: String,
    },
    /// rustls refused the certificate and key (a key that does not match the certificate, an
    /// unsupported key type).
    Rustls(rustls::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            Self::TooLarge { path } => write!(
                f,
                "{} is larger than {MAX_PEM_FILE_BYTES} bytes: not a PEM certificate or key",
                path.display()
            ),
            Self::NoCertificate { path } => {
                write!(f, "{} holds no PEM CERTIFICATE section", path.display())
            }
            Self::NoPrivateKey { path } => {
                write!(f, "{} holds no PEM private key", path.display())
            }
            Self::BadPem { path, detail } => {
                write!(f, "{} is not valid PEM: {detail}", path.display())
            }
            Self::Rustls(e) => write!(f, "TLS certificate or key refused: {e}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } => Some(source),
            Self::Rustls(e) => Some(e),
            _ => None,
        }
    }
}

fn read_pem(path: &Path) -> Result<zeroize::Zeroizing<Vec<u8>>, TlsError> {
    let read_err = |source| TlsError::Read {
        path: path.to_owned(),
        source,
    };
    let len = std::fs::metadata(path).map_err(read_err)?.len();
    if len > MAX_PEM_FILE_BYTES {
        return Err(TlsError::TooLarge {
            path: path.to_owned(),
        });
    }
    std::fs::read(path)
        .map(zeroize::Zeroizing::new)
        .map_err(read_err)
}

fn bad_pem(path: &Path, err: &pem::Error) -> TlsError {
    match err {
        pem::Error::NoItemsFound => TlsError::BadPem {
            path: path.to_owned(),
            detail: "no items".into(),
        },
        // The other variants describe structure (markers, base64), never the decoded bytes.
        other => TlsError::BadPem {
            path: path.to_owned(),
            detail: format!("{other:?}").chars().take(120).collect(),
        },
    }
}

/// Reads a PEM certificate chain (leaf first).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_pem(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_pem(path, &e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// Reads the first PEM private key (PKCS #8, PKCS #1 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read_pem(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            path: path.to_owned(),
        },
        other => bad_pem(path, &other),
    })
}

/// A certificate chain and key that can be replaced while the relay runs (on SIGHUP, say):
/// rustls asks for it at every handshake, so a renewed certificate is served from the next
/// connection on, and connections already open keep theirs. A reload that fails (a file half
/// written, a key that does not match) keeps the one served.
#[derive(Debug)]
pub struct ReloadableCert {
    cert: PathBuf,
    key: PathBuf,
    current: std::sync::RwLock<Arc<rustls::sign::CertifiedKey>>,
}

impl ReloadableCert {
    /// Loads the chain and key from their PEM files (checking that they match).
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Self>, TlsError> {
        let current = std::sync::RwLock::new(Arc::new(certified(cert, key)?));
        Ok(Arc::new(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current,
        }))
    }

    /// Reads the files again; on success the new pair is served from the next handshake on.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = Arc::new(certified(&self.cert, &self.key)?);
        match self.current.write() {
            Ok(mut current) => *current = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        Ok(())
    }
}

impl rustls::server::ResolvesServerCert for ReloadableCert {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let current = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Some(Arc::clone(&current))
    }
}

fn certified(cert: &Path, key: &Path) -> Result<rustls::sign::CertifiedKey, TlsError> {
    let chain = load_certs(cert)?;
    let key = load_key(key)?;
    rustls::sign::CertifiedKey::from_der(chain, key, &default_provider()).map_err(TlsError::Rustls)
}

/// A rustls server configuration whose certificate can be reloaded ([`ReloadableCert`]).
pub fn reloadable_server_config(
    cert_path: &Path,
    key_path: &Path,
) -> Result<(Arc<ServerConfig>, Arc<ReloadableCert>), TlsError> {
    let cert = ReloadableCert::load(cert_path, key_path)?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rustls)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::clone(&cert) as Arc<dyn rustls::server::ResolvesServerCert>);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), cert))
}

/// A rustls server configuration from a PEM certificate chain and private key.
pub fn server_config(cert_path: &Path, key_path: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = load_certs(cert_path)?;
    let key = load_key(key_path)?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rustls)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(TlsError::Rustls)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::task::JoinHandle;
    use tokio_rustls::rustls::pki_types::ServerName;
    use tokio_rustls::rustls::{ClientConfig, RootCertStore};
    use tokio_rustls::server::TlsStream;
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    use super::*;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static N: AtomicU64 = AtomicU64::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("hush-tls-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn write(&self, name: &str, contents: &[u8]) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, contents).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn self_signed() -> (String, String) {
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let ck = rcgen::generate_simple_self_signed(names).unwrap();
        (ck.cert.pem(), ck.signing_key.serialize_pem())
    }

    /// A self-signed certificate and its key, written as `cert.pem` and `key.pem` in `dir`.
    fn write_self_signed(dir: &TempDir) -> (PathBuf, PathBuf) {
        let (cert_pem, key_pem) = self_signed();
        let cert = dir.write("cert.pem", cert_pem.as_bytes());
        let key = dir.write("key.pem", key_pem.as_bytes());
        (cert, key)
    }

    /// A loopback listener and a task that accepts one TLS connection on it with `cert` and
    /// `key`, then hands the stream (or the handshake error) to `serve`.
    async fn serve_one<F, Fut>(
        cert: &Path,
        key: &Path,
        serve: F,
    ) -> (SocketAddr, JoinHandle<Fut::Output>)
    where
        F: FnOnce(std::io::Result<TlsStream<TcpStream>>) -> Fut + Send + 'static,
        Fut: Future<Output: Send + 'static> + Send + 'static,
    {
        let acceptor = TlsAcceptor::from(server_config(cert, key).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            serve(acceptor.accept(tcp).await).await
        });
        (addr, server)
    }

    /// A client that trusts only `roots`.
    fn connector(roots: RootCertStore, alpn: Vec<Vec<u8>>) -> TlsConnector {
        let mut client = ClientConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.alpn_protocols = alpn;
        TlsConnector::from(Arc::new(client))
    }

    #[tokio::test]
    async fn a_real_handshake_on_loopback() {
        let dir = TempDir::new();
        let (cert, key) = write_self_signed(&dir);
        let (addr, server) = serve_one(&cert, &key, |tls| async move {
            let mut tls = tls.unwrap();
            let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
            let mut buf = [0u8; 5];
            tls.read_exact(&mut buf).await.unwrap();
            tls.write_all(b"pong!").await.unwrap();
            tls.shutdown().await.unwrap();
            (buf, alpn)
        })
        .await;

        let mut roots = RootCertStore::empty();
        for c in load_certs(&cert).unwrap() {
            roots.add(c).unwrap();
        }
        let connector = connector(roots, vec![b"http/1.1".to_vec()]);
        let run = async {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let name = ServerName::try_from("localhost").unwrap();
            let mut tls = connector.connect(name, tcp).await.unwrap();
            tls.write_all(b"ping!").await.unwrap();
            let mut reply = Vec::new();
            tls.read_to_end(&mut reply).await.unwrap();
            reply
        };
        let reply = tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .unwrap();
        assert_eq!(reply, b"pong!");
        let (got, alpn) = server.await.unwrap();
        assert_eq!(&got, b"ping!");
        assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    }

    #[tokio::test]
    async fn a_client_that_does_not_trust_the_certificate_fails() {
        let dir = TempDir::new();
        let (cert, key) = write_self_signed(&dir);
        let (addr, server) = serve_one(&cert, &key, |tls| async move { tls.is_err() }).await;
        // Trusts another self-signed certificate, not the server's.
        let mut roots = RootCertStore::empty();
        let (other, _) = self_signed();
        let other = dir.write("other.pem", other.as_bytes());
        roots.add(load_certs(&other).unwrap().remove(0)).unwrap();
        let connector = connector(roots, Vec::new());
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let result = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
            .await
            .unwrap();
        assert!(result.is_err());
        assert!(
            tokio::time::timeout(Duration::from_secs(10), server)
                .await
                .unwrap()
                .unwrap()
        );
    }

    #[test]
    fn missing_and_bad_files_are_named_clearly() {
        let dir = TempDir::new();
        let (cert, key) = write_self_signed(&dir);
        let missing = dir.0.join("nope.pem");

        let err = server_config(&missing, &key).unwrap_err();
        assert!(matches!(err, TlsError::Read { .. }), "{err}");
        assert!(err.to_string().contains("nope.pem"), "{err}");

        let err = server_config(&cert, &missing).unwrap_err();
        assert!(matches!(err, TlsError::Read { .. }));

        // A key file given as the certificate: no CERTIFICATE section.
        let err = server_config(&key, &key).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
        // A certificate given as the key: no private key. The message names the file.
        let err = server_config(&cert, &cert).unwrap_err();
        assert!(matches!(err, TlsError::NoPrivateKey { .. }), "{err}");
        assert!(err.to_string().contains("cert.pem"));

        // Garbage and broken PEM.
        let junk = dir.write("junk.pem", b"hello, not pem");
        assert!(matches!(
            server_config(&junk, &key).unwrap_err(),
            TlsError::NoCertificate { .. }
        ));
        let broken = dir.write(
            "broken.pem",
            b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        );
        let err = server_config(&broken, &key).unwrap_err();
        assert!(matches!(err, TlsError::BadPem { .. }), "{err}");

        // A key that does not belong to the certificate.
        let (_, other_key) = self_signed();
        let other_key = dir.write("other-key.pem", other_key.as_bytes());
        let err = server_config(&cert, &other_key).unwrap_err();
        assert!(matches!(err, TlsError::Rustls(_)), "{err}");
        assert!(!err.to_string().contains("PRIVATE KEY"));

        // An oversized file is refused before it is read.
        let big = dir.write("big.pem", &vec![b'a'; (MAX_PEM_FILE_BYTES + 1) as usize]);
        assert!(matches!(
            server_config(&big, &key).unwrap_err(),
            TlsError::TooLarge { .. }
        ));
    }

    #[tokio::test]
    async fn a_reloaded_certificate_is_served_from_the_next_handshake_and_a_bad_one_is_not() {
        let dir = TempDir::new();
        let (cert, key) = write_self_signed(&dir);
        let first = load_certs(&cert).unwrap().remove(0);
        let (config, reloader) = reloadable_server_config(&cert, &key).unwrap();
        let acceptor = TlsAcceptor::from(config);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(tcp).await {
                        let _ = tls.shutdown().await;
                    }
                });
            }
        });
        let (second_pem, second_key) = self_signed();
        let second = CertificateDer::from_pem_slice(second_pem.as_bytes()).unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(first.clone()).unwrap();
        roots.add(second.clone()).unwrap();
        let connector = connector(roots, vec![]);
        let served = || async {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let name = ServerName::try_from("localhost").unwrap();
            let tls = connector.connect(name, tcp).await.unwrap();
            tls.get_ref().1.peer_certificates().unwrap()[0].clone()
        };
        assert_eq!(served().await, first);
        std::fs::write(&cert, &second_pem).unwrap();
        std::fs::write(&key, &second_key).unwrap();
        reloader.reload().unwrap();
        assert_eq!(served().await, second);
        // A half-written certificate, then a key of another certificate: both refused, and
        // the second certificate is still served.
        std::fs::write(&cert, &second_pem[..100]).unwrap();
        assert!(reloader.reload().is_err());
        let (_, other_key) = self_signed();
        std::fs::write(&cert, &second_pem).unwrap();
        std::fs::write(&key, &other_key).unwrap();
        assert!(reloader.reload().is_err());
        assert_eq!(served().await, second);
    }
}
