//! Step three of a turn: store it, then answer.

use super::events::{Complete, Outcome};
use super::prepare::Record;
use super::AssistantError;
use crate::engine::Finished;
use crate::knowledge::Citation;
use crate::skills::ToolRun;
use crate::store::{NewTurn, TurnIds};

impl Complete {
    /// Stores a stored conversation's turn (the user's message and the reply, in one
    /// transaction) and returns once it is committed; an ephemeral turn stores nothing.
    /// Channels build their final answer from the [`Outcome`], so it is sent after COMMIT.
    pub async fn persist(self) -> Result<Outcome, AssistantError> {
        let Complete { text, finished, tools, ledger } = self;
        let stored = match ledger.record {
            None => None,
            Some(record) => {
                Some(append(record, &text, &finished, &ledger.model, &ledger.citations, &tools).await?)
            }
        };
        Ok(Outcome {
            text,
            finished,
            model: ledger.model,
            knowledge: ledger.knowledge,
            citations: ledger.citations,
            tools,
            stored,
        })
    }
}

async fn append(
    record: Record,
    reply: &str,
    finished: &Finished,
    model: &str,
    citations: &[Citation],
    tools: &[ToolRun],
) -> Result<TurnIds, AssistantError> {
    let turn = NewTurn {
        conversation_id: record.conversation_id,
        new_id: record.new_id,
        user_id: record.user_id,
        user_message: record.message,
        reply: reply.to_string(),
        model: model.to_string(),
        prompt_tokens: finished.usage.prompt_tokens,
        completion_tokens: finished.usage.completion_tokens,
        finish_reason: finished.finish_reason.as_str().to_string(),
        knowledge: record.knowledge,
        citations: (!citations.is_empty()).then(|| serde_json::to_string(citations).unwrap_or_default()),
        tool_calls: (!tools.is_empty()).then(|| serde_json::to_string(tools).unwrap_or_default()),
    };
    Ok(record.store.run(move |store| store.append_turn(&turn)).await?)
}

#[cfg(test)]
mod tests {
    use super::super::prepare::{read_conversation, Ledger};
    use super::*;
    use crate::engine::{ChatMessage, FinishReason, Timings, Usage};
    use crate::store::{temp_store, Role, Store};

    fn finished() -> Finished {
        Finished {
            finish_reason: FinishReason::Length,
            usage: Usage { prompt_tokens: 30, completion_tokens: 4, total_tokens: 34 },
            timings: Timings::default(),
            dropped_messages: 0,
            tool_calls: Vec::new(),
        }
    }

    fn citation() -> Citation {
        Citation {
            n: 1,
            document_id: 1,
            document_name: "boiler.md".into(),
            chunk_id: 10,
            chunk: 0,
            snippet: "Reset".into(),
        }
    }

    /// A completed turn of `user_id` in `conversation_id` (new when `None`).
    fn complete(
        store: &Store,
        user_id: i64,
        conversation_id: Option<String>,
        message: &str,
        knowledge: Option<bool>,
        citations: Vec<Citation>,
    ) -> Complete {
        let record = Record {
            store: store.clone(),
            user_id,
            conversation_id,
            new_id: None,
            message: message.into(),
            knowledge,
        };
        Complete {
            text: format!("reply to {message}"),
            finished: finished(),
            tools: Vec::new(),
            ledger: Ledger {
                model: "m".into(),
                knowledge: knowledge.unwrap_or(false),
                citations,
                record: Some(record),
            },
        }
    }

