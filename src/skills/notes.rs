//! Notes as skills: `create_note`, `list_notes` and `search_notes`, over the notes service
//! (`crate::notes`). What they answer is a sentence the model can repeat ("Saved the note
//! \"buy milk\"."), each note shown by its title and the start of its text.

use super::{string_arg, Context, Output, Skill, SkillError, Skills};
use crate::notes::{NoteError, Notes};
use crate::store::Note;
use futures_util::future::BoxFuture;
use serde_json::{json, Value};
use std::sync::Arc;

pub(super) const CREATE: &str = "create_note";
pub(super) const LIST: &str = "list_notes";
pub(super) const SEARCH: &str = "search_notes";
/// Notes told in one answer.
const SHOWN: usize = 5;
/// Characters of a note's text told.
const TEXT_CHARS: usize = 200;

impl Skills {
    /// Adds the notes skills over `notes`, those named in `enabled` on by default.
    pub fn with_notes(self, enabled: &[String], notes: &Notes) -> Skills {
        [CREATE, LIST, SEARCH].into_iter().fold(self, |all, name| match skill(name, notes.clone()) {
            Some(skill) => all.with_default(skill, enabled.iter().any(|e| e == name)),
            None => all,
        })
    }
}

fn skill(name: &str, notes: Notes) -> Option<Arc<dyn Skill>> {
    let which = match name {
        CREATE => Which::Create,
        LIST => Which::List,
        SEARCH => Which::Search,
        _ => return None,
    };
    Some(Arc::new(NoteSkill { which, notes }))
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Which {
    Create,
    List,
    Search,
}

struct NoteSkill {
    which: Which,
    notes: Notes,
}

fn failed(e: NoteError) -> SkillError {
    match e {
        NoteError::Invalid(why) | NoteError::TooLarge(why) => SkillError::InvalidArguments(why),
        other => SkillError::Failed(other.to_string()),
    }
}

/// `"Wifi": The guest password is marmalade-42` (the text cut at 200 characters).
fn told(note: &Note) -> String {
    let mut text: String = note.text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() > TEXT_CHARS {
        text = text.chars().take(TEXT_CHARS).collect::<String>() + "…";
    }
    match text.starts_with(note.title.trim_end_matches('…')) {
        true => text,
        false => format!("\"{}\": {text}", note.title),
    }
}

fn told_all(notes: &[Note]) -> String {
    notes.iter().map(told).collect::<Vec<_>>().join("; ")
}

impl Skill for NoteSkill {
    fn name(&self) -> &'static str {
        match self.which {
            Which::Create => CREATE,
            Which::List => LIST,
            Which::Search => SEARCH,
        }
    }

    fn description(&self) -> &'static str {
        match self.which {
            Which::Create => "Save a note for the user. Use it when they say 'take a note' or 'note that'.",
            Which::List => "List the user's most recent notes.",
            Which::Search => "Find the user's notes that mention some words.",
        }
    }

    fn parameters(&self) -> Value {
        match self.which {
            Which::Create => json!({
                "type": "object",
                "properties": {
                    "text": { "type": "string", "description": "What to note, in the user's words" },
                    "title": { "type": "string", "description": "A short title, only if the user gave one" }
                },
                "required": ["text"]
            }),
            Which::List => crate::engine::ToolSpec::no_parameters(),
            Which::Search => json!({
                "type": "object",
                "properties": {
                    "words": { "type": "string", "description": "What to look for, in a few words" }
                },
                "required": ["words"]
            }),
        }
    }

    fn available(&self, ctx: &Context) -> bool {
        ctx.user_id.is_some()
    }

    fn execute(&self, arguments: Value, ctx: Context) -> BoxFuture<'static, Result<Output, SkillError>> {
        let (which, notes) = (self.which, self.notes.clone());
        Box::pin(async move {
            let user_id = ctx.user_id.ok_or_else(|| SkillError::Failed("notes need a user".into()))?;
            let said = match which {
                Which::Create => {
                    let text = string_arg(&arguments, "text")?;
                    let title =
                        arguments.get("title").and_then(Value::as_str).filter(|t| !t.trim().is_empty());
                    let note = notes.create(user_id, title, text).await.map_err(failed)?;
                    format!("Saved the note \"{}\".", note.title)
                }
                Which::List => {
                    let recent = notes.list(user_id, SHOWN as u32, 0).await.map_err(failed)?;
                    match recent.len() {
                        0 => "There are no notes yet.".to_string(),
                        1 => format!("The one note: {}.", told_all(&recent)),
                        n => format!("The {n} most recent notes: {}.", told_all(&recent)),
                    }
                }
                Which::Search => {
                    let words = string_arg(&arguments, "words")?;
                    let found = notes.search(user_id, words, SHOWN).await.map_err(failed)?;
                    let found: Vec<Note> = found.into_iter().map(|f| f.note).collect();
                    match found.len() {
                        0 => format!("No note mentions '{words}'."),
                        1 => format!("One note mentions '{words}': {}.", told_all(&found)),
                        n => format!("{n} notes mention '{words}': {}.", told_all(&found)),
                    }
                }
            };
            Ok(Output { content: said, citations: Vec::new() })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ToolCall;
    use crate::notices::Channel;
    use crate::store::{Role, Store};
    use std::time::Duration;

    #[tokio::test]
    async fn notes_are_taken_listed_and_found_for_their_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("hearth.db")).unwrap();
        let index = crate::search::SearchIndex::open(&dir.path().join("index")).unwrap();
        let alice = store.create_user("alice", Role::User).unwrap().id;
        let bob = store.create_user("bob", Role::User).unwrap().id;
        let enabled: Vec<String> = [CREATE, LIST, SEARCH].map(String::from).to_vec();
        let skills = Skills::built_in(&[], Duration::from_secs(10), None, None)
            .with_notes(&enabled, &Notes::new(store, Some(index)));
        let ctx = |user| Context::new(Some(user), Channel::Chat);
        let run = |name: &str, args: Value, user| {
            let (skills, call) = (skills.clone(), ToolCall::new(name, args));
            async move { skills.allowed(&ctx(user)).await.unwrap().run(&call, ctx(user)).await.0 }
        };
        let nobody = Context::new(None, Channel::Satellite);
        assert!(skills.allowed(&nobody).await.unwrap().specs(&nobody).is_empty(), "notes need a user");
        assert_eq!(skills.allowed(&ctx(alice)).await.unwrap().specs(&ctx(alice)).len(), 3);

        let saved = run(CREATE, json!({"text": "The plumber comes on Friday at 10"}), alice).await;
        assert_eq!(saved.result, "Saved the note \"The plumber comes on Friday at 10\".", "{saved:?}");
        let saved = run(CREATE, json!({"text": "marmalade-42", "title": "Guest wifi"}), alice).await;
        assert_eq!(saved.result, "Saved the note \"Guest wifi\".");
        let listed = run(LIST, json!({}), alice).await;
        assert_eq!(
            listed.result,
            "The 2 most recent notes: \"Guest wifi\": marmalade-42; The plumber comes on Friday at 10."
        );
        let found = run(SEARCH, json!({"words": "plumber"}), alice).await;
        assert_eq!(found.result, "One note mentions 'plumber': The plumber comes on Friday at 10.");
        let theirs = run(SEARCH, json!({"words": "plumber"}), bob).await;
        assert_eq!(theirs.result, "No note mentions 'plumber'.");
        assert_eq!(run(LIST, json!({}), bob).await.result, "There are no notes yet.");

        let empty = run(CREATE, json!({"text": "  "}), alice).await;
        assert!(!empty.ok && empty.result.contains("'text' must be a non-empty string"), "{empty:?}");
        let huge = run(CREATE, json!({"text": "x".repeat(crate::notes::TEXT_CHARS + 1)}), alice).await;
        assert!(!huge.ok && huge.result.contains("at most"), "{huge:?}");
    }
}
