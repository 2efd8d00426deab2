//! Memory as Hearth may use it: the system's (`/proc/meminfo`) bounded by the limit of
//! Hearth's own cgroup (systemd's `MemoryMax`/`MemoryHigh`, a container's limit).
//!
//! Under a cgroup limit the kernel reclaims and then kills at the limit, whatever the
//! machine has free: the ceiling is the smaller of the two, and what is available is the
//! smaller of `MemAvailable` and the limit minus what the cgroup uses (less its inactive
//! file cache, which the kernel drops first).

use std::path::{Path, PathBuf};

pub const MEMINFO: &str = "/proc/meminfo";

/// Memory figures in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    pub total: u64,
    pub available: u64,
    pub swap_total: u64,
    pub swap_free: u64,
    /// The cgroup's limit, when there is one below the machine's memory.
    pub cgroup_limit: Option<u64>,
}

/// Reads `meminfo` (empty path: `/proc/meminfo`) and this process's cgroup. `None` when
/// the file cannot be read or lacks `MemTotal`.
pub fn read(meminfo: &Path) -> Option<Memory> {
    let path = if meminfo.as_os_str().is_empty() { Path::new(MEMINFO) } else { meminfo };
    let mut memory = parse_meminfo(&std::fs::read_to_string(path).ok()?)?;
    if let Some(cgroup) = Cgroup::own() {
        memory.bound_by(&cgroup);
    }
    Some(memory)
}

/// `MemTotal`, `MemAvailable`, `SwapTotal`, `SwapFree` (kB) from meminfo's text.
pub fn parse_meminfo(text: &str) -> Option<Memory> {
    let field = |name: &str| {
        text.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse::<u64>().ok().map(|kb| kb * 1024)
        })
    };
    let total = field("MemTotal")?;
    Some(Memory {
        total,
        available: field("MemAvailable").or_else(|| field("MemFree")).unwrap_or(0).min(total),
        swap_total: field("SwapTotal").unwrap_or(0),
        swap_free: field("SwapFree").unwrap_or(0),
        cgroup_limit: None,
    })
}

impl Memory {
    fn bound_by(&mut self, cgroup: &Cgroup) {
        let Some(limit) = cgroup.limit().filter(|l| *l < self.total) else { return };
        let used = cgroup.used().unwrap_or(0);
        self.cgroup_limit = Some(limit);
        self.total = limit;
        self.available = self.available.min(limit.saturating_sub(used));
    }
}

/// This process's memory cgroup: version 2 (unified) or version 1's memory controller.
#[derive(Debug, Clone, PartialEq)]
pub enum Cgroup {
    V2(PathBuf),
    V1(PathBuf),
}

/// Limits at or above this are "no limit" (cgroup v1 writes a huge page-rounded number).
const UNLIMITED: u64 = 1 << 60;

impl Cgroup {
    /// The cgroup of this process, from `/proc/self/cgroup` under `/sys/fs/cgroup`.
    pub fn own() -> Option<Cgroup> {
        let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        Cgroup::find(&text, Path::new("/sys/fs/cgroup"))
    }

