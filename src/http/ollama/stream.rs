//! Ollama's replies: one JSON object, or NDJSON (`application/x-ndjson`): an object per
//! piece of text (`message.content` for a chat, `response` for generate) with
//! `done: false`, the tool calls in one object of their own, then the last object with
//! `done: true`, `done_reason` and the timings; an error mid-stream is a line
//! `{"error": ...}`.

use super::{done_reason, error_body, merge, ollama_name, rfc3339, Clock, OllamaError};
use crate::assistant::Turn;
use crate::engine::{Finished, ToolCall};
use crate::http::peer::unless_gone;
use crate::http::pieces::{Piece, Pieces};
use crate::http::AppState;
use actix_web::http::header;
use actix_web::HttpRequest;
use actix_web::HttpResponse;
use bytes::Bytes;
use serde_json::{json, Value};
use std::time::Instant;
use std::time::SystemTime;

/// `/api/chat` or `/api/generate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Chat,
    Generate,
}

/// The fixed parts of every object of one reply.
pub(super) struct Frames {
    pub kind: Kind,
    /// As the Ollama API names it (`name:latest`).
    pub model: String,
    pub clock: Clock,
}

/// A call in Ollama's shape: the arguments as an object.
pub(super) fn call_json(call: &ToolCall) -> Value {
    json!({ "function": { "name": call.name, "arguments": call.arguments } })
}

impl Frames {
    /// Runs a turn and answers it: NDJSON when the turn streams, else one object.
    pub async fn answer(
        http: &HttpRequest,
        state: &AppState,
        turn: Turn,
        kind: Kind,
        started: Instant,
    ) -> Result<HttpResponse, OllamaError> {
        let stream = turn.stream;
        let prepared = state.assistant.prepare(turn).await?;
        let model = ollama_name(prepared.model());
        let running = unless_gone(http, prepared.run()).await??;
        let frames = Frames { kind, model, clock: Clock { started, load: started.elapsed() } };
        if stream {
            return Ok(frames.stream(running));
        }
        let outcome = unless_gone(http, running.finish()).await??;
        Ok(frames.whole(&outcome.text, &outcome.finished))
    }
    fn head(&self) -> Value {
        json!({ "model": self.model, "created_at": rfc3339(SystemTime::now()) })
    }

    /// An object carrying `text` (and the calls, for a chat).
    fn object(&self, text: &str, calls: &[ToolCall], done: bool) -> Value {
        let body = match self.kind {
            Kind::Chat => {
                let mut message = json!({ "role": "assistant", "content": text });
                if !calls.is_empty() {
                    message["tool_calls"] = calls.iter().map(call_json).collect();
                }
                json!({ "message": message, "done": done })
            }
            Kind::Generate => json!({ "response": text, "done": done }),
        };
        merge(self.head(), body)
    }

    /// The last object: what ended the reply and where the time went.
    fn last(&self, text: &str, finished: &Finished) -> Value {
        let calls = if self.kind == Kind::Chat { finished.tool_calls.as_slice() } else { &[] };
        let mut last = self.object(text, calls, true);
        last["done_reason"] = done_reason(finished).into();
        merge(last, self.clock.stats(finished))
    }

    /// The whole reply as one object (`stream: false`).
    pub fn whole(&self, text: &str, finished: &Finished) -> HttpResponse {
        HttpResponse::Ok().json(self.last(text, finished))
    }

    /// The reply as NDJSON.
    pub fn stream<P: Pieces + 'static>(self, pieces: P) -> HttpResponse {
        let lines =
            futures_util::stream::unfold((self, pieces, false), |(frames, mut pieces, done)| async move {
                if done {
                    return None;
                }
                let out = match pieces.next_piece().await {
                    Piece::Text(text) => {
                        let line = line(&frames.object(&text, &[], false));
                        return Some((Ok::<_, actix_web::Error>(line), (frames, pieces, false)));
                    }
                    Piece::End(finished) => {
                        let mut out = Vec::new();
                        if frames.kind == Kind::Chat && !finished.tool_calls.is_empty() {
                            out.extend_from_slice(&line(&frames.object("", &finished.tool_calls, false)));
                        }
                        let last = Finished { tool_calls: Vec::new(), ..finished };
                        out.extend_from_slice(&line(&frames.last("", &last)));
                        Bytes::from(out)
                    }
                    Piece::Failed(e) => line(&error_body(&e)),
                };
                Some((Ok(out), (frames, pieces, true)))
            });
        HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, "application/x-ndjson"))
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .insert_header(("X-Accel-Buffering", "no"))
            .streaming(lines)
    }
}

fn line(value: &Value) -> Bytes {
    let mut bytes = serde_json::to_vec(value).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{FinishReason, Timings, Usage};
    use std::time::{Duration, Instant};

    fn frames(kind: Kind) -> Frames {
        Frames {
            kind,
            model: "m:latest".into(),
            clock: Clock { started: Instant::now(), load: Duration::from_millis(2) },
        }
    }

    fn finished(calls: Vec<ToolCall>) -> Finished {
        Finished {
            finish_reason: if calls.is_empty() { FinishReason::Length } else { FinishReason::ToolCalls },
            usage: Usage { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 },
            timings: Timings::new(7, 1.5, 3, 2.0, 0),
            dropped_messages: 0,
            tool_calls: calls,
        }
    }

    #[test]
    fn the_last_object_says_why_it_ended_and_the_time_in_nanoseconds() {
        let last = frames(Kind::Generate).last("hi", &finished(vec![]));
        assert_eq!((last["response"].as_str(), last["done"].as_bool()), (Some("hi"), Some(true)));
        assert_eq!(last["done_reason"], "length");
        assert_eq!(last["load_duration"], 2_000_000);
        assert_eq!((last["prompt_eval_count"].as_u64(), last["eval_count"].as_u64()), (Some(7), Some(3)));
        assert_eq!(
            (last["prompt_eval_duration"].as_u64(), last["eval_duration"].as_u64()),
            (Some(1_500_000), Some(2_000_000))
        );
        assert!(last["created_at"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn calls_are_objects_and_a_reply_with_calls_ends_as_stop() {
        let call = ToolCall { id: "call_1".into(), name: "f".into(), arguments: json!({"a": 1}) };
        let last = frames(Kind::Chat).last("", &finished(vec![call]));
        assert_eq!(last["done_reason"], "stop");
        assert_eq!(
            last["message"]["tool_calls"],
            json!([{"function": {"name": "f", "arguments": {"a": 1}}}])
        );
        assert_eq!(last["model"], "m:latest");
    }
}
