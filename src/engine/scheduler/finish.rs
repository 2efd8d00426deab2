//! A request's tokens sampled and streamed, and its last event.

use super::{Active, Outcome, Scheduler};
use crate::engine::{EngineError, Event, FinishReason, Finished, StopMatcher, Timings, Usage, Utf8Stream};
use crate::telemetry::Metrics;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;

impl Scheduler<'_> {
    /// Sends a request's last event. The caller has already removed it from `active`.
    pub(super) fn finish(&mut self, mut a: Active, outcome: Outcome) {
        self.slots.release(a.slot);
        self.metrics.active_sequences.set(self.active.len() as i64);
        let event = match outcome {
            Outcome::Gone => {
                self.metrics.requests_cancelled.inc();
                tracing::debug!(slot = a.slot, "client went away; generation stopped");
                return;
            }
            Outcome::Failed(e) => {
                if matches!(e, EngineError::Timeout(_)) {
                    self.metrics.requests_timed_out.inc();
                }
                Event::Error(e)
            }
            Outcome::Finished(mut finish_reason) => {
                let mut tail = a.stops.push(&a.utf8.finish()).0 + &a.stops.finish();
                if let Some(reader) = &mut a.calls {
                    let mut read = reader.push(&tail);
                    let last = reader.finish();
                    read.content += &last.content;
                    tail = read.content;
                    a.tool_calls.extend(read.calls.into_iter().chain(last.calls));
                }
                let text = std::mem::take(&mut a.held) + &tail;
                if !text.is_empty() && a.job.events.send(Event::Token(text)).is_err() {
                    return;
                }
                if !a.tool_calls.is_empty() && finish_reason == FinishReason::Stop {
                    finish_reason = FinishReason::ToolCalls;
                }
                let prompt_ms = a.prefill_ms.unwrap_or_default();
                let total_ms = a.prefill_started.elapsed().as_secs_f64() * 1000.0;
                let predicted_ms = (total_ms - prompt_ms).max(0.0);
                let evaluated = a.prompt.len() - a.reused;
                let timings = Timings::new(
                    evaluated as u32,
                    prompt_ms,
                    a.generated as u32,
                    predicted_ms,
                    a.reused as u32,
                );
                self.metrics.generation_tokens_per_second.set(timings.predicted_per_second);
                Event::Done(Finished {
                    finish_reason,
                    usage: Usage {
                        prompt_tokens: a.prompt.len() as u32,
                        completion_tokens: a.generated as u32,
                        total_tokens: (a.prompt.len() + a.generated) as u32,
                    },
                    timings,
                    dropped_messages: a.dropped as u32,
                    tool_calls: std::mem::take(&mut a.tool_calls),
                })
            }
        };
        a.job.share.charge(a.generated as u32);
        let _ = a.job.events.send(event);
    }
}

/// Samples the next token for one request and streams its text.
/// Returns how the request ends, or `None` if it goes on.
pub(super) fn sample(
    model: &LlamaModel,
    ctx: &LlamaContext<'_>,
    metrics: &Metrics,
    a: &mut Active,
    at: i32,
) -> Option<Outcome> {
    if a.prefill_ms.is_none() {
        a.prefill_ms = Some(a.prefill_started.elapsed().as_secs_f64() * 1000.0);
        metrics.prompt_tokens_evaluated.inc_by((a.prompt.len() - a.reused) as u64);
        metrics.time_to_first_token.observe(a.job.queued_at.elapsed().as_secs_f64());
    }
    let vocab = model.vocab();
    let sampled = match &a.guard {
        Some(guard) => {
            let refuses = |t| guard.refuses(&String::from_utf8_lossy(&vocab.token_to_piece(t, false, None)));
            a.sampler.sample(ctx, at, Some(&refuses))
        }
        None => a.sampler.sample(ctx, at, None),
    };
    let token = match sampled {
        Ok(token) => token,
        Err(e) => return Some(Outcome::Failed(e)),
    };
    if vocab.is_eog(token) {
        return Some(Outcome::Finished(FinishReason::Stop));
    }
    a.generated += 1;
    metrics.tokens_generated.inc();
    let piece = a.utf8.push(&vocab.token_to_piece(token, false, None));
    if let Some(guard) = &mut a.guard {
        guard.push(&piece);
    }
    let (mut text, stopped) = a.stops.push(&piece);
    if let Some(reader) = &mut a.calls {
        let read = reader.push(&text);
        text = read.content;
        a.tool_calls.extend(read.calls);
    }
    if !a.job.params.stream {
        a.held.push_str(&text);
    } else if !text.is_empty() && a.job.events.send(Event::Token(text)).is_err() {
        return Some(Outcome::Gone);
    }
    if stopped {
        // Nothing after a stop string is sent, not even held-back text.
        a.utf8 = Utf8Stream::default();
        a.stops = StopMatcher::default();
        return Some(Outcome::Finished(FinishReason::Stop));
    }
    if a.generated >= a.budget {
        return Some(Outcome::Finished(FinishReason::Length));
    }
    a.pending = Some(token);
    None
}
