//! `[tls] mode = "local"`: Hearth's own certificate authority.
//!
//! At first start Hearth makes a CA (ECDSA P-256, ten years) in `<data_dir>/tls/`
//! (`ca.key` 0600, `ca.crt`) and, signed by it, a server certificate for every name and
//! address of the box (`server.crt`, `server.key` 0600). The owner installs `ca.crt` on
//! their phones and computers once (checking its SHA-256 fingerprint), after which every
//! server certificate Hearth makes is trusted: renewed `renew_days` before it expires and
//! re-issued when the box's addresses change, with nothing to do on the devices.
//!
//! The CA is name-constrained to what a LAN box can be called: `.local`, `localhost`, the
//! host name and configured hosts, and the private, loopback and link-local address
//! ranges. A device that trusts it therefore trusts it for nothing else, even if its key
//! were stolen: it cannot vouch for a bank's web site.

use super::names::BoxNames;
use super::pem::{self, CertInfo};
use super::TlsError;
use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
    GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose, NameConstraints, SanType, SerialNumber,
};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How long the CA is valid.
const CA_DAYS: i64 = 3650;
/// How long a server certificate is valid (Apple devices refuse more than 825 days).
pub const SERVER_DAYS: u32 = 180;

/// Address ranges the CA may certify: private (RFC 1918, unique local), carrier-grade
/// NAT (VPNs), loopback and link-local.
const PERMITTED_RANGES: &[(&str, u8)] = &[
    ("10.0.0.0", 8),
    ("172.16.0.0", 12),
    ("192.168.0.0", 16),
    ("100.64.0.0", 10),
    ("127.0.0.0", 8),
    ("169.254.0.0", 16),
    ("::1", 128),
    ("fc00::", 7),
    ("fe80::", 10),
];

/// The CA: its key and certificate, read from or written to the TLS directory.
pub struct LocalCa {
    key: KeyPair,
    cert_pem: String,
    cert_der: Vec<u8>,
    info: CertInfo,
}

/// A server certificate as issued: the chain (server, CA) and its key, in PEM.
pub struct Issued {
    pub chain_pem: String,
    pub key_pem: String,
}

impl LocalCa {
    /// Reads the CA from `dir`, or makes one there when there is none.
    pub fn load_or_create(dir: &Path, names: &BoxNames) -> Result<LocalCa, TlsError> {
        let (key_path, cert_path) = (dir.join("ca.key"), dir.join("ca.crt"));
        if key_path.exists() || cert_path.exists() {
            return Self::load(&key_path, &cert_path);
        }
        pem::private_dir(dir)?;
        let ca = Self::create(names)?;
        pem::write_private(&key_path, ca.key.serialize_pem().as_bytes())?;
        pem::write_public(&cert_path, ca.cert_pem.as_bytes())?;
        tracing::info!(path = %cert_path.display(), fingerprint = %ca.fingerprint(), "made a local certificate authority");
        Ok(ca)
    }

    fn load(key_path: &Path, cert_path: &Path) -> Result<LocalCa, TlsError> {
        let key_text = pem::read_text(key_path)?;
        let cert_pem = pem::read_text(cert_path)?;
        let key = KeyPair::from_pem(&key_text)
            .map_err(|e| TlsError::Invalid(format!("{}: not a private key: {e}", key_path.display())))?;
        let cert_der = pem::certificates(cert_pem.as_bytes(), cert_path)?.remove(0).to_vec();
        let info = CertInfo::parse(&cert_der)
            .map_err(|e| TlsError::Invalid(format!("{}: {e}", cert_path.display())))?;
        let ca = LocalCa { key, cert_pem, cert_der, info };
        // The key must be the certificate's: a mismatched pair would sign certificates
        // no device could verify.
        if ca.key.public_key_raw() != ca.info.public_key.as_slice() {
            return Err(TlsError::Invalid(format!(
                "{} does not belong to {} (remove both to make a new CA)",
                key_path.display(),
                cert_path.display()
            )));
        }
        Ok(ca)
    }