    #[tokio::test]
    async fn a_stored_turn_is_committed_whole_and_its_choice_remembered() {
        let (_dir, store) = temp_store();
        let alice = store.create_user("alice", Role::User).unwrap().id;
        let first = complete(&store, alice, None, "boiler?", Some(true), vec![citation()]);
        let outcome = first.persist().await.unwrap();
        let ids = outcome.stored.clone().expect("stored");
        assert_eq!((outcome.text.as_str(), outcome.citations.len()), ("reply to boiler?", 1));

        let messages = store.messages(alice, &ids.conversation_id).unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!((messages[0].id, messages[1].id), (ids.user_message_id, ids.reply_id));
        assert_eq!((messages[0].role.as_str(), messages[0].content.as_str()), ("user", "boiler?"));
        let reply = &messages[1];
        assert_eq!((reply.role.as_str(), reply.content.as_str()), ("assistant", "reply to boiler?"));
        assert_eq!((reply.model.as_deref(), reply.finish_reason.as_deref()), (Some("m"), Some("length")));
        assert_eq!((reply.prompt_tokens, reply.completion_tokens), (Some(30), Some(4)));
        assert_eq!(reply.citations, Some(serde_json::json!([citation()])));

        // The next turn says nothing about documents: the conversation remembers.
        let (history, remembered) =
            read_conversation(&store, alice, ids.conversation_id.clone()).await.unwrap();
        assert_eq!(
            history,
            [ChatMessage::new("user", "boiler?"), ChatMessage::new("assistant", "reply to boiler?")]
        );
        assert_eq!(remembered, Some(true));
        let next = complete(&store, alice, Some(ids.conversation_id.clone()), "and then?", None, vec![]);
        let next = next.persist().await.unwrap().stored.unwrap();
        assert_eq!(next.conversation_id, ids.conversation_id);
        let (_, remembered) = read_conversation(&store, alice, ids.conversation_id.clone()).await.unwrap();
        assert_eq!(remembered, Some(true), "a turn without a choice keeps the conversation's");
        let messages = store.messages(alice, &ids.conversation_id).unwrap();
        assert_eq!(messages[3].citations, None, "no excerpts, no citations");
    }

    #[tokio::test]
    async fn the_tools_a_reply_called_are_stored_with_it() {
        let (_dir, store) = temp_store();
        let alice = store.create_user("alice", Role::User).unwrap().id;
        let run = ToolRun {
            id: "call_1".into(),
            name: "clock".into(),
            arguments: serde_json::json!({}),
            result: r#"{"time":"12:00"}"#.into(),
            ok: true,
            at: 1_700_000_000,
            ms: 2,
        };
        let turn =
            Complete { tools: vec![run.clone()], ..complete(&store, alice, None, "time?", None, vec![]) };
        let outcome = turn.persist().await.unwrap();
        assert_eq!(outcome.tools, std::slice::from_ref(&run));
        let messages = store.messages(alice, &outcome.stored.unwrap().conversation_id).unwrap();
        assert_eq!(messages[0].tool_calls, None);
        assert_eq!(messages[1].tool_calls, Some(serde_json::json!([run])));
    }

    #[tokio::test]
    async fn another_users_conversation_is_not_found_and_nothing_is_stored() {
        let (_dir, store) = temp_store();
        let alice = store.create_user("alice", Role::User).unwrap().id;
        let bob = store.create_user("bob", Role::User).unwrap().id;
        let ids = complete(&store, alice, None, "hi", None, vec![]).persist().await.unwrap().stored.unwrap();
        let stolen = complete(&store, bob, Some(ids.conversation_id.clone()), "mine", None, vec![]);
        assert!(matches!(stolen.persist().await, Err(AssistantError::ConversationNotFound)));
        let read = read_conversation(&store, bob, ids.conversation_id.clone()).await;
        assert!(matches!(read, Err(AssistantError::ConversationNotFound)));
        assert_eq!(store.messages(alice, &ids.conversation_id).unwrap().len(), 2);
    }

    #[tokio::test]
    async fn an_ephemeral_turn_stores_nothing() {
        let ephemeral = Complete {
            text: "hello".into(),
            finished: finished(),
            tools: Vec::new(),
            ledger: Ledger { model: "m".into(), knowledge: false, citations: vec![], record: None },
        };
        let outcome = ephemeral.persist().await.unwrap();
        assert_eq!((outcome.text.as_str(), outcome.model.as_str(), outcome.stored), ("hello", "m", None));
    }
}
