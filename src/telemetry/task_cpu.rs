//! CPU time of this process's threads by name (`/proc/self/task/*/stat`): how much of
//! the machine's CPU the generation threads used, so the rest is what others used.

use std::collections::HashMap;
use std::time::Instant;

/// The name of the engine thread, which its OpenMP workers inherit.
pub const GENERATION_THREAD: &str = "hearth-llm";

/// CPU time of this process's threads with one name, as cores used between two calls
/// (`/proc/self/task/*/stat`: utime and stime in clock ticks).
pub(super) struct ThreadCpu {
    name: &'static str,
    ticks: HashMap<u32, u64>,
    at: Instant,
}

impl ThreadCpu {
    pub(super) fn new(name: &'static str) -> ThreadCpu {
        let mut t = ThreadCpu { name, ticks: Default::default(), at: Instant::now() };
        t.cores();
        t
    }

    /// Cores used since the previous call (or since `new`).
    pub(super) fn cores(&mut self) -> f32 {
        let mut now = HashMap::new();
        if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
            for task in tasks.flatten() {
                let Some(tid) = task.file_name().to_str().and_then(|t| t.parse::<u32>().ok()) else {
                    continue;
                };
                let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
                if let Some((comm, ticks)) = parse_task_stat(&stat) {
                    if comm == self.name {
                        now.insert(tid, ticks);
                    }
                }
            }
        }
        let used: u64 = now.iter().map(|(tid, t)| t.saturating_sub(*self.ticks.get(tid).unwrap_or(&0))).sum();
        let elapsed = self.at.elapsed().as_secs_f64();
        self.ticks = now;
        self.at = Instant::now();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        if elapsed <= 0.0 {
            return 0.0;
        }
        (used as f64 / hz / elapsed) as f32
    }
}

/// A task's name and its user plus system ticks from `/proc/<pid>/task/<tid>/stat`.
fn parse_task_stat(stat: &str) -> Option<(&str, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = &stat[open + 1..close];
    // After the name: state is field 3; utime and stime are fields 14 and 15.
    let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn task_stat_gives_the_name_and_cpu_ticks() {
        let stat = "4242 (hearth-llm) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(parse_task_stat(stat), Some(("hearth-llm", 300)));
        let odd = "7 (a) b (c)) R 1 2 3 4 5 6 7 8 9 10 1 2 0 0";
        assert_eq!(parse_task_stat(odd), Some(("a) b (c)", 3)), "the name is up to the last ')'");
    }

    #[test]
    fn a_thread_that_spins_is_counted_by_its_name() {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let spinning = stop.clone();
        let spinner = std::thread::Builder::new()
            .name("hearth-spintest".into())
            .spawn(move || while !spinning.load(std::sync::atomic::Ordering::Relaxed) {})
            .unwrap();
        let mut cpu = ThreadCpu::new("hearth-spintest");
        std::thread::sleep(Duration::from_millis(500));
        let cores = cpu.cores();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        spinner.join().unwrap();
        assert!(cores > 0.05, "a spinning thread used {cores} cores");
        assert_eq!(ThreadCpu::new("no-such-thread").cores(), 0.0);
    }
}
