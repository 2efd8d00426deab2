//! The turn: one exchange with the language model, the same for every channel.
//!
//! `/api/chat`, `/v1/chat/completions`, the voice WebSocket, Wyoming's `handle` and
//! `hearth chat` each describe what was asked as a [`Turn`] and drive it through three
//! steps; they keep only parsing, authentication and their own framing.
//!
//! A stored turn (Hearth's own channels: chat, voice, satellites, Telegram) whose message
//! says the phrase of one of the user's enabled workflows is answered by that workflow
//! instead of the model (`phrase.rs`): its run is recorded like any, and its reply is
//! the turn's answer, stored like one.
//!
//! 1. [`Assistant::prepare`]: checks the request, reads the conversation so far (a stored
//!    one, or the messages the caller carries), resolves sampling against the settings,
//!    picks the model, decides whether to use the user's documents and retrieves from
//!    them, and assembles the messages with the system prompt first.
//! 2. [`Prepared::run`]: submits to the engine and waits for its first event, so that a
//!    refused request (a prompt over the context window, a full queue) is an error and
//!    not a started stream. [`Running::next`] then yields [`Event`]s: tokens, and last a
//!    [`Complete`] reply or an error. In a turn that offers skills ([`Turn::skills`]) the
//!    bounded tool loop runs here too: the model's calls and the skills' results are
//!    events, and the model is asked again with the results (`run.rs`).
//! 3. [`Complete::persist`]: stores the user's message and the reply in one transaction
//!    and only then gives the [`Outcome`] that a channel's final answer is made of. So the
//!    JSON answer, the last `done` event of a stream or the voice `done` message is sent
//!    only after COMMIT; a client that leaves mid-reply drops the turn, which stops
//!    generation, and nothing is stored.

mod documents;
mod error;
mod events;
mod persist;
mod phrase;
mod prepare;
mod run;
mod sampling;
mod turn;

pub use error::AssistantError;
pub use events::{Complete, Event, Outcome};
pub use prepare::Prepared;
pub use run::{Reply, Running};
pub use sampling::Sampling;
pub use turn::{Conversation, Style, Turn, Who};

use crate::config::Settings;
use crate::engine::{Engine, EngineError, ModelInfo, ModelState, Registry};
use crate::knowledge::Knowledge;
use crate::skills::Skills;
use crate::store::Store;
use crate::workflows::Workflows;
use std::sync::Arc;

/// Added to the system prompt when the answer will be spoken ([`Style::Spoken`]).
pub const SPOKEN_STYLE: &str = "Your answer will be read aloud by a speech synthesizer: answer in one to \
     three short sentences of plain text, without lists, markdown, code or emoji.";

/// What turns need: the settings, the models, and where conversations and documents
/// live. Clone it freely.
#[derive(Clone)]
pub struct Assistant {
    settings: Arc<Settings>,
    models: Registry,
    /// `None`: nothing is remembered (`hearth chat` in-process); stored conversations are refused.
    store: Option<Store>,
    /// `None`: no documents to answer from.
    knowledge: Option<Knowledge>,
    /// Offered to the model in turns that ask for them ([`Turn::skills`]).
    skills: Skills,
    /// Whose phrase triggers answer a stored turn instead of the model (`phrase.rs`).
    workflows: Option<Workflows>,
}

impl Assistant {
    /// An assistant that keeps no conversations and has no documents.
    pub fn new(settings: Arc<Settings>, models: Registry) -> Assistant {
        Assistant {
            settings,
            models,
            store: None,
            knowledge: None,
            skills: Skills::default(),
            workflows: None,
        }
    }

    /// Keeps conversations in `store`.
    pub fn with_store(self, store: Store) -> Assistant {
        Assistant { store: Some(store), ..self }
    }

    /// Answers from the users' documents when a turn asks.
    pub fn with_knowledge(self, knowledge: Knowledge) -> Assistant {
        Assistant { knowledge: Some(knowledge), ..self }
    }

    /// Offers these skills in turns that ask for them.
    pub fn with_skills(self, skills: Skills) -> Assistant {
        Assistant { skills, ..self }
    }

    /// Runs a user's workflow when their message says its phrase (see `phrase.rs`).
    pub fn with_workflows(self, workflows: Workflows) -> Assistant {
        Assistant { workflows: Some(workflows), ..self }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn models(&self) -> &Registry {
        &self.models
    }

    /// The skills the box has (which a caller may use: [`Skills::allowed`]).
    pub fn skills(&self) -> &Skills {
        &self.skills
    }

    /// The engine for a model name (the configured model when `None`), ready to serve,
    /// and what it is.
    pub async fn engine(&self, name: Option<&str>) -> Result<(Engine, ModelInfo), AssistantError> {
        let engine = self.models.engine(name).await?;
        match engine.state() {
            ModelState::Ready(info) => Ok((engine, *info)),
            ModelState::Failed { error, .. } => Err(EngineError::NotReady(error).into()),
            ModelState::Loading { .. } => {
                Err(EngineError::NotReady("the model is still loading".into()).into())
            }
        }
    }
}
