//! The names and addresses this box answers to: its host name, `<host>.local`, the
//! configured mDNS name, `localhost`, every interface address, and the configured
//! extra hosts. The local CA certifies them, and the `Host` check accepts only them.
//! Addresses change (DHCP, a new network): [`BoxNames::discover`] runs again
//! periodically and the certificate is re-issued when they do.

use crate::config::Settings;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

/// The box's names (lowercase DNS names) and addresses, sorted, without duplicates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BoxNames {
    pub dns: BTreeSet<String>,
    pub ips: BTreeSet<IpAddr>,
}

impl BoxNames {
    /// Looks at the host name and the network interfaces now.
    pub fn discover(settings: &Settings) -> BoxNames {
        let mut names = BoxNames::default();
        let host = host_name();
        if let Some(host) = &host {
            names.dns.insert(host.clone());
            if !host.contains('.') {
                names.dns.insert(format!("{host}.local"));
            }
        }
        names.dns.insert(format!("{}.local", settings.server.name.to_ascii_lowercase()));
        names.dns.insert("localhost".into());
        match if_addrs::get_if_addrs() {
            Ok(interfaces) => {
                for interface in interfaces {
                    let ip = interface.ip();
                    // IPv6 link-local addresses need a zone (`fe80::1%eth0`): neither a
                    // certificate nor a URL's host can carry one usefully.
                    if !matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80) {
                        names.ips.insert(ip);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list the network interfaces"),
        }
        for ip in [settings.listen_addr().ip()] {
            if !ip.is_unspecified() {
                names.ips.insert(ip);
            }
        }
        for extra in settings.server.allowed_hosts.iter().chain(&settings.tls.acme_domains) {
            let extra = extra.trim_start_matches('[').trim_end_matches(']');
            match extra.parse::<IpAddr>() {
                Ok(ip) => {
                    names.ips.insert(ip);
                }
                Err(_) => {
                    names.dns.insert(extra.to_ascii_lowercase());
                }
            }
        }
        names
    }

    /// Whether a request's `Host` header (with or without a port) names this box.
    pub fn allows_host(&self, host: &str) -> bool {
        let host = strip_port(host);
        if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            return v6.parse::<IpAddr>().is_ok_and(|ip| self.ips.contains(&ip));
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self.ips.contains(&ip);
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.dns.contains(&host)
    }

    /// Every name and address, as text (for logs and the setup page).
    pub fn all(&self) -> Vec<String> {
        self.dns.iter().cloned().chain(self.ips.iter().map(IpAddr::to_string)).collect()
    }
}

/// The `Host` header without its port (IPv6 literals keep their brackets).
pub fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    }
}

/// The kernel's host name, lowercase (`None` when unset or not a usable DNS name).
pub fn host_name() -> Option<String> {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    let valid = !name.is_empty()
        && name != "localhost"
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    valid.then_some(name)
}

/// The current names, shared between the `Host` check and the certificate keeper.
#[derive(Debug, Clone, Default)]
pub struct SharedNames(Arc<RwLock<BoxNames>>);

impl SharedNames {
    pub fn new(names: BoxNames) -> Self {
        Self(Arc::new(RwLock::new(names)))
    }

    pub fn get(&self) -> BoxNames {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn allows_host(&self, host: &str) -> bool {
        self.0.read().unwrap_or_else(|e| e.into_inner()).allows_host(host)
    }

    /// Replaces the names; true when they changed.
    pub fn set(&self, names: BoxNames) -> bool {
        let mut current = self.0.write().unwrap_or_else(|e| e.into_inner());
        let changed = *current != names;
        *current = names;
        changed
    }

    /// Follows the box's names and addresses while the server runs (DHCP, a new
    /// network), whatever the TLS mode: the `Host` check and the local CA read them here.
    pub fn spawn_follow(&self, settings: std::sync::Arc<Settings>, every: std::time::Duration) {
        let names = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let settings = settings.clone();
                let Ok(now) = tokio::task::spawn_blocking(move || BoxNames::discover(&settings)).await else {
                    continue;
                };
                if names.set(now) {
                    tracing::info!(names = ?names.get().all(), "the box's names or addresses changed");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> BoxNames {
        BoxNames {
            dns: ["hearth.local", "localhost", "pi", "pi.local"].map(String::from).into(),
            ips: ["127.0.0.1", "::1", "192.168.1.20"].map(|s| s.parse().unwrap()).into(),
        }
    }

    #[test]
    fn own_names_and_addresses_pass_with_or_without_port() {
        let n = names();
        for host in [
            "hearth.local",
            "HEARTH.local:8443",
            "hearth.local.",
            "pi",
            "localhost:8080",
            "127.0.0.1",
            "192.168.1.20:8443",
            "[::1]:8443",
            "[::1]",
        ] {
            assert!(n.allows_host(host), "{host} refused");
        }
    }

    #[test]
    fn other_names_are_refused() {
        let n = names();
        for host in [
            "evil.example.com",
            "evil.example.com:8443",
            "192.168.1.21",
            "[::2]:80",
            "hearth",
            "",
            "pi.local.evil",
        ] {
            assert!(!n.allows_host(host), "{host} accepted");
        }
    }

    #[test]
    fn discovery_includes_loopback_and_the_configured_name() {
        let mut settings = Settings::default();
        settings.server.name = "Kitchen".into();
        settings.server.allowed_hosts = vec!["assistant.example.org".into(), "[fd00::5]".into()];
        let n = BoxNames::discover(&settings);
        assert!(n.dns.contains("kitchen.local"), "{n:?}");
        assert!(n.dns.contains("localhost"));
        assert!(n.dns.contains("assistant.example.org"));
        assert!(n.ips.contains(&"127.0.0.1".parse().unwrap()), "{n:?}");
        assert!(n.ips.contains(&"fd00::5".parse().unwrap()));
    }
}
