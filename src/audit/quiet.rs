//! Refusals that are written down once per address and minute, not once per request.
//!
//! A client locked out of logging in is refused at once, without a password check, so it
//! could send thousands of refused attempts a second; writing each to the audit log (a
//! synced SQLite commit) would let it fill the disk and hold the one writer. The first
//! refusal of an address is recorded, with how many were left out since the last one;
//! the rest within [`QUIET`] are only counted. Failures (a password actually checked)
//! are always recorded: the throttle already limits them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long after a recorded refusal an address's next ones are only counted.
pub const QUIET: Duration = Duration::from_secs(60);
/// Addresses remembered at once; past this the oldest half is forgotten.
const MAX_TRACKED: usize = 10_000;

#[derive(Default)]
pub struct Quiet {
    seen: Mutex<HashMap<Option<IpAddr>, (Instant, u64)>>,
}

impl Quiet {
    /// The one for login and setup-code refusals.
    pub fn refusals() -> &'static Quiet {
        static ONE: OnceLock<Quiet> = OnceLock::new();
        ONE.get_or_init(Quiet::default)
    }

    /// `Some(left out since the last record)` when this refusal should be recorded now.
    pub fn record_now(&self, address: Option<IpAddr>, now: Instant) -> Option<u64> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= MAX_TRACKED && !seen.contains_key(&address) {
            let mut times: Vec<Instant> = seen.values().map(|(t, _)| *t).collect();
            times.sort_unstable();
            let cut = times[times.len() / 2];
            seen.retain(|_, (t, _)| *t > cut);
        }
        match seen.get_mut(&address) {
            Some((last, skipped)) if now.saturating_duration_since(*last) < QUIET => {
                *skipped += 1;
                None
            }
            Some((last, skipped)) => {
                let left_out = std::mem::take(skipped);
                *last = now;
                Some(left_out)
            }
            None => {
                seen.insert(address, (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_record_per_address_and_window_with_the_rest_counted() {
        let quiet = Quiet::default();
        let (a, b) = (Some("10.0.0.1".parse().unwrap()), Some("10.0.0.2".parse().unwrap()));
        let t0 = Instant::now();
        assert_eq!(quiet.record_now(a, t0), Some(0));
        assert_eq!(quiet.record_now(a, t0 + Duration::from_secs(1)), None);
        assert_eq!(quiet.record_now(a, t0 + Duration::from_secs(2)), None);
        assert_eq!(quiet.record_now(b, t0 + Duration::from_secs(2)), Some(0), "another address");
        assert_eq!(quiet.record_now(a, t0 + QUIET + Duration::from_secs(1)), Some(2), "two left out");
        assert_eq!(quiet.record_now(a, t0 + QUIET + Duration::from_secs(2)), None);
    }

    #[test]
    fn many_addresses_stay_bounded() {
        let quiet = Quiet::default();
        let t0 = Instant::now();
        for n in 0..(MAX_TRACKED as u32 + 10) {
            let ip = Some(IpAddr::from(n.to_be_bytes()));
            quiet.record_now(ip, t0 + Duration::from_millis(u64::from(n)));
        }
        assert!(quiet.seen.lock().unwrap().len() <= MAX_TRACKED);
    }
}
