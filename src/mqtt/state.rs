//! The state message: what a fleet or Home Assistant wants to know about the box, read
//! from the metrics, the sampler and the models (nothing here blocks).

use crate::engine::{ModelState, Registry};
use crate::telemetry::{now_ms, Metrics, Sampler};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

/// The state JSON (see the discovery templates in `discovery.rs`).
#[derive(Debug, Clone, Serialize)]
pub struct State {
    /// Unix seconds.
    pub time: u64,
    /// `ok` when the default model is ready, else `degraded`.
    pub health: &'static str,
    pub model: Option<String>,
    /// `ready`, `loading` or `failed`.
    pub model_state: &'static str,
    pub tokens_per_second: f64,
    pub queue_depth: i64,
    pub active_sequences: i64,
    pub requests_total: u64,
    pub tokens_generated_total: u64,
    /// Mean time from the end of speech to the first audio of the answer; `null` before any.
    pub voice_latency_seconds: Option<f64>,
    pub cpu_percent: f64,
    pub load_average: [f64; 3],
    pub memory_total_bytes: u64,
    pub memory_available_bytes: u64,
    pub memory_used_percent: f64,
    pub swap_used_bytes: u64,
    pub disk_total_bytes: u64,
    pub disk_available_bytes: u64,
    pub process_resident_bytes: u64,
    /// The hottest zone; `null` where the board reports none.
    pub temperature_celsius: Option<f64>,
    pub temperatures: BTreeMap<String, f64>,
    /// Raspberry Pi: throttled, capped or under-voltage now; `null` on other boards.
    pub throttled: Option<bool>,
    pub uptime_seconds: u64,
    pub version: &'static str,
    /// The governor's level: `normal`, `reduced`, `no_loads` or `shedding`.
    pub governor_level: &'static str,
    /// Its changes since start.
    pub governor_changes: u64,
    /// Generation threads following the load; `null` before the first sample.
    pub generation_threads: Option<u32>,
}

/// Where the state comes from. Cheap to clone.
#[derive(Clone)]
pub struct Sources {
    pub metrics: Metrics,
    pub sampler: Sampler,
    pub models: Registry,
    pub started: Instant,
}

impl Sources {
    pub fn state(&self) -> State {
        let m = &self.metrics;
        let s = self.sampler.latest();
        let (model, model_state) = match self.models.default_engine().state() {
            ModelState::Ready(info) => (Some(info.id.clone()), "ready"),
            ModelState::Loading { .. } => (None, "loading"),
            ModelState::Failed { .. } => (None, "failed"),
        };
        let voice = m.voice_stage_seconds.with_label_values(&["speech_end_to_first_audio"]);
        let voice_latency_seconds =
            (voice.get_sample_count() > 0).then(|| voice.get_sample_sum() / voice.get_sample_count() as f64);
        let used = s.memory_total_bytes.saturating_sub(s.memory_available_bytes);
        let governor = self.models.governor().status();
        State {
            time: now_ms() / 1000,
            health: if model_state == "ready" { "ok" } else { "degraded" },
            model,
            model_state,
            tokens_per_second: m.generation_tokens_per_second.get(),
            queue_depth: m.queue_depth.get(),
            active_sequences: m.active_sequences.get(),
            requests_total: m.http_requests_total(),
            tokens_generated_total: m.tokens_generated.get(),
            voice_latency_seconds,
            cpu_percent: f64::from(s.cpu_mean()) * 100.0,
            load_average: s.load_average,
            memory_total_bytes: s.memory_total_bytes,
            memory_available_bytes: s.memory_available_bytes,
            memory_used_percent: if s.memory_total_bytes == 0 {
                0.0
            } else {
                used as f64 * 100.0 / s.memory_total_bytes as f64
            },
            swap_used_bytes: s.swap_used_bytes,
            disk_total_bytes: s.disk_total_bytes,
            disk_available_bytes: s.disk_available_bytes,
            process_resident_bytes: s.process_resident_bytes,
            temperature_celsius: s.hottest(),
            temperatures: s.temperatures.iter().map(|t| (t.zone.clone(), t.celsius)).collect(),
            throttled: s.throttling.map(|t| t.throttled || t.frequency_capped || t.under_voltage),
            uptime_seconds: self.started.elapsed().as_secs(),
            version: env!("CARGO_PKG_VERSION"),
            governor_level: governor.level.name(),
            governor_changes: governor.changes,
            generation_threads: governor.generation_threads,
        }
    }
}
