//! Step one of a turn: from what was asked to what the engine is given.

use super::phrase::{self, PhraseRun};
use super::{documents, sampling, Assistant, AssistantError, Conversation, Style, Turn, SPOKEN_STYLE};
use crate::engine::{
    ChatMessage, Constraint, Engine, GenerateParams, ModelInfo, Owner, ToolChoice, ToolSpec, ToolUse,
};
use crate::knowledge::{Citation, Citer, Retrieved, Sources};
use crate::skills::{self, Allowed};
use crate::store::Store;

/// A turn ready to run: checked, its history read, its documents retrieved.
pub struct Prepared {
    /// What the engine is asked; `None` when a workflow answers.
    pub(super) request: Option<Request>,
    /// The workflow whose phrase the message says: it answers instead of the model.
    pub(super) workflow: Option<PhraseRun>,
    pub(super) ledger: Ledger,
    pub(super) tools: Option<ToolLoop>,
    /// With documents: cites the reply as it is generated (see [`Citer`]).
    pub(super) citer: Option<Citer>,
}

/// A turn's skills and how many rounds of calls it has left.
pub(super) struct ToolLoop {
    /// The skills this caller may use (`Skills::allowed`).
    pub skills: Allowed,
    pub ctx: skills::Context,
    /// The tools the model is shown.
    pub specs: Vec<ToolSpec>,
    /// Rounds of calls left before the model must answer in words.
    pub rounds_left: u32,
    /// The temperature of the rounds after results, which state what a skill found: the
    /// caller's, else at most [`sampling::DOCUMENT_TEMPERATURE`] (at 0.7 the default model
    /// answered "what time is it?" by voice with "This response provides the current time").
    pub answer_temperature: f32,
}

/// What is submitted to the engine.
pub(super) struct Request {
    pub engine: Engine,
    pub owner: Owner,
    pub messages: Vec<ChatMessage>,
    pub params: GenerateParams,
}

/// What the turn's answer reports and stores besides the reply.
pub(crate) struct Ledger {
    pub model: String,
    pub knowledge: bool,
    pub citations: Vec<Citation>,
    /// Where and what to store; `None` for an ephemeral conversation.
    pub record: Option<Record>,
}

/// A stored conversation's new turn, as far as it is known before the reply.
pub(crate) struct Record {
    pub store: Store,
    pub user_id: i64,
    /// `None`: a new conversation.
    pub conversation_id: Option<String>,
    /// A new conversation's id, chosen before the turn runs.
    pub new_id: Option<String>,
    pub message: String,
    /// The knowledge choice the turn gave, remembered for the conversation.
    pub knowledge: Option<bool>,
}

impl Record {
    /// The conversation's id, a new one's included.
    pub(super) fn conversation(&self) -> Option<&str> {
        self.conversation_id.as_deref().or(self.new_id.as_deref())
    }
}

impl Prepared {
    /// The model that will answer.
    pub fn model(&self) -> &str {
        &self.ledger.model
    }

    /// Whether the user's documents are consulted.
    pub fn knowledge(&self) -> bool {
        self.ledger.knowledge
    }

    /// The document excerpts given to the model.
    pub fn citations(&self) -> &[Citation] {
        &self.ledger.citations
    }
}

