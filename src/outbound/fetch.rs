//! One request, blocking: each hop checked by the guard, connected to the checked
//! addresses only, redirects followed here.

use super::{Guard, OutboundError, Request, Response};
use std::io::Read;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use url::Url;

/// Resolves only to the addresses the guard checked, whatever name it is asked for.
struct Pinned(Vec<SocketAddr>);

impl ureq::Resolver for Pinned {
    fn resolve(&self, _netloc: &str) -> std::io::Result<Vec<SocketAddr>> {
        Ok(self.0.clone())
    }
}

pub(super) fn send(guard: &Guard, request: Request) -> Result<Response, OutboundError> {
    let policy = guard.policy();
    let deadline = Instant::now() + policy.timeout;
    let mut url = Url::parse(&request.url)
        .map_err(|e| OutboundError::Refused(format!("'{}' is not a URL: {e}", request.url)))?;
    let Request { mut method, mut headers, mut body, .. } = request;
    let mut hops = 0;
    loop {
        let addresses = guard.check(&url).map_err(|e| match (e, hops) {
            (OutboundError::Refused(why), 1..) => {
                OutboundError::Refused(format!("the redirect to {url} was refused: {why}"))
            }
            (e, _) => e,
        })?;
        let response = exchange(&url, &method, &headers, body.as_ref(), addresses, deadline, policy.timeout)?;
        let location = response.header("location").filter(|_| (300..400).contains(&response.status()));
        let Some(location) = location else {
            return read(response, &url, policy.max_response_bytes);
        };
        if hops == policy.max_redirects {
            return Err(OutboundError::Failed(format!(
                "{} redirected more than {} times",
                host(&url),
                policy.max_redirects
            )));
        }
        let next = url
            .join(location)
            .map_err(|_| OutboundError::Failed(format!("{} redirected to a bad URL", host(&url))))?;
        if url.scheme() == "https" && next.scheme() == "http" {
            return Err(OutboundError::Refused(format!(
                "the redirect from https to {next} drops encryption"
            )));
        }
        // 303, and 301/302 after anything but GET and HEAD, continue as a GET without body.
        let status = response.status();
        if status == 303 || (matches!(status, 301 | 302) && !matches!(method.as_str(), "GET" | "HEAD")) {
            method = "GET".into();
            body = None;
        }
        if next.origin() != url.origin() {
            headers.retain(|h| !h.secret && !h.name.eq_ignore_ascii_case("authorization"));
        }
        url = next;
        hops += 1;
    }
}

fn seconds(d: Duration) -> String {
    match d.subsec_millis() {
        0 => format!("{} s", d.as_secs()),
        _ => format!("{} ms", d.as_millis()),
    }
}

fn host(url: &Url) -> String {
    url.host_str().unwrap_or_default().to_string()
}

fn exchange(
    url: &Url,
    method: &str,
    headers: &[super::Header],
    body: Option<&(Vec<u8>, String)>,
    addresses: Vec<SocketAddr>,
    deadline: Instant,
    timeout: Duration,
) -> Result<ureq::Response, OutboundError> {
    let late = || OutboundError::Failed(format!("{} did not answer within {}", host(url), seconds(timeout)));
    let left = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()).ok_or_else(late)?;
    let agent = ureq::AgentBuilder::new()
        .resolver(Pinned(addresses))
        .redirects(0)
        .timeout(left)
        .user_agent(concat!("hearth/", env!("CARGO_PKG_VERSION")))
        .build();
    let mut request = agent.request_url(method, url);
    for h in headers {
        request = request.set(&h.name, &h.value);
    }
    let result = match body {
        Some((bytes, content_type)) => request.set("Content-Type", content_type).send_bytes(bytes),
        None => request.call(),
    };
    match result {
        Ok(response) | Err(ureq::Error::Status(_, response)) => Ok(response),
        Err(ureq::Error::Transport(t)) => Err(match t.kind() {
            ureq::ErrorKind::Io if Instant::now() >= deadline => late(),
            ureq::ErrorKind::ConnectionFailed if Instant::now() >= deadline => late(),
            ureq::ErrorKind::ConnectionFailed => {
                OutboundError::Failed(format!("cannot connect to {}", host(url)))
            }
            _ => OutboundError::Failed(format!("{} failed: {}", host(url), t.kind())),
        }),
    }
}

fn read(response: ureq::Response, url: &Url, max: usize) -> Result<Response, OutboundError> {
    let status = response.status();
    let content_type = response.content_type().to_string();
    let mut body = Vec::new();
    response
        .into_reader()
        .take(max as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| OutboundError::Failed(format!("reading the answer from {} failed: {e}", host(url))))?;
    if body.len() > max {
        return Err(OutboundError::Failed(format!(
            "the answer from {} is larger than {max} bytes",
            host(url)
        )));
    }
    Ok(Response { status, content_type, body })
}
