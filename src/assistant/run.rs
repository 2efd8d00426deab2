//! Step two of a turn: the engine generates, and the channel reads [`Event`]s.

use super::events::{Complete, Event};
use super::prepare::{offer, Ledger, Prepared, Request, ToolLoop};
use super::AssistantError;
use crate::engine::{self, ChatMessage, Finished, ToolChoice, Usage};
use crate::knowledge::Citer;
use crate::skills::ToolRun;
use std::collections::VecDeque;
use tokio::sync::mpsc::UnboundedReceiver;

/// A reply that has started: the engine accepted the prompt and sent a first event.
/// Dropping it closes the channel, which stops the generation at its next step.
pub struct Reply {
    rx: UnboundedReceiver<engine::Event>,
    first: Option<engine::Event>,
}

impl Reply {
    /// Waits for the first event, so that a request the engine rejects (such as a prompt
    /// longer than the context) is an error instead of an already-started stream.
    pub async fn start(mut rx: UnboundedReceiver<engine::Event>) -> Result<Reply, AssistantError> {
        match rx.recv().await {
            Some(engine::Event::Error(e)) => Err(e.into()),
            Some(event) => Ok(Reply { rx, first: Some(event) }),
            None => Err(AssistantError::stopped()),
        }
    }

    pub async fn next(&mut self) -> Option<engine::Event> {
        match self.first.take() {
            Some(event) => Some(event),
            None => self.rx.recv().await,
        }
    }

    /// Reads the whole reply: its text and how it ended.
    pub async fn collect(mut self) -> Result<(String, Finished), AssistantError> {
        let mut text = String::new();
        loop {
            match self.next().await {
                Some(engine::Event::Token(t)) => text.push_str(&t),
                Some(engine::Event::Done(finished)) => return Ok((text, finished)),
                Some(engine::Event::Error(e)) => return Err(e.into()),
                None => return Err(AssistantError::stopped()),
            }
        }
    }
}

/// Submits the request to its engine and waits until the reply has started.
async fn submit(request: &Request) -> Result<Reply, AssistantError> {
    let prompt = engine::Prompt::Chat(request.messages.clone());
    Reply::start(request.engine.submit(request.owner, prompt, request.params.clone())?).await
}

/// A turn being answered. Dropping it stops the generation (or the skill running);
/// nothing is stored.
pub struct Running {
    /// `None` when a workflow answers (no tool rounds then).
    request: Option<Request>,
    reply: Reply,
    /// The reply's text so far, every round's.
    text: String,
    /// Where the current round's text starts in `text`.
    round_from: usize,
    /// Taken when the turn ends; `None` afterwards.
    ledger: Option<Ledger>,
    tools: Option<ToolLoop>,
    /// With documents: the engine's tokens go through it and come out as whole sentences,
    /// cited, so the streamed text is the stored text.
    citer: Option<Citer>,
    /// What the tool loop does next, before reading the engine again.
    steps: VecDeque<Step>,
    /// The skills run so far, and the results not yet given to the model.
    runs: Vec<ToolRun>,
    results: Vec<ChatMessage>,
    /// Tokens of the rounds before the current one.
    usage: Usage,
    /// How many of the request's messages the turn began with (before any tool round).
    asked: usize,
}

/// What a reply after tool results must not show: the wrapper the model saw them in.
const TOOL_RESPONSE_TAGS: [&str; 2] = ["<tool_response>", "</tool_response>"];

/// The last round's prompt: the conversation as it was asked, the question followed by
/// what every call found, and no calls or tool messages. Shown its call and the result in
/// the template's own form, the default 0.5B model answered 27 of 36 time questions in
/// words (the rest wrote the call again as JSON after "Here's the response:", or said it
/// had no data); shown this, 36 of 36 (`benches/clock_sweep.py`, 2026-12-06). The results
/// come bare, without a label: under "What your tools found just now:" replies quoted the
/// label ("Your tools found just now include ...").
fn fold(messages: &mut [ChatMessage], runs: &[ToolRun]) {
    let Some(question) = messages.iter_mut().rev().find(|m| m.role == "user") else { return };
    question.content.push('\n');
    for run in runs {
        question.content.push_str(&format!("\n{}", run.result));
    }
    question.content.push_str("\n\nAnswer my question in plain words, using this.");
}

enum Step {
    /// Tell the channel about a call, then run it.
    Announce(engine::ToolCall),
    Execute(engine::ToolCall),
    /// Give the model the round's calls and their results, and read its next reply.
    Resubmit(Vec<engine::ToolCall>),
}

