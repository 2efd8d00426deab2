//! PEM files and certificates: reading, private writing, what a certificate says.

use super::TlsError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// What Hearth needs to know of a certificate.
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub not_after: SystemTime,
    /// Subject alternative names: DNS names and addresses as text.
    pub names: Vec<String>,
    /// The raw public key (to match a private key against).
    pub public_key: Vec<u8>,
    /// A CA's name constraints: permitted DNS subtrees and address ranges.
    pub permitted_dns: Vec<String>,
    pub permitted_ips: Vec<(IpAddr, u8)>,
}

impl CertInfo {
    pub fn parse(der: &[u8]) -> Result<CertInfo, String> {
        let (_, cert) =
            x509_parser::parse_x509_certificate(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
        let secs = cert.validity().not_after.timestamp();
        let not_after = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0));
        let mut names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    x509_parser::extensions::GeneralName::DNSName(d) => names.push(d.to_ascii_lowercase()),
                    x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                        if let Some(ip) = ip_from(bytes) {
                            names.push(ip.to_string());
                        }
                    }
                    _ => {}
                }
            }
        }
        let (mut permitted_dns, mut permitted_ips) = (Vec::new(), Vec::new());
        if let Ok(Some(nc)) = cert.name_constraints() {
            for subtree in nc.value.permitted_subtrees.iter().flatten() {
                match &subtree.base {
                    x509_parser::extensions::GeneralName::DNSName(d) => {
                        permitted_dns.push(d.to_ascii_lowercase())
                    }
                    x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                        let half = bytes.len() / 2;
                        if let (Some(net), Some(mask)) = (ip_from(&bytes[..half]), ip_from(&bytes[half..])) {
                            let prefix = match mask {
                                IpAddr::V4(m) => u32::from(m).count_ones(),
                                IpAddr::V6(m) => u128::from(m).count_ones(),
                            };
                            permitted_ips.push((net, prefix as u8));
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(CertInfo {
            not_after,
            names,
            public_key: cert.public_key().subject_public_key.data.to_vec(),
            permitted_dns,
            permitted_ips,
        })
    }

    /// Seconds since the Unix epoch when the certificate expires.
    pub fn expires_unix(&self) -> u64 {
        self.not_after.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
    }
}

fn ip_from(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

/// SHA-256 of DER bytes as `AB:CD:...`.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// Every certificate in PEM text (at least one).
pub fn certificates(pem: &[u8], source: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Invalid(format!("{}: bad PEM: {e}", source.display())))?;
    if certs.is_empty() {
        return Err(TlsError::Invalid(format!("{}: no CERTIFICATE block", source.display())));
    }
    Ok(certs)
}

/// A certificate chain and its private key, ready to serve; checks that they belong
/// together. Also returns what the server certificate says.
pub fn certified_key(
    chain_pem: &[u8],
    key_pem: &[u8],
    source: &Path,
) -> Result<(Arc<CertifiedKey>, CertInfo), TlsError> {
    let chain = certificates(chain_pem, source)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| TlsError::Invalid(format!("{}: no usable private key: {e}", source.display())))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| TlsError::Invalid(format!("{}: unsupported private key: {e}", source.display())))?;
    let info =
        CertInfo::parse(&chain[0]).map_err(|e| TlsError::Invalid(format!("{}: {e}", source.display())))?;
    let certified = CertifiedKey::new(chain, signer);
    certified.keys_match().map_err(|_| {
        TlsError::Invalid(format!("{}: the private key does not belong to the certificate", source.display()))
    })?;
    Ok((Arc::new(certified), info))
}

pub fn read_text(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|e| TlsError::Io(format!("cannot read {}: {e}", path.display())))
}

/// [`crate::private_files::private_dir`], with the path in the error.
pub fn private_dir(dir: &Path) -> Result<(), TlsError> {
    crate::private_files::private_dir(dir)
        .map_err(|e| TlsError::Io(format!("cannot make {}: {e}", dir.display())))
}

/// [`crate::private_files::write_private`], with the path in the error.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    crate::private_files::write_private(path, bytes).map_err(|e| write_failed(path, e))
}

/// [`crate::private_files::write_public`], with the path in the error.
pub fn write_public(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    crate::private_files::write_public(path, bytes).map_err(|e| write_failed(path, e))
}

fn write_failed(path: &Path, e: std::io::Error) -> TlsError {
    TlsError::Io(format!("cannot write {}: {e}", path.display()))
}
