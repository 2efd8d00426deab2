//! TLS for the HTTP listener: the rustls server configuration and where its certificate
//! comes from (`[tls] mode`): Hearth's local CA, an ACME CA, the owner's PEM files, or
//! nothing. Certificates change while serving (renewal, new addresses, replaced files):
//! the listener asks [`CertSlot`] for the current one at every handshake, so a new
//! certificate takes effect without a restart and without closing connections.
//!
//! Only TLS 1.2 and 1.3 are offered, on ring's cipher suites.
//!
//! Also here: the box's names and addresses ([`names`]), which the `Host` check and the
//! local CA share, and the mDNS advertisement ([`mdns`]).

#[cfg(feature = "acme")]
mod acme;
pub mod client;
mod files;
pub mod local_ca;
pub mod mdns;
pub mod names;
pub mod pem;

use crate::config::{Settings, TlsMode};
use crate::telemetry::Metrics;
pub use names::{BoxNames, SharedNames};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use serde::Serialize;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Invalid(String),
    #[error("ACME: {0}")]
    Acme(String),
}

/// How often the box's addresses are looked at (a cheap `getifaddrs`; the local CA's
/// certificate is re-issued only when they changed or renewal is due), and how often
/// `files` mode looks at its files.
pub const NAMES_CHECK_EVERY: Duration = Duration::from_secs(10);
const FILES_CHECK_EVERY: Duration = Duration::from_secs(2);

/// The certificate the listener serves now; replaced while serving.
#[derive(Debug, Default)]
pub struct CertSlot(RwLock<Option<Arc<CertifiedKey>>>);

impl CertSlot {
    pub fn set(&self, key: Arc<CertifiedKey>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(key);
    }
}

impl ResolvesServerCert for CertSlot {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The local CA's certificate, for `/ca.crt` and the setup page.
#[derive(Debug, Clone)]
pub struct CaCertificate {
    pub pem: String,
    pub der: Vec<u8>,
    pub fingerprint: String,
}

/// What `/api/health` and `/metrics` say about TLS.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TlsState {
    pub mode: &'static str,
    /// Unix seconds when the served certificate expires.
    pub expires: Option<u64>,
    /// Days until then (rounded down).
    pub expires_in_days: Option<u64>,
    /// The names the served certificate covers.
    pub names: Vec<String>,
    /// The last failure to get or load a certificate, cleared by the next success.
    pub last_error: Option<String>,
    /// SHA-256 of the local CA's certificate (`local` mode).
    pub ca_fingerprint: Option<String>,
}

/// Shared TLS state: the status, updated by the certificate keepers.
#[derive(Clone)]
pub struct TlsStatus {
    state: Arc<Mutex<TlsState>>,
    metrics: Metrics,
}

impl TlsStatus {
    fn new(mode: TlsMode, metrics: Metrics) -> Self {
        let state = TlsState { mode: mode.as_str(), ..TlsState::default() };
        Self { state: Arc::new(Mutex::new(state)), metrics }
    }

    pub fn get(&self) -> TlsState {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        state.expires_in_days = state.expires.map(|e| e.saturating_sub(now) / 86_400);
        state
    }

    fn serving(&self, info: &pem::CertInfo) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.expires = Some(info.expires_unix());
        state.names = info.names.clone();
        state.last_error = None;
        self.metrics.tls_certificate_expiry.set(info.expires_unix() as i64);
        self.metrics.tls_error.set(0);
    }

    fn failed(&self, error: &str) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).last_error = Some(error.to_string());
        self.metrics.tls_error.set(1);
    }
}

/// TLS as the server runs it.
#[derive(Clone)]
pub struct Tls {
    pub mode: TlsMode,
    pub status: TlsStatus,
    pub names: SharedNames,
    pub ca: Option<CaCertificate>,
    slot: Arc<CertSlot>,
    #[cfg(feature = "acme")]
    acme: Option<acme::Acme>,
    settings: Arc<Settings>,
}

impl Tls {
    /// Prepares the certificate for `settings.tls.mode` (making the local CA on first
    /// start, reading the files, opening the ACME cache). `None` when TLS is off.
    pub fn prepare(
        settings: Arc<Settings>,
        names: SharedNames,
        metrics: Metrics,
    ) -> Result<Option<Tls>, TlsError> {
        let mode = settings.tls.mode;
        let status = TlsStatus::new(mode, metrics);
        let slot = Arc::new(CertSlot::default());
        let mut tls = Tls {
            mode,
            status,
            names,
            ca: None,
            slot,
            #[cfg(feature = "acme")]
            acme: None,
            settings: settings.clone(),
        };
        match mode {
            TlsMode::Off => return Ok(None),
            TlsMode::Local => {
                let dir = settings.tls_dir();
                let ca = local_ca::LocalCa::load_or_create(&dir, &tls.names.get())?;
                let fingerprint = ca.fingerprint();
                tls.status.state.lock().unwrap_or_else(|e| e.into_inner()).ca_fingerprint =
                    Some(fingerprint.clone());
                tls.ca =
                    Some(CaCertificate { pem: ca.pem().to_string(), der: ca.der().to_vec(), fingerprint });
                tls.refresh_local(&ca)?;
            }
            TlsMode::Files => {
                let (key, info) = files::load(&settings.tls)?;
                tls.slot.set(key);
                tls.status.serving(&info);
            }
            TlsMode::Acme => {
                #[cfg(feature = "acme")]
                {
                    tls.acme = Some(acme::Acme::new(&settings, tls.status.clone())?);
                }
                #[cfg(not(feature = "acme"))]
                return Err(TlsError::Acme("this build has no ACME support (cargo feature `acme`)".into()));
            }
        }
        Ok(Some(tls))
    }

