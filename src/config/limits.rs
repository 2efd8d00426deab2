//! `[limits]`: how much each user may ask of the box, so that one user's burst cannot
//! starve the others (`rate/`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Authenticated requests per minute per user, all their tokens and sessions together
    /// (0: no limit). A short burst up to this many is allowed; then one more every
    /// 60/N seconds.
    pub requests_per_minute: u32,
    /// Tokens the model may generate per minute per user (0: no limit). A reply is counted
    /// when it ends; once over, new generations wait until the minute's share refills.
    pub tokens_per_minute: u32,
    /// Documents a user may upload per 24 hours (0: no limit).
    pub uploads_per_day: u32,
    /// Generations one user may have queued or running at once, so that one user's burst
    /// cannot fill the engine's queue (and never more than an even share of the engine's
    /// places among the users generating) (0: a quarter of `model.queue_size` plus
    /// `model.parallel`, at least 2).
    pub generations_per_user: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            requests_per_minute: 600,
            tokens_per_minute: 0,
            uploads_per_day: 500,
            generations_per_user: 0,
        }
    }
}
