//! How long to wait after a failed `getUpdates`, so that a network outage or a refusing
//! Telegram never makes the poller spin.

use super::api::BotError;
use std::time::Duration;

const FIRST: Duration = Duration::from_secs(1);
const MOST: Duration = Duration::from_secs(60);

/// Doubling waits from one second up to a minute; Telegram's `retry_after` wins.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    /// A call succeeded: the next failure waits the shortest time again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// The wait before trying again after `error`.
    pub fn after(&mut self, error: &BotError) -> Duration {
        self.failures = self.failures.saturating_add(1);
        if let Some(wait) = error.retry_after() {
            return wait.clamp(FIRST, Duration::from_secs(3600));
        }
        // A wrong token or another poller will not fix itself soon: wait the longest.
        if matches!(error.status(), Some(401 | 403 | 404 | 409)) {
            return MOST;
        }
        FIRST.saturating_mul(1 << (self.failures - 1).min(6)).min(MOST)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: u16, retry_after: Option<u64>) -> BotError {
        BotError::Refused { method: "getUpdates", status, description: String::new(), retry_after }
    }

    #[test]
    fn waits_double_up_to_a_minute_and_reset() {
        let network = BotError::Network { method: "getUpdates", reason: "down".into() };
        let mut b = Backoff::default();
        let waits: Vec<u64> = (0..9).map(|_| b.after(&network).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        b.reset();
        assert_eq!(b.after(&refused(502, None)), FIRST);
    }

    #[test]
    fn telegram_advice_and_lasting_refusals() {
        let mut b = Backoff::default();
        assert_eq!(b.after(&refused(429, Some(7))), Duration::from_secs(7));
        assert_eq!(b.after(&refused(409, None)), MOST);
        assert_eq!(b.after(&refused(401, None)), MOST);
    }
}