    fn create(names: &BoxNames) -> Result<LocalCa, TlsError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(rcgen_error)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        let host = super::names::host_name().unwrap_or_else(|| "hearth".into());
        // A random suffix tells two boxes' CAs apart on a phone's list of trusted CAs.
        let tag = hex::encode(rand::random::<[u8; 3]>());
        dn.push(DnType::CommonName, format!("Hearth local CA {host} {tag}"));
        dn.push(DnType::OrganizationName, "Hearth");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.serial_number = Some(serial());
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(CA_DAYS);
        params.name_constraints = Some(constraints(names));
        let cert = params.self_signed(&key).map_err(rcgen_error)?;
        let cert_der = cert.der().to_vec();
        let info = CertInfo::parse(&cert_der).map_err(TlsError::Invalid)?;
        Ok(LocalCa { key, cert_pem: cert.pem(), cert_der, info })
    }

    fn issuer(&self) -> Result<Issuer<'_, &KeyPair>, TlsError> {
        Issuer::from_ca_cert_der(&self.cert_der.clone().into(), &self.key).map_err(rcgen_error)
    }

    pub fn pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn der(&self) -> &[u8] {
        &self.cert_der
    }

    /// SHA-256 of the CA certificate, as browsers and phones show it (`AB:CD:...`).
    pub fn fingerprint(&self) -> String {
        pem::fingerprint(&self.cert_der)
    }

    /// Whether the CA may certify this name or address.
    fn permits(&self, name: &San) -> bool {
        match name {
            San::Dns(dns) => {
                self.info.permitted_dns.iter().any(|c| dns == c || dns.ends_with(&format!(".{c}")))
            }
            San::Ip(ip) => self.info.permitted_ips.iter().any(|(net, prefix)| in_range(*ip, *net, *prefix)),
        }
    }

    /// The names of `names` the CA may certify; the rest are logged and left out.
    fn certifiable(&self, names: &BoxNames) -> Vec<San> {
        let all = names.dns.iter().cloned().map(San::Dns).chain(names.ips.iter().copied().map(San::Ip));
        let (kept, left): (Vec<San>, Vec<San>) = all.partition(|n| self.permits(n));
        if !left.is_empty() {
            let left: Vec<String> = left.iter().map(San::to_string).collect();
            tracing::debug!(?left, "names outside the local CA's constraints are not in its certificate");
        }
        kept
    }

    /// A new server certificate for `names`, valid `days`.
    pub fn issue(&self, names: &BoxNames, days: u32) -> Result<Issued, TlsError> {
        let sans = self.certifiable(names);
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(rcgen_error)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, sans.first().map_or("hearth".into(), San::to_string));
        params.distinguished_name = dn;
        params.subject_alt_names = sans
            .iter()
            .map(|s| match s {
                San::Dns(d) => d.clone().try_into().map(SanType::DnsName).map_err(rcgen_error),
                San::Ip(ip) => Ok(SanType::IpAddress(*ip)),
            })
            .collect::<Result<_, _>>()?;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(serial());
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(i64::from(days));
        let cert = params.signed_by(&key, &self.issuer()?).map_err(rcgen_error)?;
        Ok(Issued { chain_pem: format!("{}{}", cert.pem(), self.cert_pem), key_pem: key.serialize_pem() })
    }

    /// The server certificate in `dir` when it is this CA's, covers what `names` it may
    /// and is not due for renewal; otherwise a new one, written there. Returns the
    /// chain and key in PEM and whether it is new.
    pub fn server_certificate(
        &self,
        dir: &Path,
        names: &BoxNames,
        renew_days: u32,
    ) -> Result<(Issued, bool), TlsError> {
        let (cert_path, key_path) = server_paths(dir);
        match self.current(&cert_path, &key_path, names, renew_days) {
            Ok(Some(current)) => return Ok((current, false)),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "the server certificate cannot be used; making a new one"),
        }
        let issued = self.issue(names, SERVER_DAYS)?;
        pem::private_dir(dir)?;
        pem::write_private(&key_path, issued.key_pem.as_bytes())?;
        pem::write_public(&cert_path, issued.chain_pem.as_bytes())?;
        Ok((issued, true))
    }

    fn current(
        &self,
        cert_path: &Path,
        key_path: &Path,
        names: &BoxNames,
        renew_days: u32,
    ) -> Result<Option<Issued>, TlsError> {
        if !cert_path.exists() {
            return Ok(None);
        }
        let chain_pem = pem::read_text(cert_path)?;
        let key_pem = pem::read_text(key_path)?;
        let chain = pem::certificates(chain_pem.as_bytes(), cert_path)?;
        let info = CertInfo::parse(&chain[0]).map_err(TlsError::Invalid)?;
        let wanted: Vec<String> = self.certifiable(names).iter().map(San::to_string).collect();
        let renew_at = info.not_after - Duration::from_secs(u64::from(renew_days) * 86_400);
        let fresh = SystemTime::now() < renew_at;
        let ours = chain.get(1).is_some_and(|ca| ca.as_ref() == self.cert_der.as_slice());
        let covers = wanted.iter().all(|w| info.names.contains(w));
        if !fresh {
            tracing::info!("the server certificate is due for renewal");
        } else if !covers {
            tracing::info!(names = ?wanted, "the box's names or addresses changed; re-issuing its certificate");
        }
        Ok((fresh && ours && covers).then_some(Issued { chain_pem, key_pem }))
    }
}

/// Where the server certificate and key live.
pub fn server_paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("server.crt"), dir.join("server.key"))
}

/// A subject alternative name.
#[derive(Debug, Clone, PartialEq)]
enum San {
    Dns(String),
    Ip(IpAddr),
}

