//! A token bucket that refills continuously and may be overdrawn (a reply's tokens are
//! counted when it ends, after they were generated).

use std::time::Instant;

#[derive(Debug, Clone)]
pub(super) struct Bucket {
    level: f64,
    updated: Instant,
}

impl Bucket {
    /// A full bucket of `per_minute`.
    pub(super) fn full(per_minute: u32, now: Instant) -> Bucket {
        Bucket { level: f64::from(per_minute), updated: now }
    }

    fn refill(&mut self, per_minute: u32, now: Instant) {
        let rate = f64::from(per_minute) / 60.0;
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.level = (self.level + elapsed * rate).min(f64::from(per_minute));
        self.updated = now;
    }

    /// Takes `amount` if the bucket holds that much; else how many seconds until it does.
    pub(super) fn take(&mut self, amount: f64, per_minute: u32, now: Instant) -> Result<(), u64> {
        self.refill(per_minute, now);
        if self.level >= amount {
            self.level -= amount;
            return Ok(());
        }
        Err(self.wait_for(amount, per_minute))
    }

    /// Ok while anything is left; else how many seconds until one unit is.
    pub(super) fn check(&mut self, per_minute: u32, now: Instant) -> Result<(), u64> {
        self.refill(per_minute, now);
        if self.level > 0.0 {
            return Ok(());
        }
        Err(self.wait_for(f64::MIN_POSITIVE, per_minute))
    }

    /// Takes `amount` even past empty.
    pub(super) fn charge(&mut self, amount: f64, per_minute: u32, now: Instant) {
        self.refill(per_minute, now);
        self.level -= amount;
    }

    fn wait_for(&self, amount: f64, per_minute: u32) -> u64 {
        let rate = f64::from(per_minute) / 60.0;
        ((amount - self.level) / rate).ceil().max(1.0) as u64
    }

    /// Full again: nothing of this user's is worth keeping.
    pub(super) fn is_full(&mut self, per_minute: u32, now: Instant) -> bool {
        self.refill(per_minute, now);
        self.level >= f64::from(per_minute)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_up_to_the_minute_then_one_per_share() {
        let t0 = Instant::now();
        let mut b = Bucket::full(60, t0);
        for _ in 0..60 {
            b.take(1.0, 60, t0).unwrap();
        }
        assert_eq!(b.take(1.0, 60, t0), Err(1));
        assert_eq!(b.take(1.0, 60, t0 + Duration::from_millis(1000)), Ok(()));
        assert_eq!(b.take(2.0, 60, t0 + Duration::from_millis(1000)), Err(2));
    }

    #[test]
    fn an_overdraft_is_paid_back_before_anything_else() {
        let t0 = Instant::now();
        let mut b = Bucket::full(600, t0);
        b.charge(900.0, 600, t0);
        // 300 owed at 10 a second: 30 seconds.
        assert_eq!(b.check(600, t0), Err(30));
        assert_eq!(b.check(600, t0 + Duration::from_secs(29)), Err(1));
        assert_eq!(b.check(600, t0 + Duration::from_secs(31)), Ok(()));
        assert!(!b.is_full(600, t0 + Duration::from_secs(31)));
        assert!(b.is_full(600, t0 + Duration::from_secs(100)));
    }
}
