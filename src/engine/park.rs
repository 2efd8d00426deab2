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
//!
//! Each entry keeps its owner: a prompt only ever starts from its own owner's entries.

use super::slots::{common_prefix, Slots};
use super::spill::{Spill, MIN_TOKENS};
use super::Owner;
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
    owner: Owner,
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

    /// The conversation parked for `owner` sharing the longest prefix with `prompt`, if it
    /// spares more than `reuse` tokens.
    pub fn find(&self, prompt: &[i32], reuse: usize, owner: Owner) -> Option<Found> {
        let most = prompt.len().saturating_sub(1);
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.owner == owner)
            .map(|(index, e)| {
                let common = common_prefix(&e.tokens, prompt);
                Found { index, shared: common.min(most), continues: common == e.tokens.len() }
            })
            .filter(|f| f.shared > reuse)
            .max_by_key(|f| f.shared)
    }

    /// Takes a parked conversation out of RAM, to [`write`] into a sequence: its tokens and
    /// entries. One that only lends its prefix to another is [`Parked::park`]ed again.
    pub fn checkout(&mut self, found: Found) -> (Owner, Vec<i32>, Vec<u8>) {
        let entry = self.remove(found.index);
        (entry.owner, entry.tokens, entry.state)
    }

    /// Moves the idle conversation in `slot` out of the KV cache and empties the slot: into
    /// RAM when it fits the budget (the least recently used entries leaving for the disk
    /// cache to make room), else to the disk cache. Returns whether it was parked in RAM.
    pub fn evict(&mut self, ctx: &mut LlamaContext<'_>, slot: usize, slots: &mut Slots) -> bool {
        let parked = self.copy_out(ctx, slot, slots);
        let _ = ctx.kv_cache_seq_rm(slot as i32, None, None);
        slots.clear(slot);
        parked
    }

    /// Keeps a copy of the idle conversation in `slot` (RAM first, as [`Parked::evict`]),
    /// leaving the slot as it is. Returns whether it was parked in RAM.
    pub fn copy_out(&mut self, ctx: &LlamaContext<'_>, slot: usize, slots: &Slots) -> bool {
        let s = slots.get(slot);
        let fits = s.cached.len() <= self.budget;
        let worth_disk = self.disk.is_some() && s.cached.len() >= MIN_TOKENS;
        let Some(owner) = s.owner else { return false };
        if s.busy || s.cached.is_empty() || !(fits || worth_disk) {
            return false;
        }
        let Some(state) = seq_bytes(ctx, slot as i32) else {
            tracing::debug!(slot, "could not copy an idle conversation out of the KV cache");
            return false;
        };
        if !fits {
            self.to_disk(owner, s.cached.clone(), state, false);
            return false;
        }
        self.park(owner, s.cached.clone(), state);
        true
    }

    /// Parks `owner`'s conversation in RAM as the most recently used, making room first;
    /// older versions of it (its prefixes, of the same owner) are dropped.
    pub fn park(&mut self, owner: Owner, tokens: Vec<i32>, state: Vec<u8>) {
        let mut i = 0;
        while i < self.entries.len() {
            let e = &self.entries[i];
            if e.owner == owner && common_prefix(&e.tokens, &tokens) == e.tokens.len() {
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
            self.to_disk(entry.owner, entry.tokens, entry.state, false);
        }
        self.clock += 1;
        self.tokens += tokens.len();
        self.gauge.add(tokens.len() as i64);
        self.entries.push(Entry { owner, tokens, state, last_used: self.clock });
    }

    fn remove(&mut self, index: usize) -> Entry {
        let entry = self.entries.swap_remove(index);
        self.tokens -= entry.tokens.len();
        self.gauge.sub(entry.tokens.len() as i64);
        entry
    }

    fn to_disk(&self, owner: Owner, tokens: Vec<i32>, state: Vec<u8>, wait: bool) {
        if let Some(disk) = &self.disk {
            if tokens.len() >= MIN_TOKENS {
                disk.save(owner, tokens, state, wait);
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
            let s = slots.get(slot);
            let Some(owner) = s.owner.filter(|_| s.cached.len() >= MIN_TOKENS) else { continue };
            if let Some(state) = seq_bytes(ctx, slot as i32) {
                self.to_disk(owner, s.cached.clone(), state, true);
            }
        }
        while !self.entries.is_empty() {
            let entry = self.remove(0);
            self.to_disk(entry.owner, entry.tokens, entry.state, true);
        }
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        self.gauge.sub(self.tokens as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::{Found, Parked};
    use crate::engine::Owner;
    use prometheus::IntGauge;

    const ALICE: Owner = Owner::user(1);
    const BOB: Owner = Owner::user(2);

    fn parked(budget: usize) -> (Parked, IntGauge) {
        let gauge = IntGauge::new("parked", "parked tokens").unwrap();
        (Parked::new(budget, gauge.clone(), None), gauge)
    }

    #[test]
    fn the_longest_shared_prefix_is_found_and_says_whether_it_continues() {
        let (mut p, _) = parked(100);
        p.park(ALICE, vec![1, 2, 3, 4], vec![4]);
        p.park(ALICE, vec![1, 2, 9], vec![9]);
        let found = p.find(&[1, 2, 3, 4, 5], 0, ALICE).unwrap();
        assert_eq!((found.shared, found.continues), (4, true));
        assert_eq!(p.entries[found.index].state, [4]);
        // Only the system prompt in common: a donor, not a continuation.
        let found = p.find(&[1, 2, 7], 0, ALICE).unwrap();
        assert_eq!((found.shared, found.continues), (2, false));
        // Nothing better than what the KV cache offers, and never the prompt's last token.
        assert_eq!(p.find(&[1, 2, 7], 2, ALICE), None);
        assert_eq!(p.find(&[1, 2, 9], 0, ALICE).map(|f| (f.shared, f.continues)), Some((2, true)));
        assert_eq!(p.find(&[5], 0, ALICE), None);
    }

    #[test]
    fn a_continuing_conversation_leaves_ram_and_a_donor_stays() {
        let (mut p, gauge) = parked(100);
        p.park(ALICE, vec![1, 2, 3], vec![3]);
        p.park(ALICE, vec![1, 2, 8, 8], vec![8]);
        assert_eq!(gauge.get(), 7);
        let donor = p.find(&[1, 2, 5], 0, ALICE).unwrap();
        let (owner, tokens, state) = p.checkout(donor);
        assert_eq!((p.entries.len(), gauge.get()), (1, 7 - tokens.len() as i64));
        p.park(owner, tokens, state);
        assert_eq!((p.entries.len(), gauge.get()), (2, 7));
        let next = p.find(&[1, 2, 8, 8, 6], 0, ALICE).unwrap();
        assert_eq!(p.checkout(next), (ALICE, vec![1, 2, 8, 8], vec![8]));
        assert_eq!((p.entries.len(), p.tokens, gauge.get()), (1, 3, 3));
        p.clear();
        assert_eq!((p.entries.len(), gauge.get()), (0, 0));
    }

    #[test]
    fn the_budget_forgets_the_least_recently_used_and_older_versions_go() {
        let (mut p, gauge) = parked(10);
        p.park(ALICE, vec![1, 2, 3, 4], vec![]);
        p.park(ALICE, vec![5, 6, 7], vec![]);
        // The first one is used (as a donor), so the second is now the oldest.
        let donor = p.find(&[1, 2, 0], 0, ALICE).unwrap();
        let (owner, tokens, state) = p.checkout(donor);
        p.park(owner, tokens, state);
        p.park(ALICE, vec![9, 9, 9, 9], vec![]);
        let kept: Vec<Vec<i32>> = p.entries.iter().map(|e| e.tokens.clone()).collect();
        assert!(kept.contains(&vec![1, 2, 3, 4]) && kept.contains(&vec![9, 9, 9, 9]), "{kept:?}");
        assert_eq!((p.tokens, gauge.get()), (8, 8));
        // A later turn of a parked conversation replaces its older version.
        p.park(ALICE, vec![9, 9, 9, 9, 1, 1], vec![]);
        assert_eq!(p.find(&[9, 9, 9, 9, 5], 0, ALICE).map(|f: Found| f.continues), Some(false));
        assert_eq!((p.entries.len(), p.tokens), (2, 10));
    }

    #[test]
    fn a_prompt_only_finds_its_own_owners_conversations() {
        let (mut p, _) = parked(100);
        p.park(ALICE, vec![1, 2, 3, 4], vec![4]);
        assert_eq!(p.find(&[1, 2, 3, 4, 5], 0, BOB), None, "Alice's conversation is not Bob's");
        assert_eq!(p.find(&[1, 2, 7], 0, BOB), None, "nor a prefix of it");
        // The same tokens parked for Bob are his own entry: Alice's stays.
        p.park(BOB, vec![1, 2, 3, 4, 5, 6], vec![6]);
        assert_eq!(p.entries.len(), 2);
        let found = p.find(&[1, 2, 3, 4, 5, 6, 7], 0, ALICE).unwrap();
        assert_eq!((found.shared, p.entries[found.index].state.clone()), (4, vec![4]));
        let found = p.find(&[1, 2, 3, 4, 5, 6, 7], 0, BOB).unwrap();
        assert_eq!((found.shared, p.entries[found.index].state.clone()), (6, vec![6]));
    }
}
