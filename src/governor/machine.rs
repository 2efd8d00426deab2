//! The governor's decision, as pure code: each [`Sample`] is pressure, calm or in
//! between; pressure steps down one level, a run of calm samples steps up one level.
//!
//! The band between the limit and "calm" (memory 1.5 times the limit, 5 °C under the
//! temperature limit) is the hysteresis: a reading that hovers at the limit steps down
//! once and stays there instead of flapping.

use crate::telemetry::Sample;
use serde::Serialize;

/// How far Hearth has stepped down. Each level does what the one before does, and more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Full strength.
    Normal = 0,
    /// Fewer generation threads and smaller prompt chunks.
    Reduced = 1,
    /// No new model loads.
    NoLoads = 2,
    /// New model requests are answered 503 with `Retry-After`.
    Shedding = 3,
}

impl Level {
    pub fn from_u8(n: u8) -> Level {
        match n {
            0 => Level::Normal,
            1 => Level::Reduced,
            2 => Level::NoLoads,
            _ => Level::Shedding,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::Normal => "normal",
            Level::Reduced => "reduced",
            Level::NoLoads => "no_loads",
            Level::Shedding => "shedding",
        }
    }

    fn down(self) -> Level {
        Level::from_u8((self as u8 + 1).min(Level::Shedding as u8))
    }

    fn up(self) -> Level {
        Level::from_u8((self as u8).saturating_sub(1))
    }
}

/// The limits the governor holds the machine to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub min_memory_available: u64,
    pub max_temperature_c: f64,
    pub throttling: bool,
    /// Calm samples in a row before a step up.
    pub recover_samples: u32,
}

impl Limits {
    pub fn from_settings(s: &crate::config::GovernorSettings) -> Limits {
        Limits {
            min_memory_available: s.min_memory_available_mb << 20,
            max_temperature_c: s.max_temperature_c,
            throttling: s.step_down_when_throttled,
            recover_samples: s.recover_samples.max(1),
        }
    }
}

/// Degrees under the temperature limit that count as calm.
const CALM_DEGREES: f64 = 5.0;

/// What one sample says.
#[derive(Debug, Clone, PartialEq)]
pub enum Assessment {
    /// A limit is crossed; the text names the reading (for the log).
    Pressure(String),
    /// Every reading is well inside its limit.
    Calm,
    /// Inside the limits, but not by enough to step up.
    Between,
}

pub fn assess(s: &Sample, limits: &Limits) -> Assessment {
    let mib = |b: u64| b >> 20;
    // A sample without memory figures (a reader that failed) says nothing about memory.
    let known_memory = s.memory_total_bytes > 0;
    if known_memory && s.memory_available_bytes < limits.min_memory_available {
        return Assessment::Pressure(format!(
            "memory available {} MiB is under the limit of {} MiB",
            mib(s.memory_available_bytes),
            mib(limits.min_memory_available)
        ));
    }
    let hottest = s.hottest();
    if let Some(c) = hottest.filter(|c| *c >= limits.max_temperature_c) {
        return Assessment::Pressure(format!(
            "temperature {c:.1} °C is at or over the limit of {:.1} °C",
            limits.max_temperature_c
        ));
    }
    let throttled: Vec<&str> = match (limits.throttling, &s.throttling) {
        (true, Some(t)) => t.now().iter().filter(|(_, on)| *on).map(|(name, _)| *name).collect(),
        _ => Vec::new(),
    };
    if !throttled.is_empty() {
        return Assessment::Pressure(format!("the board reports {}", throttled.join(", ")));
    }
    let memory_calm =
        !known_memory || s.memory_available_bytes as f64 >= limits.min_memory_available as f64 * 1.5;
    let heat_calm = hottest.is_none_or(|c| c <= limits.max_temperature_c - CALM_DEGREES);
    if memory_calm && heat_calm {
        Assessment::Calm
    } else {
        Assessment::Between
    }
}

/// A change of level and the reading that caused it.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub from: Level,
    pub to: Level,
    pub reason: String,
}

/// The governor's state between samples.
#[derive(Debug, Clone)]
pub struct Machine {
    level: Level,
    calm: u32,
    limits: Limits,
}

impl Machine {
    pub fn new(limits: Limits) -> Machine {
        Machine { level: Level::Normal, calm: 0, limits }
    }

    pub fn level(&self) -> Level {
        self.level
    }

