//! Outbound HTTP for skills: every request a skill makes (webhook skills, Home Assistant)
//! goes through a [`Guard`], so that the model cannot be talked into reaching the box
//! itself, the LAN or a cloud's metadata service (server-side request forgery).
//!
//! The rules, checked for the first URL and again for every redirect (followed here, at
//! most `max_redirects`, never by the HTTP client):
//! - only `http` and `https`, no user name or password in the URL, no `https` → `http`;
//! - the host must be on the [`Policy`]'s allowlist (`api.example.com`, `*.example.com`,
//!   or an address);
//! - the name is resolved here and **every** address it resolves to is classified
//!   ([`classify`]): unspecified, multicast, reserved and cloud metadata addresses are
//!   always refused; loopback, link-local and private (LAN) ones only reach a host and port
//!   opted in (`allow_local` on a webhook, Home Assistant's own URL) or, for private ones,
//!   with `allow_private`;
//! - the connection goes to the addresses that were checked (a resolver pinned to them),
//!   so a DNS answer that changes between the check and the connection changes nothing.
//!
//! Requests run on the blocking pool (`spawn_blocking`) with one deadline for all hops
//! and a cap on the response's size.

mod address;
mod fetch;

pub use address::{classify, Class};

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;
use url::{Host, Url};

/// Why a request was not made or did not succeed. The text is for the model: it says
/// what happened in one line and carries no secret.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OutboundError {
    /// The guard would not send it.
    #[error("refused: {0}")]
    Refused(String),
    /// Sent, but it failed (no connection, no answer in time, too large).
    #[error("{0}")]
    Failed(String),
}

/// Where skills may go.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Hosts requests may go to: a name (`api.example.com`), `*.example.com` for the
    /// names under it, or an address (`192.168.1.20`, `::1`).
    pub allowed_hosts: Vec<String>,
    /// Whether private (LAN) addresses may be reached without an opt-in.
    pub allow_private: bool,
    /// Hosts and ports that may be loopback, link-local or private: the owner's own
    /// services (host as in the URL, port as it is connected to).
    pub local_ok: Vec<(String, u16)>,
    /// For the whole request, redirects included.
    pub timeout: Duration,
    pub max_response_bytes: usize,
    pub max_redirects: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            allowed_hosts: Vec::new(),
            allow_private: false,
            local_ok: Vec::new(),
            timeout: Duration::from_secs(10),
            max_response_bytes: 1 << 20,
            max_redirects: 3,
        }
    }
}

impl Policy {
    /// Whether the URL's host is on the allowlist (no DNS: for checking configuration).
    pub fn allows_host(&self, url: &Url) -> bool {
        url.host().is_some_and(|host| self.allowed_hosts.iter().any(|p| host_matches(p, &host_key(&host))))
    }

    /// Opts the URL's host and port in to loopback and LAN addresses.
    pub fn allow_local(&mut self, url: &Url) {
        if let (Some(host), Some(port)) = (url.host(), url.port_or_known_default()) {
            self.local_ok.push((host_key(&host), port));
        }
    }
}

/// The host as the allowlist compares it: lowercase, no trailing dot, no brackets.
pub fn host_key(host: &Host<&str>) -> String {
    match host {
        Host::Domain(name) => name.trim_end_matches('.').to_ascii_lowercase(),
        Host::Ipv4(ip) => ip.to_string(),
        Host::Ipv6(ip) => ip.to_string(),
    }
}

fn host_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.trim().trim_start_matches('[').trim_end_matches(']').trim_end_matches('.');
    match pattern.strip_prefix("*.") {
        Some(parent) => host.ends_with(&format!(".{}", parent.to_ascii_lowercase())),
        None => pattern.eq_ignore_ascii_case(host),
    }
}

/// Name resolution, replaceable in tests.
pub trait Resolve: Send + Sync {
    fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<IpAddr>>;
}

/// The system's resolver (getaddrinfo: `/etc/hosts`, then DNS).
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<IpAddr>> {
        Ok((host, port).to_socket_addrs()?.map(|a| a.ip()).collect())
    }
}

