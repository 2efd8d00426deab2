//! The `[tls]` settings: how the HTTPS listener gets its certificate.

use serde::{Deserialize, Serialize};

/// Where the server certificate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Hearth's own certificate authority, made at first start in `<data_dir>/tls/`;
    /// browsers trust it once its certificate (`/ca.crt`) is installed.
    #[default]
    Local,
    /// A certificate from an ACME CA (Let's Encrypt, or an own one) for public names.
    Acme,
    /// PEM files the owner provides, reloaded when they change.
    Files,
    /// Plain HTTP: passwords and tokens cross the network readable. Only when chosen.
    Off,
}

impl TlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Local => "local",
            TlsMode::Acme => "acme",
            TlsMode::Files => "files",
            TlsMode::Off => "off",
        }
    }
}

/// How the ACME CA checks that this box holds the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum AcmeChallenge {
    /// On the HTTPS listener itself (the CA connects to port 443).
    #[default]
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
    /// On the plain HTTP listener (`server.http_listen`; the CA connects to port 80).
    #[serde(rename = "http-01")]
    Http01,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// `local`, `acme`, `files` or `off`.
    pub mode: TlsMode,
    /// `files` mode: PEM certificate chain (server certificate first).
    pub cert: String,
    /// `files` mode: PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: String,
    /// `acme` mode: the public names to get a certificate for.
    pub acme_domains: Vec<String>,
    /// `acme` mode: contacts for the account, e.g. `mailto:admin@example.com`.
    pub acme_contact: Vec<String>,
    /// `acme` mode: `production` or `staging` (Let's Encrypt), or a directory URL.
    pub acme_directory: String,
    /// `acme` mode: a PEM file with the root to trust for a custom directory (an own CA);
    /// empty: the usual public roots.
    pub acme_ca: String,
    /// `acme` mode: `tls-alpn-01` or `http-01`.
    pub acme_challenge: AcmeChallenge,
    /// Days before expiry a certificate Hearth makes (local CA) is renewed.
    pub renew_days: u32,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            mode: TlsMode::Local,
            cert: String::new(),
            key: String::new(),
            acme_domains: Vec::new(),
            acme_contact: Vec::new(),
            acme_directory: "production".into(),
            acme_ca: String::new(),
            acme_challenge: AcmeChallenge::TlsAlpn01,
            renew_days: 30,
        }
    }
}

impl TlsSettings {
    pub fn enabled(&self) -> bool {
        self.mode != TlsMode::Off
    }

    /// The ACME directory URL the setting names.
    pub fn acme_directory_url(&self) -> &str {
        match self.acme_directory.as_str() {
            "production" => "https://acme-v02.api.letsencrypt.org/directory",
            "staging" => "https://acme-staging-v02.api.letsencrypt.org/directory",
            url => url,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        let bad = |key: &str, why: &str| Err(format!("invalid value for tls.{key}: {why}"));
        match self.mode {
            TlsMode::Files if self.cert.is_empty() || self.key.is_empty() => {
                return bad("mode", "\"files\" needs tls.cert and tls.key (PEM file paths)");
            }
            TlsMode::Acme if self.acme_domains.is_empty() => {
                return bad("mode", "\"acme\" needs tls.acme_domains (the public names to certify)");
            }
            _ => {}
        }
        for domain in &self.acme_domains {
            if domain.is_empty()
                || domain.parse::<std::net::IpAddr>().is_ok()
                || domain.contains(['/', ':', ' '])
            {
                return bad("acme_domains", &format!("'{domain}' is not a DNS name"));
            }
        }
        let url = self.acme_directory_url();
        if !url.starts_with("https://") {
            return bad("acme_directory", "must be production, staging or an https:// URL");
        }
        if !(1..=365).contains(&self.renew_days) {
            return bad("renew_days", "must be between 1 and 365");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_need_their_settings() {
        let mut s = TlsSettings { mode: TlsMode::Files, ..TlsSettings::default() };
        assert!(s.validate().unwrap_err().contains("tls.cert"));
        s.cert = "c.pem".into();
        s.key = "k.pem".into();
        s.validate().unwrap();
        let mut s = TlsSettings { mode: TlsMode::Acme, ..TlsSettings::default() };
        assert!(s.validate().unwrap_err().contains("acme_domains"));
        s.acme_domains = vec!["10.0.0.1".into()];
        assert!(s.validate().unwrap_err().contains("not a DNS name"));
        s.acme_domains = vec!["box.example.com".into()];
        s.validate().unwrap();
        s.acme_directory = "http://plain/dir".into();
        assert!(s.validate().is_err());
    }

    #[test]
    fn challenges_are_spelled_as_in_the_acme_rfc() {
        let parsed: TlsSettings = toml::from_str("acme_challenge = \"http-01\"").unwrap();
        assert_eq!(parsed.acme_challenge, AcmeChallenge::Http01);
        let parsed: TlsSettings = toml::from_str("acme_challenge = \"tls-alpn-01\"").unwrap();
        assert_eq!(parsed.acme_challenge, AcmeChallenge::TlsAlpn01);
        assert!(toml::from_str::<TlsSettings>("acme_challenge = \"dns-01\"").is_err());
    }

    #[test]
    fn directory_names_resolve_to_urls() {
        let mut s = TlsSettings::default();
        assert!(s.acme_directory_url().contains("acme-v02"));
        s.acme_directory = "staging".into();
        assert!(s.acme_directory_url().contains("staging"));
        s.acme_directory = "https://127.0.0.1:14000/dir".into();
        assert_eq!(s.acme_directory_url(), "https://127.0.0.1:14000/dir");
    }
}