impl Assistant {
    /// Checks a turn and gathers what it needs: the conversation so far, the sampling
    /// options, the model, the documents.
    pub async fn prepare(&self, turn: Turn) -> Result<Prepared, AssistantError> {
        let Turn {
            who,
            conversation,
            sampling,
            model,
            knowledge,
            stream,
            style,
            constraint,
            skills,
            channel,
        } = turn;
        let (messages, remembered, record) = match conversation {
            Conversation::Stored { id, message } => {
                if message.trim().is_empty() {
                    return Err(AssistantError::Invalid("message must not be empty".into()));
                }
                let user_id =
                    who.user_id.ok_or(AssistantError::Unsupported("a stored conversation needs a user"))?;
                let store = self
                    .store
                    .clone()
                    .ok_or(AssistantError::Unsupported("this assistant keeps no conversations"))?;
                let (mut messages, remembered) = match &id {
                    None => (Vec::new(), None),
                    Some(id) => read_conversation(&store, user_id, id.clone()).await?,
                };
                messages.push(ChatMessage::new("user", message.clone()));
                let new_id = id.is_none().then(|| uuid::Uuid::new_v4().to_string());
                let record = Record { store, user_id, conversation_id: id, new_id, message, knowledge };
                (messages, remembered, Some(record))
            }
            Conversation::Ephemeral { messages } => {
                if messages.is_empty() {
                    return Err(AssistantError::Invalid("messages must contain at least one message".into()));
                }
                (messages, None, None)
            }
        };
        if let (Some(asked), Some(workflows)) = (&record, &self.workflows) {
            let found = phrase::find(workflows, asked, channel).await?;
            if let Some(run) = found {
                let ledger = Ledger {
                    model: format!("workflow:{}", run.name),
                    knowledge: false,
                    citations: Vec::new(),
                    record,
                };
                return Ok(Prepared { request: None, workflow: Some(run), ledger, tools: None, citer: None });
            }
        }
        let asked_temperature = sampling.temperature;
        let free_text = matches!(constraint, Constraint::None);
        let mut params = GenerateParams { constraint, ..sampling.resolve(&self.settings.model, stream)? };
        let (engine, info) = self.engine(model.as_deref()).await?;
        let knowledge = documents::use_documents(knowledge, remembered, self.settings.knowledge.chat_default);
        let retrieved = match (knowledge, who.user_id, &self.knowledge, last_user_message(&messages)) {
            (true, Some(user_id), Some(documents), Some(question)) => {
                documents::retrieve(documents, user_id, question).await
            }
            _ => None,
        };
        if let Some(retrieved) = &retrieved {
            params.temperature = sampling::documents_temperature(asked_temperature, params.temperature);
            params.stop.extend(retrieved.labels());
        }
        let system = system_prompt(&self.settings.model.system_prompt, style);
        let (messages, citations, sources) = assemble(system, messages, retrieved);
        let citer = citer(sources, style, free_text);
        // A turn that answers from the documents is about them: the small default model,
        // shown the clock beside the excerpts, called it and lost the answer.
        let tools = match skills && !knowledge && free_text {
            true => {
                self.tool_loop(
                    &info,
                    skills::Context {
                        user_id: who.user_id,
                        cite_from: citations.len() + 1,
                        channel,
                        conversation_id: record.as_ref().and_then(Record::conversation).map(Into::into),
                    },
                    sampling::documents_temperature(asked_temperature, params.temperature),
                )
                .await?
            }
            false => None,
        };
        if let Some(tools) = &tools {
            params.constraint = offer(tools.specs.clone(), ToolChoice::Auto);
        }
        Ok(Prepared {
            request: Some(Request { engine, owner: who.owner, messages, params }),
            workflow: None,
            ledger: Ledger { model: info.id, knowledge, citations, record },
            tools,
            citer,
        })
    }

    /// The skills a turn offers: those this caller may use (the box's defaults and the
    /// owner's settings for the user: `Skills::allowed`), on a model whose chat template
    /// speaks tools.
    async fn tool_loop(
        &self,
        info: &ModelInfo,
        ctx: skills::Context,
        answer_temperature: f32,
    ) -> Result<Option<ToolLoop>, AssistantError> {
        if info.tool_calls.is_none() {
            return Ok(None);
        }
        let skills = self.skills.allowed(&ctx).await?;
        let specs = skills.specs(&ctx);
        let rounds_left = self.settings.skills.max_rounds;
        Ok((!specs.is_empty()).then_some(ToolLoop { skills, ctx, specs, rounds_left, answer_temperature }))
    }
}

/// The tools shown to the model, called per `choice` (several at once allowed).
pub(super) fn offer(tools: Vec<ToolSpec>, choice: ToolChoice) -> Constraint {
    Constraint::Tools(ToolUse { tools, choice, parallel: true })
}

/// A stored conversation's messages, oldest first, and the knowledge choice it remembers.
pub(super) async fn read_conversation(
    store: &Store,
    user_id: i64,
    id: String,
) -> Result<(Vec<ChatMessage>, Option<bool>), AssistantError> {
    let (messages, remembered) = store
        .run(move |store| {
            let remembered = store.conversation_knowledge(user_id, &id)?;
            Ok((store.messages(user_id, &id)?, remembered))
        })
        .await?;
    Ok((messages.into_iter().map(|m| ChatMessage::new(&m.role, m.content)).collect(), remembered))
}

fn last_user_message(messages: &[ChatMessage]) -> Option<&str> {
    messages.iter().rev().find(|m| m.role == "user").map(|m| m.content.as_str())
}

/// The configured system prompt in the turn's style.
fn system_prompt(configured: &str, style: Style) -> String {
    match style {
        Style::Written => configured.to_string(),
        Style::Spoken => format!("{configured} {SPOKEN_STYLE}"),
    }
}

/// What cites a reply from documents: for free text only (tool calls and JSON stay as the
/// model wrote them); a spoken reply loses the model's markers but gets none, as they
/// would be read aloud.
fn citer(sources: Option<Sources>, style: Style, free_text: bool) -> Option<Citer> {
    sources.filter(|_| free_text).map(|sources| Citer::new(sources, style == Style::Written))
}

