//! Idle conversations wait outside the KV cache.
//!
//! The KV cache has a sequence for each request that may run at once. With llama.cpp's
//! default layout each sequence has its own cells (a *stream*), and a finished conversation
//! stays in its stream, costing nobody anything, until a new conversation needs the
//! sequence. It is then *parked*: its keys and values are copied into RAM
//! (`llama_state_seq_get_data`) and the sequence is emptied. Its next turn copies them back
//! into whichever sequence is free (`llama_state_seq_set_data`, a memory copy of a few MB)
//! instead of reading its history again.
//!
//! When `model.kv_cache_tokens` asks for fewer cells than every sequence could fill, the
//! sequences share one unified cache instead. There every decode step attends over the
//! whole range of occupied cells, masking out other sequences' cells but still paying for
//! them: with seven idle conversations of 512 tokens each, prompt reading and generation
//! for the running one were 6-14% slower (llama.cpp alone, 0.5B model, 2 threads). So in
//! that layout idle conversations are parked as soon as another request runs.
//!
//! Parked entries are bounded by a token budget; beyond it the least recently used one is
//! saved to disk (`spill`) when a disk cache is set, else forgotten, and its next turn reads
//! its history again.

use super::slots::{common_prefix, Slots};
use super::spill::{Spill, MIN_TOKENS};
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

/// Writes entries that [`seq_bytes`] produced for this model into the empty sequence `seq`
/// and keeps their first `keep` tokens. On failure the sequence is left empty.
pub(super) fn write(ctx: &mut LlamaContext<'_>, state: &[u8], seq: i32, keep: usize) -> bool {
    // SAFETY: the bytes are llama.cpp's own serialization for this model: taken from this
    // context, or read back from a file `spill` wrote for the same model and build and
    // checked against its checksum. llama.cpp also checks their layout (layers, types, row
    // sizes) against the context, refusing a mismatch.
    let set = unsafe { ctx.state_seq_set_data_ext(state, seq, LlamaStateSeqFlags::empty()) };
    if set && ctx.kv_cache_seq_rm(seq, Some(keep as u32), None).is_ok() {
        return true;
    }
    tracing::debug!(seq, "could not write a conversation's cache back");
    let _ = ctx.kv_cache_seq_rm(seq, None, None);
    false
}

/// One parked conversation.
struct Entry {
    tokens: Vec<i32>,
    state: Vec<u8>,
    last_used: u64,
}

/// A conversation in RAM that a prompt can start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Found {
    pub index: usize,
    /// Tokens the prompt can reuse (never its last one).
    pub shared: usize,
    /// The whole entry is a prefix of the prompt: the same conversation, going on.
    pub continues: bool,
}

/// Conversations parked in RAM, and the disk cache behind them.
pub(super) struct Parked {
    entries: Vec<Entry>,
    /// Tokens parked now.
    tokens: usize,
    /// Most tokens parked at once.
    budget: usize,
    clock: u64,
    gauge: IntGauge,
    /// Where conversations go that leave RAM, if anywhere.
    disk: Option<Spill>,
}

impl Parked {
    pub fn new(budget: usize, gauge: IntGauge, disk: Option<Spill>) -> Parked {
        Parked { entries: Vec::new(), tokens: 0, budget, clock: 0, gauge, disk }
    }

    pub fn disk(&self) -> Option<&Spill> {
        self.disk.as_ref()
    }

    /// The parked conversation sharing the longest prefix with `prompt`, if it spares more
    /// than `reuse` tokens.
    pub fn find(&self, prompt: &[i32], reuse: usize) -> Option<Found> {
        let most = prompt.len().saturating_sub(1);
        self.entries
            .iter()
            .enumerate()
            .map(|(index, e)| {
                let common = common_prefix(&e.tokens, prompt);
                Found { index, shared: common.min(most), continues: common == e.tokens.len() }
            })
            .filter(|f| f.shared > reuse)
            .max_by_key(|f| f.shared)
    }

    /// A parked conversation's entries, to [`write`] into a sequence. One that continues
    /// leaves RAM (it is about to be in the KV cache); another only lends its prefix and stays.
    pub fn checkout(&mut self, found: Found) -> Vec<u8> {
        self.clock += 1;
        if !found.continues {
            let entry = &mut self.entries[found.index];
            entry.last_used = self.clock;
            return entry.state.clone();
        }
        let entry = self.entries.swap_remove(found.index);
        self.tokens -= entry.tokens.len();
        self.gauge.sub(entry.tokens.len() as i64);
        entry.state
    }

    /// Moves the idle conversation in `slot` out of the KV cache and empties the slot: into
    /// RAM when it fits the budget (the least recently used entries leaving for the disk
    /// cache to make room), else to the disk cache. Returns whether it was parked in RAM.
    pub fn evict(&mut self, ctx: &mut LlamaContext<'_>, slot: usize, slots: &mut Slots) -> bool {
        let parked = self.copy_out(ctx, slot, slots, false);
        let _ = ctx.kv_cache_seq_rm(slot as i32, None, None);
        slots.clear(slot);
        parked
    }

