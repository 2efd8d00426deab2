//! HTTPS clients of Hearth's own (`hearth chat --url`): they trust the system's CA bundle
//! and this box's local CA (`<data_dir>/tls/ca.crt`), so a command on the box talks to
//! its service over HTTPS with nothing to set up.

use crate::config::Settings;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::path::Path;
use std::sync::Arc;

/// Debian's bundle of the public roots (package ca-certificates).
pub const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// An HTTP client trusting the system's roots and the box's local CA.
pub fn agent(settings: &Settings) -> ureq::Agent {
    builder(settings).build()
}

/// The same, giving up on a connection or an answer after `timeout`.
pub fn agent_with_timeout(settings: &Settings, timeout: std::time::Duration) -> ureq::Agent {
    builder(settings).timeout(timeout).build()
}

fn builder(settings: &Settings) -> ureq::AgentBuilder {
    let mut roots = rustls::RootCertStore::empty();
    for file in [Path::new(SYSTEM_BUNDLE), &settings.tls_dir().join("ca.crt")] {
        let Ok(certs) = CertificateDer::pem_file_iter(file) else { continue };
        for cert in certs.flatten() {
            let _ = roots.add(cert);
        }
    }
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    ureq::AgentBuilder::new().tls_config(Arc::new(config))
}
