//! Phrase triggers: a stored turn whose message says the phrase of one of the user's
//! enabled workflows (`trigger: { phrase: ... }`) is answered by that workflow. Its run is
//! recorded (trigger `phrase`, input `{"text": <the message>}`), and what it replies (its
//! `reply` step, else its last step's output; a failure said in a sentence) is the turn's
//! answer: it comes as one token and is stored like a model's reply, so every channel
//! (chat, voice, satellites, Telegram) gets it its own way. The run's skill steps have the
//! turn's channel and conversation: a timer it sets rings where the phrase was said.

use super::prepare::Record;
use super::run::Reply;
use super::AssistantError;
use crate::engine::{self, FinishReason, Finished};
use crate::notices::Channel;
use crate::workflows::{Origin, Workflows};
use futures_util::future::BoxFuture;

/// The workflow a turn's phrase starts.
pub(super) struct PhraseRun {
    workflows: Workflows,
    pub name: String,
    message: String,
    /// The turn's channel and conversation: a timer the run sets rings there.
    origin: Origin,
}

/// The workflow whose phrase a stored turn's message says, for one of Hearth's own
/// channels (the console has no user).
pub(super) async fn find(
    workflows: &Workflows,
    asked: &Record,
    channel: Channel,
) -> Result<Option<PhraseRun>, AssistantError> {
    if channel == Channel::Console {
        return Ok(None);
    }
    let (w, text, user_id) = (workflows.clone(), asked.message.clone(), asked.user_id);
    // Whether a workflow is on is a preference in SQLite: read off the runtime.
    let name =
        asked.store.run(move |_| Ok(w.for_phrase(user_id, &text).map(|l| l.workflow.name.clone()))).await?;
    Ok(name.map(|name| PhraseRun {
        workflows: workflows.clone(),
        name,
        message: asked.message.clone(),
        origin: Origin { channel, conversation_id: asked.conversation().map(str::to_string) },
    }))
}

impl PhraseRun {
    /// Starts the run and gives its reply as the engine would: the text as one token, then
    /// the end. Waits until the run has ended. Boxed: a run's prompt step is a turn, which
    /// may start a run; the box ends that cycle of types.
    pub fn start(&self) -> BoxFuture<'static, Result<Reply, AssistantError>> {
        let (workflows, name, message) = (self.workflows.clone(), self.name.clone(), self.message.clone());
        let origin = self.origin.clone();
        Box::pin(async move {
            let input = serde_json::json!({ "text": message });
            let (id, task) = workflows.start_from(&name, "phrase", input, origin).await?;
            tracing::info!(workflow = %name, run = id, "a phrase started a workflow");
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(async move {
                let text = match task.await {
                    Ok(run) => match (run.output, run.error) {
                        (Some(output), None) => output,
                        (_, Some(error)) => format!("The workflow '{name}' failed: {error}"),
                        (None, None) => format!("The workflow '{name}' ran."),
                    },
                    Err(e) => format!("The workflow '{name}' stopped: {e}"),
                };
                let _ = tx.send(engine::Event::Token(text));
                let _ = tx.send(engine::Event::Done(Finished {
                    finish_reason: FinishReason::Stop,
                    usage: Default::default(),
                    timings: Default::default(),
                    dropped_messages: 0,
                    tool_calls: Vec::new(),
                }));
            });
            Reply::start(rx).await
        })
    }
}
