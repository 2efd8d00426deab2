//! Idle conversations wait outside the KV cache.
//!
//! In llama.cpp's unified KV cache every decode step attends over the whole range of
//! occupied cells, masking out other sequences' cells but still paying for them. A
//! conversation that finished its turn and kept its cache for the next one would so
//! slow down everyone else's replies: with seven idle conversations of 512 tokens each,
//! prompt reading and generation for the running one were 6-14% slower (llama.cpp alone,
//! 0.5B model, 2 threads). So while requests are running, the idle
//! sequences are *parked*: their keys and values are copied into RAM
//! (`llama_state_seq_get_data`) and removed from the cache. The conversation's next turn
//! copies them back (`llama_state_seq_set_data`, a memory copy of a few MB) instead of
//! reading its history again. Parked entries are bounded by a token budget; beyond it the
//! least recently used conversation is forgotten, and its next turn reads its history again.

use super::slots::Slots;
use llama_cpp_2::context::session::{LlamaStateSeqFlags, SeqState};
use llama_cpp_2::context::LlamaContext;
use prometheus::IntGauge;

/// Parked KV entries, indexed like the slots.
pub(super) struct Parked {
    states: Vec<Option<(SeqState, usize)>>,
    /// Tokens parked now.
    tokens: usize,
    /// Most tokens parked at once.
    budget: usize,
    gauge: IntGauge,
}

impl Parked {
    pub fn new(slots: usize, budget: usize, gauge: IntGauge) -> Parked {
        Parked { states: (0..slots).map(|_| None).collect(), tokens: 0, budget, gauge }
    }

    /// Moves every idle sequence still in the cache into RAM, forgetting the least recently
    /// used parked ones to make room. The slots in `keep` (a request about to start and the
    /// conversation it continues from) are neither parked nor forgotten. A sequence that
    /// does not fit the budget beside them, or one llama.cpp refused to copy, stays where it
    /// is. Returns how many were parked.
    pub fn park_idle(&mut self, ctx: &mut LlamaContext<'_>, slots: &mut Slots, keep: &[usize]) -> usize {
        let mut parked = 0;
        for slot in slots.resident_idle().into_iter().filter(|s| !keep.contains(s)) {
            let tokens = slots.get(slot).cached.len();
            if tokens > self.budget {
                continue; // would not fit even alone: it stays in the KV cache
            }
            while self.tokens + tokens > self.budget {
                match slots.parked_lru(keep) {
                    Some(old) => {
                        self.discard(old);
                        slots.clear(old);
                        tracing::debug!(
                            slot = old,
                            "forgot a parked conversation: over the idle cache budget"
                        );
                    }
                    None => break,
                }
            }
            if self.tokens + tokens > self.budget {
                continue; // what is parked is kept for a request starting now
            }
            match ctx.state_seq_get(slot as i32, LlamaStateSeqFlags::empty()) {
                Ok(state) => {
                    if ctx.kv_cache_seq_rm(slot as i32, None, None).is_err() {
                        continue;
                    }
                    self.states[slot] = Some((state, tokens));
                    self.tokens += tokens;
                    self.gauge.add(tokens as i64);
                    slots.set_parked(slot);
                    parked += 1;
                }
                Err(e) => tracing::debug!(slot, error = %e, "could not park an idle conversation"),
            }
        }
        parked
    }

    /// Writes `from`'s parked entries into sequence `into`, replacing what it held.
    /// They stay parked; [`Parked::discard`] them once `from` is taken.
    pub fn restore(&self, ctx: &mut LlamaContext<'_>, from: usize, into: i32) -> bool {
        let Some((state, _)) = &self.states[from] else { return false };
        match ctx.state_seq_set(state, into) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(from, into, error = %e, "could not restore a parked conversation");
                false
            }
        }
    }

    /// Drops `slot`'s parked entries, if any.
    pub fn discard(&mut self, slot: usize) {
        if let Some((_, tokens)) = self.states[slot].take() {
            self.tokens -= tokens;
            self.gauge.sub(tokens as i64);
        }
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        self.gauge.sub(self.tokens as i64);
    }
}
