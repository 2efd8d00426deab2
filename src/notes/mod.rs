//! Notes: a user's own short texts, kept in SQLite (`store::notes`) and found through the
//! search index (a `note` kind beside messages and chunks, so `/api/search` finds them
//! too). Written by the `create_note` skill, the API and the web UI's search; every rule
//! (sizes, the title made from the text, who sees what) lives here, for all of them.

use crate::search::{HitKind, SearchIndex, SearchQuery};
use crate::store::{Note, Store, StoreError};

/// Longest note text, in characters.
pub const TEXT_CHARS: usize = 20_000;
/// Longest title, in characters.
pub const TITLE_CHARS: usize = 200;
/// Most notes one user may keep.
pub const MAX_NOTES: u64 = 10_000;
/// Characters of the text a title made from it keeps.
const MADE_TITLE_CHARS: usize = 60;

#[derive(Debug, thiserror::Error)]
pub enum NoteError {
    /// What was given cannot be a note; the text says why.
    #[error("{0}")]
    Invalid(String),
    /// Longer than the limits above.
    #[error("{0}")]
    TooLarge(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Search(String),
}

/// What a change sets: `None` leaves it as it is.
#[derive(Debug, Clone, Default)]
pub struct NoteChange {
    pub title: Option<String>,
    pub text: Option<String>,
}

/// A note found by words, with the part of it that matched.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Found {
    #[serde(flatten)]
    pub note: Note,
    pub snippet: String,
}

/// The service; clone it freely.
#[derive(Clone)]
pub struct Notes {
    store: Store,
    index: Option<SearchIndex>,
}

fn checked_text(text: &str) -> Result<String, NoteError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(NoteError::Invalid("a note needs a text".into()));
    }
    if text.chars().count() > TEXT_CHARS {
        return Err(NoteError::TooLarge(format!("a note's text may be at most {TEXT_CHARS} characters")));
    }
    Ok(text.to_string())
}

/// The title given, or the start of the text's first line (cut at a word).
fn title_for(title: Option<&str>, text: &str) -> Result<String, NoteError> {
    let title = title.map(str::trim).unwrap_or("");
    if title.chars().count() > TITLE_CHARS {
        return Err(NoteError::TooLarge(format!("a note's title may be at most {TITLE_CHARS} characters")));
    }
    if title.contains(['\n', '\r']) {
        return Err(NoteError::Invalid("a title is one line".into()));
    }
    if !title.is_empty() {
        return Ok(title.to_string());
    }
    let line = text.lines().next().unwrap_or("").trim();
    if line.chars().count() <= MADE_TITLE_CHARS {
        return Ok(line.to_string());
    }
    let cut: String = line.chars().take(MADE_TITLE_CHARS).collect();
    let cut = cut.rsplit_once(' ').map_or(cut.as_str(), |(head, _)| head).trim_end_matches([',', ';', ':']);
    Ok(format!("{cut}…"))
}

impl Notes {
    /// Over `store`; searching needs the index (`None`: `search` says it is unavailable).
    pub fn new(store: Store, index: Option<SearchIndex>) -> Notes {
        Notes { store, index }
    }

    pub async fn create(&self, user_id: i64, title: Option<&str>, text: &str) -> Result<Note, NoteError> {
        let text = checked_text(text)?;
        let title = title_for(title, &text)?;
        let count = self.store.run(move |store| store.note_count(user_id)).await?;
        if count >= MAX_NOTES {
            return Err(NoteError::TooLarge(format!(
                "there are already {MAX_NOTES} notes; delete some first"
            )));
        }
        let note = self.store.run(move |store| store.add_note(user_id, &title, &text)).await?;
        tracing::info!(note = note.id, "note created");
        Ok(note)
    }

    pub async fn get(&self, user_id: i64, id: i64) -> Result<Note, NoteError> {
        Ok(self.store.run(move |store| store.note(user_id, id)).await?)
    }

    /// The most recently changed first.
    pub async fn list(&self, user_id: i64, limit: u32, offset: u32) -> Result<Vec<Note>, NoteError> {
        Ok(self.store.run(move |store| store.notes(user_id, limit, offset)).await?)
    }

    pub async fn update(&self, user_id: i64, id: i64, change: NoteChange) -> Result<Note, NoteError> {
        if change.title.is_none() && change.text.is_none() {
            return Err(NoteError::Invalid("give a new 'title', 'text', or both".into()));
        }
        let text = change.text.as_deref().map(checked_text).transpose()?;
        let title = match (&change.title, &text) {
            (None, _) => None,
            (Some(title), Some(text)) => Some(title_for(Some(title), text)?),
            // An empty title is made from the text: the note's own, when only the title changes.
            (Some(title), None) if title.trim().is_empty() => {
                let note = self.get(user_id, id).await?;
                Some(title_for(None, &note.text)?)
            }
            (Some(title), None) => Some(title_for(Some(title), "")?),
        };
        let note = self
            .store
            .run(move |store| store.update_note(user_id, id, title.as_deref(), text.as_deref()))
            .await?;
        Ok(note)
    }