    /// The rustls configuration for the HTTPS listener.
    pub fn server_config(&self) -> ServerConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .expect("ring supports TLS 1.2 and 1.3")
            .with_no_client_auth();
        #[cfg(feature = "acme")]
        if let Some(acme) = &self.acme {
            let mut config = builder.with_cert_resolver(acme.resolver());
            config.alpn_protocols.push(acme::ALPN.to_vec());
            return config;
        }
        builder.with_cert_resolver(self.slot.clone())
    }

    /// The key authorization for an ACME HTTP-01 challenge token, while one is pending.
    pub fn http01_answer(&self, _token: &str) -> Option<String> {
        #[cfg(feature = "acme")]
        if let Some(acme) = &self.acme {
            return acme.http01_answer(_token);
        }
        None
    }

    /// Whether responses should carry `Strict-Transport-Security`: only with a
    /// certificate every browser trusts by itself, so the local CA does not pin a box
    /// whose CA a device has not installed.
    pub fn hsts(&self) -> bool {
        matches!(self.mode, TlsMode::Acme | TlsMode::Files)
    }

    /// Keeps the certificate current while the server runs: re-issues the local one
    /// when addresses change or renewal is due, reloads changed files, drives ACME.
    /// Runs on the current tokio runtime; file and key work goes to the blocking pool.
    pub fn spawn_keeper(&self) {
        let tls = self.clone();
        tokio::spawn(async move {
            match tls.mode {
                TlsMode::Local => tls.keep_local().await,
                TlsMode::Files => tls.keep_files().await,
                #[cfg(feature = "acme")]
                TlsMode::Acme => {
                    if let Some(acme) = &tls.acme {
                        acme.run().await;
                    }
                }
                _ => {}
            }
        });
    }

    fn refresh_local(&self, ca: &local_ca::LocalCa) -> Result<(), TlsError> {
        let dir = self.settings.tls_dir();
        let (issued, new) = ca.server_certificate(&dir, &self.names.get(), self.settings.tls.renew_days)?;
        let (key, info) = pem::certified_key(issued.chain_pem.as_bytes(), issued.key_pem.as_bytes(), &dir)?;
        if new {
            tracing::info!(names = ?info.names, "issued a server certificate from the local CA");
        }
        self.slot.set(key);
        self.status.serving(&info);
        Ok(())
    }

    async fn keep_local(self) {
        let mut tick = tokio::time::interval(NAMES_CHECK_EVERY);
        let mut issued_for = self.names.get();
        loop {
            tick.tick().await;
            let names = self.names.get();
            let renew_at = self
                .status
                .get()
                .expires
                .map(|e| e.saturating_sub(u64::from(self.settings.tls.renew_days) * 86_400));
            let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            if names == issued_for && renew_at.is_some_and(|at| now < at) {
                continue;
            }
            let tls = self.clone();
            let result = tokio::task::spawn_blocking(move || {
                let ca = local_ca::LocalCa::load_or_create(&tls.settings.tls_dir(), &tls.names.get())?;
                tls.refresh_local(&ca)
            })
            .await;
            match result {
                Ok(Ok(())) => issued_for = names,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "cannot renew the local certificate");
                    self.status.failed(&e.to_string());
                }
                Err(e) => tracing::error!(error = %e, "the certificate check panicked"),
            }
        }
    }

    async fn keep_files(self) {
        let mut seen = files::Stamp::of(&self.settings.tls);
        let mut tick = tokio::time::interval(FILES_CHECK_EVERY);
        loop {
            tick.tick().await;
            let now = files::Stamp::of(&self.settings.tls);
            if now == seen {
                continue;
            }
            // A writer may have replaced one file and not yet the other: wait for the
            // pair to settle, then load it. A bad pair leaves the old certificate in use.
            tokio::time::sleep(Duration::from_millis(500)).await;
            seen = files::Stamp::of(&self.settings.tls);
            let settings = self.settings.clone();
            match tokio::task::spawn_blocking(move || files::load(&settings.tls)).await {
                Ok(Ok((key, info))) => {
                    self.slot.set(key);
                    self.status.serving(&info);
                    tracing::info!(names = ?info.names, "reloaded the certificate files");
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "the certificate files changed but cannot be used; still serving the old certificate");
                    self.status.failed(&e.to_string());
                }
                Err(e) => tracing::error!(error = %e, "the certificate reload panicked"),
            }
        }
    }
}