impl Prepared {
    /// Submits the turn to the engine. Errors the engine answers at once (a prompt over
    /// the context window, a full queue) come back here, before anything was streamed.
    pub async fn run(self) -> Result<Running, AssistantError> {
        let reply = match (&self.workflow, &self.request) {
            (Some(workflow), _) => workflow.start().await?,
            (None, Some(request)) => submit(request).await?,
            (None, None) => return Err(AssistantError::Unsupported("a turn with nothing to answer it")),
        };
        let asked = self.request.as_ref().map_or(0, |r| r.messages.len());
        Ok(Running {
            asked,
            request: self.request,
            reply,
            text: String::new(),
            round_from: 0,
            ledger: Some(self.ledger),
            tools: self.tools,
            citer: self.citer,
            steps: VecDeque::new(),
            runs: Vec::new(),
            results: Vec::new(),
            usage: Usage::default(),
        })
    }
}

impl Running {
    /// The next event; `None` once [`Event::Complete`] or [`Event::Error`] was given.
    ///
    /// The tool loop: when the model ends a round with calls of the turn's skills, each is
    /// announced ([`Event::ToolCall`]), run under its timeout and its result reported
    /// ([`Event::ToolResult`]); then the model is asked again with the calls and results
    /// appended. A call that repeats one already run is not run again, and once the rounds
    /// (`[skills] max_rounds`) are spent, the model is asked to answer in words: the tools
    /// are left out, it is kept from calling, and the results follow the question ([`fold`]).
    ///
    /// A turn with documents yields its text a sentence at a time, cited by Hearth
    /// ([`Citer`]); the last sentence comes as a token before [`Event::Complete`].
    pub async fn next(&mut self) -> Option<Event> {
        self.ledger.as_ref()?;
        loop {
            if let Some(step) = self.steps.pop_front() {
                match self.step(step).await {
                    Ok(Some(event)) => return Some(event),
                    Ok(None) => continue,
                    Err(e) => return self.end(Event::Error(e)),
                }
            }
            let event = match self.reply.next().await {
                Some(engine::Event::Token(t)) => {
                    // After results, a small model may echo their wrapper (Qwen's
                    // `<tool_response>`, one token): the person gets the words only.
                    let t = match self.runs.is_empty() {
                        true => t,
                        false => TOOL_RESPONSE_TAGS.iter().fold(t, |t, tag| t.replace(tag, "")),
                    };
                    if t.is_empty() {
                        continue;
                    }
                    let t = match &mut self.citer {
                        Some(citer) => match citer.push(&t) {
                            Some(sentences) => sentences,
                            None => continue,
                        },
                        None => t,
                    };
                    self.text.push_str(&t);
                    return Some(Event::Token(t));
                }
                Some(engine::Event::Done(finished))
                    if !finished.tool_calls.is_empty() && self.tools.is_some() =>
                {
                    self.plan(finished);
                    continue;
                }
                Some(engine::Event::Done(mut finished)) => {
                    if let Some(rest) = self.citer.as_mut().and_then(Citer::finish) {
                        self.text.push_str(&rest);
                        // The end is told on the next call, after this last sentence.
                        self.reply.first = Some(engine::Event::Done(finished));
                        return Some(Event::Token(rest));
                    }
                    let ledger = self.ledger.take()?;
                    finished.usage = self.usage.plus(&finished.usage);
                    let text = std::mem::take(&mut self.text);
                    let tools = std::mem::take(&mut self.runs);
                    Event::Complete(Complete { text, finished, tools, ledger })
                }
                Some(engine::Event::Error(e)) => Event::Error(e.into()),
                None => Event::Error(AssistantError::stopped()),
            };
            return self.end(event);
        }
    }

    fn end(&mut self, event: Event) -> Option<Event> {
        self.ledger = None;
        Some(event)
    }

    /// A round ended with calls: plan running the new ones and asking again.
    fn plan(&mut self, finished: Finished) {
        self.usage = self.usage.plus(&finished.usage);
        let tools = self.tools.as_mut().expect("only a turn with skills plans calls");
        tools.rounds_left = tools.rounds_left.saturating_sub(1);
        let fresh: Vec<engine::ToolCall> = finished
            .tool_calls
            .into_iter()
            .filter(|c| !self.runs.iter().any(|r| r.name == c.name && r.arguments == c.arguments))
            .collect();
        if fresh.is_empty() {
            // Only repeats: the model has what it asked for; it answers now.
            tools.rounds_left = 0;
        }
        for call in &fresh {
            self.steps.push_back(Step::Announce(call.clone()));
            self.steps.push_back(Step::Execute(call.clone()));
        }
        self.steps.push_back(Step::Resubmit(fresh));
    }

