//! Skills: what the assistant can do besides talking, offered to the model as tools in
//! Hearth's own channels (`/api/chat`, the voice WebSocket, Wyoming satellites).
//!
//! A [`Skill`] has a name, a description and a JSON schema of its arguments (what the
//! model is shown), and [`Skill::execute`]s with a [`Context`] (who asks). The [`Skills`]
//! registry holds the enabled ones (`[skills] enabled`), says which a caller may use, and
//! [`Skills::run`]s a call under the skill's timeout: a skill that overruns is dropped
//! (cancelled) and the model is told it failed. The bounded loop that feeds calls and
//! results back to the model is the assistant's (`assistant/run.rs`).
//!
//! Built-ins: `clock` (the box's date and time), `search_documents` (the user's documents),
//! `set_timer`, `set_reminder`, `list_reminders`, `cancel_reminder` (`timers`), `calculate`
//! (`calculator/`), `create_note`, `list_notes`, `search_notes` (`notes.rs`). From the
//! configuration (`configured.rs`): webhook skills (`webhook.rs`) and Home Assistant
//! control (`home_assistant.rs`), whose HTTP goes through `outbound/`'s guard.

mod arguments;
pub mod calculator;
mod clock;
mod configured;
mod documents;
pub mod home_assistant;
mod notes;
mod per_user;
mod timers;
pub mod webhook;

pub use clock::Clock;
pub use configured::{check_webhooks, configured};
pub use documents::SearchDocuments;
pub use per_user::{box_default, check_names, known_in, standings, Allowed, Known, PerUserError, Standing};

use crate::engine::ToolCall;
use crate::knowledge::{Citation, Knowledge};
use crate::notices::Channel;
use crate::reminders::Reminders;
use crate::store::Store;
use futures_util::future::BoxFuture;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The built-in skills' names, for checking `[skills] enabled`.
pub const BUILT_IN: &[&str] = &[
    clock::NAME,
    documents::NAME,
    timers::SET_TIMER,
    timers::SET_REMINDER,
    timers::LIST,
    timers::CANCEL,
    calculator::NAME,
    notes::CREATE,
    notes::LIST,
    notes::SEARCH,
];

/// Who a skill runs for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// The Hearth user; `None` for the console and satellites of no user.
    pub user_id: Option<i64>,
    /// The number the first document excerpt a skill cites gets (`[n]`), after those the
    /// turn already has.
    pub cite_from: usize,
    /// Where the turn came from (a timer set there is told there).
    pub channel: Channel,
    /// The stored conversation the turn belongs to (new ones have their id already).
    pub conversation_id: Option<Arc<str>>,
}

impl Context {
    /// A context for a user (or nobody) on a channel, outside any conversation.
    pub fn new(user_id: Option<i64>, channel: Channel) -> Context {
        Context { user_id, cite_from: 1, channel, conversation_id: None }
    }
}

/// What a skill answered.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Output {
    /// What the model is given: JSON or plain text.
    pub content: String,
    /// Document excerpts the content carries, numbered as it cites them.
    pub citations: Vec<Citation>,
}

