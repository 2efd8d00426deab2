//! Inbound webhooks: `POST /api/hooks/{name}`, authenticated by signature instead of a
//! token. The sender signs `timestamp + "." + body` with HMAC-SHA256 and the hook's secret
//! (`[[hooks]]`) and sends `X-Hearth-Timestamp: <unix seconds>` and
//! `X-Hearth-Signature: sha256=<hex>`. A timestamp off by more than the replay window
//! (either way), a wrong signature (compared in constant time) or a signature already
//! used within the window is refused before anything runs.
//!
//! A good request runs the workflow whose trigger is the hook (input: `body`, and `json`
//! when the body is JSON), or else a turn in the hook's user's history with the body as the
//! message. The result is the response (waiting at most `timeout_secs`), or, with a
//! `callback_url`, the answer is 202 at once and the result is POSTed there through the
//! outbound guard.

use crate::assistant::{Assistant, Conversation, Turn, Who};
use crate::config::{HookSettings, Settings};
use crate::error::ErrorCode;
use crate::outbound::{Guard, Policy, Request};
use crate::store::Store;
use crate::workflows::Workflows;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub const TIMESTAMP_HEADER: &str = "X-Hearth-Timestamp";
pub const SIGNATURE_HEADER: &str = "X-Hearth-Signature";

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HookError {
    #[error("no hook is named '{0}'")]
    Unknown(String),
    #[error("the body is larger than this hook's {0} bytes")]
    TooLarge(usize),
    /// Missing, malformed, wrong, too old or future, or replayed: nothing ran.
    #[error("{0}")]
    Signature(&'static str),
    #[error("hook '{0}' starts no workflow and names no user")]
    NothingToRun(String),
    #[error("no result within {0} s; the run goes on")]
    Timeout(u64),
    #[error("{0}")]
    Failed(String),
}

impl HookError {
    pub fn code(&self) -> ErrorCode {
        match self {
            HookError::Unknown(_) | HookError::NothingToRun(_) => ErrorCode::HookNotFound,
            HookError::TooLarge(_) => ErrorCode::PayloadTooLarge,
            HookError::Signature(_) => ErrorCode::InvalidSignature,
            HookError::Timeout(_) => ErrorCode::Timeout,
            HookError::Failed(_) => ErrorCode::Internal,
        }
    }
}

/// Checks a request's signature against `secret` at time `now` (Unix seconds).
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
    window_secs: i64,
) -> Result<(), HookError> {
    let timestamp = timestamp.ok_or(HookError::Signature("missing X-Hearth-Timestamp header"))?;
    let at: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| HookError::Signature("X-Hearth-Timestamp must be Unix seconds"))?;
    if (now - at).abs() > window_secs {
        return Err(HookError::Signature("the timestamp is outside the replay window"));
    }
    let hex_sig = signature
        .and_then(|s| s.trim().strip_prefix("sha256="))
        .ok_or(HookError::Signature("X-Hearth-Signature must be 'sha256=<hex>'"))?;
    let given = hex::decode(hex_sig)
        .map_err(|_| HookError::Signature("X-Hearth-Signature must be 'sha256=<hex>'"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| HookError::Signature("bad secret"))?;
    mac.update(timestamp.trim().as_bytes());
    mac.update(b".");
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&given).map_err(|_| HookError::Signature("the signature does not match"))
}

/// The signature a sender puts in `X-Hearth-Signature` (for tests and senders in Rust).
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// What a good request got.
#[derive(Debug, Clone, Serialize)]
pub struct HookAnswer {
    /// `done`, `failed`, or `accepted` (the result goes to the callback).
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
}

struct Hook {
    settings: HookSettings,
    secret: Vec<u8>,
}

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hook").field("name", &self.settings.name).finish_non_exhaustive()
    }
}

/// The configured hooks, secrets read. Clone it freely.
#[derive(Clone)]
pub struct Hooks {
    hooks: Arc<BTreeMap<String, Hook>>,
    workflows: Workflows,
    assistant: Assistant,
    store: Store,
    guard: Guard,
}

