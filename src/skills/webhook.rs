//! Webhook skills: HTTP endpoints the owner describes in `[[skills.webhooks]]` (name,
//! description, method, URL template, headers and secrets, a JSON schema of the arguments,
//! a body template), offered to the model under their own names. Every request goes
//! through the outbound guard (`outbound/`): allowlisted hosts only, never loopback,
//! link-local or metadata addresses unless the webhook opts its own host in.

use super::{arguments, Context, Output, Skill, SkillError};
use crate::config::{OutboundSettings, WebhookSettings};
use crate::outbound::{Guard, Header, Policy, Request, Response};
use futures_util::future::BoxFuture;
use serde_json::Value;
use std::time::Duration;
use url::Url;

/// Most characters of an answer the model is given.
const MAX_RESULT_CHARS: usize = 2000;
const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];

pub struct Webhook {
    // The registry keys skills by `&'static str`; a webhook lives as long as the process
    // (built once at start), so its name and description are leaked once.
    name: &'static str,
    description: &'static str,
    method: String,
    url: String,
    headers: Vec<Header>,
    parameters: Value,
    body: Option<Value>,
    guard: Guard,
}

/// Checks a webhook's definition (no secrets read); errors name the field.
pub fn check(w: &WebhookSettings, outbound: &OutboundSettings) -> Result<(), String> {
    let field = |key: &str| format!("skills.webhooks[{}].{key}", w.name);
    let bad = |key: &str, why: String| Err(format!("invalid value for {}: {why}", field(key)));
    if w.name.is_empty()
        || w.name.len() > 64
        || !w.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return bad("name", "must be 1 to 64 letters, digits, '_' or '-'".into());
    }
    if w.description.trim().is_empty() {
        return bad("description", "must say what the webhook does (the model reads it)".into());
    }
    if !METHODS.contains(&w.method.as_str()) {
        return bad("method", format!("'{}' is not one of {}", w.method, METHODS.join(", ")));
    }
    if w.body.is_some() && w.method == "GET" {
        return bad("body", "a GET has no body".into());
    }
    arguments::check_schema(&w.parameters)
        .map_err(|why| format!("invalid value for {}: {why}", field("parameters")))?;
    let url = template_url(&w.url).map_err(|why| format!("invalid value for {}: {why}", field("url")))?;
    if !policy(w, outbound, &url).allows_host(&url) {
        let host = url.host_str().unwrap_or_default();
        return bad("url", format!("the host {host} is not on outbound.allowed_hosts"));
    }
    let mut body = Vec::new();
    strings(w.body.as_ref(), &mut body);
    for (key, text) in body.into_iter().map(|t| ("body", t)).chain([("url", w.url.as_str())]) {
        if let Some(name) = placeholders(text).into_iter().find(|n| !arguments::has(&w.parameters, n)) {
            return bad(key, format!("{{{name}}} names no argument in parameters.properties"));
        }
    }
    Ok(())
}

/// The URL with its placeholders filled with a dummy value, checked: http(s), a host, no
/// placeholder before the path (the model never chooses the host).
fn template_url(template: &str) -> Result<Url, String> {
    let url = Url::parse(&fill(template, |_| Ok("x".into())).unwrap_or_default())
        .map_err(|e| format!("'{template}' is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!("'{template}' is not an http(s) URL with a host"));
    }
    let after_scheme = template.split_once("://").map_or(template, |(_, rest)| rest);
    let authority = after_scheme.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('{') {
        return Err("placeholders may be in the path and query only, not the host".into());
    }
    Ok(url)
}

fn policy(w: &WebhookSettings, outbound: &OutboundSettings, url: &Url) -> Policy {
    let mut policy = Policy {
        allowed_hosts: outbound.allowed_hosts.clone(),
        allow_private: outbound.allow_private,
        local_ok: Vec::new(),
        timeout: Duration::from_secs(outbound.timeout_secs),
        max_response_bytes: outbound.max_response_bytes,
        max_redirects: outbound.max_redirects,
    };
    if w.allow_local {
        policy.allow_local(url);
    }
    policy
}

impl Webhook {
    /// The skill, with its secrets read (from the environment or files).
    pub fn new(w: &WebhookSettings, outbound: &OutboundSettings) -> Result<Webhook, String> {
        check(w, outbound)?;
        let url = template_url(&w.url)?;
        let mut headers = Vec::new();
        for (name, setting) in &w.headers {
            let (value, secret) = setting.read(&format!("skills.webhooks[{}].headers.{name}", w.name))?;
            headers.push(Header { name: name.clone(), value, secret });
        }
        Ok(Webhook {
            name: Box::leak(w.name.clone().into_boxed_str()),
            description: Box::leak(w.description.trim().to_string().into_boxed_str()),
            method: w.method.clone(),
            url: w.url.clone(),
            headers,
            parameters: w.parameters.clone(),
            body: w.body.clone(),
            guard: Guard::new(policy(w, outbound, &url)),
        })
    }

    /// The same skill with its requests sent through another guard (tests).
    pub fn with_guard(mut self, guard: Guard) -> Webhook {
        self.guard = guard;
        self
    }

    fn request(&self, arguments: &Value) -> Result<Request, SkillError> {
        let url = fill(&self.url, |name| url_value(name, arguments.get(name)))?;
        let body = self.body.as_ref().map(|b| fill_body(b, arguments)).transpose()?;
        Ok(Request {
            method: self.method.clone(),
            url,
            headers: self.headers.clone(),
            body: body.map(|b| (b.to_string().into_bytes(), "application/json".to_string())),
        })
    }
}

impl Skill for Webhook {
    fn name(&self) -> &'static str {
        self.name
    }

    fn description(&self) -> &'static str {
        self.description
    }

    fn parameters(&self) -> Value {
        self.parameters.clone()
    }

    fn execute(&self, arguments: Value, _ctx: Context) -> BoxFuture<'static, Result<Output, SkillError>> {
        let request = arguments::check(&self.parameters, &arguments).and_then(|a| self.request(&a));
        let guard = self.guard.clone();
        Box::pin(async move {
            let request = request?;
            let response = guard.send(request).await.map_err(|e| SkillError::Failed(e.to_string()))?;
            answer(&response)
        })
    }
}

