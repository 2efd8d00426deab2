//! Changing a llama.cpp context's thread counts between decodes, so that generation's
//! threads can follow the load (`governor/threads.rs`) without a new context.
//!
//! llama.cpp's `llama_set_n_threads` is reached through `LlamaContext::set_n_threads`, which
//! llama-cpp-2 0.1.160 lacks: Hearth builds a copy of that crate with the method added
//! (`vendor/llama-cpp-2`, `[patch.crates-io]` in Cargo.toml; `vendor/README.md`).

use llama_cpp_2::context::LlamaContext;

/// How many threads the context should have, and what it has.
pub(super) struct Plan {
    /// `[model] threads` and `threads_batch` as set (0: automatic).
    configured: (u32, u32),
    /// The counts the context was made with.
    start: (u32, u32),
    now: (u32, u32),
    governor: crate::governor::Governor,
}

/// What a [`Plan`] starts from.
pub(crate) struct ThreadSettings {
    pub configured: (u32, u32),
    pub start: (u32, u32),
    pub governor: crate::governor::Governor,
}

impl Plan {
    pub fn new(settings: ThreadSettings) -> Plan {
        let ThreadSettings { configured, start, governor } = settings;
        Plan { configured, start, now: start, governor }
    }

    /// The counts wanted now: generation's from the governor (an explicit setting, or
    /// following the load; one less under pressure); prompt reading gives up as many as
    /// generation did, unless it was set explicitly.
    pub fn wanted(&self) -> (u32, u32) {
        let threads = self.governor.generation_threads(self.configured.0, self.start.0);
        let batch = match self.configured.1 {
            0 => self.start.1.saturating_sub(self.start.0.saturating_sub(threads)).max(1),
            n => n,
        };
        (threads, batch)
    }

    /// Before a decode: puts the wanted counts in place when they changed.
    pub fn apply(&mut self, ctx: &mut LlamaContext<'_>) {
        let wanted = self.wanted();
        if wanted == self.now {
            return;
        }
        let count = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        ctx.set_n_threads(count(wanted.0), count(wanted.1));
        let read = |n: i32| u32::try_from(n).unwrap_or(0);
        self.now = (read(ctx.n_threads()), read(ctx.n_threads_batch()));
        tracing::debug!(threads = self.now.0, threads_batch = self.now.1, "generation threads changed");
    }

    /// The counts in use.
    pub fn now(&self) -> (u32, u32) {
        self.now
    }
}