impl Hooks {
    /// Reads each hook's secret (an error names the field, never the value).
    pub fn new(
        settings: &Settings,
        workflows: Workflows,
        assistant: Assistant,
        store: Store,
    ) -> Result<Hooks, String> {
        let mut hooks = BTreeMap::new();
        for h in &settings.hooks {
            let secret = h.secret.read(&format!("hooks[{}].secret", h.name))?;
            if workflows.for_hook(&h.name).is_none() && h.user.is_empty() {
                tracing::warn!(hook = %h.name, "a hook that starts no workflow and names no user answers 404");
            }
            hooks.insert(h.name.clone(), Hook { settings: h.clone(), secret: secret.into_bytes() });
        }
        let o = &settings.outbound;
        let guard = Guard::new(Policy {
            allowed_hosts: o.allowed_hosts.clone(),
            allow_private: o.allow_private,
            timeout: Duration::from_secs(o.timeout_secs),
            max_response_bytes: o.max_response_bytes,
            max_redirects: o.max_redirects,
            ..Policy::default()
        });
        Ok(Hooks { hooks: Arc::new(hooks), workflows, assistant, store, guard })
    }

    /// Checks and answers one request. Nothing runs unless the signature is good.
    pub async fn receive(
        &self,
        name: &str,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: bytes::Bytes,
    ) -> Result<HookAnswer, HookError> {
        let hook = self.hooks.get(name).ok_or_else(|| HookError::Unknown(name.into()))?;
        let s = &hook.settings;
        if body.len() > s.max_body_bytes {
            return Err(HookError::TooLarge(s.max_body_bytes));
        }
        let window = s.replay_window_secs as i64;
        let refused = |e: HookError| {
            tracing::warn!(hook = %name, reason = %e, "webhook refused");
            e
        };
        verify(&hook.secret, timestamp, signature, &body, crate::store::now(), window).map_err(refused)?;
        let (hook_name, used) = (name.to_string(), signature.unwrap_or_default().trim().to_string());
        let fresh = self
            .store
            .run(move |st| st.use_hook_signature(&hook_name, &used, window))
            .await
            .map_err(|e| HookError::Failed(e.to_string()))?;
        if !fresh {
            return Err(refused(HookError::Signature("this signature was used already (a replay)")));
        }
        let text = String::from_utf8_lossy(&body).into_owned();
        let work = self.work(name, s, text).await?;
        match s.callback_url.is_empty() {
            true => match tokio::time::timeout(Duration::from_secs(s.timeout_secs), work.task).await {
                Ok(Ok(answer)) => Ok(answer),
                Ok(Err(e)) => Err(HookError::Failed(format!("the run stopped: {e}"))),
                Err(_) => Err(HookError::Timeout(s.timeout_secs)),
            },
            false => {
                let (guard, url, hook) = (self.guard.clone(), s.callback_url.clone(), name.to_string());
                tokio::spawn(async move {
                    let answer = match work.task.await {
                        Ok(answer) => answer,
                        Err(e) => failed(None, format!("the run stopped: {e}")),
                    };
                    let body = json!({ "hook": hook, "result": answer });
                    match guard.send(Request::post_json(url, &body)).await {
                        Ok(r) if r.ok() => {
                            tracing::info!(hook = %hook, "webhook result posted to its callback")
                        }
                        Ok(r) => {
                            tracing::warn!(hook = %hook, status = r.status, "the callback refused the result")
                        }
                        Err(e) => tracing::warn!(hook = %hook, error = %e, "webhook result not posted"),
                    }
                });
                Ok(HookAnswer {
                    state: "accepted".into(),
                    run_id: work.run_id,
                    output: None,
                    error: None,
                    conversation_id: None,
                })
            }
        }
    }

