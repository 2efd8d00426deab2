//! The skills the owner turned on or off for one user (`user_skills`: user, skill,
//! enabled). A skill with no row follows the box's default (`[skills]`); `skills/` decides
//! what a setting means and which names exist. A row naming a skill the box no longer has
//! (a webhook taken out of the config) is kept and counts again if the skill comes back.
//! Rows go with their user (`ON DELETE CASCADE`).

use super::{audit, now, Result, Store, StoreError};
use crate::audit::{user_target, Action, Actor, Event};
use rusqlite::{params, Connection};
use std::collections::BTreeMap;

/// A user's settings: skill → on (`true`) or off (`false`).
pub type UserSkills = BTreeMap<String, bool>;

impl Store {
    /// The user's settings; `NotFound` if there is no such user.
    pub fn user_skills(&self, user_id: i64) -> Result<UserSkills> {
        let conn = self.reader();
        user_exists(&conn, user_id)?;
        settings(&conn, user_id)
    }

    /// Sets (`Some`) or clears (`None`: back to the box's default) the user's settings
    /// for the named skills in one transaction, and returns them all; `NotFound` if
    /// there is no such user. The names are not checked here. Recorded as done by `by` in
    /// the same transaction.
    pub fn set_user_skills(
        &self,
        user_id: i64,
        changes: &[(String, Option<bool>)],
        by: &Actor,
    ) -> Result<UserSkills> {
        let mut conn = self.writer();
        // Immediate: `hearth users skills` writes beside a running service, and a deferred
        // transaction that reads first cannot wait for the service's write to end (SQLite
        // answers "database is locked" at once instead).
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        user_exists(&tx, user_id)?;
        let at = now();
        for (skill, enabled) in changes {
            match enabled {
                Some(enabled) => tx.execute(
                    "INSERT INTO user_skills (user_id, skill, enabled, updated_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (user_id, skill) DO UPDATE
                     SET enabled = excluded.enabled, updated_at = excluded.updated_at",
                    params![user_id, skill, enabled, at],
                )?,
                None => tx.execute(
                    "DELETE FROM user_skills WHERE user_id = ?1 AND skill = ?2",
                    params![user_id, skill],
                )?,
            };
        }
        let all = settings(&tx, user_id)?;
        let name: String = tx.query_row("SELECT name FROM users WHERE id = ?1", [user_id], |r| r.get(0))?;
        let said: serde_json::Map<String, serde_json::Value> =
            changes.iter().map(|(skill, on)| (skill.clone(), serde_json::json!(on))).collect();
        let event = Event::new(by, Action::SkillsChanged)
            .target(user_target(user_id, &name))
            .detail(serde_json::json!({ "changes": said }));
        audit::append(&tx, &event)?;
        tx.commit()?;
        Ok(all)
    }
}

fn user_exists(conn: &Connection, user_id: i64) -> Result<()> {
    let exists: bool =
        conn.query_row("SELECT EXISTS (SELECT 1 FROM users WHERE id = ?1)", [user_id], |r| r.get(0))?;
    match exists {
        true => Ok(()),
        false => Err(StoreError::NotFound(format!("user {user_id}"))),
    }
}

fn settings(conn: &Connection, user_id: i64) -> Result<UserSkills> {
    let mut stmt = conn.prepare_cached("SELECT skill, enabled FROM user_skills WHERE user_id = ?1")?;
    let rows = stmt.query_map([user_id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use crate::store::{temp_store, Role, StoreError};

    fn set(skill: &str, enabled: Option<bool>) -> (String, Option<bool>) {
        (skill.to_string(), enabled)
    }

    #[test]
    fn settings_are_set_replaced_and_cleared_per_user() {
        let (_dir, store) = temp_store();
        let alice = store.create_user("alice", Role::User).unwrap();
        let bob = store.create_user("bob", Role::User).unwrap();
        assert!(store.user_skills(alice.id).unwrap().is_empty(), "no rows: the box's defaults");

        let all = store
            .set_user_skills(
                alice.id,
                &[set("clock", Some(false)), set("weather", Some(true))],
                &crate::audit::Actor::system(),
            )
            .unwrap();
        assert_eq!(all, [("clock".into(), false), ("weather".into(), true)].into());
        let all = store
            .set_user_skills(
                alice.id,
                &[set("clock", Some(true)), set("weather", None)],
                &crate::audit::Actor::system(),
            )
            .unwrap();
        assert_eq!(all, [("clock".into(), true)].into());
        assert_eq!(store.user_skills(alice.id).unwrap(), all);
        assert!(store.user_skills(bob.id).unwrap().is_empty(), "bob's are his own");
        let none = store
            .set_user_skills(alice.id, &[set("calculate", None)], &crate::audit::Actor::system())
            .unwrap();
        assert_eq!(none, all, "clearing what was never set changes nothing");
    }

    #[test]
    fn an_unknown_user_is_not_found_and_nothing_is_written() {
        let (_dir, store) = temp_store();
        assert!(matches!(store.user_skills(42), Err(StoreError::NotFound(_))));
        assert!(matches!(
            store.set_user_skills(42, &[set("clock", Some(true))], &crate::audit::Actor::system()),
            Err(StoreError::NotFound(_))
        ));
        let rows: i64 =
            store.reader().query_row("SELECT COUNT(*) FROM user_skills", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 0);
    }

    #[test]
    fn a_deleted_user_takes_their_settings_along() {
        let (_dir, store) = temp_store();
        let alice = store.create_user("alice", Role::User).unwrap();
        let bob = store.create_user("bob", Role::User).unwrap();
        store
            .set_user_skills(alice.id, &[set("clock", Some(false))], &crate::audit::Actor::system())
            .unwrap();
        store.set_user_skills(bob.id, &[set("clock", Some(false))], &crate::audit::Actor::system()).unwrap();
        store.delete_user(alice.id, &crate::audit::Actor::system()).unwrap();
        let rows: Vec<i64> = store
            .reader()
            .prepare("SELECT user_id FROM user_skills")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(rows, [bob.id]);
    }
}
