//! Scheduling decisions that need no model: which KV-cache sequence a new request
//! should use, and how much chat history fits in the context window.
//!
//! Each slot is one llama.cpp sequence id. A slot keeps the tokens whose keys and
//! values are in the cache after its request ends, so the next turn of the same
//! conversation (whose prompt starts with those tokens) only evaluates what is new.
//! A slot also remembers whose tokens those are: only requests of the same owner reuse
//! them, or copy them as a shared prefix.

use super::{ChatMessage, EngineError, Owner};

/// One KV-cache sequence and the tokens cached in it.
#[derive(Debug, Clone, Default)]
pub struct Slot {
    /// Tokens whose KV entries are in the cache, in position order.
    pub cached: Vec<i32>,
    /// Whose request left `cached` (`None` while nothing is cached).
    pub owner: Option<Owner>,
    /// Serving a request now.
    pub busy: bool,
    /// Logical time of last use, for least-recently-used eviction.
    pub last_used: u64,
}

/// The slots, indexed by sequence id.
#[derive(Debug)]
pub struct Slots {
    slots: Vec<Slot>,
    clock: u64,
}

/// Where a new request goes: a slot, how many cached tokens it starts with, and
/// whether those come from another sequence (a shared prefix, such as the system
/// prompt, copied instead of evaluated again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub slot: usize,
    pub reuse: usize,
    pub copy_from: Option<usize>,
}