/// The messages for the engine: `system` first unless the conversation brings its own
/// system message, then the conversation. With documents, the newest user message is
/// replaced by the prompt that carries the excerpts (the stored message stays as the
/// user wrote it), and the excerpts' sources come back for citing the reply. The engine
/// drops the oldest turns if all this does not fit its context.
fn assemble(
    system: String,
    mut messages: Vec<ChatMessage>,
    retrieved: Option<Retrieved>,
) -> (Vec<ChatMessage>, Vec<Citation>, Option<Sources>) {
    let mut citations = Vec::new();
    let mut sources = None;
    if let Some(retrieved) = retrieved {
        if let Some(last) = messages.iter_mut().rev().find(|m| m.role == "user") {
            last.content = retrieved.prompt;
            citations = retrieved.citations;
            sources = Some(retrieved.sources);
        }
    }
    if messages.first().is_none_or(|m| m.role != "system") {
        messages.insert(0, ChatMessage::new("system", system));
    }
    (messages, citations, sources)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(role: &str, content: &str) -> ChatMessage {
        ChatMessage::new(role, content)
    }

    fn citation(n: usize) -> Citation {
        Citation {
            n,
            document_id: 1,
            document_name: "boiler.md".into(),
            chunk_id: 10,
            chunk: 0,
            snippet: "Reset the boiler".into(),
        }
    }

    #[test]
    fn the_system_prompt_comes_first_unless_the_conversation_brings_one() {
        let history = vec![m("user", "Hi"), m("assistant", "Hello"), m("user", "How are you?")];
        let (messages, citations, _) = assemble("Be kind.".into(), history.clone(), None);
        assert_eq!(messages[0], m("system", "Be kind."));
        assert_eq!(messages[1..], history[..]);
        assert!(citations.is_empty());

        let own = vec![m("system", "Be terse."), m("user", "Hi")];
        assert_eq!(
            assemble("Be kind.".into(), own.clone(), None).0,
            own,
            "the client's system prompt stays alone"
        );
    }

    #[test]
    fn documents_replace_only_the_newest_user_message() {
        let history =
            vec![m("user", "first"), m("assistant", "reply"), m("user", "boiler?"), m("assistant", "")];
        let sources = Sources::new([(1, "Reset the boiler")]);
        let retrieved =
            Retrieved { prompt: "Excerpts ... boiler?".into(), citations: vec![citation(1)], sources };
        let (messages, citations, sources) = assemble("S".into(), history, Some(retrieved));
        let contents: Vec<&str> = messages.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(contents, ["S", "first", "reply", "Excerpts ... boiler?", ""]);
        assert_eq!(citations, [citation(1)]);
        assert_eq!(sources.expect("sources to cite with").attribute("Reset the boiler"), Some(1));
    }

    #[test]
    fn without_a_user_message_documents_are_not_cited() {
        let retrieved = Retrieved {
            prompt: "Excerpts".into(),
            citations: vec![citation(1)],
            sources: Sources::default(),
        };
        let (messages, citations, sources) = assemble("S".into(), vec![m("system", "own")], Some(retrieved));
        assert_eq!(messages, [m("system", "own")]);
        assert!(citations.is_empty() && sources.is_none());
    }

    #[test]
    fn only_free_text_is_cited_and_spoken_replies_get_no_markers() {
        let sources = || Some(Sources::new([(1, "The pressure is 1.5 bar.")]));
        assert!(citer(None, Style::Written, true).is_none(), "no documents, nothing to cite");
        assert!(citer(sources(), Style::Written, false).is_none(), "tool calls and JSON stay as written");
        let mut written = citer(sources(), Style::Written, true).unwrap();
        assert_eq!(written.push("It is 1.5 bar [2]. "), Some("It is 1.5 bar [1].".into()));
        let mut spoken = citer(sources(), Style::Spoken, true).unwrap();
        assert_eq!(spoken.push("It is 1.5 bar [2]. "), Some("It is 1.5 bar.".into()));
    }

    #[test]
    fn spoken_turns_ask_for_a_short_plain_answer() {
        assert_eq!(system_prompt("You are Hearth.", Style::Written), "You are Hearth.");
        let spoken = system_prompt("You are Hearth.", Style::Spoken);
        assert!(spoken.starts_with("You are Hearth. ") && spoken.ends_with(SPOKEN_STYLE), "{spoken}");
    }

    #[test]
    fn the_question_is_the_newest_user_message() {
        assert_eq!(last_user_message(&[m("user", "a"), m("assistant", "b"), m("user", "c")]), Some("c"));
        assert_eq!(last_user_message(&[m("user", "a"), m("assistant", "b")]), Some("a"));
        assert_eq!(last_user_message(&[m("system", "s")]), None);
    }
}
