//! Logs (tracing, text or JSON), Prometheus metrics, and the one system sampler.

pub mod board;
pub mod memory;
mod metrics;
mod sampler;
mod task_cpu;

pub use metrics::{method_label, Metrics, MqttMetrics, SystemMetrics};
pub use sampler::{now_ms, HostReadings, Readings, Sample, Sampler, SamplerOptions};
pub use task_cpu::GENERATION_THREAD;

use crate::config::{LogFormat, LogSettings};
use tracing_subscriber::EnvFilter;

type SetFilter = Box<dyn Fn(EnvFilter) -> Result<(), String> + Send + Sync>;

/// Replaces the installed subscriber's filter (see [`set_log_level`]).
static SET_FILTER: std::sync::OnceLock<SetFilter> = std::sync::OnceLock::new();

/// The filter for a level; `None` when it does not parse.
fn filter(level: &str) -> Option<EnvFilter> {
    // ureq's debug lines carry whole request heads: the secret headers of webhook skills
    // (outbound/) and Telegram's URLs, which carry the bot token. Never below info.
    EnvFilter::try_new(level).ok().map(|f| f.add_directive("ureq=info".parse().expect("a valid directive")))
}

/// Installs the global tracing subscriber, writing to stderr. `RUST_LOG`, when set,
/// takes precedence over the configured level. Safe to call more than once.
pub fn init_logging(settings: &LogSettings) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| filter(&f))
        .or_else(|| filter(&settings.level))
        .unwrap_or_else(|| filter("info").expect("info is a level"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let (installed, set): (_, SetFilter) = match settings.format {
        LogFormat::Json => {
            let builder = builder.json().flatten_event(true).with_filter_reloading();
            let handle = builder.reload_handle();
            (builder.try_init(), Box::new(move |f| handle.reload(f).map_err(|e| e.to_string())))
        }
        LogFormat::Text => {
            let builder = builder.with_filter_reloading();
            let handle = builder.reload_handle();
            (builder.try_init(), Box::new(move |f| handle.reload(f).map_err(|e| e.to_string())))
        }
    };
    if installed.is_ok() {
        let _ = SET_FILTER.set(set);
    }
}

/// Sets the running process's log level (`log.level` re-read). `Ok(false)` when
/// `RUST_LOG` is set (it takes precedence) or no subscriber was installed here.
pub fn set_log_level(level: &str) -> Result<bool, String> {
    let filter = filter(level).ok_or_else(|| format!("'{level}' is not a log level or filter"))?;
    match SET_FILTER.get() {
        Some(set) if std::env::var_os("RUST_LOG").is_none() => set(filter).map(|()| true),
        _ => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_level_changes_at_run_time() {
        assert!(set_log_level("hearth=loud").is_err(), "not a level");
        init_logging(&LogSettings { level: "warn".into(), ..LogSettings::default() });
        if std::env::var_os("RUST_LOG").is_some() {
            assert_eq!(set_log_level("debug"), Ok(false), "RUST_LOG wins");
            return;
        }
        assert!(!tracing::enabled!(tracing::Level::INFO));
        assert_eq!(set_log_level("debug"), Ok(true));
        assert!(tracing::enabled!(tracing::Level::DEBUG));
        assert_eq!(set_log_level("error"), Ok(true));
        assert!(!tracing::enabled!(tracing::Level::WARN));
    }
}
