//! Changing a llama.cpp context's thread counts between decodes, so that generation's
//! threads can follow the load (`governor/threads.rs`) without a new context.
//!
//! llama.cpp has `llama_set_n_threads`, but llama-cpp-2 (0.1.160) keeps the context's
//! pointer to itself. It is the only pointer-like word of `LlamaContext` (beside it: an
//! empty `Vec` of backend samplers, whose pointer is dangling, i.e. its alignment); the
//! word is taken only if exactly one such word exists and llama.cpp reads the context's own
//! window and batch sizes back through it. Otherwise the threads stay as they were (and
//! the log says so once). The size check below fails the build if the crate's layout
//! changes, so a new llama-cpp-2 is looked at before this is trusted again.

use llama_cpp_2::context::LlamaContext;
use std::mem::size_of;

const WORDS: usize = 4;
const _: () = assert!(size_of::<LlamaContext<'static>>() == WORDS * size_of::<usize>());

/// The raw context, found and checked as the module says; `None` if it cannot be.
pub(super) fn raw_context(ctx: &LlamaContext<'_>) -> Option<*mut llama_cpp_sys_2::llama_context> {
    // SAFETY: `LlamaContext` is 4 words with no padding (a non-null pointer, a `Vec` of
    // three words, zero-sized markers: the assertion above), so reading it as 4 initialised
    // words is sound; nothing is written and the copy is not used as a context.
    let words: [usize; WORDS] = unsafe { std::ptr::read(std::ptr::from_ref(ctx).cast::<[usize; WORDS]>()) };
    let mut pointers = words.iter().filter(|w| **w > 0xffff && **w % std::mem::align_of::<usize>() == 0);
    let (Some(&only), None) = (pointers.next(), pointers.next()) else { return None };
    let raw = only as *mut llama_cpp_sys_2::llama_context;
    // SAFETY: `raw` is the only heap pointer in the struct, and the Vec's is dangling (no
    // samplers are attached), so it is the context; the reads check it before any write.
    let matches = unsafe {
        llama_cpp_sys_2::llama_n_ctx(raw) == ctx.n_ctx()
            && llama_cpp_sys_2::llama_n_batch(raw) == ctx.n_batch()
    };
    matches.then_some(raw)
}

/// Sets the threads for generation and for prompt reading; the next decode uses them.
pub(super) fn set(raw: *mut llama_cpp_sys_2::llama_context, threads: u32, threads_batch: u32) {
    // SAFETY: `raw` came from `raw_context` for the context the caller owns (the engine
    // thread), and no decode runs while the counts change.
    unsafe { llama_cpp_sys_2::llama_set_n_threads(raw, threads as i32, threads_batch as i32) };
}

/// The threads for generation and prompt reading the context has now.
pub(super) fn get(raw: *mut llama_cpp_sys_2::llama_context) -> (u32, u32) {
    // SAFETY: as for `set`.
    unsafe {
        (llama_cpp_sys_2::llama_n_threads(raw) as u32, llama_cpp_sys_2::llama_n_threads_batch(raw) as u32)
    }
}

/// How many threads the context should have, and what it has.
pub(super) struct Plan {
    raw: Option<*mut llama_cpp_sys_2::llama_context>,
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
    pub fn new(ctx: &LlamaContext<'_>, settings: ThreadSettings) -> Plan {
        let raw = raw_context(ctx);
        if raw.is_none() {
            tracing::warn!("cannot change this llama.cpp context's threads: they stay as they started");
        }
        let ThreadSettings { configured, start, governor } = settings;
        Plan { raw, configured, start, now: start, governor }
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
    pub fn apply(&mut self) {
        let Some(raw) = self.raw else { return };
        let wanted = self.wanted();
        if wanted == self.now {
            return;
        }
        set(raw, wanted.0, wanted.1);
        self.now = get(raw);
        tracing::debug!(threads = self.now.0, threads_batch = self.now.1, "generation threads changed");
    }

    /// The counts in use.
    pub fn now(&self) -> (u32, u32) {
        self.now
    }
}
