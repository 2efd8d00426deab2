//! Rate limits and fair shares: how much each user may ask of the box (`[limits]`), so
//! that one user's burst cannot starve the others.
//!
//! - Requests per minute per user (all their tokens and sessions together), checked by the
//!   auth middleware once the caller is known; and a token's own limit, when it was made
//!   with one (an integration's token kept below its user's share).
//! - Generated tokens per minute per user: a reply is counted when it ends (its
//!   [`Share`] is charged), and a user over the limit starts no new generation until the
//!   minute's share has refilled.
//! - Generations per user at once (queued or running): a user's burst holds at most this
//!   many of the engine's places, so the others' requests still get in. Together with
//!   the engine's bounded queue this is the fair queueing: what one user cannot take
//!   stays free for the rest.
//! - Uploads per day are counted from the documents table (`store`), so a restart does
//!   not reset them.
//!
//! Everything refused says how long to wait ([`Refusal::retry_after`]); the HTTP layer
//! answers 429 with `Retry-After`. Owners that are not users (the console, voice
//! satellites) are not limited here.

mod bucket;

use crate::config::LimitSettings;
use crate::engine::Owner;
use bucket::Bucket;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Why a request was refused, and how long to wait before trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// More than `requests_per_minute`.
    Requests { limit: u32, retry_after: u64 },
    /// More than the token's own `requests_per_minute`.
    TokenRequests { limit: u32, retry_after: u64 },
    /// More than `tokens_per_minute` generated.
    Tokens { limit: u32, retry_after: u64 },
    /// Already `generations_per_user` generations queued or running.
    Generations { limit: u32 },
    /// More than `uploads_per_day`.
    Uploads { limit: u32, retry_after: u64 },
}

impl Refusal {
    /// Seconds to wait before a retry can succeed.
    pub fn retry_after(&self) -> u64 {
        match self {
            Refusal::Requests { retry_after, .. }
            | Refusal::TokenRequests { retry_after, .. }
            | Refusal::Tokens { retry_after, .. }
            | Refusal::Uploads { retry_after, .. } => *retry_after,
            // A place comes back as soon as one of one's own replies ends.
            Refusal::Generations { .. } => 1,
        }
    }

    /// The limit's name, as on `/metrics`.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::Requests { .. } => "requests",
            Refusal::TokenRequests { .. } => "token_requests",
            Refusal::Tokens { .. } => "tokens",
            Refusal::Generations { .. } => "generations",
            Refusal::Uploads { .. } => "uploads",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Requests { limit, retry_after } => write!(
                f,
                "too many requests: the limit is {limit} a minute per user; retry in {retry_after} s"
            ),
            Refusal::TokenRequests { limit, retry_after } => write!(
                f,
                "too many requests: this token's limit is {limit} a minute; retry in {retry_after} s"
            ),
            Refusal::Tokens { limit, retry_after } => write!(
                f,
                "too much generated: the limit is {limit} tokens a minute per user; retry in {retry_after} s"
            ),
            Refusal::Generations { limit } => {
                write!(f, "you already have {limit} replies queued or being written; wait for one to finish")
            }
            Refusal::Uploads { limit, retry_after } => write!(
                f,
                "too many uploads: the limit is {limit} documents a day per user; retry in {retry_after} s"
            ),
        }
    }
}

#[derive(Default)]
struct UserState {
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
    generating: u32,
}

struct Inner {
    settings: LimitSettings,
    generations_per_user: u32,
    /// The engine's places (`queue_size` + `parallel`), shared out among the users who
    /// are generating.
    places: u32,
    users: Mutex<HashMap<i64, UserState>>,
    /// Request buckets of tokens with a limit of their own (and that limit), by token id.
    tokens: Mutex<HashMap<i64, (u32, Bucket)>>,
}

/// The box's limits and each user's use of them. Cheap to clone; shared by every engine
/// and the HTTP layer.
#[derive(Clone)]
pub struct Limiter {
    inner: Arc<Inner>,
}

impl Limiter {
    /// `queue_size` and `parallel` (from `[model]`) size the default generations per user.
    pub fn new(settings: LimitSettings, queue_size: usize, parallel: u32) -> Limiter {
        let generations_per_user = match settings.generations_per_user {
            0 => (u32::try_from(queue_size).unwrap_or(u32::MAX) / 4).saturating_add(parallel).max(2),
            n => n,
        };
        let places = u32::try_from(queue_size).unwrap_or(u32::MAX).saturating_add(parallel).max(1);
        Limiter {
            inner: Arc::new(Inner {
                settings,
                generations_per_user,
                places,
                users: Mutex::default(),
                tokens: Mutex::default(),
            }),
        }
    }

    /// No limits at all (the console, tests of other parts).
    pub fn unlimited() -> Limiter {
        let settings = LimitSettings {
            requests_per_minute: 0,
            tokens_per_minute: 0,
            uploads_per_day: 0,
            generations_per_user: u32::MAX,
        };
        Limiter::new(settings, usize::MAX, u32::MAX)
    }

    pub fn settings(&self) -> &LimitSettings {
        &self.inner.settings
    }

