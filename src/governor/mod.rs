//! The governor: Hearth steps down when memory, temperature or throttling cross
//! `[governor]`'s limits, and back up when they recover; and generation's threads follow
//! the load.
//!
//! It is fed every system sample (on the sampler's thread, `telemetry::Sampler`): the
//! decision is the pure [`Machine`] (`machine.rs`) and [`Follow`] (`threads.rs`); this
//! handle publishes the result in atomics that the engines read between decodes and at
//! admission. Levels, each doing what the ones before it do:
//!
//! 1. `reduced`: one generation thread less, prompts read in smaller chunks;
//! 2. `no_loads`: no new model loads (503 `model_loads_paused`);
//! 3. `shedding`: new model requests answered 503 `shedding_load` with `Retry-After`.
//!
//! Health, admin reads and replies already running are never shed. Every change is
//! logged with the reading that caused it, counted on `/metrics`
//! (`hearth_governor_level`, `hearth_governor_changes_total`) and shown in `/api/system`
//! and the MQTT state, which is published at once on a change ([`Governor::changes`]).

mod busy;
mod machine;
mod threads;

pub use busy::{busy, Busy};
pub use machine::{assess, Assessment, Change, Level, Limits, Machine};
pub use threads::{Follow, MAX_AUTO_THREADS};

use crate::config::Settings;
use crate::engine::EngineError;
use crate::telemetry::{Metrics, Sample};
use serde::Serialize;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

/// The governor's handle; clone it freely. [`Governor::default`] never steps down and
/// leaves the threads as configured (tools and tests that run no sampler).
#[derive(Clone, Default)]
pub struct Governor {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Governor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Governor").field("level", &self.level()).finish()
    }
}

#[derive(Default)]
struct Inner {
    enabled: bool,
    level: AtomicU8,
    changes: AtomicU64,
    /// Generation threads chosen by following the load (0: none chosen yet).
    follow_threads: AtomicU32,
    retry_after_secs: u32,
    decide: Mutex<Option<Decide>>,
    metrics: Option<Metrics>,
    /// The level, for those who act on a change at once (the MQTT publisher).
    watch: LevelWatch,
}

/// A `watch` channel of the level (a newtype for `Default`).
struct LevelWatch(tokio::sync::watch::Sender<Level>);

impl Default for LevelWatch {
    fn default() -> LevelWatch {
        LevelWatch(tokio::sync::watch::Sender::new(Level::Normal))
    }
}

struct Decide {
    machine: Machine,
    follow: Follow,
    reason: String,
}

/// What `/api/system` and MQTT show.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Status {
    pub enabled: bool,
    pub level: Level,
    pub level_number: u8,
    /// Level changes since start.
    pub changes: u64,
    /// The reading behind the last change (empty before any).
    pub reason: String,
    /// Generation threads following the load (`null` before the first sample).
    pub generation_threads: Option<u32>,
}

impl Governor {
    pub fn new(settings: &Settings, metrics: Metrics) -> Governor {
        let g = &settings.governor;
        let decide = Decide {
            machine: Machine::new(Limits::from_settings(g)),
            follow: Follow::new(crate::config::cores()),
            reason: String::new(),
        };
        metrics.governor_level.set(0);
        Governor {
            inner: Arc::new(Inner {
                enabled: g.enabled,
                retry_after_secs: g.retry_after_secs,
                decide: Mutex::new(Some(decide)),
                metrics: Some(metrics),
                ..Inner::default()
            }),
        }
    }

    /// Takes one sample: may change the level (logged, counted) and the threads.
    pub fn observe(&self, s: &Sample) {
        let mut guard = self.inner.decide.lock().unwrap_or_else(|p| p.into_inner());
        let Some(d) = guard.as_mut() else { return };
        let threads = d.follow.observe(s.cpu_busy(), s.generation_cpu);
        let before = self.inner.follow_threads.swap(threads, Ordering::Relaxed);
        if before != 0 && before != threads {
            tracing::debug!(
                threads,
                machine_cores_busy = s.cpu_busy(),
                generation_cores_busy = s.generation_cpu,
                "generation threads follow the load"
            );
        }
        if !self.inner.enabled {
            return;
        }
        let Some(change) = d.machine.observe(s) else { return };
        self.inner.level.store(change.to as u8, Ordering::Relaxed);
        self.inner.changes.fetch_add(1, Ordering::Relaxed);
        self.inner.watch.0.send_replace(change.to);
        if let Some(m) = &self.inner.metrics {
            m.governor_level.set(change.to as i64);
            m.governor_changes.inc();
        }
        let memory_available_mb = s.memory_available_bytes >> 20;
        let temperature_c = s.hottest();
        if change.to > change.from {
            tracing::warn!(
                from = change.from.name(), to = change.to.name(), reason = %change.reason,
                memory_available_mb, ?temperature_c, "governor steps down"
            );
        } else {
            tracing::info!(
                from = change.from.name(), to = change.to.name(), reason = %change.reason,
                memory_available_mb, ?temperature_c, "governor steps up"
            );
        }
        d.reason = change.reason;
    }

