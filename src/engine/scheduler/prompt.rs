//! What a job asks for: its prompt rendered and fitted into the window, a slot, and how its
//! tokens are chosen.

use super::{Active, Scheduler};
use crate::engine::grammar;
use crate::engine::sampling::Sampler;
use crate::engine::slots::fit_history;
use crate::engine::tools::{CallGuard, CallReader, Constraint, ToolFormat, ToolSpec};
use crate::engine::{ChatMessage, EngineError, Job, Prompt, StopMatcher, Utf8Stream};
use llama_cpp_2::model::LlamaChatMessage;
use llama_cpp_2::token::LlamaToken;
use std::time::Instant;

impl Scheduler<'_> {
    /// The tool-call format the model speaks, or why it cannot take tools.
    pub(super) fn tool_format(&self) -> Result<ToolFormat, EngineError> {
        let Some(jinja) = self.jinja else {
            return Err(EngineError::ToolsUnsupported(
                "this model has no chat template Hearth can render with tools".into(),
            ));
        };
        jinja.tool_format().map_err(|why| EngineError::ToolsUnsupported(why.explain().into()))
    }

    /// The prompt's tokens. A chat with tools, tool calls or tool results is rendered with the
    /// model's own template; others with llama.cpp's renderer, as they always were.
    pub(super) fn render(
        &self,
        messages: &[ChatMessage],
        tools: Option<&[ToolSpec]>,
    ) -> Result<Vec<LlamaToken>, EngineError> {
        if tools.is_none() && !messages.iter().any(ChatMessage::needs_template) {
            return self.render_builtin(messages);
        }
        self.tool_format()?;
        let jinja = self.jinja.expect("tool_format checked it");
        let text = jinja.render(messages, tools, true)?;
        tracing::trace!(prompt = %text, "rendered with the model's chat template");
        // llama.cpp adds the BOS token itself where the model wants one.
        let bos = self.model.vocab().token_to_piece(self.model.vocab().bos(), true, None);
        let text = match text.as_bytes().strip_prefix(bos.as_slice()) {
            Some(rest) if !bos.is_empty() => rest,
            _ => text.as_bytes(),
        };
        Ok(self.model.vocab().tokenize(text, true, true))
    }

    pub(super) fn render_builtin(&self, messages: &[ChatMessage]) -> Result<Vec<LlamaToken>, EngineError> {
        let chat = messages
            .iter()
            .map(|m| LlamaChatMessage::new(m.role.clone(), m.content.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| EngineError::InvalidRequest("messages must not contain NUL characters".into()))?;
        let text = self
            .model
            .apply_chat_template(self.template, &chat, true)
            .map_err(|e| EngineError::Failed(format!("chat template: {e}")))?;
        Ok(self.model.vocab().tokenize(text.as_bytes(), true, true))
    }

    /// Tokenizes a job, fits it into the window and places it in a slot.
    pub(super) fn start(&mut self, job: Job) -> Result<Active, Box<(Job, EngineError)>> {
        let context = self.limits.context_size;
        let reserve = (job.params.max_tokens as usize).min(context / 4).max(1);
        let tools = job.params.constraint.callable_tools().map(|t| t.tools.as_slice());
        let fitted = match &job.prompt {
            Prompt::Chat(messages) => fit_history(messages.clone(), context, reserve, |m| {
                Ok(self.render(m, tools)?.into_iter().map(|t| t.0).collect())
            })
            .map(|f| (f.tokens, f.dropped)),
            Prompt::Text(text) => {
                let tokens: Vec<i32> = self
                    .model
                    .vocab()
                    .tokenize(text.as_bytes(), true, false)
                    .into_iter()
                    .map(|t| t.0)
                    .collect();
                if tokens.is_empty() || tokens.len() >= context {
                    Err(EngineError::ContextLengthExceeded {
                        prompt_tokens: tokens.len(),
                        context_size: context,
                    })
                } else {
                    Ok((tokens, 0))
                }
            }
        };
        let (tokens, dropped) = match fitted {
            Ok(f) => f,
            Err(e) => return Err(Box::new((job, e))),
        };
        let (sampler, calls, guard) = match self.output(&job) {
            Ok(output) => output,
            Err(e) => return Err(Box::new((job, e))),
        };
        let owner = job.owner;
        let placement =
            self.slots.place(&tokens, owner).expect("a free slot exists below the parallel limit");
        if self.limits.unified {
            // Park the other idle conversations first (the slot and the one it copies from
            // stay): llama.cpp puts new entries in free cells from the lowest one on, and
            // every step attends over all cells up to the highest in use, so a prefix
            // restored above a conversation that is parked right after would make every
            // later step attend over that whole span.
            let keep = [placement.slot, placement.copy_from.unwrap_or(placement.slot)];
            let parked = self.parked.park_idle(&mut self.ctx, &mut self.slots, &keep);
            self.metrics.kv_parks.inc_by(parked as u64);
        }
        // The conversation may be parked in RAM or saved on disk, sparing more than the
        // KV cache offers.
        let in_ram = self.parked.find(&tokens, placement.reuse, owner);
        let best = in_ram.map_or(placement.reuse, |f| f.shared);
        let reuse = match self.parked.disk().and_then(|d| d.find(&tokens, best, owner)) {
            Some((id, shared)) => self.load_saved(placement.slot, id, &tokens[..shared], owner),
            None => match in_ram {
                Some(found) => self.restore_parked(placement.slot, found, &tokens[..found.shared], owner),
                None => {
                    let placement = self.prepare_cache(placement);
                    self.slots.take(placement, owner);
                    placement.reuse
                }
            },
        };
        self.metrics.prompt_tokens.inc_by(tokens.len() as u64);
        self.metrics.prompt_tokens_reused.inc_by(reuse as u64);
        if dropped > 0 {
            tracing::debug!(dropped, "dropped the oldest messages to fit the context window");
        }
        let budget = (job.params.max_tokens as usize).min(context - tokens.len());
        let deadline = job.queued_at + self.limits.timeout;
        Ok(Active {
            slot: placement.slot,
            prompt: tokens.into_iter().map(LlamaToken).collect(),
            next_prompt: reuse,
            reused: reuse,
            dropped,
            pending: None,
            logits_at: None,
            added: Vec::new(),
            budget,
            generated: 0,
            sampler,
            utf8: Utf8Stream::default(),
            stops: StopMatcher::new(job.params.stop.clone()),
            calls,
            guard,
            tool_calls: Vec::new(),
            held: String::new(),
            prefill_started: Instant::now(),
            prefill_ms: None,
            deadline,
            job,
        })
    }

    /// How the job's tokens are chosen (held to a grammar when its reply has a format), the
    /// reader of its tool calls when it may call tools, and the guard that keeps it from
    /// writing a call when its chat involves tools but it may call none.
    #[allow(clippy::type_complexity)]
    pub(super) fn output(
        &self,
        job: &Job,
    ) -> Result<(Sampler, Option<CallReader>, Option<CallGuard>), EngineError> {
        let constraint = &job.params.constraint;
        let (format, reader) = match constraint.callable_tools() {
            Some(tools) => {
                let format = self.tool_format()?;
                let names = tools.tools.iter().map(|t| t.name.clone()).collect();
                (Some(format), Some(CallReader::new(format, names)))
            }
            None => (None, None),
        };
        let grammar = grammar::for_constraint(constraint, format)?;
        let involves_tools = matches!(constraint, Constraint::Tools(_))
            || matches!(&job.prompt, Prompt::Chat(m) if m.iter().any(ChatMessage::needs_template));
        let guard = match (reader.is_none() && grammar.is_none() && involves_tools, self.tool_format()) {
            (true, Ok(format)) => Some(CallGuard::new(format)),
            _ => None,
        };
        let sampler = Sampler::new(self.model, &job.params, grammar.as_ref())?;
        Ok((sampler, reader, guard))
    }
}
