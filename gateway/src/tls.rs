//! TLS on the gateway's listeners: rustls with the ring provider, one certificate and key
//! (PEM files) for both the gRPC and the HTTP listener, read again when either file
//! changes, so a renewed certificate is served without a restart. A handshake happens on
//! the connection's own task, within the header timeout, so a slow client holds up no
//! one else.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// How often the certificate and key files are checked for a change.
pub const CERT_RELOAD_CHECK: Duration = Duration::from_secs(2);

/// Why the certificate or key could not be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read, or holds no PEM of the kind.
    #[error("reading {what} from {}: {reason}", path.display())]
    Read {
        /// `certificate` or `private key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The key is of a kind rustls does not sign with, or does not match.
    #[error("the private key in {}: {reason}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the settings.
    #[error("TLS settings: {0}")]
    Settings(String),
}

/// The certificate the listeners serve, swapped when its files change.
#[derive(Debug)]
pub(crate) struct Certificates {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Served>,
}

#[derive(Debug)]
struct Served {
    key: Arc<CertifiedKey>,
    /// The files' modification times when they were read.
    stamps: (Option<SystemTime>, Option<SystemTime>),
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn load(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, TlsError> {
    let read = |what, path: &Path, reason: String| TlsError::Read {
        what,
        path: path.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| read("certificate", cert_path, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read("certificate", cert_path, e.to_string()))?;
    if chain.is_empty() {
        return Err(read(
            "certificate",
            cert_path,
            "no CERTIFICATE block".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| read("private key", key_path, e.to_string()))?;
    let signing =
        rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| TlsError::Key {
            path: key_path.to_owned(),
            reason: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| TlsError::Key {
        path: key_path.to_owned(),
        reason: format!("it does not match the certificate: {e}"),
    })?;
    Ok(certified)
}

impl Certificates {
    /// Reads the certificate chain and key.
    ///
    /// # Errors
    /// [`TlsError`] naming the file that cannot be served.
    pub(crate) fn load(cert_path: &Path, key_path: &Path) -> Result<Arc<Self>, TlsError> {
        let stamps = (modified(cert_path), modified(key_path));
        let key = Arc::new(load(cert_path, key_path)?);
        Ok(Arc::new(Self {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            current: RwLock::new(Served { key, stamps }),
        }))
    }

    /// Reads the files again if either changed since they were read. A pair that cannot
    /// be served (a certificate written before its key, say) leaves the old one served
    /// and is tried again at the next check.
    pub(crate) fn reload_if_changed(&self) {
        let stamps = (modified(&self.cert_path), modified(&self.key_path));
        if self.served().stamps == stamps {
            return;
        }
        match load(&self.cert_path, &self.key_path) {
            Ok(key) => {
                *self
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Served {
                    key: Arc::new(key),
                    stamps,
                };
                tracing::info!(cert = %self.cert_path.display(), "TLS certificate reloaded");
            }
            Err(e) => {
                tracing::warn!(error = %e, "the changed TLS certificate cannot be served; serving the previous one");
            }
        }
    }

    fn served(&self) -> std::sync::RwLockReadGuard<'_, Served> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The settings of a listener speaking `alpn` (`h2` for gRPC, `http/1.1` for HTTP).
    ///
    /// # Errors
    /// [`TlsError::Settings`] when rustls refuses them.
    pub(crate) fn acceptor(
        self: &Arc<Self>,
        alpn: &[u8],
    ) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Settings(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![alpn.to_vec()];
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }

    /// Checks the files every [`CERT_RELOAD_CHECK`] until the gateway stops.
    pub(crate) async fn watch(self: Arc<Self>) {
        let mut every = tokio::time::interval(CERT_RELOAD_CHECK);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let certificates = Arc::clone(&self);
            // Reading files blocks; it is rare and short, but not for a serving thread.
            let _ = tokio::task::spawn_blocking(move || certificates.reload_if_changed()).await;
        }
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.served().key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let made = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, made.cert.pem()).unwrap();
        std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
        (cert, key)
    }

    #[test]
    fn a_pair_loads_a_changed_one_is_served_and_a_broken_one_is_not() {
        let dir = std::env::temp_dir().join(format!("vectron-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = write_pair(&dir, "one.example");
        let certificates = Certificates::load(&cert, &key).unwrap();
        let first = certificates.served().key.cert[0].clone();
        // A new pair with a later modification time is picked up.
        std::thread::sleep(Duration::from_millis(20));
        write_pair(&dir, "two.example");
        certificates.reload_if_changed();
        let second = certificates.served().key.cert[0].clone();
        assert_ne!(first, second);
        // A certificate whose key is another's is refused, and the served one stays.
        let other = rcgen::generate_simple_self_signed(vec!["three.example".into()]).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&cert, other.cert.pem()).unwrap();
        certificates.reload_if_changed();
        assert_eq!(certificates.served().key.cert[0], second);
        assert!(matches!(
            Certificates::load(&cert, &key),
            Err(TlsError::Key { .. })
        ));
        assert!(matches!(
            Certificates::load(&dir.join("absent.pem"), &key),
            Err(TlsError::Read { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
