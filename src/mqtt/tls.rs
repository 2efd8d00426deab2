//! The TLS client config for `mqtts://` brokers: ring, like the rest of Hearth's TLS.

use crate::config::MqttSettings;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// The roots (`ca_file`, else the system's bundle and the box's local CA) and, when set, the
/// client certificate. Errors name the key and the file.
pub fn client_config(settings: &MqttSettings, tls_dir: &Path) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    if settings.ca_file.is_empty() {
        for file in [Path::new(crate::tls::client::SYSTEM_BUNDLE), &tls_dir.join("ca.crt")] {
            let Ok(certs) = CertificateDer::pem_file_iter(file) else { continue };
            roots.add_parsable_certificates(certs.flatten());
        }
    } else {
        for cert in certificates(&settings.ca_file, "ca_file")? {
            roots.add(cert).map_err(|e| format!("mqtt.ca_file: {}: {e}", settings.ca_file))?;
        }
    }
    let builder =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS for MQTT: {e}"))?
            .with_root_certificates(roots);
    if settings.client_cert.is_empty() {
        return Ok(builder.with_no_client_auth());
    }
    let chain = certificates(&settings.client_cert, "client_cert")?;
    let key = PrivateKeyDer::from_pem_file(&settings.client_key).map_err(|e| {
        format!("mqtt.client_key: cannot read a private key from {}: {e}", settings.client_key)
    })?;
    builder
        .with_client_auth_cert(chain, key)
        .map_err(|e| format!("mqtt.client_cert: {} with its key: {e}", settings.client_cert))
}

fn certificates(path: &str, key: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("mqtt.{key}: cannot read certificates from {path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("mqtt.{key}: no certificate in {path}"));
    }
    Ok(certs)
}
