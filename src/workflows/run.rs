//! One run of a workflow: each step in order, its templates filled from what came
//! before, its record (input, output, error, duration) kept as it goes; the first failing
//! step ends the run. The run's summary is written into the owner's history.

use super::file::{Action, Step};
use super::{template, Loaded};
use crate::assistant::{Assistant, Conversation, Turn, Who};
use crate::engine::{ChatMessage, ToolCall};
use crate::notices::{About, Channel, Notice, Notices};
use crate::skills::{Context, Skills};
use crate::store::{Store, WorkflowRun};
use serde::Serialize;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// What runs use. Clone it freely.
#[derive(Clone)]
pub struct Services {
    pub assistant: Assistant,
    pub skills: Skills,
    pub notices: Notices,
    /// Longest a whole run may take.
    pub timeout: Duration,
}

/// Where a run was started from: what its skill steps set up (a timer) is told on that
/// channel and written into that conversation. Scheduled, webhook and "run now" runs are
/// the web UI's; a phrase's run is its turn's.
#[derive(Debug, Clone)]
pub struct Origin {
    pub channel: Channel,
    pub conversation_id: Option<String>,
}

impl Default for Origin {
    fn default() -> Self {
        Origin { channel: Channel::Chat, conversation_id: None }
    }
}

/// One step as it ran.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StepRecord {
    pub id: String,
    /// `skill`, `prompt`, `notify` or `reply`.
    pub kind: &'static str,
    /// What it was given: the skill's name and arguments, or the filled-in text.
    pub input: Value,
    pub output: Option<String>,
    pub error: Option<String>,
    pub ms: u64,
}

/// Most characters of a run's result kept in its summary message.
const SUMMARY_CHARS: usize = 2000;

/// Runs `loaded`'s steps for run `id` and records the end; returns the run as recorded.
pub(super) async fn execute(
    services: Services,
    store: Store,
    loaded: Loaded,
    id: i64,
    trigger: &'static str,
    input: Value,
    origin: Origin,
) -> WorkflowRun {
    let name = loaded.workflow.name.clone();
    let started = Instant::now();
    let mut records: Vec<StepRecord> = Vec::new();
    let steps = tokio::time::timeout(
        services.timeout,
        steps(&services, &store, &loaded, id, &input, &origin, &mut records),
    );
    let outcome = match steps.await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!("the run took longer than {} s", services.timeout.as_secs())),
    };
    let summary = match &outcome {
        Ok(output) => format!("Workflow '{name}' ({trigger}) done: {}", clip(output)),
        Err(e) => format!("Workflow '{name}' ({trigger}) failed: {e}"),
    };
    let owner = loaded.owner_id;
    let (wf, text) = (name.clone(), summary);
    let conversation = store.run(move |s| s.write_workflow_summary(&wf, owner, &text)).await;
    let conversation = conversation
        .map_err(|e| tracing::warn!(workflow = %name, error = %e, "run summary not written"))
        .ok();
    let steps = serde_json::to_value(&records).unwrap_or_default();
    let finished = {
        let (outcome, steps) = (outcome.clone(), steps.clone());
        store
            .run(move |s| {
                let result = outcome.as_deref().map_err(String::as_str);
                s.finish_workflow_run(id, &steps, result, conversation.as_deref())?;
                s.workflow_run(id)
            })
            .await
    };
    let secs = started.elapsed().as_secs_f32();
    match &outcome {
        Ok(_) => tracing::info!(workflow = %name, run = id, secs, "workflow run done"),
        Err(e) => tracing::warn!(workflow = %name, run = id, secs, error = %e, "workflow run failed"),
    }
    finished.unwrap_or_else(|e| {
        tracing::error!(workflow = %name, run = id, error = %e, "workflow run not recorded");
        WorkflowRun {
            id,
            workflow: name,
            user_id: owner,
            trigger: trigger.into(),
            state: if outcome.is_ok() { "done" } else { "failed" }.into(),
            started_at: 0,
            finished_at: None,
            steps,
            output: outcome.clone().ok(),
            error: outcome.err(),
            conversation_id: None,
        }
    })
}

fn clip(text: &str) -> String {
    let mut clipped: String = text.chars().take(SUMMARY_CHARS).collect();
    if text.chars().count() > SUMMARY_CHARS {
        clipped.push('…');
    }
    clipped
}