    /// Starts what the hook runs: its workflow, or a turn as its user.
    async fn work(&self, name: &str, s: &HookSettings, text: String) -> Result<Work, HookError> {
        if let Some(loaded) = self.workflows.for_hook(name) {
            let input = json!({ "body": text, "json": serde_json::from_str::<Value>(&text).unwrap_or(Value::Null), "hook": name });
            let (id, run) = self
                .workflows
                .start(&loaded.workflow.name, "webhook", input)
                .await
                .map_err(|e| HookError::Failed(e.to_string()))?;
            let task = tokio::spawn(async move {
                match run.await {
                    Ok(r) => HookAnswer {
                        state: r.state,
                        run_id: Some(r.id),
                        output: r.output,
                        error: r.error,
                        conversation_id: r.conversation_id,
                    },
                    Err(e) => failed(Some(id), e.to_string()),
                }
            });
            let run_id = Some(id);
            return Ok(Work { run_id, task });
        }
        if s.user.is_empty() {
            return Err(HookError::NothingToRun(name.into()));
        }
        let (assistant, store, user) = (self.assistant.clone(), self.store.clone(), s.user.clone());
        let task = tokio::spawn(async move {
            let found = store.run(move |st| st.find_user(&user)).await;
            let Ok(user) = found else { return failed(None, "the hook's user does not exist".into()) };
            let turn = Turn {
                stream: false,
                skills: true,
                ..Turn::new(Who::user(user.id), Conversation::Stored { id: None, message: text })
            };
            match async { assistant.prepare(turn).await?.run().await?.finish().await }.await {
                Ok(outcome) => HookAnswer {
                    state: "done".into(),
                    run_id: None,
                    output: Some(outcome.text),
                    error: None,
                    conversation_id: outcome.stored.map(|ids| ids.conversation_id),
                },
                Err(e) => failed(None, e.to_string()),
            }
        });
        Ok(Work { run_id: None, task })
    }
}

struct Work {
    run_id: Option<i64>,
    task: tokio::task::JoinHandle<HookAnswer>,
}

fn failed(run_id: Option<i64>, error: String) -> HookAnswer {
    HookAnswer { state: "failed".into(), run_id, output: None, error: Some(error), conversation_id: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"s3cret";
    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_good_signature_passes_and_anything_else_is_refused() {
        let body = br#"{"event":"deploy"}"#;
        let ts = NOW.to_string();
        let good = sign(SECRET, &ts, body);
        assert!(good.starts_with("sha256=") && good.len() == 7 + 64);
        assert_eq!(verify(SECRET, Some(&ts), Some(&good), body, NOW, 300), Ok(()));
        let refused = |ts: Option<&str>, sig: Option<&str>, body: &[u8]| {
            verify(SECRET, ts, sig, body, NOW, 300).unwrap_err()
        };
        assert!(
            refused(Some(&ts), Some(&good), b"{}").to_string().contains("does not match"),
            "another body"
        );
        assert!(refused(Some(&ts), Some(&sign(b"other", &ts, body)), body)
            .to_string()
            .contains("does not match"));
        assert!(refused(None, Some(&good), body).to_string().contains("missing"));
        assert!(refused(Some(&ts), None, body).to_string().contains("sha256=<hex>"));
        assert!(refused(Some(&ts), Some("sha256=zz"), body).to_string().contains("sha256=<hex>"));
        assert!(refused(Some("soon"), Some(&good), body).to_string().contains("Unix seconds"));
        assert_eq!(refused(Some(&ts), Some(&good), b"x").code(), ErrorCode::InvalidSignature);
    }

    #[test]
    fn the_replay_window_holds_both_ways() {
        let body = b"ping";
        for (offset, ok) in
            [(0, true), (-300, true), (300, true), (-301, false), (301, false), (-86_400, false)]
        {
            let ts = (NOW + offset).to_string();
            let result = verify(SECRET, Some(&ts), Some(&sign(SECRET, &ts, body)), body, NOW, 300);
            assert_eq!(result.is_ok(), ok, "offset {offset}: {result:?}");
            if !ok {
                assert!(result.unwrap_err().to_string().contains("replay window"));
            }
        }
        // The timestamp is signed: moving it into the window breaks the signature.
        let old = (NOW - 1000).to_string();
        let sig = sign(SECRET, &old, body);
        assert!(verify(SECRET, Some(&NOW.to_string()), Some(&sig), body, NOW, 300).is_err());
    }
}
