//! A reply as the HTTP shapes that stream it (OpenAI's, Ollama's) read it: text, then the
//! end or a failure, whether a chat turn or raw text continued by the engine produced it.

use crate::assistant::{AssistantError, Event, Reply, Running};
use crate::engine::{self, Finished};
use crate::error::ApiError;

/// What a streamed reply is made of, whatever produced it.
pub(crate) enum Piece {
    Text(String),
    End(Finished),
    Failed(ApiError),
}

/// Where the pieces come from: a chat turn, or a raw text completion.
pub(crate) trait Pieces {
    async fn next_piece(&mut self) -> Piece;
}

impl Pieces for Running {
    async fn next_piece(&mut self) -> Piece {
        loop {
            return match self.next().await {
                Some(Event::Token(text)) => Piece::Text(text),
                // These turns run no skills: the client's tools come in `Finished`.
                Some(Event::ToolCall(_) | Event::ToolResult(_)) => continue,
                // Nothing to store in a stateless turn, but its answer is made the same way.
                Some(Event::Complete(complete)) => match complete.persist().await {
                    Ok(outcome) => Piece::End(outcome.finished),
                    Err(e) => Piece::Failed(e.into()),
                },
                Some(Event::Error(e)) => Piece::Failed(e.into()),
                None => Piece::Failed(AssistantError::stopped().into()),
            };
        }
    }
}

impl Pieces for Reply {
    async fn next_piece(&mut self) -> Piece {
        match self.next().await {
            Some(engine::Event::Token(text)) => Piece::Text(text),
            Some(engine::Event::Done(finished)) => Piece::End(finished),
            Some(engine::Event::Error(e)) => Piece::Failed(e.into()),
            None => Piece::Failed(AssistantError::stopped().into()),
        }
    }
}
