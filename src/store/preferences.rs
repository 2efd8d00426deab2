//! Box-wide choices made in the web UI (at setup, on the admin page) rather than in the
//! config file, which the service cannot write. The config file still wins where it sets
//! the same thing.

use super::{now, Result, Store};
use rusqlite::{params, OptionalExtension};

/// The language people speak to the box (as `voice.language`), chosen at setup.
pub const VOICE_LANGUAGE: &str = "voice.language";

impl Store {
    pub fn preference(&self, key: &str) -> Result<Option<String>> {
        let conn = self.reader();
        Ok(conn.query_row("SELECT value FROM preferences WHERE key = ?1", [key], |r| r.get(0)).optional()?)
    }

    pub fn set_preference(&self, key: &str, value: &str) -> Result<()> {
        self.writer().execute(
            "INSERT INTO preferences (key, value, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            params![key, value, now()],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preference_is_kept_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("hearth.db")).unwrap();
        assert_eq!(store.preference(VOICE_LANGUAGE).unwrap(), None);
        store.set_preference(VOICE_LANGUAGE, "de").unwrap();
        store.set_preference(VOICE_LANGUAGE, "en,de").unwrap();
        let reopened = Store::open(&dir.path().join("hearth.db")).unwrap();
        assert_eq!(reopened.preference(VOICE_LANGUAGE).unwrap().as_deref(), Some("en,de"));
    }
}