    pub async fn delete(&self, user_id: i64, id: i64) -> Result<(), NoteError> {
        self.store.run(move |store| store.delete_note(user_id, id)).await?;
        tracing::info!(note = id, "note deleted");
        Ok(())
    }

    /// This user's notes that contain `words` (stemmed, any of them), best first.
    pub async fn search(&self, user_id: i64, words: &str, limit: usize) -> Result<Vec<Found>, NoteError> {
        let Some(index) = self.index.clone() else {
            return Err(NoteError::Search("the search index is not available".into()));
        };
        let (store, text) = (self.store.clone(), words.to_string());
        let found = tokio::task::spawn_blocking(move || {
            // Read-your-writes: a note just written is found.
            index.sync(&store)?;
            let query = SearchQuery {
                user_id,
                text,
                kind: Some(HitKind::Note),
                limit,
                snippet_chars: 160,
                ..SearchQuery::default()
            };
            let hits = index.search(&query)?.hits;
            let ids: Vec<i64> = hits.iter().map(|h| h.id).collect();
            let notes = store.notes_by_ids(user_id, &ids)?;
            // The index may lag a delete: hits whose note is gone are dropped.
            let found = hits
                .into_iter()
                .filter_map(|hit| {
                    let note = notes.iter().find(|n| n.id == hit.id)?.clone();
                    Some(Found { note, snippet: hit.snippet })
                })
                .collect::<Vec<_>>();
            Ok::<_, crate::search::SearchError>(found)
        })
        .await
        .map_err(|e| NoteError::Search(e.to_string()))?
        .map_err(|e| NoteError::Search(e.to_string()))?;
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Role;

    fn notes() -> (tempfile::TempDir, Notes, i64, i64) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("hearth.db")).unwrap();
        let index = SearchIndex::open(&dir.path().join("index")).unwrap();
        let alice = store.create_user("alice", Role::User).unwrap().id;
        let bob = store.create_user("bob", Role::User).unwrap().id;
        (dir, Notes::new(store, Some(index)), alice, bob)
    }

    #[test]
    fn titles_are_given_or_made_from_the_first_line() {
        assert_eq!(title_for(Some(" Wifi "), "x").unwrap(), "Wifi");
        assert_eq!(title_for(None, "buy milk\nand eggs").unwrap(), "buy milk");
        let long = "the plumber said the valve under the sink needs replacing before the winter comes";
        assert_eq!(
            title_for(Some(""), long).unwrap(),
            "the plumber said the valve under the sink needs replacing…"
        );
        assert!(matches!(title_for(Some(&"t".repeat(TITLE_CHARS + 1)), "x"), Err(NoteError::TooLarge(_))));
        assert!(matches!(title_for(Some("two\nlines"), "x"), Err(NoteError::Invalid(_))));
        assert!(matches!(checked_text("  "), Err(NoteError::Invalid(_))));
        assert!(matches!(checked_text(&"x".repeat(TEXT_CHARS + 1)), Err(NoteError::TooLarge(_))));
    }

    #[tokio::test]
    async fn notes_are_found_by_their_words_and_only_by_their_owner() {
        let (_dir, notes, alice, bob) = notes();
        let wifi = notes.create(alice, Some("Wifi"), "The guest password is marmalade-42").await.unwrap();
        notes.create(alice, None, "Black bin goes out on Thursdays").await.unwrap();
        notes.create(bob, None, "Bob's passwords are his own").await.unwrap();

        let found = notes.search(alice, "passwords", 10).await.unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].note.id, wifi.id);
        assert!(found[0].snippet.contains("password"), "{:?}", found[0].snippet);
        assert!(notes.search(alice, "wifi", 10).await.unwrap().len() == 1, "the title is searched too");
        let theirs = notes.search(bob, "marmalade", 10).await.unwrap();
        assert!(theirs.is_empty(), "bob does not find alice's note: {theirs:?}");

        let change = NoteChange { text: Some("The guest password is now jam-7".into()), title: None };
        notes.update(alice, wifi.id, change).await.unwrap();
        assert!(notes.search(alice, "marmalade", 10).await.unwrap().is_empty(), "the old text is gone");
        assert_eq!(notes.search(alice, "jam", 10).await.unwrap().len(), 1);
        notes.delete(alice, wifi.id).await.unwrap();
        assert!(notes.search(alice, "jam", 10).await.unwrap().is_empty());
        assert!(matches!(notes.get(alice, wifi.id).await, Err(NoteError::Store(StoreError::NotFound(_)))));
        assert!(matches!(notes.update(alice, 1, NoteChange::default()).await, Err(NoteError::Invalid(_))));
    }
}
