//! Slows down password guessing: login (and setup-code) attempts are counted per client
//! address, and an address with too many recent failures is refused for the rest of its
//! window. Every failure also costs the client a fixed delay (in the handler). In memory
//! only: a restart forgets, which is acceptable for one box.
//!
//! An attempt is counted when it begins, before the password is checked, under the same
//! lock as the check ([`Throttle::begin`]), and given back only when it turns out not to
//! be a wrong guess ([`Attempt::refund`]). Checking first and counting after the
//! verification let a burst of parallel logins all pass the check together. Password
//! verifications (Argon2: 19 MiB and tens of milliseconds of a core each) are also bounded
//! across all addresses ([`Throttle::verifier`]), so a burst from many addresses cannot
//! fill the blocking pool and the memory with them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Failures allowed per address within one window.
pub const MAX_FAILURES: u32 = 10;
/// The window failures are counted in.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Delay added to every failed attempt.
pub const FAILURE_DELAY: Duration = Duration::from_millis(500);
/// Password verifications running at once, from all addresses together: about the cores
/// of a small box, each verification taking one core and 19 MiB.
pub const MAX_VERIFYING: usize = 2;
/// How long an attempt waits for a verification to finish before it is refused as busy.
pub const VERIFY_WAIT: Duration = Duration::from_secs(2);
/// Addresses tracked at once; beyond this, expired entries are dropped first.
const MAX_TRACKED: usize = 10_000;

/// Attempts counted for one address, and when its window began.
#[derive(Clone, Copy)]
struct Entry {
    count: u32,
    start: Instant,
}

pub struct Throttle {
    attempts: Mutex<HashMap<IpAddr, Entry>>,
    max_failures: u32,
    verifying: Arc<Semaphore>,
    verify_wait: Duration,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new(MAX_FAILURES, MAX_VERIFYING, VERIFY_WAIT)
    }
}

/// One attempt, counted as a failure unless [`Attempt::refund`]ed.
#[must_use = "an attempt counts as a failure unless refunded"]
pub struct Attempt<'a> {
    throttle: &'a Throttle,
    ip: IpAddr,
    start: Instant,
}

impl Attempt<'_> {
    /// Gives the attempt back: it was not a wrong guess (a success, a malformed request,
    /// or the server too busy to check it).
    pub fn refund(self) {
        let mut map = self.throttle.map();
        if let Some(entry) = map.get_mut(&self.ip) {
            // Only within the window the attempt was counted in.
            if entry.start == self.start {
                entry.count = entry.count.saturating_sub(1);
            }
        }
    }
}

impl Throttle {
    pub fn new(max_failures: u32, max_verifying: usize, verify_wait: Duration) -> Throttle {
        Throttle {
            attempts: Mutex::default(),
            max_failures,
            verifying: Arc::new(Semaphore::new(max_verifying.max(1))),
            verify_wait,
        }
    }

    /// The process-wide throttle for logins.
    pub fn logins() -> &'static Throttle {
        static LOGINS: OnceLock<Throttle> = OnceLock::new();
        LOGINS.get_or_init(Throttle::default)
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Entry>> {
        self.attempts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts an attempt from `ip`, or refuses it with `Err(seconds to wait)` when the
    /// address has used up its window: failures and attempts still being checked together.
    pub fn begin(&self, ip: IpAddr) -> Result<Attempt<'_>, u64> {
        let mut map = self.map();
        if map.len() >= MAX_TRACKED && !map.contains_key(&ip) {
            map.retain(|_, e| e.start.elapsed() < WINDOW);
            if map.len() >= MAX_TRACKED {
                map.clear();
            }
        }
        let entry = map.entry(ip).or_insert(Entry { count: 0, start: Instant::now() });
        if entry.start.elapsed() >= WINDOW {
            *entry = Entry { count: 0, start: Instant::now() };
        }
        if entry.count >= self.max_failures {
            return Err((WINDOW.saturating_sub(entry.start.elapsed())).as_secs().max(1));
        }
        entry.count += 1;
        Ok(Attempt { throttle: self, ip, start: entry.start })
    }

    /// A turn to verify a password, waiting a little for one; `None` when the box is
    /// still busy verifying others after that. Move the turn into the blocking task that
    /// verifies: a client that goes away does not stop that task, so its turn must last
    /// as long as the task does.
    pub async fn verifier(&self) -> Option<OwnedSemaphorePermit> {
        let turn = self.verifying.clone().acquire_owned();
        tokio::time::timeout(self.verify_wait, turn).await.ok()?.ok()
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
            let _failed = throttle.begin(ip).unwrap();
        }
        let wait = throttle.begin(ip).err().unwrap();
        assert!(wait > 0 && wait <= WINDOW.as_secs());
        assert!(throttle.begin(other).is_ok(), "other addresses are unaffected");
    }

    #[test]
    fn attempts_are_counted_before_they_are_checked_and_refunds_give_them_back() {
        let throttle = Throttle::new(3, 1, Duration::ZERO);
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        // Three attempts in flight at once use up the address: a fourth is refused while
        // none of them has failed yet.
        let running: Vec<Attempt<'_>> = (0..3).map(|_| throttle.begin(ip).unwrap()).collect();
        assert!(throttle.begin(ip).is_err());
        // Two turn out to be right (or not guesses at all): their places come back.
        let mut running = running.into_iter();
        running.next().unwrap().refund();
        running.next().unwrap().refund();
        let _ = throttle.begin(ip).unwrap();
        let _ = throttle.begin(ip).unwrap();
        assert!(throttle.begin(ip).is_err());
    }

    #[test]
    fn parallel_attempts_never_pass_the_limit() {
        let throttle = Throttle::new(MAX_FAILURES, 1, Duration::ZERO);
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        let passed = std::sync::atomic::AtomicU32::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..10 {
                        if throttle.begin(ip).is_ok() {
                            passed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(passed.into_inner(), MAX_FAILURES);
    }

    #[tokio::test]
    async fn verifications_are_bounded_across_addresses() {
        let throttle = Throttle::new(MAX_FAILURES, 2, Duration::from_millis(50));
        let a = throttle.verifier().await.expect("a first turn");
        let _b = throttle.verifier().await.expect("a second turn");
        assert!(throttle.verifier().await.is_none(), "a third waits, then is refused");
        drop(a);
        assert!(throttle.verifier().await.is_some());
    }
}