    async fn step(&mut self, step: Step) -> Result<Option<Event>, AssistantError> {
        let tools = self.tools.as_mut().expect("steps exist only in a turn with skills");
        match step {
            Step::Announce(call) => Ok(Some(Event::ToolCall(call))),
            Step::Execute(call) => {
                let ledger = self.ledger.as_mut().expect("a running turn has its ledger");
                tools.ctx.cite_from = ledger.citations.len() + 1;
                let (run, citations) = tools.skills.run(&call, tools.ctx.clone()).await;
                ledger.citations.extend(citations);
                self.results.push(ChatMessage::tool_result(
                    &run.id,
                    Some(run.name.clone()),
                    run.result.clone(),
                ));
                self.runs.push(run.clone());
                Ok(Some(Event::ToolResult(run)))
            }
            Step::Resubmit(calls) => {
                let request = self.request.as_mut().expect("tool rounds only in a model's turn");
                let choice = if tools.rounds_left == 0 {
                    request.messages.truncate(self.asked);
                    fold(&mut request.messages, &self.runs);
                    self.results.clear();
                    ToolChoice::None
                } else {
                    if !calls.is_empty() {
                        let said = self.text[self.round_from..].to_string();
                        request.messages.push(ChatMessage::tool_calls(said, calls));
                        request.messages.append(&mut self.results);
                    }
                    ToolChoice::Auto
                };
                request.params.constraint = offer(tools.specs.clone(), choice);
                request.params.temperature = tools.answer_temperature;
                self.reply = submit(request).await?;
                self.round_from = self.text.len();
                Ok(None)
            }
        }
    }

    /// Reads the reply to its end, unstored.
    pub async fn complete(mut self) -> Result<Complete, AssistantError> {
        loop {
            match self.next().await {
                Some(Event::Complete(complete)) => return Ok(complete),
                Some(Event::Error(e)) => return Err(e),
                Some(Event::Token(_) | Event::ToolCall(_) | Event::ToolResult(_)) => {}
                None => return Err(AssistantError::stopped()),
            }
        }
    }