/// The answer as the model reads it: the body (compact JSON, or text), cut short; an
/// error status is a failure that quotes the start of the body.
fn answer(response: &Response) -> Result<Output, SkillError> {
    let text = response.text();
    let text = match serde_json::from_str::<Value>(&text) {
        Ok(json) => json.to_string(),
        Err(_) => text.trim().to_string(),
    };
    if !response.ok() {
        let quoted = if text.is_empty() { String::new() } else { format!(": {}", cut(&text, 200)) };
        return Err(SkillError::Failed(format!("the service answered HTTP {}{quoted}", response.status)));
    }
    let content = if text.is_empty() {
        format!("Done (HTTP {}).", response.status)
    } else {
        cut(&text, MAX_RESULT_CHARS)
    };
    Ok(Output { content, citations: Vec::new() })
}

fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// The `{name}` placeholders in a template (a name is letters, digits and `_`).
pub(crate) fn placeholders(template: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find(['}', '{']) else { break };
        let name = &rest[..close];
        if rest[close..].starts_with('}') && is_name(name) {
            names.push(name);
        }
        rest = &rest[close..];
    }
    names
}

fn is_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The template with each `{name}` replaced by `value(name)`; other braces stay.
pub(crate) fn fill(
    template: &str,
    mut value: impl FnMut(&str) -> Result<String, SkillError>,
) -> Result<String, SkillError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}').map(|close| &after[..close]).filter(|n| is_name(n)) {
            Some(name) => {
                out.push_str(&value(name)?);
                rest = &after[name.len() + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// An argument as it goes in a URL: percent-encoded (all but `A-Z a-z 0-9 - . _ ~`).
fn url_value(name: &str, value: Option<&Value>) -> Result<String, SkillError> {
    let text = match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
        Some(_) => {
            return Err(SkillError::InvalidArguments(format!("'{name}' must be a string or a number")));
        }
    };
    Ok(percent_encode(&text))
}

pub(crate) fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// The body template filled: `"{name}"` alone becomes the argument's JSON value (absent:
/// null); other strings get their placeholders as text. The structure never changes.
fn fill_body(template: &Value, arguments: &Value) -> Result<Value, SkillError> {
    Ok(match template {
        Value::String(s) => {
            match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')).filter(|n| is_name(n)) {
                Some(name) => arguments.get(name).cloned().unwrap_or(Value::Null),
                None => Value::String(fill(s, |name| {
                    Ok(match arguments.get(name) {
                        None | Some(Value::Null) => String::new(),
                        Some(Value::String(s)) => s.clone(),
                        Some(v) => v.to_string(),
                    })
                })?),
            }
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| fill_body(v, arguments)).collect::<Result<_, _>>()?)
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), fill_body(v, arguments)?)))
                .collect::<Result<_, SkillError>>()?,
        ),
        other => other.clone(),
    })
}

fn strings<'a>(value: Option<&'a Value>, out: &mut Vec<&'a str>) {
    match value {
        Some(Value::String(s)) => out.push(s),
        Some(Value::Array(items)) => items.iter().for_each(|v| strings(Some(v), out)),
        Some(Value::Object(map)) => map.values().for_each(|v| strings(Some(v), out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
