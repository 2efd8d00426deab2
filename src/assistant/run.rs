//! Step two of a turn: the engine generates, and the channel reads [`Event`]s.

use super::events::{Complete, Event};
use super::prepare::{Ledger, Prepared, Request};
use super::AssistantError;
use crate::engine::{self, Finished};
use crate::knowledge::Citer;
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

/// A turn being answered. Dropping it stops the generation; nothing is stored.
pub struct Running {
    reply: Reply,
    text: String,
    /// Taken when the turn ends; `None` afterwards.
    ledger: Option<Ledger>,
    /// With documents: the engine's tokens go through it and come out as whole sentences,
    /// cited, so the streamed text is the stored text.
    citer: Option<Citer>,
}

impl Prepared {
    /// Submits the turn to the engine. Errors the engine answers at once (a prompt over
    /// the context window, a full queue) come back here, before anything was streamed.
    pub async fn run(self) -> Result<Running, AssistantError> {
        let reply = submit(&self.request).await?;
        Ok(Running { reply, text: String::new(), ledger: Some(self.ledger), citer: self.citer })
    }
}

impl Running {
    /// The next event; `None` once [`Event::Complete`] or [`Event::Error`] was given.
    ///
    /// The tool loop's seam: when the engine reports a tool call, this is where the
    /// bounded loop runs: yield [`Event::ToolCall`], run the skill, yield
    /// [`Event::ToolResult`], append both to the request's messages, `submit` again with
    /// the same engine and parameters, and go on reading; the calls then travel in the
    /// [`Complete`] for `persist` to record. Until the engine reports tool calls, a turn is
    /// one reply.
    ///
    /// A turn with documents yields its text a sentence at a time, cited by Hearth
    /// ([`Citer`]); the last sentence comes as a token before [`Event::Complete`].
    pub async fn next(&mut self) -> Option<Event> {
        self.ledger.as_ref()?;
        let event = loop {
            match self.reply.next().await {
                Some(engine::Event::Token(t)) => {
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
                Some(engine::Event::Done(finished)) => {
                    if let Some(rest) = self.citer.as_mut().and_then(Citer::finish) {
                        self.text.push_str(&rest);
                        // The end is told on the next call, after this last sentence.
                        self.reply.first = Some(engine::Event::Done(finished));
                        return Some(Event::Token(rest));
                    }
                    let ledger = self.ledger.take()?;
                    break Event::Complete(Complete {
                        text: std::mem::take(&mut self.text),
                        finished,
                        ledger,
                    });
                }
                Some(engine::Event::Error(e)) => break Event::Error(e.into()),
                None => break Event::Error(AssistantError::stopped()),
            }
        };
        self.ledger = None;
        Some(event)
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

    /// A running ephemeral turn fed by hand instead of an engine.
    async fn running(
        events: Vec<engine::Event>,
        close: bool,
    ) -> Result<(Running, Option<mpsc::UnboundedSender<engine::Event>>), AssistantError> {
        running_with(events, close, None).await
    }

    async fn running_with(
        events: Vec<engine::Event>,
        close: bool,
        citer: Option<Citer>,
    ) -> Result<(Running, Option<mpsc::UnboundedSender<engine::Event>>), AssistantError> {
        let (tx, rx) = mpsc::unbounded_channel();
        for event in events {
            tx.send(event).unwrap();
        }
        let tx = (!close).then_some(tx);
        let reply = Reply::start(rx).await?;
        let ledger = Ledger { model: "m".into(), knowledge: false, citations: vec![], record: None };
        Ok((Running { reply, text: String::new(), ledger: Some(ledger), citer }, tx))
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
