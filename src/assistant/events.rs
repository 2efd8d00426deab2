//! What a running turn reports, and what it ends with.

use super::prepare::Ledger;
use super::AssistantError;
use crate::engine::{Finished, ToolCall};
use crate::knowledge::Citation;
use crate::skills::ToolRun;
use crate::store::TurnIds;

/// What [`super::Running::next`] yields, in order: tokens, and for each tool the model
/// calls a [`Event::ToolCall`] then its [`Event::ToolResult`] (more tokens follow), then
/// [`Event::Complete`] or [`Event::Error`].
pub enum Event {
    /// A piece of the reply's text, as generated.
    Token(String),
    /// The model called one of the turn's skills; its result comes next.
    ToolCall(ToolCall),
    /// What the skill answered, as the model is given it.
    ToolResult(ToolRun),
    /// The reply is whole. It is not stored yet: [`Complete::persist`] stores it and
    /// gives the [`Outcome`] to answer with.
    Complete(Complete),
    /// The turn failed; nothing was stored.
    Error(AssistantError),
}

/// A finished reply, not stored yet.
pub struct Complete {
    pub text: String,
    /// How the last reply ended; its usage counts every round of a tool loop.
    pub finished: Finished,
    /// The skills the turn called, in order, with their results.
    pub tools: Vec<ToolRun>,
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
    /// The skills the turn called, in order, with their results.
    pub tools: Vec<ToolRun>,
    /// Where the turn was stored; `None` for an ephemeral conversation.
    pub stored: Option<TurnIds>,
}
