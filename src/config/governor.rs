//! `[governor]`: when Hearth steps down (fewer generation threads, smaller batches, no new
//! model loads, new requests shed with 503) and how it reads the machine.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GovernorSettings {
    /// Step down under pressure and back up when it passes. Off: Hearth always runs at
    /// full strength (the readings are still sampled and shown).
    pub enabled: bool,
    /// Memory available (the smaller of the system's `MemAvailable` and what Hearth's own
    /// cgroup limit leaves) below which Hearth steps down, in MiB.
    pub min_memory_available_mb: u64,
    /// Hottest thermal zone at or above which Hearth steps down, °C.
    pub max_temperature_c: f64,
    /// Step down while the Raspberry Pi firmware reports throttling, a capped frequency,
    /// the soft temperature limit or under-voltage now.
    pub step_down_when_throttled: bool,
    /// Samples in a row that must be calm (memory 1.5 times the limit, 5 °C below the
    /// temperature limit, no throttling) before Hearth steps up one level.
    pub recover_samples: u32,
    /// What a shed request's `Retry-After` says, in seconds.
    pub retry_after_secs: u32,
    /// How often the system sampler reads the machine, in milliseconds (the governor
    /// decides at every sample).
    pub sample_interval_ms: u64,
    /// Diagnostics and tests: read thermal zones from this directory instead of
    /// `/sys/class/thermal` (`thermal_zone*/type`, `thermal_zone*/temp` in millidegrees).
    pub thermal_dir: PathBuf,
    /// Diagnostics and tests: read memory from this file instead of `/proc/meminfo`
    /// (`MemTotal`, `MemAvailable`, `SwapTotal`, `SwapFree` in kB).
    pub meminfo_path: PathBuf,
}

impl Default for GovernorSettings {
    fn default() -> Self {
        GovernorSettings {
            enabled: true,
            min_memory_available_mb: 192,
            max_temperature_c: 80.0,
            step_down_when_throttled: true,
            recover_samples: 6,
            retry_after_secs: 10,
            sample_interval_ms: 5000,
            thermal_dir: PathBuf::new(),
            meminfo_path: PathBuf::new(),
        }
    }
}

impl GovernorSettings {
    pub fn validate(&self) -> Result<(), String> {
        let bad = |key: &str, why: &str| Err(format!("invalid value for governor.{key}: {why}"));
        if !(20.0..=150.0).contains(&self.max_temperature_c) {
            return bad("max_temperature_c", "must be between 20 and 150");
        }
        if self.recover_samples == 0 || self.recover_samples > 1000 {
            return bad("recover_samples", "must be between 1 and 1000");
        }
        if self.retry_after_secs == 0 || self.retry_after_secs > 3600 {
            return bad("retry_after_secs", "must be between 1 and 3600");
        }
        if !(100..=600_000).contains(&self.sample_interval_ms) {
            return bad("sample_interval_ms", "must be between 100 and 600000");
        }
        Ok(())
    }
}
