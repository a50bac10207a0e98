//! TLS with rustls (ring): the listener's certificate, reloadable without a restart, and the trust
//! the backend client puts in the upstream's certificate.
//!
//! [`TlsState`] holds the certificate and key the listener serves, behind an atomic pointer read
//! once per handshake. [`TlsState::reload`] reads the files again and swaps in the new pair only
//! when it loads whole and the key matches the certificate; otherwise the old pair stays served.
//! [`TlsState::watch`] calls it whenever the files change on disk; a config reload calls it too.

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The one crypto provider cachegate uses, passed explicitly everywhere.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The protocols the listener offers through ALPN, preferred first.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Why a certificate, key or CA file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {error}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("{} holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\")", .0.display())]
    NoCertificate(PathBuf),
    #[error("{} is not a valid PEM certificate file: {error}", .path.display())]
    BadCertificate { path: PathBuf, error: String },
    #[error("{} holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {error}", .path.display())]
    BadKey { path: PathBuf, error: String },
    #[error("the private key {} does not match the certificate {}", .key.display(), .cert.display())]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("no system root certificates could be loaded; set upstream.ca_file")]
    NoRoots,
    #[error("TLS settings refused: {0}")]
    Settings(String),
}

/// Where the listener's certificate chain and private key are read from (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Read {
        path: path.to_owned(),
        error,
    })
}

/// Every certificate of a PEM file, at least one.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let text = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCertificate {
            path: path.to_owned(),
            error: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

/// Reads the certificate chain and key of `files` and checks that they belong together.
pub fn load_certified_key(files: &TlsFiles) -> Result<CertifiedKey, TlsError> {
    let certs = read_certificates(&files.cert)?;
    let key_text = read(&files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_text).map_err(|e| TlsError::BadKey {
        path: files.key.clone(),
        error: e.to_string(),
    })?;
    let provider = provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::BadKey {
            path: files.key.clone(),
            error: e.to_string(),
        })?;
    let certified = CertifiedKey::new(certs, signing);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::Mismatch {
                cert: files.cert.clone(),
                key: files.key.clone(),
            })
        }
        // A key whose public half rustls cannot tell is accepted; the handshake will tell.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(e) => Err(TlsError::BadCertificate {
            path: files.cert.clone(),
            error: e.to_string(),
        }),
    }
}

/// What identifies a version of the files on disk: modification times and lengths.
type Stamp = [Option<(SystemTime, u64)>; 2];

fn stamp(files: &TlsFiles) -> Stamp {
    let of = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())))
    };
    [of(&files.cert), of(&files.key)]
}

/// The listener's certificate and key, swapped whole on reload. Read once per handshake.
pub struct TlsState {
    files: TlsFiles,
    current: ArcSwap<CertifiedKey>,
    /// The files' stamp when last read (successfully or not), so that a change is read once.
    seen: Mutex<Stamp>,
}

impl fmt::Debug for TlsState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsState")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl TlsState {
    /// Loads the certificate and key; an error names the file at fault.
    pub fn load(files: TlsFiles) -> Result<Arc<TlsState>, TlsError> {
        let seen = stamp(&files);
        let key = load_certified_key(&files)?;
        Ok(Arc::new(TlsState {
            files,
            current: ArcSwap::from_pointee(key),
            seen: Mutex::new(seen),
        }))
    }

    /// The files this state reads.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// Reads the certificate and key files again and serves them from the next handshake on.
    /// On error (a file missing or unreadable, bad PEM, a key that does not match the
    /// certificate), the pair served so far stays, and the error says why.
    pub fn reload(&self) -> Result<(), TlsError> {
        let now = stamp(&self.files);
        if let Ok(mut seen) = self.seen.lock() {
            *seen = now;
        }
        let key = load_certified_key(&self.files)?;
        self.current.store(Arc::new(key));
        Ok(())
    }

    /// Reloads when the files changed since they were last read. `None` when they did not.
    pub fn reload_if_changed(&self) -> Option<Result<(), TlsError>> {
        let now = stamp(&self.files);
        let changed = self.seen.lock().map_or(true, |seen| *seen != now);
        changed.then(|| self.reload())
    }

    /// Checks the files every `interval` and reloads them when they changed, logging the result,
    /// until the task is dropped.
    pub async fn watch(self: Arc<Self>, interval: Duration) {
        let mut tick = tokio::time::interval(interval.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            match self.reload_if_changed() {
                None => {}
                Some(Ok(())) => tracing::info!(
                    cert = %self.files.cert.display(),
                    "TLS certificate reloaded"
                ),
                Some(Err(err)) => tracing::error!(
                    error = %err,
                    "TLS certificate not reloaded; still serving the previous one"
                ),
            }
        }
    }

    /// The certificate served now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }

    /// The listener's rustls settings: this state's certificate, ALPN `h2` and `http/1.1`.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Settings(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Resolver(self.clone())));
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }

    /// An acceptor for the listener.
    pub fn acceptor(self: &Arc<Self>) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
        Ok(tokio_rustls::TlsAcceptor::from(self.server_config()?))
    }
}