pub fn common_prefix(a: &[i32], b: &[i32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl Slots {
    pub fn new(count: usize) -> Slots {
        Slots { slots: vec![Slot::default(); count.max(1)], clock: 0 }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn get(&self, slot: usize) -> &Slot {
        &self.slots[slot]
    }

    /// Chooses an idle slot for `owner`'s `prompt`. A conversation continues in the slot
    /// whose whole cache is a prefix of the prompt. Otherwise the request takes an empty
    /// slot, else the least recently used one, so it does not destroy another
    /// conversation's cache; it starts from the longest prefix any sequence of the same
    /// owner shares with it (another owner's cache is never reused, not even a shared
    /// system prompt). At least one prompt token is always left to evaluate: the
    /// next-token logits come from it.
    pub fn place(&self, prompt: &[i32], owner: Owner) -> Option<Placement> {
        let keep = |shared: usize| shared.min(prompt.len().saturating_sub(1));
        let shared = |s: &Slot| if s.owner == Some(owner) { common_prefix(&s.cached, prompt) } else { 0 };
        let idle = || self.slots.iter().enumerate().filter(|(_, s)| !s.busy);
        let continuation = idle()
            .filter(|(_, s)| !s.cached.is_empty() && shared(s) == s.cached.len())
            .max_by_key(|(_, s)| s.cached.len());
        if let Some((slot, s)) = continuation {
            return Some(Placement { slot, reuse: keep(s.cached.len()), copy_from: None });
        }
        // An empty slot first, the lowest (running sequences with consecutive ids decode
        // in one pass: see `Scheduler::fill_batch`), else the least recently used.
        let (slot, target) = idle().min_by_key(|(i, s)| match s.cached.is_empty() {
            true => (false, *i as u64),
            false => (true, s.last_used),
        })?;
        let own = keep(shared(target));
        let donor = self
            .slots
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != slot)
            .map(|(i, s)| (i, keep(shared(s))))
            .max_by_key(|(_, shared)| *shared)
            .filter(|(_, shared)| *shared > own);
        Some(match donor {
            Some((from, shared)) => Placement { slot, reuse: shared, copy_from: Some(from) },
            None => Placement { slot, reuse: own, copy_from: None },
        })
    }

    /// Marks a slot busy for `owner` with the tokens it starts from: its own first `reuse`
    /// cached tokens, or the donor's when the prefix was copied.
    pub fn take(&mut self, placement: Placement, owner: Owner) {
        let prefix: Vec<i32> = match placement.copy_from {
            Some(from) => self.slots[from].cached[..placement.reuse].to_vec(),
            None => self.slots[placement.slot].cached[..placement.reuse].to_vec(),
        };
        self.take_prefix(placement.slot, &prefix, owner);
    }

    /// Marks a slot busy for `owner` with the tokens its sequence holds now (such as a
    /// conversation read back from disk).
    pub fn take_prefix(&mut self, slot: usize, prefix: &[i32], owner: Owner) {
        self.clock += 1;
        let slot = &mut self.slots[slot];
        slot.cached = prefix.to_vec();
        slot.owner = Some(owner);
        slot.busy = true;
        slot.last_used = self.clock;
    }

    /// Records tokens whose KV entries were just written to a slot's sequence.
    pub fn extend(&mut self, slot: usize, tokens: &[i32]) {
        self.slots[slot].cached.extend_from_slice(tokens);
    }

    /// Ends a request; the cached tokens stay for the next turn.
    pub fn release(&mut self, slot: usize) {
        self.clock += 1;
        let s = &mut self.slots[slot];
        s.busy = false;
        s.last_used = self.clock;
    }

    /// The idle slot with cached tokens used longest ago, to evict when the cache is full.
    pub fn eviction_candidate(&self) -> Option<usize> {
        self.resident_idle().into_iter().min_by_key(|&i| self.slots[i].last_used)
    }

    /// Idle slots with cached tokens.
    pub fn resident_idle(&self) -> Vec<usize> {
        let idle = self.slots.iter().enumerate().filter(|(_, s)| !s.busy && !s.cached.is_empty());
        idle.map(|(i, _)| i).collect()
    }

    /// Forgets a slot's cached tokens (after its sequence was emptied).
    pub fn clear(&mut self, slot: usize) {
        self.slots[slot].cached.clear();
        self.slots[slot].owner = None;
    }
}

/// The chat after fitting it into the window, and how many messages were dropped.
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    pub messages: Vec<ChatMessage>,
    pub tokens: Vec<i32>,
    pub dropped: usize,
}

/// Drops the oldest turns (never the system prompt or the newest message) until the
/// prompt leaves `reserve` tokens for the reply. If even the newest message alone
/// cannot fit with room for one token, the request is refused.
pub fn fit_history(
    messages: Vec<ChatMessage>,
    context: usize,
    reserve: usize,
    mut tokenize: impl FnMut(&[ChatMessage]) -> Result<Vec<i32>, EngineError>,
) -> Result<Fitted, EngineError> {
    let system = messages.first().is_some_and(|m| m.role == "system") as usize;
    let mut dropped = 0;
    loop {
        let candidate: Vec<ChatMessage> =
            messages[..system].iter().chain(&messages[system + dropped..]).cloned().collect();
        let tokens = tokenize(&candidate)?;
        let droppable = messages.len() - system - dropped > 1;
        if tokens.len() + reserve <= context || (!droppable && tokens.len() < context) {
            return Ok(Fitted { messages: candidate, tokens, dropped });
        }
        if !droppable {
            return Err(EngineError::ContextLengthExceeded {
                prompt_tokens: tokens.len(),
                context_size: context,
            });
        }
        // Drop a whole exchange when possible (a user message, the reply, and the tool calls
        // and results in between), so the chat still alternates and no tool result is left
        // without its call; the newest message always stays.
        let next = &messages[system + dropped..];
        let exchange = 1 + next[1..].iter().take_while(|m| m.role != "user").count();
        dropped += if next[0].role == "user" && exchange < next.len() { exchange } else { 1 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: Owner = Owner::user(1);
    const BOB: Owner = Owner::user(2);

    /// Serves one request of Alice's in `slot` that leaves `tokens` cached.
    fn serve(slots: &mut Slots, slot: usize, tokens: &[i32]) {
        serve_for(slots, slot, tokens, ALICE);
    }

    fn serve_for(slots: &mut Slots, slot: usize, tokens: &[i32], owner: Owner) {
        slots.take(Placement { slot, reuse: 0, copy_from: None }, owner);
        slots.extend(slot, tokens);
        slots.release(slot);
    }

    #[test]
    fn a_conversation_continues_in_its_own_slot() {
        let mut slots = Slots::new(3);
        serve(&mut slots, 0, &[1, 2, 3, 4]);
        serve(&mut slots, 1, &[1, 2, 9]);
        let next_turn = [1, 2, 3, 4, 5, 6];
        assert_eq!(slots.place(&next_turn, ALICE), Some(Placement { slot: 0, reuse: 4, copy_from: None }));
        assert_eq!(slots.place(&[1, 2, 9, 9], ALICE), Some(Placement { slot: 1, reuse: 3, copy_from: None }));
    }

    #[test]
    fn a_new_conversation_copies_the_shared_prefix_into_a_free_slot() {
        let mut slots = Slots::new(3);
        serve(&mut slots, 0, &[1, 2, 3, 4]);
        // Shares the system prompt [1, 2] with slot 0 but must not truncate its cache.
        let placement = slots.place(&[1, 2, 7], ALICE).unwrap();
        assert_eq!(placement, Placement { slot: 1, reuse: 2, copy_from: Some(0) });
        slots.take(placement, ALICE);
        assert_eq!(slots.get(1).cached, [1, 2]);
        assert_eq!(slots.get(0).cached, [1, 2, 3, 4], "the donor keeps its cache");
    }

    #[test]
    fn another_owners_cache_is_never_reused_or_copied() {
        let mut slots = Slots::new(3);
        serve_for(&mut slots, 0, &[1, 2, 3, 4], ALICE);
        // Bob sends Alice's very prompt and more: no continuation, no donor.
        assert_eq!(
            slots.place(&[1, 2, 3, 4, 5], BOB),
            Some(Placement { slot: 1, reuse: 0, copy_from: None })
        );
        // Nor does Bob start from what the slot he takes over held for Alice.
        let mut one = Slots::new(1);
        serve_for(&mut one, 0, &[1, 2, 3, 4], ALICE);
        assert_eq!(one.place(&[1, 2, 3, 4, 5], BOB), Some(Placement { slot: 0, reuse: 0, copy_from: None }));
        // Alice still continues her own.
        assert_eq!(
            slots.place(&[1, 2, 3, 4, 5], ALICE),
            Some(Placement { slot: 0, reuse: 4, copy_from: None })
        );
        // Once Bob has cached the same tokens, his next request reuses his copy only.
        serve_for(&mut slots, 1, &[1, 2, 3, 4], BOB);
        assert_eq!(
            slots.place(&[1, 2, 3, 4, 6], BOB),
            Some(Placement { slot: 1, reuse: 4, copy_from: None })
        );
        assert_eq!(slots.place(&[1, 2, 7], BOB), Some(Placement { slot: 2, reuse: 2, copy_from: Some(1) }));
    }

    #[test]
    fn without_a_free_slot_the_least_recently_used_gives_way() {
        let mut slots = Slots::new(2);
        serve(&mut slots, 0, &[5, 6]);
        serve(&mut slots, 1, &[7, 8]);
        assert_eq!(slots.place(&[9], ALICE), Some(Placement { slot: 0, reuse: 0, copy_from: None }));
        serve(&mut slots, 0, &[9, 1]);
        assert_eq!(slots.place(&[7, 3], ALICE), Some(Placement { slot: 1, reuse: 1, copy_from: None }));
    }

    #[test]
    fn one_prompt_token_is_always_evaluated() {
        let mut slots = Slots::new(1);
        serve(&mut slots, 0, &[1, 2, 3]);
        assert_eq!(slots.place(&[1, 2, 3], ALICE), Some(Placement { slot: 0, reuse: 2, copy_from: None }));
    }

    #[test]
    fn a_new_conversation_takes_the_lowest_empty_slot() {
        let mut slots = Slots::new(4);
        // Slot 0 was used and emptied since; slots 2 and 3 never were.
        serve(&mut slots, 0, &[5]);
        slots.clear(0);
        serve(&mut slots, 1, &[6]);
        assert_eq!(slots.place(&[7], ALICE).map(|p| p.slot), Some(0));
        slots.take(Placement { slot: 0, reuse: 0, copy_from: None }, ALICE);
        assert_eq!(slots.place(&[7], ALICE).map(|p| p.slot), Some(2));
    }

    #[test]
    fn busy_slots_are_never_chosen_or_evicted() {
        let mut slots = Slots::new(1);
        slots.take(Placement { slot: 0, reuse: 0, copy_from: None }, ALICE);
        slots.extend(0, &[1]);
        assert_eq!(slots.place(&[1, 2], ALICE), None);
        assert_eq!(slots.eviction_candidate(), None);
        slots.release(0);
        assert_eq!(slots.eviction_candidate(), Some(0));
    }

    fn chat(n: usize) -> Vec<ChatMessage> {
        let mut m = vec![ChatMessage::new("system", "s")];
        for i in 0..n {
            m.push(ChatMessage::new(if i % 2 == 0 { "user" } else { "assistant" }, format!("m{i}")));
        }
        m
    }

    /// Ten tokens per message.
    fn count(messages: &[ChatMessage]) -> Result<Vec<i32>, EngineError> {
        Ok(vec![0; messages.len() * 10])
    }

    #[test]
    fn history_that_fits_is_kept_whole() {
        let fitted = fit_history(chat(5), 100, 10, count).unwrap();
        assert_eq!((fitted.messages.len(), fitted.dropped), (6, 0));
    }

    #[test]
    fn oldest_exchanges_are_dropped_and_the_system_prompt_kept() {
        let fitted = fit_history(chat(7), 60, 10, count).unwrap();
        assert_eq!(fitted.dropped, 4);
        assert_eq!(fitted.messages[0].content, "s");
        assert_eq!(fitted.messages[1].content, "m4");
        assert_eq!(fitted.messages.last().unwrap().content, "m6");
    }

    #[test]
    fn a_tool_exchange_is_dropped_whole() {
        let mut messages = vec![ChatMessage::new("system", "s"), ChatMessage::new("user", "weather?")];
        messages.push(ChatMessage::tool_calls(
            "",
            vec![crate::engine::ToolCall::new("w", serde_json::json!({}))],
        ));
        messages.push(ChatMessage::tool_result("call_1", None, "sunny"));
        messages.push(ChatMessage::tool_result("call_2", None, "warm"));
        messages.push(ChatMessage::new("assistant", "Sunny and warm."));
        messages.push(ChatMessage::new("user", "thanks"));
        // Room for the system prompt and two messages: the whole exchange goes at once.
        let fitted = fit_history(messages, 40, 10, count).unwrap();
        assert_eq!(fitted.dropped, 5);
        assert_eq!(fitted.messages.iter().map(|m| m.role.as_str()).collect::<Vec<_>>(), ["system", "user"]);
    }

    #[test]
    fn a_lone_message_may_use_the_reserve_but_not_overflow() {
        let fitted = fit_history(chat(1), 25, 10, count).unwrap();
        assert_eq!((fitted.messages.len(), fitted.tokens.len()), (2, 20));
        let err = fit_history(chat(1), 20, 10, count).unwrap_err();
        assert!(matches!(err, EngineError::ContextLengthExceeded { prompt_tokens: 20, context_size: 20 }));
    }
}
