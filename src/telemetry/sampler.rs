//! The one system sampler: a thread (`hearth-sampler`) takes a [`Sample`] at a fixed
//! interval from a [`Readings`] source, keeps the recent ones in a ring, exports them to
//! `/metrics` and hands them to whoever watches (the admin page, MQTT, a governor).
//!
//! The source is a trait so that a governor and tests can drive Hearth with readings of
//! their own (a hot board, a box short of memory) instead of the machine's.

use super::board::{self, Temperature, ThrottleSource, Throttling};
use super::memory;
use super::task_cpu::{ThreadCpu, GENERATION_THREAD};
use super::Metrics;
use serde::Serialize;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// The machine's state at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Sample {
    /// When it was taken, Unix milliseconds.
    pub at_ms: u64,
    /// Each core's use since the previous sample, 0 to 1.
    pub cpu_usage: Vec<f32>,
    /// 1, 5 and 15 minutes.
    pub load_average: [f64; 3],
    pub memory_total_bytes: u64,
    /// What new allocations can have without swapping (`MemAvailable`).
    pub memory_available_bytes: u64,
    pub swap_total_bytes: u64,
    pub swap_used_bytes: u64,
    /// The file system of the data directory.
    pub disk_total_bytes: u64,
    pub disk_available_bytes: u64,
    /// Thermal zones; empty where the board reports none (VMs, containers).
    pub temperatures: Vec<Temperature>,
    /// The Raspberry Pi firmware's throttling; `None` on other boards.
    pub throttling: Option<Throttling>,
    /// This process's resident memory.
    pub process_resident_bytes: u64,
    /// The limit of Hearth's own memory cgroup, when it is below the machine's memory
    /// (`memory_total_bytes` and `memory_available_bytes` are then bounded by it).
    pub memory_limit_bytes: Option<u64>,
    /// Cores the generation threads (`hearth-llm` and its OpenMP workers) kept busy since
    /// the previous sample.
    pub generation_cpu: f32,
}

impl Sample {
    /// Cores the whole machine kept busy (the sum of each core's use).
    pub fn cpu_busy(&self) -> f32 {
        self.cpu_usage.iter().sum()
    }

    /// Mean CPU use over the cores, 0 to 1.
    pub fn cpu_mean(&self) -> f32 {
        if self.cpu_usage.is_empty() {
            return 0.0;
        }
        self.cpu_usage.iter().sum::<f32>() / self.cpu_usage.len() as f32
    }

    /// The hottest thermal zone, °C.
    pub fn hottest(&self) -> Option<f64> {
        self.temperatures.iter().map(|t| t.celsius).reduce(f64::max)
    }
}

/// Where samples come from: the machine ([`HostReadings`]) or whatever a test or a
/// governor's check injects. Called on the sampler's thread only; may block briefly.
pub trait Readings: Send + 'static {
    fn sample(&mut self) -> Sample;
}

/// The machine's own readings: `sysinfo` for CPU and load, `/proc/meminfo` and Hearth's
/// cgroup for memory (`memory.rs`), `statvfs` for the data directory, sysfs for
/// temperatures and throttling, `/proc/self` for RSS and the generation threads' CPU.
pub struct HostReadings {
    system: sysinfo::System,
    data_dir: PathBuf,
    thermal_dir: PathBuf,
    meminfo: PathBuf,
    throttle: ThrottleSource,
    generation: ThreadCpu,
}

impl HostReadings {
    pub fn new(data_dir: &Path) -> HostReadings {
        HostReadings::with_paths(data_dir, Path::new(board::THERMAL_DIR), Path::new(memory::MEMINFO))
    }

    /// Readings with the thermal zones and meminfo read from elsewhere: the diagnostic and
    /// test seam of `[governor] thermal_dir` and `meminfo_path` (the real readers, other
    /// files). Empty paths mean the system's.
    pub fn with_paths(data_dir: &Path, thermal_dir: &Path, meminfo: &Path) -> HostReadings {
        let mut system = sysinfo::System::new();
        // CPU use is a difference between two refreshes: the first sample then reads real use.
        system.refresh_cpu_usage();
        let or = |p: &Path, default: &str| {
            if p.as_os_str().is_empty() {
                PathBuf::from(default)
            } else {
                p.to_path_buf()
            }
        };
        HostReadings {
            system,
            data_dir: data_dir.to_path_buf(),
            thermal_dir: or(thermal_dir, board::THERMAL_DIR),
            meminfo: or(meminfo, memory::MEMINFO),
            throttle: ThrottleSource::find(Path::new(board::THROTTLED_FILE)),
            generation: ThreadCpu::new(GENERATION_THREAD),
        }
    }
}

