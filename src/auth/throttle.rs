//! Slows down password guessing: failed logins (and setup-code attempts) are counted
//! per client address, and an address with too many recent failures is refused for the
//! rest of its window. Every failure also costs the client a fixed delay (in the
//! handler). In memory only: a restart forgets, which is acceptable for one box.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Failures allowed per address within one window.
pub const MAX_FAILURES: u32 = 10;
/// The window failures are counted in.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Delay added to every failed attempt.
pub const FAILURE_DELAY: Duration = Duration::from_millis(500);
/// Addresses tracked at once; beyond this, expired entries are dropped first.
const MAX_TRACKED: usize = 10_000;

#[derive(Default)]
pub struct Throttle {
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Throttle {
    /// The process-wide throttle for logins.
    pub fn logins() -> &'static Throttle {
        static LOGINS: OnceLock<Throttle> = OnceLock::new();
        LOGINS.get_or_init(Throttle::default)
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, (u32, Instant)>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Err(seconds to wait)` when this address is locked out.
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        let map = self.map();
        match map.get(&ip) {
            Some(&(count, start)) if count >= MAX_FAILURES && start.elapsed() < WINDOW => {
                Err((WINDOW - start.elapsed()).as_secs().max(1))
            }
            _ => Ok(()),
        }
    }

    pub fn record_failure(&self, ip: IpAddr) {
        let mut map = self.map();
        if map.len() >= MAX_TRACKED {
            map.retain(|_, (_, start)| start.elapsed() < WINDOW);
            if map.len() >= MAX_TRACKED {
                map.clear();
            }
        }
        let entry = map.entry(ip).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    /// Forgets an address's failures.
    pub fn record_success(&self, ip: IpAddr) {
        self.map().remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_many_failures_lock_an_address_out() {
        let throttle = Throttle::default();
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        let other: IpAddr = "10.0.0.8".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            assert!(throttle.check(ip).is_ok());
            throttle.record_failure(ip);
        }
        let wait = throttle.check(ip).unwrap_err();
        assert!(wait > 0 && wait <= WINDOW.as_secs());
        assert!(throttle.check(other).is_ok(), "other addresses are unaffected");
        throttle.record_success(ip);
        assert!(throttle.check(ip).is_ok());
    }
}
