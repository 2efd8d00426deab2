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
//! least recently used conversation is saved to disk (`spill`) when a disk cache is set,
//! else forgotten, and its next turn reads its history again.

use super::slots::Slots;
use super::spill::Spill;
use llama_cpp_2::context::session::LlamaStateSeqFlags;
use llama_cpp_2::context::LlamaContext;
use prometheus::IntGauge;

/// A sequence's keys and values, serialized by llama.cpp (`llama_state_seq_get_data`).
pub(super) fn seq_bytes(ctx: &LlamaContext<'_>, seq: i32) -> Option<Vec<u8>> {
    let flags = LlamaStateSeqFlags::empty();
    let size = ctx.state_seq_get_size_ext(seq, flags);
    let mut bytes = vec![0u8; size];
    // SAFETY: the buffer holds the size llama.cpp just reported for this sequence.
    let written = unsafe { ctx.state_seq_get_data_ext(bytes.as_mut_ptr(), seq, flags) };
    (written == size && size > 0).then_some(bytes)
}

/// Writes entries that [`seq_bytes`] produced for this model into sequence `seq`.
fn set_seq_bytes(ctx: &mut LlamaContext<'_>, bytes: &[u8], seq: i32) -> bool {
    // SAFETY: the bytes are llama.cpp's own serialization for this model: kept in RAM by
    // this process, or read back from a file `spill` wrote for the same model and build and
    // checked against its checksum. llama.cpp also checks their layout (layers, types, row
    // sizes) against the context, refusing a mismatch.
    unsafe { ctx.state_seq_set_data_ext(bytes, seq, LlamaStateSeqFlags::empty()) }
}

/// Parked KV entries, indexed like the slots.
pub(super) struct Parked {
    states: Vec<Option<(Vec<u8>, usize)>>,
    /// Tokens parked now.
    tokens: usize,
    /// Most tokens parked at once.
    budget: usize,
    gauge: IntGauge,
    /// Where forgotten conversations go, if anywhere.
    disk: Option<Spill>,
}

impl Parked {
    pub fn new(slots: usize, budget: usize, gauge: IntGauge, disk: Option<Spill>) -> Parked {
        Parked { states: (0..slots).map(|_| None).collect(), tokens: 0, budget, gauge, disk }
    }

    pub fn disk(&self) -> Option<&Spill> {
        self.disk.as_ref()
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
                        self.save_from(ctx, old, slots, false);
                        slots.clear(old);
                        tracing::debug!(
                            slot = old,
                            "a parked conversation left RAM: over the idle cache budget"
                        );
                    }
                    None => break,
                }
            }
            if self.tokens + tokens > self.budget {
                continue; // what is parked is kept for a request starting now
            }
            match seq_bytes(ctx, slot as i32) {
                Some(state) => {
                    if ctx.kv_cache_seq_rm(slot as i32, None, None).is_err() {
                        continue;
                    }
                    self.states[slot] = Some((state, tokens));
                    self.tokens += tokens;
                    self.gauge.add(tokens as i64);
                    slots.set_parked(slot);
                    parked += 1;
                }
                None => tracing::debug!(slot, "could not park an idle conversation"),
            }
        }
        parked
    }

    /// Writes `from`'s parked entries into sequence `into`, replacing what it held.
    /// They stay parked; [`Parked::discard`] them once `from` is taken.
    pub fn restore(&self, ctx: &mut LlamaContext<'_>, from: usize, into: i32) -> bool {
        let Some((state, _)) = &self.states[from] else { return false };
        let restored = set_seq_bytes(ctx, state, into);
        if !restored {
            tracing::debug!(from, into, "could not restore a parked conversation");
        }
        restored
    }

    /// Reads a conversation saved on disk into sequence `into`. Returns its tokens.
    pub fn load(&self, ctx: &mut LlamaContext<'_>, id: u64, into: i32) -> Option<Vec<i32>> {
        let (tokens, state) = self.disk.as_ref()?.take(id)?;
        if set_seq_bytes(ctx, &state, into) {
            return Some(tokens);
        }
        tracing::warn!("llama.cpp refused a saved conversation; its history is read again");
        let _ = ctx.kv_cache_seq_rm(into, None, None);
        None
    }

    /// Drops `slot`'s parked entries, if any.
    pub fn discard(&mut self, slot: usize) {
        self.take(slot);
    }

    fn take(&mut self, slot: usize) -> Option<Vec<u8>> {
        let (state, tokens) = self.states[slot].take()?;
        self.tokens -= tokens;
        self.gauge.sub(tokens as i64);
        Some(state)
    }

    /// Saves the conversation in an idle `slot` to disk (when there is a disk cache and it
    /// is long enough to be worth it), from its parked entries or from the KV cache, and
    /// drops its parked entries. The caller then reuses or clears the slot. `wait`: see
    /// [`Spill::save`].
    pub fn save_from(&mut self, ctx: &LlamaContext<'_>, slot: usize, slots: &Slots, wait: bool) {
        let parked = self.take(slot);
        let Some(disk) = &self.disk else { return };
        let s = slots.get(slot);
        if s.busy || s.cached.len() < super::spill::MIN_TOKENS {
            return;
        }
        if let Some(state) = parked.or_else(|| (!s.parked).then(|| seq_bytes(ctx, slot as i32)).flatten()) {
            disk.save(s.cached.clone(), state, wait);
        }
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        self.gauge.sub(self.tokens as i64);
    }
}
