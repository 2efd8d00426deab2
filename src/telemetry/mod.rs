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

/// Installs the global tracing subscriber, writing to stderr. `RUST_LOG`, when set,
/// takes precedence over the configured level. Safe to call more than once.
pub fn init_logging(settings: &LogSettings) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_new(&settings.level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"))
        // ureq's debug lines carry whole request heads: the secret headers of webhook skills
        // (outbound/) and Telegram's URLs, which carry the bot token. Never below info.
        .add_directive("ureq=info".parse().expect("a valid directive"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match settings.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