impl Readings for HostReadings {
    fn sample(&mut self) -> Sample {
        let sys = &mut self.system;
        sys.refresh_cpu_usage();
        let memory = memory::read(&self.meminfo).unwrap_or_else(|| {
            sys.refresh_memory();
            memory::Memory {
                total: sys.total_memory(),
                available: sys.available_memory(),
                swap_total: sys.total_swap(),
                swap_free: sys.free_swap(),
                cgroup_limit: None,
            }
        });
        let load = sysinfo::System::load_average();
        let (disk_total_bytes, disk_available_bytes) = disk_space(&self.data_dir).unwrap_or_default();
        Sample {
            at_ms: now_ms(),
            cpu_usage: sys.cpus().iter().map(|c| (c.cpu_usage() / 100.0).clamp(0.0, 1.0)).collect(),
            load_average: [load.one, load.five, load.fifteen],
            memory_total_bytes: memory.total,
            memory_available_bytes: memory.available,
            swap_total_bytes: memory.swap_total,
            swap_used_bytes: memory.swap_total.saturating_sub(memory.swap_free),
            disk_total_bytes,
            disk_available_bytes,
            temperatures: board::thermal_zones(&self.thermal_dir),
            throttling: self.throttle.read(),
            process_resident_bytes: resident_bytes().unwrap_or(0),
            memory_limit_bytes: memory.cgroup_limit,
            generation_cpu: self.generation.cores(),
        }
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Total and available bytes (for an unprivileged user) of the file system holding `path`.
fn disk_space(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a zeroed statvfs the call fills in.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let unit = st.f_frsize as u64;
    Some((st.f_blocks as u64 * unit, st.f_bavail as u64 * unit))
}

/// Resident pages of this process (`/proc/self/statm`, second field) in bytes.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

/// The sampler's handle: the latest sample, the ring of recent ones, and a watch channel
/// that changes at every sample. Cheap to clone.
#[derive(Clone)]
pub struct Sampler {
    ring: Arc<Mutex<VecDeque<Arc<Sample>>>>,
    observers: Observers,
    latest: watch::Receiver<Option<Arc<Sample>>>,
    every: Duration,
}

/// Called with every sample on the sampler's thread (the governor): must be quick.
pub type Observer = Box<dyn FnMut(&Sample) + Send>;
type Observers = Arc<Mutex<Vec<Observer>>>;

/// How the sampler runs.
#[derive(Debug, Clone, Copy)]
pub struct SamplerOptions {
    pub every: Duration,
    /// Samples kept for `/api/system` and the admin page's sparklines.
    pub keep: usize,
}

impl Default for SamplerOptions {
    fn default() -> Self {
        // Ten minutes of history at five seconds.
        SamplerOptions { every: Duration::from_secs(5), keep: 120 }
    }
}

impl Sampler {
    /// Takes the first sample now (so there is always one to show), then starts the
    /// thread. The thread stops when every handle is gone.
    pub fn start(mut source: Box<dyn Readings>, options: SamplerOptions, metrics: Metrics) -> Sampler {
        let first = Arc::new(source.sample());
        export(&metrics, None, &first);
        let keep = options.keep.max(1);
        let ring = Arc::new(Mutex::new(VecDeque::from([first.clone()])));
        let (tx, latest) = watch::channel(Some(first));
        let observers: Observers = Arc::default();
        let sampler =
            Sampler { ring: ring.clone(), observers: observers.clone(), latest, every: options.every };
        let spawned = std::thread::Builder::new().name("hearth-sampler".into()).spawn(move || loop {
            std::thread::sleep(options.every);
            if tx.is_closed() {
                return;
            }
            // A source that panics loses one sample, not the thread.
            let sample = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| source.sample())) {
                Ok(sample) => Arc::new(sample),
                Err(_) => {
                    tracing::error!("the system sampler's readings panicked; trying again");
                    continue;
                }
            };
            {
                let mut ring = ring.lock().unwrap_or_else(|p| p.into_inner());
                export(&metrics, ring.back().map(|p| &**p), &sample);
                if ring.len() >= keep {
                    ring.pop_front();
                }
                ring.push_back(sample.clone());
            }
            tx.send_replace(Some(sample.clone()));
            let mut observers = observers.lock().unwrap_or_else(|p| p.into_inner());
            for observe in observers.iter_mut() {
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| observe(&sample))).is_err() {
                    tracing::error!("a sample's observer panicked; it goes on with the next sample");
                }
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the system sampler; figures stay at the first sample");
        }
        sampler
    }