    /// A receiver that wakes on every change of the level (none for the default governor).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<Level> {
        self.inner.watch.0.subscribe()
    }

    pub fn level(&self) -> Level {
        Level::from_u8(self.inner.level.load(Ordering::Relaxed))
    }

    pub fn status(&self) -> Status {
        let reason = self
            .inner
            .decide
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|d| d.reason.clone())
            .unwrap_or_default();
        let level = self.level();
        let threads = self.inner.follow_threads.load(Ordering::Relaxed);
        Status {
            enabled: self.inner.enabled,
            level,
            level_number: level as u8,
            changes: self.inner.changes.load(Ordering::Relaxed),
            reason,
            generation_threads: (threads > 0).then_some(threads),
        }
    }

    /// A new model request: refused while shedding.
    pub fn admit_request(&self) -> Result<(), EngineError> {
        if self.level() >= Level::Shedding {
            return Err(EngineError::Shedding { retry_after_secs: self.inner.retry_after_secs });
        }
        Ok(())
    }

    /// A new model load: refused from `no_loads` down.
    pub fn admit_load(&self) -> Result<(), EngineError> {
        if self.level() >= Level::NoLoads {
            return Err(EngineError::LoadsPaused);
        }
        Ok(())
    }

    /// Generation threads now: `configured` (an explicit `[model] threads`) or, when it
    /// is 0, the count that follows the load (`fallback` before the first sample; one core
    /// less at once while speech or an ingest job runs, [`busy`]); one less from `reduced`
    /// down.
    pub fn generation_threads(&self, configured: u32, fallback: u32) -> u32 {
        let followed = self.inner.follow_threads.load(Ordering::Relaxed);
        let automatic = match followed {
            0 => fallback,
            n => n,
        };
        // Only a governor that follows the load (not the default one of tools and tests).
        let follows = self.inner.enabled || followed > 0;
        let base = match configured {
            0 if follows && busy::any() => automatic.min(fallback.saturating_sub(1).max(1)),
            0 => automatic,
            n => n,
        };
        if self.level() >= Level::Reduced {
            base.saturating_sub(1).max(1)
        } else {
            base.max(1)
        }
    }

    /// Most prompt tokens read per decode: a quarter from `reduced` down (each decode
    /// then takes less memory for its activations and less time on the cores).
    pub fn prompt_chunk(&self, full: usize) -> usize {
        if self.level() >= Level::Reduced {
            (full / 4).max(1)
        } else {
            full
        }
    }

    /// Starts observing the sampler: every sample reaches [`Governor::observe`].
    pub fn watch(&self, sampler: &crate::telemetry::Sampler) {
        let me = self.clone();
        sampler.observe(Box::new(move |s| me.observe(s)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::board::Temperature;

    fn hot(celsius: f64) -> Sample {
        Sample {
            memory_total_bytes: 4 << 30,
            memory_available_bytes: 2 << 30,
            temperatures: vec![Temperature { zone: "cpu".into(), celsius }],
            ..Sample::default()
        }
    }

    fn governor() -> (Governor, Metrics) {
        let mut settings = Settings::default();
        settings.governor.recover_samples = 2;
        settings.governor.retry_after_secs = 7;
        let metrics = Metrics::new();
        (Governor::new(&settings, metrics.clone()), metrics)
    }

    #[test]
    fn levels_act_and_are_counted() {
        let (g, metrics) = governor();
        assert!(g.admit_request().is_ok() && g.admit_load().is_ok());
        assert_eq!(g.prompt_chunk(512), 512);
        g.observe(&hot(95.0));
        assert_eq!(g.level(), Level::Reduced);
        assert_eq!(g.generation_threads(4, 4), 3);
        assert_eq!(g.prompt_chunk(512), 128);
        assert!(g.admit_load().is_ok());
        g.observe(&hot(95.0));
        assert!(matches!(g.admit_load(), Err(EngineError::LoadsPaused)));
        assert!(g.admit_request().is_ok());
        g.observe(&hot(95.0));
        assert!(matches!(g.admit_request(), Err(EngineError::Shedding { retry_after_secs: 7 })));
        let text = metrics.render();
        assert!(text.contains("hearth_governor_level 3"), "{text}");
        assert!(text.contains("hearth_governor_changes_total 3"), "{text}");
        let status = g.status();
        assert_eq!((status.level, status.changes), (Level::Shedding, 3));
        assert!(status.reason.contains("95.0 °C"), "{}", status.reason);
        for _ in 0..6 {
            g.observe(&hot(40.0));
        }
        assert_eq!(g.level(), Level::Normal);
        assert!(g.admit_request().is_ok());
        assert!(metrics.render().contains("hearth_governor_changes_total 6"));
    }

    #[test]
    fn switched_off_it_never_steps_down_and_the_default_does_nothing() {
        let mut settings = Settings::default();
        settings.governor.enabled = false;
        let g = Governor::new(&settings, Metrics::new());
        g.observe(&hot(120.0));
        assert_eq!(g.level(), Level::Normal);
        let d = Governor::default();
        d.observe(&hot(120.0));
        assert_eq!((d.level(), d.generation_threads(0, 3)), (Level::Normal, 3));
    }

    #[test]
    fn speech_or_ingest_running_takes_a_core_at_once() {
        let (g, _) = governor();
        let guard = busy();
        assert_eq!(g.generation_threads(0, 4), 3, "before any sample shows the load");
        assert_eq!(g.generation_threads(2, 4), 2, "an explicit setting is kept");
        assert_eq!(Governor::default().generation_threads(0, 4), 4, "tools without a governor");
        drop(guard);
    }

    #[test]
    fn explicit_threads_are_kept_and_automatic_ones_follow() {
        let (g, _) = governor();
        let cores = crate::config::cores();
        let busy = Sample { cpu_usage: vec![1.0; cores as usize], generation_cpu: 0.0, ..Sample::default() };
        g.observe(&busy);
        assert_eq!(g.generation_threads(3, 9), 3, "[model] threads is respected");
        let expected = cores.min(MAX_AUTO_THREADS).saturating_sub(1).max(1);
        assert_eq!(g.generation_threads(0, 9), expected, "a busy neighbour takes a core");
    }
}