/// Hands every handshake the certificate of the moment.
#[derive(Debug)]
struct Resolver(Arc<TlsState>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current.load_full())
    }
}

/// The trust anchors for an `https://` upstream: the certificates of `ca_file` alone when given
/// (they replace the system roots), otherwise the system's roots.
pub fn upstream_roots(ca_file: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in read_certificates(path)? {
                roots.add(cert).map_err(|e| TlsError::BadCertificate {
                    path: path.to_owned(),
                    error: e.to_string(),
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for error in &found.errors {
                tracing::debug!(%error, "a system root certificate could not be loaded");
            }
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(TlsError::NoRoots);
            }
        }
    }
    Ok(roots)
}

/// The backend client's rustls settings for an `https://` upstream.
pub fn client_config(ca_file: Option<&Path>) -> Result<ClientConfig, TlsError> {
    let roots = upstream_roots(ca_file)?;
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Settings(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Whether `err`, or any error it was caused by, is a rustls error: the backend's certificate
/// was refused, or the handshake failed.
pub fn is_tls_error(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    crate::error::causes(err)
        .find_map(|e| e.downcast_ref::<rustls::Error>())
        .map(ToString::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("cachegate-tls-unit-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn reload_swaps_a_good_pair_and_keeps_the_old_one_on_error() {
        let dir = dir("reload");
        let files = TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        let (cert, key) = leaf("one");
        std::fs::write(&files.cert, &cert).unwrap();
        std::fs::write(&files.key, &key).unwrap();
        let state = TlsState::load(files.clone()).unwrap();
        let first = state.current();
        assert!(state.reload_if_changed().is_none(), "nothing changed");

        let (other_cert, _) = leaf("two");
        std::fs::write(&files.cert, &other_cert).unwrap();
        let err = state.reload().unwrap_err();
        assert!(matches!(err, TlsError::Mismatch { .. }), "{err}");
        assert!(Arc::ptr_eq(&first, &state.current()), "the old pair stays");
        assert!(
            state.reload_if_changed().is_none(),
            "a failed change is read once"
        );

        std::fs::remove_file(&files.key).unwrap();
        let err = state.reload().unwrap_err();
        assert!(err.to_string().starts_with("cannot read "), "{err}");

        let (cert, key) = leaf("three");
        std::fs::write(&files.cert, &cert).unwrap();
        std::fs::write(&files.key, &key).unwrap();
        assert!(matches!(state.reload_if_changed(), Some(Ok(()))));
        assert!(!Arc::ptr_eq(&first, &state.current()));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_ca_file_must_hold_certificates() {
        let dir = dir("ca");
        let path = dir.join("ca.pem");
        std::fs::write(&path, "no pem here\n").unwrap();
        let err = upstream_roots(Some(&path)).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate(_)), "{err}");
        std::fs::write(&path, leaf("ca").0).unwrap();
        assert_eq!(upstream_roots(Some(&path)).unwrap().len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
