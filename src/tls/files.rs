//! `[tls] mode = "files"`: the owner's PEM certificate chain and key, reloaded when
//! either file changes (a renewal by certbot or an own CA).

use super::pem::{self, CertInfo};
use super::TlsError;
use crate::config::TlsSettings;
use rustls::sign::CertifiedKey;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

/// Reads and checks the pair.
pub fn load(settings: &TlsSettings) -> Result<(Arc<CertifiedKey>, CertInfo), TlsError> {
    let (cert, key) = (Path::new(&settings.cert), Path::new(&settings.key));
    let read =
        |p: &Path| std::fs::read(p).map_err(|e| TlsError::Io(format!("cannot read {}: {e}", p.display())));
    let (chain, secret) = (read(cert)?, read(key)?);
    let (certified, info) = pem::certified_key(&chain, &secret, cert)?;
    if info.not_after < SystemTime::now() {
        tracing::warn!(path = %cert.display(), "the certificate has expired; browsers will refuse it");
    }
    Ok((certified, info))
}

/// What identifies a version of the two files: modification time, size and inode of each
/// (a rename onto the path changes the inode even within one second).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp(Vec<Option<(SystemTime, u64, u64)>>);

impl Stamp {
    pub fn of(settings: &TlsSettings) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp(
            [&settings.cert, &settings.key]
                .iter()
                .map(|p| {
                    std::fs::metadata(p)
                        .ok()
                        .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len(), m.ino()))
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::local_ca::LocalCa;
    use crate::tls::names::BoxNames;

    #[test]
    fn a_pair_loads_and_a_mismatched_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let names = BoxNames { dns: ["box.example.org".to_string()].into(), ips: Default::default() };
        let ca = LocalCa::load_or_create(&dir.path().join("ca"), &names).unwrap();
        let one = ca.issue(&names, 10).unwrap();
        let two = ca.issue(&names, 10).unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cert, &one.chain_pem).unwrap();
        std::fs::write(&key, &one.key_pem).unwrap();
        let settings = TlsSettings {
            cert: cert.display().to_string(),
            key: key.display().to_string(),
            ..TlsSettings::default()
        };
        let (_, info) = load(&settings).unwrap();
        assert_eq!(info.names, ["box.example.org"]);
        let before = Stamp::of(&settings);
        std::fs::write(&key, &two.key_pem).unwrap();
        assert_ne!(Stamp::of(&settings), before, "a rewritten file is noticed");
        let Err(err) = load(&settings) else { panic!("a mismatched pair was accepted") };
        assert!(err.to_string().contains("does not belong"), "{err}");
        std::fs::write(&key, "not a key").unwrap();
        assert!(load(&settings).is_err());
    }
}