    /// The memory cgroup named in a `/proc/<pid>/cgroup` text, under `root`.
    pub fn find(text: &str, root: &Path) -> Option<Cgroup> {
        let mut v2 = None;
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let relative = path.trim_start_matches('/');
            if controllers.split(',').any(|c| c == "memory") {
                let dir = root.join("memory").join(relative);
                if dir.join("memory.limit_in_bytes").is_file() {
                    return Some(Cgroup::V1(dir));
                }
            } else if id == "0" && controllers.is_empty() {
                let dir = root.join(relative);
                if dir.join("memory.max").is_file() {
                    v2 = Some(Cgroup::V2(dir));
                }
            }
        }
        v2
    }

    fn dir(&self) -> &Path {
        match self {
            Cgroup::V2(d) | Cgroup::V1(d) => d,
        }
    }

    fn number(&self, file: &str) -> Option<u64> {
        let text = std::fs::read_to_string(self.dir().join(file)).ok()?;
        let text = text.trim();
        if text == "max" {
            return Some(u64::MAX);
        }
        text.parse().ok()
    }

    /// The smallest limit set (v2: `memory.high` and `memory.max`; v1:
    /// `memory.limit_in_bytes`); `None` when unlimited.
    pub fn limit(&self) -> Option<u64> {
        let limit = match self {
            Cgroup::V2(_) => {
                let high = self.number("memory.high").unwrap_or(u64::MAX);
                self.number("memory.max").unwrap_or(u64::MAX).min(high)
            }
            Cgroup::V1(_) => self.number("memory.limit_in_bytes")?,
        };
        (limit < UNLIMITED).then_some(limit)
    }

    /// What the cgroup uses, less its inactive file cache.
    pub fn used(&self) -> Option<u64> {
        let (usage, stat_key) = match self {
            Cgroup::V2(_) => (self.number("memory.current")?, "inactive_file"),
            Cgroup::V1(_) => (self.number("memory.usage_in_bytes")?, "total_inactive_file"),
        };
        let stat = std::fs::read_to_string(self.dir().join("memory.stat")).unwrap_or_default();
        let inactive = stat
            .lines()
            .find_map(|l| l.strip_prefix(stat_key)?.strip_prefix(' ')?.trim().parse::<u64>().ok())
            .unwrap_or(0);
        Some(usage.saturating_sub(inactive))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO_TEXT: &str = "MemTotal:        4000000 kB\nMemFree:          100000 kB\n\
                                MemAvailable:    1000000 kB\nSwapTotal:        512000 kB\nSwapFree:         500000 kB\n";

    #[test]
    fn meminfo_is_read_in_bytes() {
        let m = parse_meminfo(MEMINFO_TEXT).unwrap();
        assert_eq!((m.total, m.available), (4_000_000 * 1024, 1_000_000 * 1024));
        assert_eq!((m.swap_total, m.swap_free), (512_000 * 1024, 500_000 * 1024));
        assert_eq!(parse_meminfo("nothing here"), None);
    }

    #[test]
    fn a_cgroup_limit_bounds_total_and_available() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("memory/hearth-test");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("memory.limit_in_bytes"), "1073741824\n").unwrap();
        std::fs::write(dir.join("memory.usage_in_bytes"), "900000000\n").unwrap();
        std::fs::write(dir.join("memory.stat"), "cache 5\ntotal_inactive_file 100000000\n").unwrap();
        let text = "12:cpu,cpuacct:/\n4:memory:/hearth-test\n0::/\n";
        let cgroup = Cgroup::find(text, root.path()).expect("the v1 memory cgroup");
        assert_eq!(cgroup, Cgroup::V1(dir.clone()));
        let mut m = parse_meminfo(MEMINFO_TEXT).unwrap();
        m.bound_by(&cgroup);
        assert_eq!(m.cgroup_limit, Some(1 << 30));
        assert_eq!(m.total, 1 << 30);
        assert_eq!(m.available, (1 << 30) - 800_000_000, "the limit less the usage less inactive files");
        std::fs::write(dir.join("memory.limit_in_bytes"), "9223372036854771712\n").unwrap();
        assert_eq!(cgroup.limit(), None, "v1's 'no limit'");
    }

    #[test]
    fn cgroup_v2_takes_the_smaller_of_high_and_max() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("system.slice/hearth.service");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("memory.max"), "max\n").unwrap();
        std::fs::write(dir.join("memory.high"), "536870912\n").unwrap();
        std::fs::write(dir.join("memory.current"), "1000\n").unwrap();
        let cgroup = Cgroup::find("0::/system.slice/hearth.service\n", root.path()).unwrap();
        assert_eq!(cgroup.limit(), Some(512 << 20));
        assert_eq!(cgroup.used(), Some(1000));
        std::fs::write(dir.join("memory.high"), "max\n").unwrap();
        assert_eq!(cgroup.limit(), None);
    }
}