    /// Reads the reply to its end and stores the turn.
    pub async fn finish(self) -> Result<super::Outcome, AssistantError> {
        self.complete().await?.persist().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{EngineError, FinishReason, Timings, Usage};
    use tokio::sync::mpsc;

    fn done() -> engine::Event {
        engine::Event::Done(Finished {
            finish_reason: FinishReason::Stop,
            usage: Usage { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
            timings: Timings::default(),
            dropped_messages: 0,
            tool_calls: Vec::new(),
        })
    }

    fn calls(calls: &[(&str, serde_json::Value)]) -> engine::Event {
        let tool_calls = calls.iter().map(|(n, a)| engine::ToolCall::new(*n, a.clone())).collect();
        match done() {
            engine::Event::Done(f) => {
                engine::Event::Done(Finished { finish_reason: FinishReason::ToolCalls, tool_calls, ..f })
            }
            _ => unreachable!(),
        }
    }

    /// An ephemeral turn on an engine that answers with `replies`, one per request; with
    /// the clock skill and `rounds` rounds when `rounds > 0`. Also what the engine was given.
    async fn turn_with(
        replies: Vec<Vec<engine::Event>>,
        rounds: u32,
    ) -> Result<(Running, mpsc::UnboundedReceiver<(Vec<ChatMessage>, engine::GenerateParams)>), AssistantError>
    {
        turn_with_citer(replies, rounds, None).await
    }

    async fn turn_with_citer(
        replies: Vec<Vec<engine::Event>>,
        rounds: u32,
        citer: Option<Citer>,
    ) -> Result<(Running, mpsc::UnboundedReceiver<(Vec<ChatMessage>, engine::GenerateParams)>), AssistantError>
    {
        let (engine, seen) = engine::Engine::scripted(replies);
        let skills =
            crate::skills::Skills::built_in(&["clock".into()], std::time::Duration::from_secs(5), None, None);
        let ctx = crate::skills::Context::new(None, crate::notices::Channel::Console);
        let skills = skills.allowed(&ctx).await.unwrap();
        let tools = (rounds > 0).then(|| ToolLoop {
            specs: skills.specs(&ctx),
            skills,
            ctx,
            rounds_left: rounds,
            answer_temperature: 0.2,
        });
        let mut params = crate::assistant::Sampling::default().resolve(&Default::default(), true)?;
        if let Some(tools) = &tools {
            params.constraint = offer(tools.specs.clone(), ToolChoice::Auto);
        }
        let request = Request {
            engine,
            owner: engine::Owner::CONSOLE,
            messages: vec![ChatMessage::new("user", "What time is it?")],
            params,
        };
        let ledger = Ledger { model: "m".into(), knowledge: false, citations: vec![], record: None };
        Ok((Prepared { request: Some(request), workflow: None, ledger, tools, citer }.run().await?, seen))
    }

    async fn running(events: Vec<engine::Event>, open: bool) -> Result<(Running, ()), AssistantError> {
        running_with(events, open, None).await
    }

    async fn running_with(
        events: Vec<engine::Event>,
        _open: bool,
        citer: Option<Citer>,
    ) -> Result<(Running, ()), AssistantError> {
        Ok((turn_with_citer(vec![events], 0, citer).await?.0, ()))
    }

    fn choice(params: &engine::GenerateParams) -> Option<ToolChoice> {
        match &params.constraint {
            engine::Constraint::Tools(t) => Some(t.choice.clone()),
            _ => None,
        }
    }

    #[tokio::test]
    async fn a_called_skill_runs_and_the_model_answers_from_its_result() {
        let replies = vec![
            vec![calls(&[("clock", serde_json::json!({}))])],
            vec![engine::Event::Token("It is ".into()), engine::Event::Token("noon.".into()), done()],
        ];
        let (mut turn, mut seen) = turn_with(replies, 1).await.unwrap();
        let Some(Event::ToolCall(call)) = turn.next().await else { panic!("expected the call") };
        assert_eq!(call.name, "clock");
        let Some(Event::ToolResult(run)) = turn.next().await else { panic!("expected its result") };
        assert!(run.ok && run.id == call.id && run.result.starts_with("It is "), "{run:?}");
        assert!(matches!(turn.next().await, Some(Event::Token(t)) if t == "It is "));
        assert!(matches!(turn.next().await, Some(Event::Token(t)) if t == "noon."));
        let Some(Event::Complete(complete)) = turn.next().await else { panic!("expected the reply") };
        assert_eq!(complete.text, "It is noon.");
        assert_eq!(complete.tools, std::slice::from_ref(&run));
        assert_eq!(complete.finished.usage.prompt_tokens, 6, "both rounds count");
        assert_eq!(complete.finished.finish_reason, FinishReason::Stop);

        let (first, params) = seen.recv().await.unwrap();
        assert_eq!((first.len(), choice(&params)), (1, Some(ToolChoice::Auto)));
        let (second, params) = seen.recv().await.unwrap();
        let folded =
            format!("What time is it?\n\n{}\n\nAnswer my question in plain words, using this.", run.result);
        assert_eq!(second, [ChatMessage::new("user", folded)], "the last round: the results in the question");
        assert_eq!(choice(&params), Some(ToolChoice::None), "one round: then words");
    }

    #[tokio::test]
    async fn the_answer_after_results_does_not_echo_their_wrapper() {
        let tokens = ["<tool_response>", "\nIt is noon.", "</tool_response>"];
        let mut answer: Vec<engine::Event> =
            tokens.iter().map(|t| engine::Event::Token(t.to_string())).collect();
        answer.push(done());
        let replies = vec![vec![calls(&[("clock", serde_json::json!({}))])], answer];
        let (turn, _) = turn_with(replies, 1).await.unwrap();
        assert_eq!(turn.complete().await.unwrap().text, "\nIt is noon.");
    }

    #[tokio::test]
    async fn a_repeated_call_is_not_run_again_and_the_model_must_answer() {
        let clock = || calls(&[("clock", serde_json::json!({}))]);
        let replies = vec![vec![clock()], vec![clock()], vec![engine::Event::Token("Noon.".into()), done()]];
        let (turn, mut seen) = turn_with(replies, 3).await.unwrap();
        let complete = turn.complete().await.unwrap();
        assert_eq!((complete.text.as_str(), complete.tools.len()), ("Noon.", 1));
        let seen = [seen.recv().await.unwrap(), seen.recv().await.unwrap(), seen.recv().await.unwrap()];
        let choices: Vec<_> = seen.iter().map(|(_, params)| choice(params)).collect();
        assert_eq!(choices, [Some(ToolChoice::Auto), Some(ToolChoice::Auto), Some(ToolChoice::None)]);
        let roles = |messages: &[ChatMessage]| messages.iter().map(|m| m.role.clone()).collect::<Vec<_>>();
        assert_eq!(
            roles(&seen[1].0),
            ["user", "assistant", "tool"],
            "a middle round: the template's own form"
        );
        assert_eq!(roles(&seen[2].0), ["user"], "the last: folded into the question");
        assert_eq!(seen[2].0[0].content.matches("\nIt is ").count(), 1, "{:?}", seen[2].0);
    }

    #[tokio::test]
    async fn a_failing_next_round_ends_the_turn_with_its_error() {
        let replies = vec![
            vec![calls(&[("clock", serde_json::json!({}))])],
            vec![engine::Event::Error(EngineError::Overloaded(8))],
        ];
        let (turn, _) = turn_with(replies, 1).await.unwrap();
        assert!(matches!(turn.complete().await, Err(AssistantError::Engine(EngineError::Overloaded(8)))));
    }

    #[tokio::test]
    async fn tokens_then_the_complete_reply_then_nothing() {
        let events = vec![engine::Event::Token("Hel".into()), engine::Event::Token("lo".into()), done()];
        let (mut turn, _tx) = running(events, false).await.unwrap();
        assert!(matches!(turn.next().await, Some(Event::Token(t)) if t == "Hel"));
        assert!(matches!(turn.next().await, Some(Event::Token(t)) if t == "lo"));
        match turn.next().await {
            Some(Event::Complete(complete)) => {
                assert_eq!(complete.text, "Hello");
                assert_eq!(complete.finished.usage.completion_tokens, 2);
            }
            _ => panic!("expected the complete reply"),
        }
        assert!(turn.next().await.is_none(), "nothing after the end");
    }

    #[tokio::test]
    async fn with_documents_sentences_come_cited_and_the_stored_text_is_the_streamed_one() {
        let tokens = ["[1] The pres", "sure is 1.5", " bar. Call", " Heatwise [2]", ""];
        let mut events: Vec<engine::Event> =
            tokens.iter().map(|t| engine::Event::Token(t.to_string())).collect();
        events.push(done());
        let sources = crate::knowledge::Sources::new([
            (1, "Keep the pressure at 1.5 bar."),
            (2, "The installer is Heatwise, call them."),
        ]);
        let (mut turn, _) = running_with(events, true, Some(Citer::new(sources, true))).await.unwrap();
        let mut streamed = Vec::new();
        let complete = loop {
            match turn.next().await {
                Some(Event::Token(t)) => streamed.push(t),
                Some(Event::Complete(complete)) => break complete,
                _ => panic!("expected tokens, then the complete reply"),
            }
        };
        assert_eq!(streamed, ["The pressure is 1.5 bar [1].", " Call Heatwise [2]"]);
        assert_eq!(complete.text, streamed.concat());
        assert!(turn.next().await.is_none());
    }

    #[tokio::test]
    async fn an_error_before_the_first_token_fails_the_start() {
        let refused = engine::Event::Error(EngineError::Overloaded(4));
        let started = running(vec![refused], false).await;
        assert!(matches!(started, Err(AssistantError::Engine(EngineError::Overloaded(4)))));
        assert!(matches!(running(vec![], true).await, Err(AssistantError::Engine(EngineError::Failed(_)))));
    }

    #[tokio::test]
    async fn an_engine_that_stops_midway_is_an_error_and_the_end() {
        let (mut turn, _) = running(vec![engine::Event::Token("Hi".into())], true).await.unwrap();
        assert!(matches!(turn.next().await, Some(Event::Token(_))));
        match turn.next().await {
            Some(Event::Error(e)) => assert_eq!(e.code(), crate::error::ErrorCode::EngineError),
            _ => panic!("expected an error"),
        }
        assert!(turn.next().await.is_none());
        let (turn, _) = running(vec![engine::Event::Token("Hi".into())], true).await.unwrap();
        assert!(turn.finish().await.is_err(), "nothing to answer with");
    }

    #[tokio::test]
    async fn finish_reads_to_the_end_and_answers() {
        let (turn, _) = running(vec![engine::Event::Token("Hi".into()), done()], true).await.unwrap();
        let outcome = turn.finish().await.unwrap();
        assert_eq!((outcome.text.as_str(), outcome.stored), ("Hi", None));
    }
}
