//! `[tls] mode = "acme"`: certificates from an ACME CA (Let's Encrypt, or an own one such
//! as step-ca on an offline network) through rustls-acme, renewed in the background at
//! two thirds of their life.
//!
//! The challenge is answered on the HTTPS listener itself (TLS-ALPN-01) or, with
//! `acme_challenge = "http-01"`, on the plain HTTP listener. The account key and the
//! certificates are cached in `<data_dir>/acme/` (files 0600): a restart serves the
//! cached certificate at once and orders nothing until renewal is due.

use super::pem::{self, CertInfo};
use super::{TlsError, TlsStatus};
use crate::config::{AcmeChallenge, Settings};
use async_trait::async_trait;
use futures_util::StreamExt;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls_acme::{AccountCache, AcmeConfig, AcmeState, CertCache, ResolvesServerCertAcme, UseChallenge};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The ALPN protocol of TLS-ALPN-01 challenge connections.
pub const ALPN: &[u8] = rustls_acme::acme::ACME_TLS_ALPN_NAME;

type State = AcmeState<std::io::Error, std::io::Error>;

#[derive(Clone)]
pub struct Acme {
    state: Arc<Mutex<Option<State>>>,
    resolver: Arc<ResolvesServerCertAcme>,
    cache: Cache,
    status: TlsStatus,
}

impl Acme {
    pub fn new(settings: &Settings, status: TlsStatus) -> Result<Acme, TlsError> {
        let tls = &settings.tls;
        let dir = settings.storage.data_dir.join("acme");
        pem::private_dir(&dir)?;
        let cache = Cache { dir, last: Arc::new(Mutex::new(None)) };
        let config = match tls.acme_ca.as_str() {
            "" => AcmeConfig::new(&tls.acme_domains),
            ca => {
                AcmeConfig::new_with_client_config(&tls.acme_domains, Arc::new(client_config(Path::new(ca))?))
            }
        };
        let contact =
            tls.acme_contact.iter().map(|c| if c.contains(':') { c.clone() } else { format!("mailto:{c}") });
        let config = config
            .directory(tls.acme_directory_url())
            .contact(contact)
            .challenge_type(match tls.acme_challenge {
                AcmeChallenge::TlsAlpn01 => UseChallenge::TlsAlpn01,
                AcmeChallenge::Http01 => UseChallenge::Http01,
            })
            .cache(cache.clone());
        let state = config.state();
        let resolver = state.resolver();
        tracing::info!(
            domains = ?tls.acme_domains, directory = tls.acme_directory_url(), challenge = ?tls.acme_challenge,
            "ACME: certificates for these names"
        );
        Ok(Acme { state: Arc::new(Mutex::new(Some(state))), resolver, cache, status })
    }

    pub fn resolver(&self) -> Arc<ResolvesServerCertAcme> {
        self.resolver.clone()
    }

    pub fn http01_answer(&self, token: &str) -> Option<String> {
        self.resolver.get_http_01_key_auth(token)
    }

    /// Drives the ACME state (orders, renewals) forever, recording each outcome.
    pub async fn run(&self) {
        let Some(mut state) = self.state.lock().unwrap_or_else(|e| e.into_inner()).take() else { return };
        while let Some(event) = state.next().await {
            match event {
                Ok(ok) => {
                    tracing::info!(event = ?ok, "ACME");
                    if let Some(info) = self.cache.last.lock().unwrap_or_else(|e| e.into_inner()).clone() {
                        self.status.serving(&info);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "ACME: no certificate yet; retrying with backoff");
                    self.status.failed(&e.to_string());
                }
            }
        }
    }
}

/// A client configuration trusting only the roots in a PEM file.
fn client_config(ca: &Path) -> Result<rustls::ClientConfig, TlsError> {
    let text = std::fs::read(ca)
        .map_err(|e| TlsError::Io(format!("cannot read tls.acme_ca {}: {e}", ca.display())))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in pem::certificates(&text, ca)? {
        roots.add(cert).map_err(|e| TlsError::Invalid(format!("{}: {e}", ca.display())))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// rustls-acme's cache in the data dir: private files (the account key and the
/// certificate's key are secrets), written atomically; remembers the newest
/// certificate's expiry for the status.
#[derive(Clone)]
struct Cache {
    dir: PathBuf,
    last: Arc<Mutex<Option<CertInfo>>>,
}

impl Cache {
    fn path(&self, kind: &str, parts: &[String], directory_url: &str) -> PathBuf {
        let mut hash = Sha256::new();
        for part in parts {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        hash.update(directory_url.as_bytes());
        self.dir.join(format!("{kind}-{}.pem", &hex::encode(hash.finalize())[..16]))
    }

    fn remember(&self, pem_bytes: &[u8]) {
        let first = CertificateDer::pem_slice_iter(pem_bytes).find_map(Result::ok);
        if let Some(info) = first.and_then(|der| CertInfo::parse(&der).ok()) {
            *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(info);
        }
    }

    async fn read(path: PathBuf) -> std::io::Result<Option<Vec<u8>>> {
        tokio::task::spawn_blocking(move || match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        })
        .await
        .map_err(std::io::Error::other)?
    }

    async fn write(path: PathBuf, bytes: Vec<u8>) -> std::io::Result<()> {
        tokio::task::spawn_blocking(move || pem::write_private(&path, &bytes).map_err(std::io::Error::other))
            .await
            .map_err(std::io::Error::other)?
    }
}

#[async_trait]
impl CertCache for Cache {
    type EC = std::io::Error;

    async fn load_cert(&self, domains: &[String], directory_url: &str) -> Result<Option<Vec<u8>>, Self::EC> {
        let found = Self::read(self.path("cert", domains, directory_url)).await?;
        if let Some(bytes) = &found {
            self.remember(bytes);
        }
        Ok(found)
    }

    async fn store_cert(&self, domains: &[String], directory_url: &str, cert: &[u8]) -> Result<(), Self::EC> {
        self.remember(cert);
        Self::write(self.path("cert", domains, directory_url), cert.to_vec()).await
    }
}

#[async_trait]
impl AccountCache for Cache {
    type EA = std::io::Error;

    async fn load_account(
        &self,
        contact: &[String],
        directory_url: &str,
    ) -> Result<Option<Vec<u8>>, Self::EA> {
        Self::read(self.path("account", contact, directory_url)).await
    }

    async fn store_account(
        &self,
        contact: &[String],
        directory_url: &str,
        account: &[u8],
    ) -> Result<(), Self::EA> {
        Self::write(self.path("account", contact, directory_url), account.to_vec()).await
    }
}