impl Output {
    pub fn json(value: &Value) -> Output {
        Output { content: value.to_string(), citations: Vec::new() }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SkillError {
    /// The arguments do not fit the skill's schema; the text says which.
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    #[error("{0}")]
    Failed(String),
}

/// Something the assistant can do. Implementations keep blocking work off the async
/// runtime (the store's own threads, `spawn_blocking`).
pub trait Skill: Send + Sync {
    fn name(&self) -> &'static str;
    /// What the model reads to decide when to call it.
    fn description(&self) -> &'static str;
    /// A JSON schema of the arguments (an object).
    fn parameters(&self) -> Value;
    /// Whether it can serve this caller (documents need a user).
    fn available(&self, _ctx: &Context) -> bool {
        true
    }
    /// Runs the skill. Dropping the future cancels it.
    fn execute(&self, arguments: Value, ctx: Context) -> BoxFuture<'static, Result<Output, SkillError>>;
}

/// One call as it ran: what a conversation records.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ToolRun {
    pub id: String,
    pub name: String,
    pub arguments: Value,
    /// What the model was given: the skill's output, or `{"error": ...}`.
    pub result: String,
    pub ok: bool,
    /// When it started, Unix seconds.
    pub at: i64,
    pub ms: u64,
}

/// Every skill the box has, each on or off by default (`[skills]`); which of them one
/// caller may use is [`Skills::allowed`]'s to say (`per_user.rs`), and only what it
/// allows can be offered or run. Clone it freely.
#[derive(Clone, Default)]
pub struct Skills {
    skills: BTreeMap<&'static str, Entry>,
    timeout: Duration,
    /// Where the owner's per-user settings are read; without one (the console, tests)
    /// everyone gets the defaults.
    store: Option<Store>,
}

#[derive(Clone)]
struct Entry {
    skill: Arc<dyn Skill>,
    /// Offered to everyone the owner did not set otherwise.
    on_by_default: bool,
}

impl Skills {
    /// The built-ins, those named in `enabled` on by default (unknown names were refused
    /// when the settings were checked); `search_documents` only with documents to
    /// search, the timers only with the reminders service. The notes skills come with
    /// [`Skills::with_notes`].
    pub fn built_in(
        enabled: &[String],
        timeout: Duration,
        knowledge: Option<Knowledge>,
        reminders: Option<Reminders>,
    ) -> Skills {
        let mut skills = Skills { skills: BTreeMap::new(), timeout, store: None };
        for name in BUILT_IN {
            let skill: Arc<dyn Skill> = match (*name, &knowledge, &reminders) {
                (clock::NAME, _, _) => Arc::new(Clock),
                (calculator::NAME, _, _) => Arc::new(calculator::Calculator),
                (documents::NAME, Some(knowledge), _) => Arc::new(SearchDocuments::new(knowledge.clone())),
                (name, _, Some(reminders)) if timers::NAMES.contains(&name) => {
                    match timers::skill(name, reminders.clone()) {
                        Some(skill) => skill,
                        None => continue,
                    }
                }
                _ => continue,
            };
            skills = skills.with_default(skill, enabled.iter().any(|e| e == name));
        }
        skills
    }

    /// Adds a skill, on by default (a test's, or one of the next built-ins).
    pub fn with(self, skill: Arc<dyn Skill>) -> Skills {
        self.with_default(skill, true)
    }

    /// Adds a skill, on or off by default.
    pub fn with_default(mut self, skill: Arc<dyn Skill>, on_by_default: bool) -> Skills {
        self.skills.insert(skill.name(), Entry { skill, on_by_default });
        self
    }

    /// Reads the owner's per-user settings from `store`.
    pub fn with_store(self, store: Store) -> Skills {
        Skills { store: Some(store), ..self }
    }

