//! Re-reading the config file while the box runs. The file, the environment and the
//! flags are read again exactly as at start (`config::load`); an invalid result changes
//! nothing and says why. What can change at run time is applied at once:
//!
//! - `log.level` (unless `RUST_LOG` is set, which wins),
//! - `mqtt.interval_secs` and `mqtt.commands` (the MQTT thread follows [`LiveSettings`]),
//! - the workflow files (read again, as `hearth workflows reload` does).
//!
//! Every other changed key is named in `restart_required`: the running box keeps its
//! start-time value until `systemctl restart hearth`. Secrets print hidden, so a changed
//! password is not seen here (restart after changing one).

use super::Control;
use crate::config::{FlagOverride, Settings};
use crate::error::{ApiError, ErrorCode};
use serde::Serialize;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;

/// The keys [`reload`] applies without a restart.
pub const APPLIED_AT_RUN_TIME: &[&str] = &["log.level", "mqtt.interval_secs", "mqtt.commands"];

/// Where the settings came from, to read them again the same way.
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    /// The file read at start (`--config`/`HEARTH_CONFIG`, or the system file).
    pub file: Option<PathBuf>,
    pub flags: Vec<FlagOverride>,
}

/// The settings as they apply now: those read at start, with the keys a reload applied.
/// Whoever follows a key at run time subscribes. Cheap to clone.
#[derive(Clone)]
pub struct LiveSettings {
    tx: Arc<watch::Sender<Arc<Settings>>>,
    source: Arc<ConfigSource>,
}

impl LiveSettings {
    pub fn new(settings: Arc<Settings>, source: ConfigSource) -> LiveSettings {
        LiveSettings { tx: Arc::new(watch::channel(settings).0), source: Arc::new(source) }
    }

    pub fn current(&self) -> Arc<Settings> {
        self.tx.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<Settings>> {
        self.tx.subscribe()
    }
}

/// What a reload did.
#[derive(Debug, Clone, Serialize)]
pub struct Reloaded {
    /// The config file read (`null`: none, defaults, environment and flags only).
    pub file: Option<PathBuf>,
    /// Changed keys now in effect.
    pub applied: Vec<String>,
    /// Changed keys that take effect at the next start.
    pub restart_required: Vec<String>,
    /// The workflow files read again (`null` when `workflows.dir` changed: restart).
    pub workflows: Option<crate::workflows::Reloaded>,
}

pub(super) async fn reload(control: &Control) -> Result<Reloaded, ApiError> {
    let live = &control.settings;
    let source = live.source.clone();
    // Reading the file is disk work: off the async runtime.
    let read =
        tokio::task::spawn_blocking(move || crate::config::load(source.file.as_deref(), &source.flags))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
    let loaded =
        read.map_err(|e| ApiError::new(ErrorCode::InvalidConfig, without_snippets(&e.to_string())))?;
    let current = live.current();
    let (applied, restart_required) = split(&changed_keys(&current, &loaded.settings));

    let mut next = (*current).clone();
    if applied.iter().any(|k| k == "log.level") {
        match crate::telemetry::set_log_level(&loaded.settings.log.level) {
            Ok(true) => next.log.level = loaded.settings.log.level.clone(),
            Ok(false) => tracing::info!("log.level changed, but RUST_LOG is set and takes precedence"),
            Err(e) => return Err(ApiError::new(ErrorCode::InvalidConfig, format!("log.level: {e}"))),
        }
    }
    next.mqtt.interval_secs = loaded.settings.mqtt.interval_secs;
    next.mqtt.commands = loaded.settings.mqtt.commands.clone();
    if next != *current {
        live.tx.send_replace(Arc::new(next));
    }

    let workflows = if restart_required.iter().any(|k| k == "workflows.dir") {
        None
    } else {
        let workflows = control.workflows.clone();
        Some(control.store.run(move |_| workflows.reload()).await?)
    };
    let reloaded = Reloaded { file: loaded.file, applied, restart_required, workflows };
    tracing::info!(
        file = ?reloaded.file, applied = ?reloaded.applied, restart_required = ?reloaded.restart_required,
        "configuration reloaded"
    );
    Ok(reloaded)
}

/// Splits changed keys into those applied now and those that need a restart.
fn split(changed: &[String]) -> (Vec<String>, Vec<String>) {
    changed.iter().cloned().partition(|k| APPLIED_AT_RUN_TIME.contains(&k.as_str()))
}

/// The dotted keys whose values differ (a list compares whole: `mqtt.commands`).
pub fn changed_keys(before: &Settings, after: &Settings) -> Vec<String> {
    let (before, after) = (serde_json::to_value(before), serde_json::to_value(after));
    let (Ok(before), Ok(after)) = (before, after) else { return vec!["(settings)".into()] };
    let mut changed = Vec::new();
    diff("", &before, &after, &mut changed);
    changed
}

fn diff(prefix: &str, before: &Value, after: &Value, changed: &mut Vec<String>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                diff(&path, b.get(key).unwrap_or(&Value::Null), a.get(key).unwrap_or(&Value::Null), changed);
            }
        }
        (b, a) if b != a => changed.push(prefix.to_string()),
        _ => {}
    }
}

/// A config error without the quoted lines of the file (the TOML parser shows the line
/// with the mistake, which may be a password's): the file, line, column and message stay.
fn without_snippets(message: &str) -> String {
    message
        .lines()
        .filter(|line| {
            let t = line.trim_start();
            let gutter = t.trim_start_matches(|c: char| c.is_ascii_digit()).trim_start();
            !(gutter.starts_with('|'))
        })
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_keys_are_dotted_and_split_into_applied_and_restart() {
        let before = Settings::default();
        let mut after = before.clone();
        after.log.level = "debug".into();
        after.mqtt.commands = vec!["announce".into()];
        after.server.max_body_bytes += 1;
        let changed = changed_keys(&before, &after);
        assert_eq!(changed, ["log.level", "mqtt.commands", "server.max_body_bytes"]);
        let (applied, restart) = split(&changed);
        assert_eq!(
            (applied, restart),
            (vec!["log.level".into(), "mqtt.commands".into()], vec!["server.max_body_bytes".to_string()])
        );
        assert!(changed_keys(&before, &before).is_empty());
    }

    #[test]
    fn a_config_error_keeps_where_and_why_but_not_the_line() {
        let err = toml::from_str::<Settings>("[mqtt]\npassword = 's3cret\n").unwrap_err();
        let full = format!("config file /etc/hearth/hearth.toml: {err}");
        assert!(full.contains("s3cret"), "the parser quotes the line: {full}");
        let shown = without_snippets(&full);
        assert!(!shown.contains("s3cret") && shown.contains("line 2"), "{shown}");
    }
}
