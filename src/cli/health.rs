//! `hearth health`: asks the running service on this box whether it is alive (or ready),
//! for container HEALTHCHECKs and scripts, with no curl needed in the image.

use crate::config::Settings;
use clap::Args;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// The health URL [default: the plain listener when configured, else https://localhost:PORT]
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Fail unless the service is ready (model loaded, database up), not only alive.
    #[arg(long)]
    ready: bool,
    /// Seconds to wait for an answer.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    timeout: u64,
}

/// Exit 0 when the service answered (and, with --ready, is ready); 1 otherwise.
pub fn run(args: HealthArgs, settings: &Settings) -> ExitCode {
    let url = args.url.unwrap_or_else(|| default_url(settings));
    let agent = crate::tls::client::agent_with_timeout(settings, Duration::from_secs(args.timeout));
    let body: serde_json::Value = match agent
        .get(&url)
        .call()
        .map_err(Box::new)
        .and_then(|r| r.into_json().map_err(|e| Box::new(ureq::Error::from(e))))
    {
        Ok(body) => body,
        Err(e) => {
            eprintln!("unhealthy: {url}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ready = body["ready"] == true;
    let model = &body["components"]["model"];
    println!(
        "{}: {} (version {}, model {}, up {} s)",
        url,
        if ready { "ready" } else { "alive, not ready" },
        body["version"].as_str().unwrap_or("?"),
        model["id"].as_str().or(model["state"].as_str()).unwrap_or("?"),
        body["uptime_seconds"],
    );
    if args.ready && !ready {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn default_url(settings: &Settings) -> String {
    format!("{}/api/health", service_url(settings))
}

/// The service on this box as the command line reaches it: the plain listener, which
/// needs no certificate to check; without one, the HTTPS port by the name `localhost`,
/// which the local CA's certificate carries.
pub(super) fn service_url(settings: &Settings) -> String {
    if let Some(addr) = settings.http_listen_addr() {
        return format!("http://{}", reachable(addr));
    }
    let addr = settings.listen_addr();
    if !settings.tls.enabled() {
        return format!("http://{}", reachable(addr));
    }
    match addr.ip().is_unspecified() || addr.ip().is_loopback() {
        true => format!("https://localhost:{}", addr.port()),
        false => format!("https://{addr}"),
    }
}

/// A listener on 0.0.0.0 or [::] is reached over loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port()),
        _ => addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_listener_is_asked_first_and_any_address_becomes_loopback() {
        let mut settings = Settings::default();
        settings.server.listen = "0.0.0.0:8443".into();
        settings.server.http_listen = "0.0.0.0:8080".into();
        settings.tls.mode = crate::config::TlsMode::Local;
        assert_eq!(default_url(&settings), "http://127.0.0.1:8080/api/health");
        settings.server.http_listen = String::new();
        assert_eq!(default_url(&settings), "https://localhost:8443/api/health");
        settings.server.listen = "192.168.1.5:8443".into();
        assert_eq!(default_url(&settings), "https://192.168.1.5:8443/api/health");
        settings.tls.mode = crate::config::TlsMode::Off;
        assert_eq!(default_url(&settings), "http://192.168.1.5:8443/api/health");
    }
}