impl std::fmt::Display for San {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            San::Dns(d) => f.write_str(d),
            San::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// What the CA may certify: `.local`, `localhost`, the host name and configured DNS
/// names; the ranges above and configured addresses.
fn constraints(names: &BoxNames) -> NameConstraints {
    let mut dns: Vec<String> = vec!["local".into(), "localhost".into()];
    for name in &names.dns {
        if !dns.iter().any(|d| name == d || name.ends_with(&format!(".{d}"))) {
            dns.push(name.clone());
        }
    }
    let mut ips: Vec<(IpAddr, u8)> =
        PERMITTED_RANGES.iter().map(|(net, prefix)| (net.parse().expect("valid range"), *prefix)).collect();
    for ip in &names.ips {
        if !ips.iter().any(|(net, prefix)| in_range(*ip, *net, *prefix)) {
            ips.push((*ip, if ip.is_ipv4() { 32 } else { 128 }));
        }
    }
    NameConstraints {
        permitted_subtrees: dns
            .into_iter()
            .map(GeneralSubtree::DnsName)
            .chain(
                ips.into_iter().map(|(net, prefix)| {
                    GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(net, prefix))
                }),
            )
            .collect(),
        excluded_subtrees: Vec::new(),
    }
}

/// Whether `ip` lies in `net/prefix`.
pub fn in_range(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix.min(32))).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix.min(128))).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

fn serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f; // positive
    SerialNumber::from_slice(&bytes)
}

fn rcgen_error(e: rcgen::Error) -> TlsError {
    TlsError::Invalid(format!("certificate generation failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dns: &[&str], ips: &[&str]) -> BoxNames {
        BoxNames {
            dns: dns.iter().map(|s| s.to_string()).collect(),
            ips: ips.iter().map(|s| s.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn ranges_match_by_prefix() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(in_range(ip("192.168.4.7"), ip("192.168.0.0"), 16));
        assert!(!in_range(ip("192.169.0.1"), ip("192.168.0.0"), 16));
        assert!(in_range(ip("172.31.255.1"), ip("172.16.0.0"), 12));
        assert!(!in_range(ip("172.32.0.1"), ip("172.16.0.0"), 12));
        assert!(in_range(ip("fd12::1"), ip("fc00::"), 7));
        assert!(!in_range(ip("2001:db8::1"), ip("fc00::"), 7));
        assert!(!in_range(ip("10.0.0.1"), ip("::1"), 128));
        assert!(in_range(ip("8.8.8.8"), ip("0.0.0.0"), 0));
    }

    #[test]
    fn made_once_then_read_back_with_the_same_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let n = names(&["hearth.local", "localhost"], &["127.0.0.1", "10.77.0.1"]);
        let made = LocalCa::load_or_create(dir.path(), &n).unwrap();
        let again = LocalCa::load_or_create(dir.path(), &n).unwrap();
        assert_eq!(made.fingerprint(), again.fingerprint());
        assert_eq!(made.fingerprint().len(), 32 * 3 - 1);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("ca.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the CA key is private");
    }

    #[test]
    fn server_certificate_is_kept_until_names_change_and_leaves_out_public_ones() {
        let dir = tempfile::tempdir().unwrap();
        // The CA covers the box's addresses when it is made; a public one that comes later
        // is outside its constraints.
        let at_creation = names(&["hearth.local", "localhost"], &["127.0.0.1", "192.168.1.5"]);
        let ca = LocalCa::load_or_create(dir.path(), &at_creation).unwrap();
        let n = names(&["hearth.local", "localhost"], &["127.0.0.1", "192.168.1.5", "203.0.113.9"]);
        let (first, new) = ca.server_certificate(dir.path(), &n, 30).unwrap();
        assert!(new);
        let chain = pem::certificates(first.chain_pem.as_bytes(), dir.path()).unwrap();
        let info = CertInfo::parse(&chain[0]).unwrap();
        assert!(info.names.contains(&"192.168.1.5".to_string()), "{:?}", info.names);
        assert!(info.names.contains(&"hearth.local".to_string()));
        assert!(
            !info.names.contains(&"203.0.113.9".to_string()),
            "a public address is outside the CA's constraints"
        );
        let (_, new) = ca.server_certificate(dir.path(), &n, 30).unwrap();
        assert!(!new, "unchanged names keep the certificate");
        let moved = names(&["hearth.local", "localhost"], &["127.0.0.1", "192.168.7.9"]);
        let (second, new) = ca.server_certificate(dir.path(), &moved, 30).unwrap();
        assert!(new, "a new address gets a new certificate");
        let info =
            CertInfo::parse(&pem::certificates(second.chain_pem.as_bytes(), dir.path()).unwrap()[0]).unwrap();
        assert!(info.names.contains(&"192.168.7.9".to_string()));
        // Renewal: a certificate inside the renewal window is replaced.
        let (_, new) = ca.server_certificate(dir.path(), &moved, SERVER_DAYS + 1).unwrap();
        assert!(new, "a certificate due for renewal is replaced");
    }

    #[test]
    fn a_key_that_is_not_the_cas_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let n = names(&["hearth.local"], &["127.0.0.1"]);
        LocalCa::load_or_create(dir.path(), &n).unwrap();
        LocalCa::load_or_create(other.path(), &n).unwrap();
        std::fs::copy(other.path().join("ca.key"), dir.path().join("ca.key")).unwrap();
        let Err(err) = LocalCa::load_or_create(dir.path(), &n) else {
            panic!("a key that is not the CA's was accepted")
        };
        assert!(err.to_string().contains("does not belong"), "{err}");
    }
}
