//! The KV cache around a request: prefixes kept, copied, parked in RAM or saved on disk.

use super::{Outcome, Scheduler};
use crate::engine::park;
use crate::engine::slots::Placement;
use crate::engine::{EngineError, Owner};

/// A conversation whose cache a new request would cut by this many tokens or more is kept
/// (parked) first: it is another conversation sharing a prefix, such as the system prompt.
/// A shorter cut is the same conversation rendered a little differently (a reply whose
/// text tokenizes otherwise), whose old tail nobody will ask for.
const KEEP_CUT: usize = 16;

impl Scheduler<'_> {
    /// Makes a slot's sequence hold exactly the prefix the placement starts from: its own
    /// cache cut after the shared part, or the donor's prefix copied. Returns the placement
    /// actually applied.
    ///
    /// A conversation that gives way, or whose cache is cut by at least [`KEEP_CUT`] tokens,
    /// is parked (or saved to disk) first.
    pub(super) fn prepare_cache(&mut self, placement: Placement) -> Placement {
        let seq = placement.slot as i32;
        if let Some(from) = placement.copy_from {
            self.make_room(placement.slot);
            if self.copy_prefix(from, seq, placement.reuse) {
                return placement;
            }
            return Placement { reuse: 0, copy_from: None, ..placement };
        }
        let cached = self.slots.get(placement.slot).cached.len();
        if cached >= placement.reuse + KEEP_CUT
            && self.parked.copy_out(&self.ctx, placement.slot, &self.slots)
        {
            self.metrics.kv_parks.inc();
        }
        if placement.reuse >= cached
            || self.ctx.kv_cache_seq_rm(seq, Some(placement.reuse as u32), None).is_ok()
        {
            return placement;
        }
        // Some caches (recurrent, sliding-window) cannot drop a suffix: start over.
        let _ = self.ctx.kv_cache_seq_rm(seq, None, None);
        Placement { reuse: 0, ..placement }
    }

    /// Copies the first `len` tokens of sequence `from` into the empty sequence `seq`.
    pub(super) fn copy_prefix(&mut self, from: usize, seq: i32, len: usize) -> bool {
        if self.limits.unified {
            // The sequences share cells: only their labels change.
            return self.ctx.kv_cache_seq_cp(from as i32, seq, Some(0), Some(len as u32)).is_ok();
        }
        // Each sequence has its own cells, and llama.cpp copies only whole ones between
        // them: go through its serialization instead.
        match park::seq_bytes(&self.ctx, from as i32) {
            Some(state) => park::write(&mut self.ctx, &state, seq, len),
            None => false,
        }
    }

    /// Empties `slot`'s sequence, parking (or saving) the conversation it held.
    pub(super) fn make_room(&mut self, slot: usize) {
        if !self.slots.get(slot).cached.is_empty() && self.parked.evict(&mut self.ctx, slot, &mut self.slots)
        {
            self.metrics.kv_parks.inc();
        }
        let _ = self.ctx.kv_cache_seq_rm(slot as i32, None, None);
    }

    /// Puts a parked conversation into `slot`, keeping the `prefix` it shares with the
    /// prompt. Returns the tokens reused.
    pub(super) fn restore_parked(
        &mut self,
        slot: usize,
        found: park::Found,
        prefix: &[i32],
        owner: Owner,
    ) -> usize {
        let (parked_for, tokens, state) = self.parked.checkout(found);
        self.make_room(slot);
        let restored = park::write(&mut self.ctx, &state, slot as i32, prefix.len());
        if !found.continues {
            // Another conversation that only lent its prefix stays parked.
            self.parked.park(parked_for, tokens, state);
        }
        if restored {
            self.metrics.kv_restores.inc();
        }
        let reuse = if restored { prefix.len() } else { 0 };
        self.slots.take_prefix(slot, &prefix[..reuse], owner);
        reuse
    }

    /// Drops every idle conversation's cache: in the KV cache, parked in RAM and on disk.
    pub(super) fn forget_idle(&mut self) {
        for slot in 0..self.slots.len() {
            if !self.slots.get(slot).busy {
                let _ = self.ctx.kv_cache_seq_rm(slot as i32, None, None);
                self.slots.clear(slot);
            }
        }
        self.parked.clear();
        if let Some(disk) = self.parked.disk() {
            disk.clear();
        }
        tracing::info!("dropped the cached conversations");
    }

    /// Ends the requests still running, then saves every idle conversation to the disk
    /// cache (when there is one): the server is stopping or the model is being unloaded,
    /// and their next turns, after a restart too, need not read their history again.
    pub(super) fn stop(&mut self) {
        for a in std::mem::take(&mut self.active) {
            self.finish(a, Outcome::Failed(EngineError::NotReady("the server is stopping".into())));
        }
        if self.parked.disk().is_none() {
            return;
        }
        self.parked.save_all(&self.ctx, &self.slots);
        tracing::info!("saved the idle conversations' caches");
    }

    /// Puts a conversation saved on disk into `slot` (parking the slot's own conversation
    /// first), keeping the `prefix` it shares with the prompt. Returns the tokens reused:
    /// none if the file could not be used.
    pub(super) fn load_saved(&mut self, slot: usize, id: u64, prefix: &[i32], owner: Owner) -> usize {
        self.make_room(slot);
        let loaded = self.parked.load(&mut self.ctx, id, slot as i32, prefix.len());
        let reuse = if loaded { prefix.len() } else { 0 };
        self.slots.take_prefix(slot, &prefix[..reuse], owner);
        reuse
    }

    /// Frees the least recently used idle sequence. False when none is left.
    pub(super) fn evict_one(&mut self) -> bool {
        let Some(slot) = self.slots.eviction_candidate() else { return false };
        self.make_room(slot);
        tracing::debug!(slot, "evicted an idle conversation from the KV cache");
        true
    }
}