/// A header to send. Secret values never appear in `Debug` output and are not sent on
/// to another origin by a redirect.
#[derive(Clone)]
pub struct Header {
    pub name: String,
    pub value: String,
    pub secret: bool,
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = if self.secret { "<secret>" } else { self.value.as_str() };
        write!(f, "{}: {value}", self.name)
    }
}

/// One request: method, URL, headers and an optional body.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<Header>,
    /// The body and its content type.
    pub body: Option<(Vec<u8>, String)>,
}

impl Request {
    pub fn get(url: impl Into<String>) -> Request {
        Request { method: "GET".into(), url: url.into(), headers: Vec::new(), body: None }
    }

    pub fn post_json(url: impl Into<String>, body: &serde_json::Value) -> Request {
        Request {
            method: "POST".into(),
            url: url.into(),
            headers: Vec::new(),
            body: Some((body.to_string().into_bytes(), "application/json".into())),
        }
    }

    pub fn header(mut self, name: &str, value: &str, secret: bool) -> Request {
        self.headers.push(Header { name: name.into(), value: value.into(), secret });
        self
    }
}

/// The final answer (after redirects).
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Sends requests under a [`Policy`]. Clone it freely.
#[derive(Clone)]
pub struct Guard {
    policy: Arc<Policy>,
    resolver: Arc<dyn Resolve>,
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard").field("policy", &self.policy).finish_non_exhaustive()
    }
}

impl Guard {
    pub fn new(policy: Policy) -> Guard {
        Guard { policy: Arc::new(policy), resolver: Arc::new(SystemResolver) }
    }

    /// Resolves names with `resolver` instead of the system's (tests).
    pub fn with_resolver(mut self, resolver: Arc<dyn Resolve>) -> Guard {
        self.resolver = resolver;
        self
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Sends the request on the blocking pool. Dropping the future abandons the answer;
    /// the request itself ends by the policy's timeout.
    pub async fn send(&self, request: Request) -> Result<Response, OutboundError> {
        let guard = self.clone();
        tokio::task::spawn_blocking(move || fetch::send(&guard, request))
            .await
            .unwrap_or_else(|_| Err(OutboundError::Failed("the request's thread stopped".into())))
    }

    /// The addresses the URL may be connected to, or why none. Blocks on DNS.
    pub fn check(&self, url: &Url) -> Result<Vec<SocketAddr>, OutboundError> {
        let refused = |why: String| Err(OutboundError::Refused(why));
        if !matches!(url.scheme(), "http" | "https") {
            return refused(format!("{} is not an http or https URL", url.scheme()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return refused("URLs with a user name or password are not allowed".into());
        }
        let (Some(host), Some(port)) = (url.host(), url.port_or_known_default()) else {
            return refused(format!("{url} has no host"));
        };
        let key = host_key(&host);
        if !self.policy.allowed_hosts.iter().any(|p| host_matches(p, &key)) {
            return refused(format!("{key} is not on the allowed hosts"));
        }
        let addresses = match host {
            Host::Ipv4(ip) => vec![IpAddr::V4(ip)],
            Host::Ipv6(ip) => vec![IpAddr::V6(ip)],
            Host::Domain(name) => self
                .resolver
                .resolve(name, port)
                .map_err(|e| OutboundError::Failed(format!("cannot resolve {key}: {e}")))?,
        };
        if addresses.is_empty() {
            return Err(OutboundError::Failed(format!("{key} has no address")));
        }
        let local_ok = self.policy.local_ok.iter().any(|(h, p)| *p == port && host_matches(h, &key));
        for ip in &addresses {
            let class = classify(*ip);
            let allowed = !class.never()
                && (!class.local() || local_ok || (class == Class::Private && self.policy.allow_private));
            if !allowed {
                return match host {
                    Host::Domain(_) => refused(format!("{key} resolves to {ip}, {class}")),
                    _ => refused(format!("{ip} is {class}")),
                };
            }
        }
        Ok(addresses.into_iter().map(|ip| SocketAddr::new(ip, port)).collect())
    }
}

#[cfg(test)]
mod tests;
