//! What the board itself reports beyond `sysinfo`: thermal zones (Linux sysfs, the same on a
//! Raspberry Pi, a Jetson and an x86 mini PC) and the Raspberry Pi firmware's throttling bits.

use serde::Serialize;
use std::path::{Path, PathBuf};

/// Where Linux lists its thermal zones.
pub const THERMAL_DIR: &str = "/sys/class/thermal";
/// The Raspberry Pi firmware's throttling word, as the kernel exposes it (Pi 4 and 5).
pub const THROTTLED_FILE: &str = "/sys/devices/platform/soc/soc:firmware/get_throttled";

/// One thermal zone's reading.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Temperature {
    /// The zone's `type` (`cpu-thermal`, `CPU-therm`, `x86_pkg_temp`); a type that several
    /// zones share gets the zone's number after it (`acpitz_1`).
    pub zone: String,
    pub celsius: f64,
}

/// Every `thermal_zone*` under `dir` with a readable temperature, in zone order. Zones that
/// cannot be read now (some report an error while their sensor sleeps) are left out.
pub fn thermal_zones(dir: &Path) -> Vec<Temperature> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut zones: Vec<(u32, PathBuf)> = entries
        .filter_map(|e| {
            let e = e.ok()?;
            let n = e.file_name().to_str()?.strip_prefix("thermal_zone")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    zones.sort();
    let read = |path: &Path, file| std::fs::read_to_string(path.join(file)).ok();
    let found: Vec<(u32, String, f64)> = zones
        .into_iter()
        .filter_map(|(n, path)| {
            let milli: f64 = read(&path, "temp")?.trim().parse().ok()?;
            let kind = read(&path, "type").map(|t| t.trim().to_string()).filter(|t| valid_label(t));
            Some((n, kind.unwrap_or_else(|| format!("thermal_zone{n}")), milli / 1000.0))
        })
        .collect();
    found
        .iter()
        .map(|(n, kind, celsius)| {
            let shared = found.iter().filter(|(_, k, _)| k == kind).count() > 1;
            let zone = if shared { format!("{kind}_{n}") } else { kind.clone() };
            Temperature { zone, celsius: *celsius }
        })
        .collect()
}

/// A zone's type becomes a Prometheus label and a JSON key: short, printable, no quotes.
fn valid_label(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 40
        && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The Raspberry Pi firmware's throttling word (`vcgencmd get_throttled`): bits 0-3 say
/// what holds now, bits 16-19 what has happened since boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Throttling {
    pub bits: u32,
    pub under_voltage: bool,
    pub frequency_capped: bool,
    pub throttled: bool,
    pub soft_temperature_limit: bool,
    /// Any of the four at some time since boot.
    pub has_occurred: bool,
}

impl Throttling {
    pub fn from_bits(bits: u32) -> Throttling {
        Throttling {
            bits,
            under_voltage: bits & 0x1 != 0,
            frequency_capped: bits & 0x2 != 0,
            throttled: bits & 0x4 != 0,
            soft_temperature_limit: bits & 0x8 != 0,
            has_occurred: bits & 0xf_0000 != 0,
        }
    }

    /// The conditions that hold now, as `(label, on)`, for `/metrics`.
    pub fn now(&self) -> [(&'static str, bool); 4] {
        [
            ("under_voltage", self.under_voltage),
            ("frequency_capped", self.frequency_capped),
            ("throttled", self.throttled),
            ("soft_temperature_limit", self.soft_temperature_limit),
        ]
    }

    /// The sysfs file's text (`50005`, hex without a prefix) or vcgencmd's
    /// (`throttled=0x50005`).
    pub fn parse(text: &str) -> Option<Throttling> {
        let text = text.trim();
        let hex = text.strip_prefix("throttled=").unwrap_or(text);
        let hex = hex.strip_prefix("0x").or_else(|| hex.strip_prefix("0X")).unwrap_or(hex);
        u32::from_str_radix(hex, 16).ok().map(Throttling::from_bits)
    }
}

/// Where the throttling word comes from on this board, found once.
#[derive(Debug, Clone)]
pub enum ThrottleSource {
    File(PathBuf),
    Vcgencmd,
    None,
}

impl ThrottleSource {
    /// The sysfs file when the kernel has it, else `vcgencmd` when it answers, else none
    /// (not a Raspberry Pi).
    pub fn find(file: &Path) -> ThrottleSource {
        if std::fs::read_to_string(file).ok().and_then(|t| Throttling::parse(&t)).is_some() {
            return ThrottleSource::File(file.to_path_buf());
        }
        if vcgencmd().is_some() {
            return ThrottleSource::Vcgencmd;
        }
        ThrottleSource::None
    }

    pub fn read(&self) -> Option<Throttling> {
        match self {
            ThrottleSource::File(path) => Throttling::parse(&std::fs::read_to_string(path).ok()?),
            ThrottleSource::Vcgencmd => vcgencmd(),
            ThrottleSource::None => None,
        }
    }
}

fn vcgencmd() -> Option<Throttling> {
    let out = std::process::Command::new("vcgencmd")
        .arg("get_throttled")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status.success().then(|| Throttling::parse(&String::from_utf8_lossy(&out.stdout))).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(dir: &Path, n: u32, kind: Option<&str>, temp: Option<&str>) {
        let z = dir.join(format!("thermal_zone{n}"));
        std::fs::create_dir_all(&z).unwrap();
        if let Some(kind) = kind {
            std::fs::write(z.join("type"), format!("{kind}\n")).unwrap();
        }
        if let Some(temp) = temp {
            std::fs::write(z.join("temp"), format!("{temp}\n")).unwrap();
        }
    }

    #[test]
    fn thermal_zones_of_a_pi_a_jetson_and_a_pc() {
        let dir = tempfile::tempdir().unwrap();
        // A Pi 5 has one zone; a Jetson several named ones; PCs repeat acpitz.
        zone(dir.path(), 0, Some("cpu-thermal"), Some("52600"));
        zone(dir.path(), 1, Some("GPU-therm"), Some("48500"));
        zone(dir.path(), 2, Some("acpitz"), Some("27800"));
        zone(dir.path(), 10, Some("acpitz"), Some("29800"));
        zone(dir.path(), 3, Some("asleep"), Some("not a number"));
        zone(dir.path(), 4, Some("no temp"), None);
        zone(dir.path(), 5, Some("bad \"label\""), Some("-5000"));
        zone(dir.path(), 6, None, Some("40000"));
        std::fs::create_dir_all(dir.path().join("cooling_device0")).unwrap();
        let zones = thermal_zones(dir.path());
        let got: Vec<(&str, f64)> = zones.iter().map(|t| (t.zone.as_str(), t.celsius)).collect();
        assert_eq!(
            got,
            [
                ("cpu-thermal", 52.6),
                ("GPU-therm", 48.5),
                ("acpitz_2", 27.8),
                ("thermal_zone5", -5.0),
                ("thermal_zone6", 40.0),
                ("acpitz_10", 29.8),
            ]
        );
        assert!(thermal_zones(&dir.path().join("missing")).is_empty());
    }

    #[test]
    fn throttled_bits_from_sysfs_and_vcgencmd() {
        let t = Throttling::parse("throttled=0x50005\n").unwrap();
        assert!(t.under_voltage && t.throttled && !t.frequency_capped && !t.soft_temperature_limit);
        assert!(t.has_occurred);
        assert_eq!(t.bits, 0x50005);
        assert_eq!(Throttling::parse("50005\n"), Some(t));
        let calm = Throttling::parse("0").unwrap();
        assert!(!calm.has_occurred && calm.now().iter().all(|(_, on)| !on));
        let past = Throttling::parse("0x80000").unwrap();
        assert!(past.has_occurred && past.now().iter().all(|(_, on)| !on));
        let hot = Throttling::parse("0xa").unwrap();
        assert_eq!(hot.now().iter().filter(|(_, on)| *on).count(), 2);
        assert!(hot.frequency_capped && hot.soft_temperature_limit);
        assert_eq!(Throttling::parse("throttled=zz"), None);
        assert_eq!(Throttling::parse(""), None);
    }

    #[test]
    fn throttling_is_read_from_the_file_the_kernel_gives() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("get_throttled");
        std::fs::write(&file, "4\n").unwrap();
        let source = ThrottleSource::find(&file);
        assert!(matches!(source, ThrottleSource::File(_)), "{source:?}");
        assert!(source.read().unwrap().throttled);
        std::fs::write(&file, "0\n").unwrap();
        assert!(!source.read().unwrap().throttled);
    }
}