    /// The machine's own readings every `options.every`.
    pub fn start_host(data_dir: &Path, options: SamplerOptions, metrics: Metrics) -> Sampler {
        Sampler::start(Box::new(HostReadings::new(data_dir)), options, metrics)
    }

    /// Calls `observer` with every sample from now on, on the sampler's thread.
    pub fn observe(&self, observer: Observer) {
        self.observers.lock().unwrap_or_else(|p| p.into_inner()).push(observer);
    }

    /// The most recent sample.
    pub fn latest(&self) -> Arc<Sample> {
        self.latest.borrow().clone().unwrap_or_default()
    }

    /// The kept samples, oldest first.
    pub fn history(&self) -> Vec<Arc<Sample>> {
        self.ring.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect()
    }

    /// Changes at every sample (for a governor or a publisher that acts on news).
    pub fn watch(&self) -> watch::Receiver<Option<Arc<Sample>>> {
        self.latest.clone()
    }

    pub fn interval(&self) -> Duration {
        self.every
    }
}

/// Sets the system gauges of `/metrics` from a sample. Series of cores, zones or
/// conditions the previous sample had and this one lacks are removed (not the whole
/// vector reset, so a scrape never catches it empty), so no stale reading stays.
fn export(m: &Metrics, previous: Option<&Sample>, s: &Sample) {
    let sys = &m.system;
    let cores: Vec<String> = (0..s.cpu_usage.len()).map(|c| c.to_string()).collect();
    for (core, usage) in cores.iter().zip(&s.cpu_usage) {
        sys.cpu_usage.with_label_values(&[core]).set(f64::from(*usage));
    }
    for t in &s.temperatures {
        sys.temperature.with_label_values(&[&t.zone]).set(t.celsius);
    }
    for (condition, on) in s.throttling.iter().flat_map(|t| t.now()) {
        sys.throttled.with_label_values(&[condition]).set(if on { 1.0 } else { 0.0 });
    }
    if let Some(p) = previous {
        for core in (s.cpu_usage.len()..p.cpu_usage.len()).map(|c| c.to_string()) {
            let _ = sys.cpu_usage.remove_label_values(&[&core]);
        }
        for gone in p.temperatures.iter().filter(|t| !s.temperatures.iter().any(|n| n.zone == t.zone)) {
            let _ = sys.temperature.remove_label_values(&[&gone.zone]);
        }
        if let (Some(before), None) = (p.throttling, s.throttling) {
            for (condition, _) in before.now() {
                let _ = sys.throttled.remove_label_values(&[condition]);
            }
        }
    }
    sys.load1.set(s.load_average[0]);
    sys.load5.set(s.load_average[1]);
    sys.load15.set(s.load_average[2]);
    sys.memory_total.set(s.memory_total_bytes as f64);
    sys.memory_available.set(s.memory_available_bytes as f64);
    sys.swap_total.set(s.swap_total_bytes as f64);
    sys.swap_used.set(s.swap_used_bytes as f64);
    sys.disk_total.set(s.disk_total_bytes as f64);
    sys.disk_available.set(s.disk_available_bytes as f64);
    sys.resident_memory.set(s.process_resident_bytes as f64);
    sys.samples.inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Readings a test sets: each sample says how many were taken.
    struct Counting(u64);

    impl Readings for Counting {
        fn sample(&mut self) -> Sample {
            self.0 += 1;
            Sample {
                at_ms: self.0,
                cpu_usage: vec![0.25, 0.75],
                memory_total_bytes: 1000,
                memory_available_bytes: 1000 - self.0,
                temperatures: vec![Temperature { zone: "cpu-thermal".into(), celsius: 60.0 + self.0 as f64 }],
                throttling: Some(Throttling::from_bits(0x4)),
                ..Sample::default()
            }
        }
    }

    #[test]
    fn the_ring_keeps_the_newest_and_metrics_follow() {
        let metrics = Metrics::new();
        let options = SamplerOptions { every: Duration::from_millis(10), keep: 3 };
        let sampler = Sampler::start(Box::new(Counting(0)), options, metrics.clone());
        assert_eq!(sampler.latest().at_ms, 1, "the first sample is there at once");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while sampler.latest().at_ms < 6 {
            assert!(std::time::Instant::now() < deadline, "the sampler stalled");
            std::thread::sleep(Duration::from_millis(5));
        }
        let history = sampler.history();
        assert_eq!(history.len(), 3);
        assert!(history.windows(2).all(|w| w[1].at_ms == w[0].at_ms + 1), "oldest first, none lost");
        let text = metrics.render();
        assert!(text.contains("hearth_cpu_usage_ratio{core=\"1\"} 0.75"), "{text}");
        assert!(text.contains("hearth_memory_total_bytes 1000"), "{text}");
        assert!(text.contains("hearth_temperature_celsius{zone=\"cpu-thermal\"}"), "{text}");
        assert!(text.contains("hearth_throttled{condition=\"throttled\"} 1"), "{text}");
        assert!(text.contains("hearth_throttled{condition=\"under_voltage\"} 0"), "{text}");
        assert_eq!(sampler.latest().cpu_mean(), 0.5);
    }

    /// Readings a test scripts: one sample after another, the last one repeated.
    struct Script(Vec<Sample>);

    impl Readings for Script {
        fn sample(&mut self) -> Sample {
            if self.0.len() > 1 {
                self.0.remove(0)
            } else {
                self.0[0].clone()
            }
        }
    }

    #[test]
    fn readings_that_go_away_leave_metrics() {
        let zone = |zone: &str| Temperature { zone: zone.into(), celsius: 50.0 };
        let hot = Sample {
            at_ms: 1,
            cpu_usage: vec![0.5; 4],
            temperatures: vec![zone("cpu-thermal"), zone("gpu-thermal")],
            throttling: Some(Throttling::from_bits(0)),
            ..Sample::default()
        };
        let calm = Sample {
            at_ms: 2,
            cpu_usage: vec![0.5; 2],
            temperatures: vec![zone("cpu-thermal")],
            ..Sample::default()
        };
        let metrics = Metrics::new();
        let options = SamplerOptions { every: Duration::from_millis(10), keep: 3 };
        let sampler = Sampler::start(Box::new(Script(vec![hot, calm])), options, metrics.clone());
        assert!(metrics.render().contains("zone=\"gpu-thermal\""));
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while sampler.latest().at_ms < 2 {
            assert!(std::time::Instant::now() < deadline, "the sampler stalled");
            std::thread::sleep(Duration::from_millis(5));
        }
        let text = metrics.render();
        assert!(text.contains("zone=\"cpu-thermal\"") && !text.contains("gpu-thermal"), "{text}");
        assert!(text.contains("core=\"1\"") && !text.contains("core=\"2\""), "{text}");
        assert!(!text.contains("hearth_throttled{"), "{text}");
    }

    #[test]
    fn fake_files_drive_the_real_readers() {
        let dir = tempfile::tempdir().unwrap();
        let zone = dir.path().join("thermal/thermal_zone0");
        std::fs::create_dir_all(&zone).unwrap();
        std::fs::write(zone.join("type"), "cpu-thermal\n").unwrap();
        std::fs::write(zone.join("temp"), "91500\n").unwrap();
        let meminfo = dir.path().join("meminfo");
        std::fs::write(&meminfo, "MemTotal: 2048 kB\nMemAvailable: 1024 kB\n").unwrap();
        let s = HostReadings::with_paths(dir.path(), &dir.path().join("thermal"), &meminfo).sample();
        assert_eq!(s.hottest(), Some(91.5));
        assert!(s.memory_available_bytes <= 1024 * 1024 && s.memory_total_bytes <= 2048 * 1024, "{s:?}");
    }

    #[test]
    fn the_host_reads_memory_disk_and_itself() {
        let dir = tempfile::tempdir().unwrap();
        let mut host = HostReadings::new(dir.path());
        let s = host.sample();
        assert!(s.memory_total_bytes > 0 && s.memory_available_bytes <= s.memory_total_bytes, "{s:?}");
        assert!(s.disk_total_bytes > 0 && s.disk_available_bytes <= s.disk_total_bytes, "{s:?}");
        assert!(s.process_resident_bytes > 1024 * 1024, "{s:?}");
        assert!(!s.cpu_usage.is_empty() && s.cpu_usage.iter().all(|u| (0.0..=1.0).contains(u)), "{s:?}");
    }
}
