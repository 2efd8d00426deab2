//! What a running turn reports, and what it ends with.

use super::prepare::Ledger;
use super::AssistantError;
use crate::engine::Finished;
use crate::knowledge::Citation;
use crate::store::TurnIds;

/// What [`super::Running::next`] yields, in order: tokens (and, once the tool loop runs,
/// tool calls and their results), then [`Event::Complete`] or [`Event::Error`].
pub enum Event {
    /// A piece of the reply's text, as generated.
    Token(String),
    /// The model called a tool. Reserved for the tool loop: not sent yet.
    ToolCall(ToolCall),
    /// A tool's result, given back to the model. Reserved for the tool loop: not sent yet.
    ToolResult(ToolResult),
    /// The reply is whole. It is not stored yet: [`Complete::persist`] stores it and
    /// gives the [`Outcome`] to answer with.
    Complete(Complete),
    /// The turn failed; nothing was stored.
    Error(AssistantError),
}

/// A tool the model asked for (see [`Event::ToolCall`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// Pairs the call with its [`ToolResult`].
    pub id: String,
    pub name: String,
    /// The arguments, a JSON object as text.
    pub arguments: String,
}

/// What a tool answered (see [`Event::ToolResult`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolResult {
    pub id: String,
    pub content: String,
}

/// A finished reply, not stored yet.
pub struct Complete {
    pub text: String,
    pub finished: Finished,
    pub(super) ledger: Ledger,
}

/// A turn as answered: made only by [`Complete::persist`], so once a stored turn is
/// committed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Outcome {
    pub text: String,
    pub finished: Finished,
    /// The model that answered.
    pub model: String,
    /// Whether the user's documents were consulted.
    pub knowledge: bool,
    /// The document excerpts given to the model, numbered as the reply cites them.
    pub citations: Vec<Citation>,
    /// Where the turn was stored; `None` for an ephemeral conversation.
    pub stored: Option<TurnIds>,
}
