//! What a channel asks for, independent of its transport.

use super::Sampling;
use crate::engine::{ChatMessage, Constraint, Owner};
pub use crate::notices::Channel;

/// One turn to answer.
#[derive(Debug, Clone)]
pub struct Turn {
    pub who: Who,
    pub conversation: Conversation,
    /// Sampling options as the caller gave them; the settings fill in the rest.
    pub sampling: Sampling,
    /// An installed model to answer with; the configured model when `None`.
    pub model: Option<String>,
    /// Answer from the user's documents, with citations. `None`: the stored
    /// conversation's last choice, else `knowledge.chat_default`. A choice given for a
    /// stored conversation is remembered with it.
    pub knowledge: Option<bool>,
    /// Send the reply's text as it is generated (`true`), or whole at the end.
    pub stream: bool,
    pub style: Style,
    /// What the reply may be: free text (the default), calls of the tools the caller
    /// offers, or JSON.
    pub constraint: Constraint,
    /// Offer the assistant's enabled skills (`[skills]`) and run the tool loop: Hearth's
    /// own channels do; OpenAI and Ollama clients bring their own tools. Only a free-text
    /// turn that does not use the documents, on a model whose chat template speaks tools,
    /// is offered any.
    pub skills: bool,
    /// Where the turn came from: what its skills set up (a timer) is told there.
    pub channel: Channel,
}

impl Turn {
    /// A turn with the settings' defaults: streamed, written, the configured model, the
    /// knowledge rule's choice.
    pub fn new(who: Who, conversation: Conversation) -> Turn {
        Turn {
            who,
            conversation,
            sampling: Sampling::default(),
            model: None,
            knowledge: None,
            stream: true,
            style: Style::Written,
            constraint: Constraint::default(),
            skills: false,
            channel: Channel::Chat,
        }
    }
}

/// Whose turn it is: the engine's owner (KV cache reuse never crosses owners) and the
/// user, when there is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Who {
    pub owner: Owner,
    /// The Hearth user; `None` for the console and for voice satellites without
    /// `voice.wyoming_user`, which have no conversations or documents.
    pub user_id: Option<i64>,
}

impl Who {
    /// Someone at the box itself (`hearth chat` without `--url`).
    pub const CONSOLE: Who = Who { owner: Owner::CONSOLE, user_id: None };
    /// Voice satellites served over Wyoming when they speak for no user
    /// (`voice.wyoming_user` unset).
    pub const SATELLITES: Who = Who { owner: Owner::SATELLITES, user_id: None };

    pub const fn user(id: i64) -> Who {
        Who { owner: Owner::user(id), user_id: Some(id) }
    }
}

/// The conversation a turn belongs to, and what is new in it.
#[derive(Debug, Clone, PartialEq)]
pub enum Conversation {
    /// One of the user's stored conversations (`id`), or a new one (`None`), continued
    /// with `message`. The history is read from the store and the turn is stored.
    Stored { id: Option<String>, message: String },
    /// The whole conversation as the caller keeps it, the newest message last (OpenAI
    /// requests, the console's session, a satellite's utterance). Nothing is read or
    /// stored.
    Ephemeral { messages: Vec<ChatMessage> },
}

/// How the answer will reach the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Read on a screen: the configured system prompt as it is.
    Written,
    /// Read aloud: the system prompt asks for a short plain answer ([`super::SPOKEN_STYLE`]).
    Spoken,
}