    /// Whether the box has no skill at all.
    pub fn is_empty(&self) -> bool {
        self.skills.is_empty()
    }
}

/// Runs one call under the timeout. Failures become a result the model can read
/// (`{"error": ...}`), never a failed turn. Only [`Allowed::run`] calls it.
async fn run(
    skill: Result<&Arc<dyn Skill>, String>,
    timeout: Duration,
    call: &ToolCall,
    ctx: Context,
) -> (ToolRun, Vec<Citation>) {
    let at = crate::store::now();
    let started = Instant::now();
    let outcome = match skill {
        Err(why) => Err(SkillError::Failed(why)),
        Ok(skill) if !call.arguments.is_object() => {
            Err(SkillError::InvalidArguments(format!("{} takes a JSON object", skill.name())))
        }
        Ok(skill) => match tokio::time::timeout(timeout, skill.execute(call.arguments.clone(), ctx)).await {
            Ok(result) => result,
            Err(_) => Err(SkillError::Failed(format!("took longer than {} s", timeout.as_secs()))),
        },
    };
    let ms = started.elapsed().as_millis() as u64;
    let (result, ok, citations) = match outcome {
        Ok(output) => (output.content, true, output.citations),
        Err(e) => {
            tracing::warn!(skill = %call.name, error = %e, "skill failed");
            (serde_json::json!({ "error": e.to_string() }).to_string(), false, Vec::new())
        }
    };
    let run = ToolRun {
        id: call.id.clone(),
        name: call.name.clone(),
        arguments: call.arguments.clone(),
        result,
        ok,
        at,
        ms,
    };
    (run, citations)
}

/// A string argument, or an error naming it.
pub(crate) fn string_arg<'a>(arguments: &'a Value, name: &str) -> Result<&'a str, SkillError> {
    match arguments.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim()),
        Some(_) => Err(SkillError::InvalidArguments(format!("'{name}' must be a non-empty string"))),
        None => Err(SkillError::InvalidArguments(format!("'{name}' is required"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ToolSpec;
    use serde_json::json;

    /// A skill that waits longer than any test timeout.
    struct Slow;
    impl Skill for Slow {
        fn name(&self) -> &'static str {
            "slow"
        }
        fn description(&self) -> &'static str {
            "Waits."
        }
        fn parameters(&self) -> Value {
            ToolSpec::no_parameters()
        }
        fn execute(&self, _: Value, _: Context) -> BoxFuture<'static, Result<Output, SkillError>> {
            Box::pin(async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(Output::default())
            })
        }
    }

    const ALICE: Context =
        Context { user_id: Some(1), cite_from: 1, channel: Channel::Chat, conversation_id: None };
    const SATELLITE: Context =
        Context { user_id: None, cite_from: 1, channel: Channel::Satellite, conversation_id: None };

    #[tokio::test]
    async fn the_clock_is_offered_and_answers_with_the_date_and_time() {
        let skills = Skills::built_in(&["clock".into()], Duration::from_secs(5), None, None);
        let skills = skills.allowed(&SATELLITE).await.unwrap();
        let names: Vec<String> = skills.specs(&SATELLITE).into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["clock"]);
        let (run, citations) = skills.run(&ToolCall::new("clock", json!({})), SATELLITE).await;
        assert!(run.ok, "{run:?}");
        let today = chrono::Local::now().format("%A %-d %B %Y").to_string();
        assert!(run.result.starts_with("It is ") && run.result.contains(&today), "{}", run.result);
        assert!(citations.is_empty());
    }

    #[tokio::test]
    async fn unknown_tools_bad_arguments_and_overruns_are_results_the_model_reads() {
        let skills =
            Skills::built_in(&["clock".into()], Duration::from_millis(50), None, None).with(Arc::new(Slow));
        let skills = skills.allowed(&ALICE).await.unwrap();
        let (run, _) = skills.run(&ToolCall::new("launch", json!({})), ALICE).await;
        assert!(!run.ok && run.result.contains("no tool named 'launch'"), "{run:?}");
        let (run, _) = skills.run(&ToolCall::new("clock", json!("now")), ALICE).await;
        assert!(!run.ok && run.result.contains("takes a JSON object"), "{run:?}");
        let (run, _) = skills.run(&ToolCall::new("slow", json!({})), ALICE).await;
        assert!(!run.ok && run.result.contains("took longer than"), "{run:?}");
        assert!(run.ms < 5_000, "cancelled at the timeout, not after the skill's 30 s");
    }

    #[tokio::test]
    async fn documents_need_documents_to_search_and_nothing_enabled_offers_nothing() {
        let skills = Skills::built_in(
            &["clock".into(), "search_documents".into()],
            Duration::from_secs(1),
            None,
            None,
        );
        let allowed = skills.allowed(&ALICE).await.unwrap();
        assert_eq!(allowed.specs(&ALICE).len(), 1, "no knowledge: no search_documents");
        let none = Skills::built_in(&[], Duration::from_secs(1), None, None);
        assert!(!none.is_empty(), "the box still has the skills the owner may turn on per user");
        assert!(none.allowed(&ALICE).await.unwrap().specs(&ALICE).is_empty(), "but offers none by default");
    }

    #[test]
    fn string_arguments_are_checked_by_name() {
        assert_eq!(string_arg(&json!({"query": " boiler "}), "query"), Ok("boiler"));
        assert!(
            matches!(string_arg(&json!({}), "query"), Err(SkillError::InvalidArguments(m)) if m.contains("'query' is required"))
        );
        assert!(string_arg(&json!({"query": 3}), "query").is_err());
        assert!(string_arg(&json!({"query": "  "}), "query").is_err());
    }
}
