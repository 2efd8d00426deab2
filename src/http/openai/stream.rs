//! Streaming OpenAI replies: `chat.completion.chunk` or `text_completion` events, the
//! tool calls (`delta.tool_calls`, one chunk per call), a final chunk with
//! `finish_reason`, optional usage, then `data: [DONE]`.

use crate::engine::Finished;
use crate::error::ApiError;
use crate::http::pieces::{Piece, Pieces};
use crate::http::sse::sse_event;
use bytes::Bytes;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Chat,
    Text,
}

/// The fixed parts of every chunk of one reply.
pub(super) struct Chunks {
    pub kind: Kind,
    pub id: String,
    pub created: i64,
    pub model: String,
    pub include_usage: bool,
    /// Sources retrieved from the caller's documents, sent with the first chunk.
    pub citations: Option<Value>,
}

impl Chunks {
    fn object(&self) -> &'static str {
        match self.kind {
            Kind::Chat => "chat.completion.chunk",
            Kind::Text => "text_completion",
        }
    }

    fn envelope(&self, choices: Value) -> Value {
        json!({
            "id": self.id,
            "object": self.object(),
            "created": self.created,
            "model": self.model,
            "choices": choices,
        })
    }

    /// A chunk carrying `text` (or none) and the finish reason (or null).
    fn chunk(&self, text: Option<&str>, finish_reason: Option<&str>) -> Bytes {
        let choice = match self.kind {
            Kind::Chat => {
                let delta = text.map_or_else(|| json!({}), |t| json!({ "content": t }));
                json!({ "index": 0, "delta": delta, "finish_reason": finish_reason })
            }
            Kind::Text => json!({
                "index": 0, "text": text.unwrap_or(""), "logprobs": null, "finish_reason": finish_reason,
            }),
        };
        sse_event(None, &self.envelope(json!([choice])).to_string())
    }

    fn opening(&self) -> Option<Bytes> {
        (self.kind == Kind::Chat).then(|| {
            let choice = json!({ "index": 0, "delta": { "role": "assistant", "content": "" },
                                 "finish_reason": null });
            let mut first = self.envelope(json!([choice]));
            if let Some(citations) = &self.citations {
                first["citations"] = citations.clone();
            }
            sse_event(None, &first.to_string())
        })
    }

    fn closing(&self, finished: &Finished) -> Vec<u8> {
        let mut out = Vec::new();
        // Each call in one delta, whole: OpenAI's clients join `arguments` across deltas,
        // and one piece is a valid sequence of them.
        for (index, call) in finished.tool_calls.iter().enumerate() {
            let mut call = super::tools::call_json(call);
            call["index"] = index.into();
            let choice = json!({ "index": 0, "delta": { "tool_calls": [call] }, "finish_reason": null });
            out.extend_from_slice(&sse_event(None, &self.envelope(json!([choice])).to_string()));
        }
        out.extend_from_slice(&self.chunk(None, Some(finished.finish_reason.as_str())));
        if self.include_usage {
            let mut usage = self.envelope(json!([]));
            usage["usage"] = json!(finished.usage);
            usage["timings"] = json!(finished.timings);
            out.extend_from_slice(&sse_event(None, &usage.to_string()));
        }
        out
    }

    pub fn stream<P: Pieces + 'static>(
        self,
        pieces: P,
    ) -> impl futures_util::Stream<Item = Result<Bytes, actix_web::Error>> {
        let opening = self.opening();
        futures_util::stream::unfold(
            (self, pieces, opening, false),
            |(chunks, mut pieces, opening, done)| async move {
                if let Some(bytes) = opening {
                    return Some((Ok(bytes), (chunks, pieces, None, done)));
                }
                if done {
                    return None;
                }
                let mut out = match pieces.next_piece().await {
                    Piece::Text(text) => {
                        let bytes = chunks.chunk(Some(&text), None);
                        return Some((Ok(bytes), (chunks, pieces, None, false)));
                    }
                    Piece::End(finished) => chunks.closing(&finished),
                    Piece::Failed(e) => error_event(&e),
                };
                out.extend_from_slice(&sse_event(None, "[DONE]"));
                Some((Ok(Bytes::from(out)), (chunks, pieces, None, true)))
            },
        )
    }
}

/// OpenAI streams report errors as a plain `data:` line carrying the error body.
fn error_event(e: &ApiError) -> Vec<u8> {
    sse_event(None, &serde_json::to_string(&e.body()).unwrap_or_default()).to_vec()
}
