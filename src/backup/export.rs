//! A user's conversations as a file: JSON (lossless, and what an import reads back) or
//! Markdown (for people). Shared by `GET /api/conversations/export`,
//! `POST /api/conversations/import`, `hearth export` and `hearth import`.

use crate::audit::{user_target, Action, Actor, Event};
use crate::store::{ExportedConversation, Imported, Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The format's name and version in the JSON.
pub const KIND: &str = "hearth.conversations";
pub const VERSION: u32 = 1;
/// The largest import accepted, in bytes.
pub const MAX_IMPORT_BYTES: usize = 32 << 20;
/// The most conversations one import may carry.
pub const MAX_IMPORT_CONVERSATIONS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Markdown,
}

impl Format {
    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "json" => Some(Format::Json),
            "markdown" | "md" => Some(Format::Markdown),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Markdown => "text/markdown; charset=utf-8",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Markdown => "md",
        }
    }
}

/// The JSON export.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Export {
    pub kind: String,
    pub version: u32,
    pub exported_at: i64,
    /// Whose conversations they were (informational: an import goes to the caller).
    #[serde(default)]
    pub user: String,
    pub conversations: Vec<ExportedConversation>,
}

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("the import is larger than {MAX_IMPORT_BYTES} bytes")]
    TooLarge,
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A user's conversations in `format`.
pub fn export(
    store: &Store,
    user_id: i64,
    user_name: &str,
    format: Format,
    by: &Actor,
) -> Result<Vec<u8>, TransferError> {
    let conversations = store.export_conversations(user_id)?;
    let event = Event::new(by, Action::Export)
        .target(user_target(user_id, user_name))
        .detail(json!({"format": format.extension(), "conversations": conversations.len()}));
    store.audit(&event)?;
    let export = Export {
        kind: KIND.into(),
        version: VERSION,
        exported_at: crate::store::now(),
        user: user_name.into(),
        conversations,
    };
    Ok(match format {
        Format::Json => {
            serde_json::to_vec_pretty(&export).map_err(|e| TransferError::Invalid(e.to_string()))?
        }
        Format::Markdown => markdown(&export).into_bytes(),
    })
}

/// Reads a JSON export and adds its conversations to the user's (see
/// `Store::import_conversations`: importing the same file twice adds nothing).
pub fn import(store: &Store, user_id: i64, bytes: &[u8], by: &Actor) -> Result<Imported, TransferError> {
    if bytes.len() > MAX_IMPORT_BYTES {
        return Err(TransferError::TooLarge);
    }
    let export: Export = serde_json::from_slice(bytes)
        .map_err(|e| TransferError::Invalid(format!("not a Hearth conversations export: {e}")))?;
    if export.kind != KIND || export.version > VERSION {
        return Err(TransferError::Invalid(format!(
            "expected kind '{KIND}' version {VERSION} or older, got '{}' version {}",
            export.kind, export.version
        )));
    }
    if export.conversations.len() > MAX_IMPORT_CONVERSATIONS {
        return Err(TransferError::Invalid(format!("more than {MAX_IMPORT_CONVERSATIONS} conversations")));
    }
    if let Some(c) = export.conversations.iter().find(|c| c.id.is_empty() || c.id.len() > 200) {
        return Err(TransferError::Invalid(format!("a conversation id must be 1 to 200 bytes ('{}')", c.id)));
    }
    let done = store.import_conversations(user_id, &export.conversations).map_err(|e| match e {
        StoreError::Conflict(why) => TransferError::Invalid(why),
        other => other.into(),
    })?;
    let event = Event::new(by, Action::Import).target(format!("user:{user_id}")).detail(json!({
        "conversations": done.conversations, "messages": done.messages, "skipped": done.skipped
    }));
    store.audit(&event)?;
    Ok(done)
}

fn markdown(export: &Export) -> String {
    let mut out = format!("# Conversations of {}\n\nExported {}.\n", export.user, utc(export.exported_at));
    for c in &export.conversations {
        out.push_str(&format!(
            "\n## {}\n\n_Started {}, last {}._\n",
            c.title,
            utc(c.created_at),
            utc(c.updated_at)
        ));
        for m in &c.messages {
            let who = match m.role.as_str() {
                "user" => "You",
                "assistant" => "Assistant",
                other => other,
            };
            out.push_str(&format!("\n**{who}** ({}):\n\n{}\n", utc(m.created_at), m.content.trim_end()));
            if let Some(calls) = m.tool_calls.as_ref().and_then(|c| c.as_array()) {
                for call in calls {
                    out.push_str(&format!(
                        "\n> tool `{}`: {}\n",
                        call["name"].as_str().unwrap_or("?"),
                        call["result"]
                    ));
                }
            }
        }
    }
    out
}

fn utc(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map_or_else(|| secs.to_string(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{temp_store, NewTurn, Role};

    #[test]
    fn json_round_trips_markdown_reads_and_bad_files_are_refused() {
        let (_dir, store) = temp_store();
        let alice =
            store.create_account("alice", Role::User, "phc", &crate::audit::Actor::system()).unwrap().id;
        let bob = store.create_account("bob", Role::User, "phc", &crate::audit::Actor::system()).unwrap().id;
        let turn = NewTurn {
            conversation_id: None,
            new_id: None,
            user_id: alice,
            user_message: "Plan my garden".into(),
            reply: "Start with tomatoes.".into(),
            model: "m".into(),
            prompt_tokens: 1,
            completion_tokens: 1,
            finish_reason: "stop".into(),
            knowledge: None,
            citations: None,
            tool_calls: None,
        };
        store.append_turn(&turn).unwrap();
        let by = crate::audit::Actor::cli();
        let json = export(&store, alice, "alice", Format::Json, &by).unwrap();
        assert_eq!(import(&store, bob, &json, &by).unwrap().conversations, 1);
        assert_eq!(import(&store, bob, &json, &by).unwrap().skipped, 1);
        let md = String::from_utf8(export(&store, alice, "alice", Format::Markdown, &by).unwrap()).unwrap();
        assert!(
            md.contains("## Plan my garden") && md.contains("**Assistant**") && md.contains("tomatoes"),
            "{md}"
        );
        assert!(matches!(import(&store, bob, b"{\"kind\": \"other\"}", &by), Err(TransferError::Invalid(_))));
        assert!(matches!(
            import(&store, bob, &vec![b' '; MAX_IMPORT_BYTES + 1], &by),
            Err(TransferError::TooLarge)
        ));
        // Each export and import is in the audit log, under who did it.
        let actions: Vec<String> = store
            .audit_rows(&crate::store::AuditFilter { limit: 500, ..Default::default() })
            .unwrap()
            .into_iter()
            .map(|r| r.action)
            .collect();
        assert_eq!(actions.iter().filter(|a| *a == "export").count(), 2, "{actions:?}");
        assert_eq!(actions.iter().filter(|a| *a == "import").count(), 2, "{actions:?}");
    }
}