/// The steps in order; the run's result: the `reply` step's text, else the last output.
async fn steps(
    services: &Services,
    store: &Store,
    loaded: &Loaded,
    id: i64,
    input: &Value,
    origin: &Origin,
    records: &mut Vec<StepRecord>,
) -> Result<String, String> {
    let workflow = &loaded.workflow;
    let mut outputs = serde_json::Map::new();
    let mut reply: Option<String> = None;
    let mut last = String::new();
    for step in &workflow.steps {
        let context = json!({
            "steps": outputs,
            "input": input,
            "workflow": { "name": workflow.name, "owner": workflow.owner },
            "now": chrono::Local::now().format("%A %-d %B %Y %H:%M").to_string(),
        });
        let started = Instant::now();
        let (given, result) = match one(services, loaded, id, step, &context, origin).await {
            Ok((given, output)) => (given, Ok(output)),
            Err((given, e)) => (given, Err(e)),
        };
        let record = StepRecord {
            id: step.id.clone(),
            kind: step.action.kind(),
            input: given,
            output: result.as_ref().ok().cloned(),
            error: result.as_ref().err().cloned(),
            ms: started.elapsed().as_millis() as u64,
        };
        records.push(record);
        let steps = serde_json::to_value(&*records).unwrap_or_default();
        if let Err(e) = store.run(move |s| s.workflow_run_steps(id, &steps)).await {
            tracing::warn!(run = id, error = %e, "workflow step not recorded");
        }
        let output = result.map_err(|e| format!("step '{}' failed: {e}", step.id))?;
        if matches!(step.action, Action::Reply(_)) {
            reply = Some(output.clone());
        }
        outputs.insert(step.id.clone(), json!({ "output": output }));
        last = output;
    }
    Ok(reply.unwrap_or(last))
}

type StepResult = Result<(Value, String), (Value, String)>;

/// One step: what it was given and what it gave.
async fn one(
    services: &Services,
    loaded: &Loaded,
    run_id: i64,
    step: &Step,
    context: &Value,
    origin: &Origin,
) -> StepResult {
    let owner = loaded.owner_id;
    let fill = |text: &str| template::render(text, context).map_err(|e| (Value::Null, e));
    match &step.action {
        Action::Skill { name, args } => {
            let args = template::render_value(args, context).map_err(|e| (Value::Null, e))?;
            let given = json!({ "skill": name, "args": args });
            let call = ToolCall::new(name.clone(), args);
            let ctx = Context {
                conversation_id: origin.conversation_id.as_deref().map(Into::into),
                ..Context::new(Some(owner), origin.channel)
            };
            let allowed = services.skills.allowed(&ctx).await.map_err(|e| (given.clone(), e.to_string()))?;
            let (ran, _) = allowed.run(&call, ctx).await;
            match ran.ok {
                true => Ok((given, ran.result)),
                false => {
                    let error = serde_json::from_str::<Value>(&ran.result)
                        .ok()
                        .and_then(|v| v["error"].as_str().map(str::to_string))
                        .unwrap_or(ran.result);
                    Err((given, error))
                }
            }
        }
        Action::Prompt(prompt) => {
            let prompt = fill(prompt)?;
            let given = Value::String(prompt.clone());
            let turn = Turn {
                stream: false,
                ..Turn::new(
                    Who::user(owner),
                    Conversation::Ephemeral { messages: vec![ChatMessage::new("user", prompt)] },
                )
            };
            let assistant = &services.assistant;
            match async { assistant.prepare(turn).await?.run().await?.finish().await }.await {
                Ok(outcome) => Ok((given, outcome.text.trim().to_string())),
                Err(e) => Err((given, e.to_string())),
            }
        }
        Action::Notify { text, to } => {
            let text = fill(text)?;
            let notice = Notice {
                user_id: owner,
                text: text.clone(),
                about: About::Workflow { workflow: loaded.workflow.name.clone(), run_id, to: to.clone() },
            };
            let live = services.notices.publish(notice);
            tracing::debug!(workflow = %loaded.workflow.name, live, "workflow notice");
            let given = json!({ "text": text, "to": to });
            Ok((given, text))
        }
        Action::Reply(text) => {
            let text = fill(text)?;
            Ok((Value::String(text.clone()), text))
        }
    }
}