    /// Takes one sample; returns the change of level it caused, if any.
    pub fn observe(&mut self, s: &Sample) -> Option<Change> {
        let from = self.level;
        match assess(s, &self.limits) {
            Assessment::Pressure(reason) => {
                self.calm = 0;
                self.level = from.down();
                (self.level != from).then_some(Change { from, to: self.level, reason })
            }
            Assessment::Between => {
                self.calm = 0;
                None
            }
            Assessment::Calm => {
                if from == Level::Normal {
                    return None;
                }
                self.calm += 1;
                if self.calm < self.limits.recover_samples {
                    return None;
                }
                self.calm = 0;
                self.level = from.up();
                let reason = format!("readings calm for {} samples", self.limits.recover_samples);
                Some(Change { from, to: self.level, reason })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::board::{Temperature, Throttling};

    const MIB: u64 = 1 << 20;

    fn limits() -> Limits {
        Limits {
            min_memory_available: 200 * MIB,
            max_temperature_c: 80.0,
            throttling: true,
            recover_samples: 3,
        }
    }

    fn sample(available_mib: u64, celsius: f64) -> Sample {
        Sample {
            memory_total_bytes: 4096 * MIB,
            memory_available_bytes: available_mib * MIB,
            temperatures: vec![Temperature { zone: "cpu-thermal".into(), celsius }],
            ..Sample::default()
        }
    }

    fn levels(machine: &mut Machine, samples: &[Sample]) -> Vec<Level> {
        samples
            .iter()
            .map(|s| {
                machine.observe(s);
                machine.level()
            })
            .collect()
    }

    #[test]
    fn pressure_steps_down_one_level_per_sample_to_shedding() {
        let mut m = Machine::new(limits());
        let low = sample(100, 50.0);
        let change = m.observe(&low).expect("a change");
        assert_eq!((change.from, change.to), (Level::Normal, Level::Reduced));
        assert!(change.reason.contains("memory available 100 MiB"), "{}", change.reason);
        assert_eq!(
            levels(&mut m, &[low.clone(), low.clone(), low.clone()]),
            [Level::NoLoads, Level::Shedding, Level::Shedding]
        );
        assert_eq!(m.observe(&low), None, "no change past the last level");
    }

    #[test]
    fn recovery_needs_calm_samples_in_a_row_and_goes_up_one_level_at_a_time() {
        let mut m = Machine::new(limits());
        let hot = sample(2000, 85.0);
        levels(&mut m, &[hot.clone(), hot.clone()]);
        assert_eq!(m.level(), Level::NoLoads);
        let calm = sample(2000, 60.0);
        let warm = sample(2000, 78.0); // under the limit, not calm: the streak starts over
        let seen =
            levels(&mut m, &[calm.clone(), calm.clone(), warm, calm.clone(), calm.clone(), calm.clone()]);
        assert_eq!(
            seen,
            [Level::NoLoads, Level::NoLoads, Level::NoLoads, Level::NoLoads, Level::NoLoads, Level::Reduced]
        );
        let seen = levels(&mut m, &[calm.clone(), calm.clone(), calm.clone(), calm]);
        assert_eq!(seen, [Level::Reduced, Level::Reduced, Level::Normal, Level::Normal]);
    }

    #[test]
    fn a_reading_hovering_at_the_limit_does_not_flap() {
        let mut m = Machine::new(limits());
        let mut changes = 0;
        for i in 0..40 {
            // 190 and 210 MiB: over and under the 200 MiB limit, never calm (300 MiB).
            let s = sample(if i % 2 == 0 { 190 } else { 210 }, 50.0);
            changes += usize::from(m.observe(&s).is_some());
        }
        assert_eq!(changes, 3, "down to shedding and no step up while it hovers");
        assert_eq!(m.level(), Level::Shedding);
    }

    #[test]
    fn throttling_is_pressure_only_when_asked() {
        let throttled = Sample { throttling: Some(Throttling::from_bits(0x4)), ..sample(2000, 50.0) };
        assert!(matches!(assess(&throttled, &limits()), Assessment::Pressure(r) if r.contains("throttled")));
        let ignore = Limits { throttling: false, ..limits() };
        assert_eq!(assess(&throttled, &ignore), Assessment::Calm);
        let past_only = Sample { throttling: Some(Throttling::from_bits(0x40000)), ..sample(2000, 50.0) };
        assert_eq!(assess(&past_only, &limits()), Assessment::Calm, "throttling that happened earlier");
    }

    #[test]
    fn missing_readings_are_calm() {
        let bare = Sample::default();
        assert_eq!(assess(&bare, &limits()), Assessment::Calm);
    }

    #[test]
    fn levels_round_trip_and_name_themselves() {
        for n in 0..4u8 {
            assert_eq!(Level::from_u8(n) as u8, n);
        }
        assert_eq!(Level::Shedding.name(), "shedding");
        assert_eq!(serde_json::to_string(&Level::NoLoads).unwrap(), "\"no_loads\"");
    }
}