    /// Keeps a copy of the idle conversation in `slot` (RAM first, as [`Parked::evict`]),
    /// leaving the slot as it is. `wait`: see [`Spill::save`]. Returns whether it was parked
    /// in RAM.
    pub fn copy_out(&mut self, ctx: &LlamaContext<'_>, slot: usize, slots: &Slots, wait: bool) -> bool {
        let s = slots.get(slot);
        let worth_disk = self.disk.is_some() && s.cached.len() >= MIN_TOKENS;
        if s.busy || s.cached.is_empty() || (s.cached.len() > self.budget && !worth_disk) {
            return false;
        }
        let Some(state) = seq_bytes(ctx, slot as i32) else {
            tracing::debug!(slot, "could not copy an idle conversation out of the KV cache");
            return false;
        };
        if s.cached.len() > self.budget {
            self.to_disk(s.cached.clone(), state, wait);
            return false;
        }
        self.park(s.cached.clone(), state);
        true
    }

    /// Parks entries in RAM, making room first; older versions of the same conversation
    /// (prefixes of it) are dropped.
    fn park(&mut self, tokens: Vec<i32>, state: Vec<u8>) {
        let mut i = 0;
        while i < self.entries.len() {
            if common_prefix(&self.entries[i].tokens, &tokens) == self.entries[i].tokens.len() {
                self.remove(i);
            } else {
                i += 1;
            }
        }
        while self.tokens + tokens.len() > self.budget && !self.entries.is_empty() {
            let oldest =
                (0..self.entries.len()).min_by_key(|&i| self.entries[i].last_used).expect("not empty");
            let entry = self.remove(oldest);
            tracing::debug!(
                tokens = entry.tokens.len(),
                "a parked conversation left RAM: over the idle cache budget"
            );
            self.to_disk(entry.tokens, entry.state, false);
        }
        self.clock += 1;
        self.tokens += tokens.len();
        self.gauge.add(tokens.len() as i64);
        self.entries.push(Entry { tokens, state, last_used: self.clock });
    }

    fn remove(&mut self, index: usize) -> Entry {
        let entry = self.entries.swap_remove(index);
        self.tokens -= entry.tokens.len();
        self.gauge.sub(entry.tokens.len() as i64);
        entry
    }

    fn to_disk(&self, tokens: Vec<i32>, state: Vec<u8>, wait: bool) {
        if let Some(disk) = &self.disk {
            if tokens.len() >= MIN_TOKENS {
                disk.save(tokens, state, wait);
            }
        }
    }

    /// In the unified layout: parks every idle conversation but those in `keep` (a request
    /// about to start and the one it copies from), when it fits the budget; one that does
    /// not stays in the KV cache. Returns how many were parked.
    pub fn park_idle(&mut self, ctx: &mut LlamaContext<'_>, slots: &mut Slots, keep: &[usize]) -> usize {
        let idle = slots.resident_idle().into_iter().filter(|s| !keep.contains(s));
        let fitting: Vec<usize> = idle.filter(|&s| slots.get(s).cached.len() <= self.budget).collect();
        fitting.into_iter().filter(|&slot| self.evict(ctx, slot, slots)).count()
    }

    /// Reads a conversation saved on disk into the empty sequence `into`, keeping its first
    /// `keep` tokens. Returns whether it could.
    pub fn load(&self, ctx: &mut LlamaContext<'_>, id: u64, into: i32, keep: usize) -> bool {
        let Some((_, state)) = self.disk.as_ref().and_then(|d| d.take(id)) else { return false };
        let loaded = write(ctx, &state, into, keep);
        if !loaded {
            tracing::warn!("llama.cpp refused a saved conversation; its history is read again");
        }
        loaded
    }

    /// Forgets every parked conversation (not the disk cache).
    pub fn clear(&mut self) {
        while !self.entries.is_empty() {
            self.remove(0);
        }
    }

    /// Saves every idle conversation, in the KV cache or parked, to the disk cache (when
    /// there is one), waiting for room in the writer's queue.
    pub fn save_all(&mut self, ctx: &LlamaContext<'_>, slots: &Slots) {
        if self.disk.is_none() {
            return;
        }
        for slot in slots.resident_idle() {
            if slots.get(slot).cached.len() >= MIN_TOKENS {
                if let Some(state) = seq_bytes(ctx, slot as i32) {
                    self.to_disk(slots.get(slot).cached.clone(), state, true);
                }
            }
        }
        while !self.entries.is_empty() {
            let entry = self.remove(0);
            self.to_disk(entry.tokens, entry.state, true);
        }
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        self.gauge.sub(self.tokens as i64);
    }
}