    /// Generations one user may have queued or running at once.
    pub fn generations_per_user(&self) -> u32 {
        self.inner.generations_per_user
    }

    fn users(&self) -> std::sync::MutexGuard<'_, HashMap<i64, UserState>> {
        self.inner.users.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts one request made with token `token` whose own limit is `limit` a minute
    /// (after its user's [`Limiter::request`] passed).
    pub fn token_request(&self, token: i64, limit: u32) -> Result<(), Refusal> {
        let now = Instant::now();
        let mut tokens = self.inner.tokens.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (_, bucket) = tokens.entry(token).or_insert_with(|| (limit, Bucket::full(limit, now)));
        let taken = bucket.take(1.0, limit, now);
        if tokens.len() > 4096 {
            tokens.retain(|_, (limit, b)| !b.is_full(*limit, now));
        }
        taken.map_err(|retry_after| Refusal::TokenRequests { limit, retry_after })
    }

    /// Counts one request of `user`'s.
    pub fn request(&self, user: i64) -> Result<(), Refusal> {
        let limit = self.inner.settings.requests_per_minute;
        if limit == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut users = self.users();
        let state = users.entry(user).or_default();
        let bucket = state.requests.get_or_insert_with(|| Bucket::full(limit, now));
        let taken = bucket.take(1.0, limit, now);
        if users.len() > 4096 {
            self.forget_idle(&mut users, now);
        }
        taken.map_err(|retry_after| Refusal::Requests { limit, retry_after })
    }

    /// Admits a generation for `owner`: its share of the engine's places, held until the
    /// [`Share`] is dropped.
    pub fn admit(&self, owner: Owner) -> Result<Share, Refusal> {
        let Some(user) = owner.user_id() else {
            return Ok(Share { limiter: None, user: 0 });
        };
        let now = Instant::now();
        let mut users = self.users();
        let state = users.entry(user).or_default();
        let tokens = self.inner.settings.tokens_per_minute;
        if tokens > 0 {
            let bucket = state.tokens.get_or_insert_with(|| Bucket::full(tokens, now));
            bucket
                .check(tokens, now)
                .map_err(|retry_after| Refusal::Tokens { limit: tokens, retry_after })?;
        }
        let limit = self.fair_share(&users, user);
        let state = users.entry(user).or_default();
        if state.generating >= limit {
            return Err(Refusal::Generations { limit });
        }
        state.generating += 1;
        Ok(Share { limiter: Some(self.clone()), user })
    }

    /// Checks that `user`, who uploaded `recent` documents in the last 24 hours (the oldest
    /// `oldest_age_secs` ago), may upload `more`.
    pub fn uploads(&self, recent: u32, oldest_age_secs: u64, more: u32) -> Result<(), Refusal> {
        let limit = self.inner.settings.uploads_per_day;
        if limit == 0 || recent.saturating_add(more) <= limit {
            return Ok(());
        }
        let retry_after = 86_400u64.saturating_sub(oldest_age_secs).max(1);
        Err(Refusal::Uploads { limit, retry_after })
    }

    /// How many places `user` may hold now: the configured most, and no more than an even
    /// share of the engine's places among the users generating (`user` among them). When
    /// every user keeps to their share the queue never fills, so each gets the same.
    fn fair_share(&self, users: &HashMap<i64, UserState>, user: i64) -> u32 {
        let others = users.iter().filter(|(id, s)| **id != user && s.generating > 0).count() as u32;
        let even = (self.inner.places / (others + 1)).max(1);
        self.inner.generations_per_user.min(even)
    }

    /// Replies being generated or queued for `user` now.
    pub fn generating(&self, user: i64) -> u32 {
        self.users().get(&user).map_or(0, |s| s.generating)
    }

    fn forget_idle(&self, users: &mut HashMap<i64, UserState>, now: Instant) {
        let (requests, tokens) =
            (self.inner.settings.requests_per_minute, self.inner.settings.tokens_per_minute);
        users.retain(|_, s| {
            let requests_full = s.requests.as_mut().is_none_or(|b| b.is_full(requests, now));
            let tokens_full = s.tokens.as_mut().is_none_or(|b| b.is_full(tokens, now));
            s.generating > 0 || !requests_full || !tokens_full
        });
    }
}

/// A generation's place in its user's share: dropped when the reply ends or is abandoned.
pub struct Share {
    limiter: Option<Limiter>,
    user: i64,
}

impl Share {
    /// A share that counts nothing (tests, owners that are not users).
    pub fn none() -> Share {
        Share { limiter: None, user: 0 }
    }

    /// Counts `tokens` generated against the user's tokens per minute.
    pub fn charge(&self, tokens: u32) {
        let Some(limiter) = &self.limiter else { return };
        let limit = limiter.inner.settings.tokens_per_minute;
        if limit == 0 || tokens == 0 {
            return;
        }
        let now = Instant::now();
        let mut users = limiter.users();
        let state = users.entry(self.user).or_default();
        state.tokens.get_or_insert_with(|| Bucket::full(limit, now)).charge(f64::from(tokens), limit, now);
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        if let Some(limiter) = &self.limiter {
            if let Some(state) = limiter.users().get_mut(&self.user) {
                state.generating = state.generating.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests;
