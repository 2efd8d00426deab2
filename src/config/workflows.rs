//! `[workflows]` (where the owner's YAML workflow files are) and `[[hooks]]` (inbound
//! webhooks: `POST /api/hooks/{name}`, signed with a per-hook secret).

use super::outbound::{read_secret_file, EnvSecret, FileSecret};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkflowSettings {
    /// The folder of workflow files (`*.yaml`, `*.yml`). Empty: `<data_dir>/workflows`.
    pub dir: PathBuf,
    /// Longest one run may take, in seconds; then it fails.
    pub run_timeout_secs: u64,
}

impl Default for WorkflowSettings {
    fn default() -> Self {
        Self { dir: PathBuf::new(), run_timeout_secs: 300 }
    }
}

/// An inbound webhook, `[[hooks]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookSettings {
    /// The hook's name in `POST /api/hooks/{name}`: letters, digits, `_` and `-`.
    pub name: String,
    /// The shared secret the sender signs with: `{ env = "VAR" }` or `{ file = "/path" }`
    /// (read at start, never logged).
    pub secret: HookSecret,
    /// The Hearth user a hook that starts no workflow talks as (the body is the message of
    /// a turn in that user's history). A workflow whose trigger is this hook runs as its
    /// own owner.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// Where the result is POSTed (through the outbound guard: the host must be on
    /// `[outbound] allowed_hosts`); the hook then answers 202 at once. Empty: the result
    /// is the response.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub callback_url: String,
    /// Seconds a signature's timestamp may be off from the box's clock, either way.
    #[serde(default = "replay_window")]
    pub replay_window_secs: u64,
    /// Largest body accepted, in bytes.
    #[serde(default = "max_body")]
    pub max_body_bytes: usize,
    /// Longest the response waits for the result, in seconds (the run goes on after).
    #[serde(default = "timeout")]
    pub timeout_secs: u64,
}

fn replay_window() -> u64 {
    300
}
fn max_body() -> usize {
    64 * 1024
}
fn timeout() -> u64 {
    60
}

/// A hook's secret: from the environment or a file, never written in the config itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HookSecret {
    Env(EnvSecret),
    File(FileSecret),
}

impl HookSecret {
    /// The secret; `field` names it in errors.
    pub fn read(&self, field: &str) -> Result<String, String> {
        match self {
            HookSecret::Env(EnvSecret { env }) => match std::env::var(env) {
                Ok(value) if !value.trim().is_empty() => Ok(value.trim().to_string()),
                _ => Err(format!("{field}: the environment variable {env} is not set")),
            },
            HookSecret::File(FileSecret { file }) => read_secret_file(file, field),
        }
    }
}

impl WorkflowSettings {
    pub(super) fn validate(&self) -> Result<(), String> {
        if !(1..=86_400).contains(&self.run_timeout_secs) {
            return Err("invalid value for workflows.run_timeout_secs: must be between 1 and 86400".into());
        }
        Ok(())
    }
}

/// Checks `[[hooks]]` (no secrets read): errors name the field.
pub(super) fn validate_hooks(
    hooks: &[HookSettings],
    outbound: &super::OutboundSettings,
) -> Result<(), String> {
    for (i, h) in hooks.iter().enumerate() {
        let bad = |key: &str, why: &str| Err(format!("invalid value for hooks[{}].{key}: {why}", h.name));
        if h.name.is_empty()
            || h.name.len() > 64
            || !h.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return bad("name", "must be 1 to 64 letters, digits, '_' or '-'");
        }
        if hooks[..i].iter().any(|o| o.name == h.name) {
            return bad("name", "defined twice");
        }
        if !(10..=86_400).contains(&h.replay_window_secs) {
            return bad("replay_window_secs", "must be between 10 and 86400");
        }
        if !(16..=16 << 20).contains(&h.max_body_bytes) {
            return bad("max_body_bytes", "must be between 16 and 16777216");
        }
        if !(1..=3600).contains(&h.timeout_secs) {
            return bad("timeout_secs", "must be between 1 and 3600");
        }
        if !h.user.is_empty() && !crate::store::valid_user_name(&h.user) {
            return bad("user", "is not a user name");
        }
        if !h.callback_url.is_empty() {
            let url = url::Url::parse(&h.callback_url)
                .map_err(|e| format!("invalid value for hooks[{}].callback_url: {e}", h.name))?;
            let policy = crate::outbound::Policy {
                allowed_hosts: outbound.allowed_hosts.clone(),
                ..Default::default()
            };
            if !matches!(url.scheme(), "http" | "https") || !policy.allows_host(&url) {
                return bad("callback_url", "must be http(s) to a host on outbound.allowed_hosts");
            }
        }
    }
    Ok(())
}
