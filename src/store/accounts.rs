//! Web accounts: passwords, browser sessions and first-run onboarding.
//!
//! Password hashes are Argon2id PHC strings made by [`crate::auth::password`]; session
//! secrets and setup codes are stored only as sha256 hashes, so a copy of the database
//! lets nobody in.

use super::users::valid_user_name;
use super::{audit, now, Result, Role, Store, StoreError, User};
use crate::audit::{user_target, Action, Actor, Event};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

/// A user as the admin page lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Account {
    #[serde(flatten)]
    pub user: User,
    /// Whether the user can log in to the web UI.
    pub has_password: bool,
    /// Disabled: its credentials are refused, its data kept.
    pub disabled: bool,
}

/// The outcome of an onboarding attempt.
#[derive(Debug)]
pub enum Onboarded {
    /// The administrator exists and has a password.
    Done(User),
    /// An administrator with a password already exists: onboarding is closed.
    AlreadyDone,
    /// The setup code is unknown or expired.
    InvalidCode,
}

fn role(s: &str) -> Role {
    if s == "admin" {
        Role::Admin
    } else {
        Role::User
    }
}

fn user_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        name: row.get(1)?,
        role: role(&row.get::<_, String>(2)?),
        created_at: row.get(3)?,
    })
}

fn invalid_name(name: &str) -> StoreError {
    StoreError::Conflict(format!(
        "invalid user name '{name}': use 1-64 letters, digits, '.', '_', '-' or '@'"
    ))
}

const NEEDS_ONBOARDING: &str =
    "SELECT NOT EXISTS (SELECT 1 FROM users WHERE role = 'admin' AND password_hash IS NOT NULL)";

impl Store {
    /// True until some administrator has a password.
    pub fn needs_onboarding(&self) -> Result<bool> {
        Ok(self.reader().query_row(NEEDS_ONBOARDING, [], |r| r.get(0))?)
    }

    /// Makes `hash` the one valid setup code for `valid_secs`. Every earlier code stops
    /// working, so a code that leaked from an old log or file cannot be used once a new
    /// one has been issued (issue 25).
    pub fn replace_setup_code(&self, hash: &[u8], valid_secs: i64) -> Result<()> {
        let t = now();
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM setup_codes", [])?;
        tx.execute(
            "INSERT INTO setup_codes (hash, created_at, expires_at) VALUES (?1, ?2, ?3)",
            params![hash, t, t + valid_secs],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Creates the first administrator (or gives a password to an existing admin of
    /// that name who has none) if the code is valid, then deletes every setup code.
    /// All in one transaction, so two racing attempts cannot both succeed.
    /// Recorded (`onboarded`, by `by`) in the same transaction.
    pub fn onboard(
        &self,
        code_hash: &[u8],
        name: &str,
        password_hash: &str,
        by: &Actor,
    ) -> Result<Onboarded> {
        if !valid_user_name(name) {
            return Err(invalid_name(name));
        }
        let mut conn = self.writer();
        let tx = Store::write_tx(&mut conn)?;
        let t = now();
        if !tx.query_row(NEEDS_ONBOARDING, [], |r| r.get::<_, bool>(0))? {
            return Ok(Onboarded::AlreadyDone);
        }
        let valid: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM setup_codes WHERE hash = ?1 AND expires_at > ?2)",
            params![code_hash, t],
            |r| r.get(0),
        )?;
        if !valid {
            return Ok(Onboarded::InvalidCode);
        }
        let existing = tx
            .query_row("SELECT id, name, role, created_at FROM users WHERE name = ?1", [name], user_row)
            .optional()?;
        let user = match existing {
            Some(user) if user.role == Role::Admin => {
                tx.execute(
                    "UPDATE users SET password_hash = ?2 WHERE id = ?1",
                    params![user.id, password_hash],
                )?;
                user
            }
            Some(_) => {
                return Err(StoreError::Conflict(format!(
                    "user '{name}' exists and is not an administrator; choose another name"
                )))
            }
            None => {
                tx.execute(
                    "INSERT INTO users (name, role, created_at, password_hash) VALUES (?1, 'admin', ?2, ?3)",
                    params![name, t, password_hash],
                )?;
                User { id: tx.last_insert_rowid(), name: name.into(), role: Role::Admin, created_at: t }
            }
        };
        tx.execute("DELETE FROM setup_codes", [])?;
        let event = Event::new(by, Action::Onboarded).target(user_target(user.id, &user.name));
        audit::append(&tx, &event)?;
        tx.commit()?;
        Ok(Onboarded::Done(user))
    }

    /// A user and their password hash, when the user exists and has a password.
    pub fn login_candidate(&self, name: &str) -> Result<Option<(User, String)>> {
        let found = self
            .reader()
            .query_row(
                "SELECT id, name, role, created_at, password_hash FROM users
                 WHERE name = ?1 AND password_hash IS NOT NULL AND disabled_at IS NULL",
                [name],
                |row| Ok((user_row(row)?, row.get::<_, String>(4)?)),
            )
            .optional()?;
        Ok(found)
    }

    /// Starts a session lasting `valid_secs` (recorded as a `login` by `by` in the same
    /// transaction); drops expired sessions.
    pub fn create_session(&self, user_id: i64, hash: &[u8], valid_secs: i64, by: &Actor) -> Result<i64> {
        let t = now();
        let mut conn = self.writer();
        let tx = Store::write_tx(&mut conn)?;
        tx.execute("DELETE FROM sessions WHERE expires_at <= ?1", [t])?;
        tx.execute(
            "INSERT INTO sessions (user_id, hash, created_at, last_seen_at, expires_at)
             VALUES (?1, ?2, ?3, ?3, ?4)",
            params![user_id, hash, t, t + valid_secs],
        )?;
        let id = tx.last_insert_rowid();
        let name: String = tx.query_row("SELECT name FROM users WHERE id = ?1", [user_id], |r| r.get(0))?;
        let event = Event::new(by, Action::Login)
            .target(user_target(user_id, &name))
            .detail(serde_json::json!({ "via": "password", "session": id }));
        audit::append(&tx, &event)?;
        tx.commit()?;
        Ok(id)
    }

    /// The user of a live session with this hash.
    pub fn user_for_session_hash(&self, hash: &[u8]) -> Result<Option<(i64, User)>> {
        let found = self
            .reader()
            .query_row(
                "SELECT s.id, u.id, u.name, u.role, u.created_at
                 FROM sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.hash = ?1 AND s.expires_at > ?2 AND u.disabled_at IS NULL",
                params![hash, now()],
                |row| {
                    let user = User {
                        id: row.get(1)?,
                        name: row.get(2)?,
                        role: role(&row.get::<_, String>(3)?),
                        created_at: row.get(4)?,
                    };
                    Ok((row.get(0)?, user))
                },
            )
            .optional()?;
        Ok(found)
    }

    /// Records session activity (at most once a minute).
    pub fn touch_session(&self, session_id: i64) -> Result<()> {
        self.writer().execute(
            "UPDATE sessions SET last_seen_at = ?2 WHERE id = ?1 AND last_seen_at < ?2 - 60",
            params![session_id, now()],
        )?;
        Ok(())
    }

    /// Ends a session (a `logout` by `by`, recorded in the same transaction).
    pub fn delete_session(&self, session_id: i64, by: &Actor) -> Result<()> {
        let mut conn = self.writer();
        let tx = Store::write_tx(&mut conn)?;
        tx.execute("DELETE FROM sessions WHERE id = ?1", [session_id])?;
        let target = by.user_id.map_or_else(String::new, |id| user_target(id, &by.name));
        let event = Event::new(by, Action::Logout)
            .target(target)
            .detail(serde_json::json!({ "session": session_id }));
        audit::append(&tx, &event)?;
        tx.commit()?;
        Ok(())
    }

    /// Every user, with whether they can log in to the web UI.
    pub fn list_accounts(&self) -> Result<Vec<Account>> {
        let conn = self.reader();
        let mut stmt = conn
            .prepare("SELECT id, name, role, created_at, password_hash IS NOT NULL, disabled_at IS NOT NULL FROM users ORDER BY id")?;
        let rows = stmt
            .query_map([], |row| {
                Ok(Account { user: user_row(row)?, has_password: row.get(4)?, disabled: row.get(5)? })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Creates a user who can log in with a password, recorded as made by `by` in the
    /// same transaction.
    pub fn create_account(&self, name: &str, role: Role, password_hash: &str, by: &Actor) -> Result<User> {
        if !valid_user_name(name) {
            return Err(invalid_name(name));
        }
        let mut conn = self.writer();
        let tx = Store::write_tx(&mut conn)?;
        let t = now();
        let inserted = tx.execute(
            "INSERT INTO users (name, role, created_at, password_hash) VALUES (?1, ?2, ?3, ?4)",
            params![name, role.as_str(), t, password_hash],
        );
        let user = match inserted {
            Ok(_) => User { id: tx.last_insert_rowid(), name: name.into(), role, created_at: t },
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                return Err(StoreError::Conflict(format!("user '{name}' already exists")))
            }
            Err(e) => return Err(e.into()),
        };
        let event = Event::new(by, Action::UserCreated)
            .target(user_target(user.id, name))
            .detail(serde_json::json!({ "role": role.as_str(), "password": true }));
        audit::append(&tx, &event)?;
        tx.commit()?;
        Ok(user)
    }

    /// Sets a user's password and ends their sessions; returns whether they had one before.
    /// Recorded in the same transaction: `password_changed` when `by` is the user,
    /// `password_reset` when it is someone else.
    pub fn set_password(&self, user_id: i64, password_hash: &str, by: &Actor) -> Result<bool> {
        let mut conn = self.writer();
        let tx = Store::write_tx(&mut conn)?;
        let found: Option<(bool, String)> = tx
            .query_row("SELECT password_hash IS NOT NULL, name FROM users WHERE id = ?1", [user_id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        let Some((had, name)) = found else { return Err(StoreError::NotFound(format!("user {user_id}"))) };
        tx.execute("UPDATE users SET password_hash = ?2 WHERE id = ?1", params![user_id, password_hash])?;
        let sessions = tx.execute("DELETE FROM sessions WHERE user_id = ?1", [user_id])?;
        let action =
            if by.user_id == Some(user_id) { Action::PasswordChanged } else { Action::PasswordReset };
        let event = Event::new(by, action)
            .target(user_target(user_id, &name))
            .detail(serde_json::json!({ "had_password": had, "sessions_ended": sessions }));
        audit::append(&tx, &event)?;
        tx.commit()?;
        Ok(had)
    }

    /// Revokes every live token of a user; returns their ids (an administrator's password
    /// reset: whoever had the account may have made tokens with it). Each is recorded as
    /// revoked by `by` in the same transaction.
    pub fn revoke_tokens_of(&self, user_id: i64, by: &Actor) -> Result<Vec<i64>> {
        let mut conn = self.writer();
        let tx = Store::write_tx(&mut conn)?;
        let ids = {
            let mut stmt =
                tx.prepare("SELECT id FROM api_tokens WHERE user_id = ?1 AND revoked_at IS NULL")?;
            let ids = stmt.query_map([user_id], |r| r.get(0))?.collect::<rusqlite::Result<Vec<i64>>>()?;
            ids
        };
        tx.execute(
            "UPDATE api_tokens SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
            params![user_id, now()],
        )?;
        for id in &ids {
            audit::append(&tx, &super::users::token_revoked(&tx, by, *id)?)?;
        }
        tx.commit()?;
        Ok(ids)
    }

    /// Revokes a live token (only `owner`'s, when given), recorded as done by `by` in the
    /// same transaction.
    pub fn revoke_token_id(&self, token_id: i64, owner: Option<i64>, by: &Actor) -> Result<()> {
        let mut conn = self.writer();
        let tx = Store::write_tx(&mut conn)?;
        let changed = tx.execute(
            "UPDATE api_tokens SET revoked_at = ?3
             WHERE id = ?1 AND (?2 IS NULL OR user_id = ?2) AND revoked_at IS NULL",
            params![token_id, owner, now()],
        )?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!("active token {token_id}")));
        }
        audit::append(&tx, &super::users::token_revoked(&tx, by, token_id)?)?;
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::temp_store;

    #[test]
    fn onboarding_needs_a_valid_code_and_happens_once() {
        let (_dir, store) = temp_store();
        assert!(store.needs_onboarding().unwrap());
        store.replace_setup_code(b"expired", -1).unwrap();
        assert!(matches!(
            store.onboard(b"expired", "root", "phc", &Actor::system()).unwrap(),
            Onboarded::InvalidCode
        ));
        store.replace_setup_code(b"code-1", 60).unwrap();
        assert!(matches!(
            store.onboard(b"wrong", "root", "phc", &Actor::system()).unwrap(),
            Onboarded::InvalidCode
        ));
        let Onboarded::Done(admin) = store.onboard(b"code-1", "root", "phc", &Actor::system()).unwrap()
        else {
            panic!()
        };
        assert_eq!(admin.role, Role::Admin);
        assert!(!store.needs_onboarding().unwrap());
        assert!(matches!(
            store.onboard(b"code-1", "other", "phc", &Actor::system()).unwrap(),
            Onboarded::AlreadyDone
        ));
        assert_eq!(store.login_candidate("root").unwrap().unwrap().1, "phc");
    }

    #[test]
    fn only_the_newest_setup_code_is_valid() {
        let (_dir, store) = temp_store();
        store.replace_setup_code(b"older", 60).unwrap();
        store.replace_setup_code(b"newer", 60).unwrap();
        assert!(matches!(
            store.onboard(b"older", "root", "phc", &Actor::system()).unwrap(),
            Onboarded::InvalidCode
        ));
        assert!(matches!(
            store.onboard(b"newer", "root", "phc", &Actor::system()).unwrap(),
            Onboarded::Done(_)
        ));
    }

    #[test]
    fn an_existing_cli_admin_can_onboard_but_a_plain_user_cannot_be_taken_over() {
        let (_dir, store) = temp_store();
        store.create_user("bob", Role::User).unwrap();
        store.create_user("root", Role::Admin).unwrap();
        assert!(store.login_candidate("root").unwrap().is_none(), "no password yet");
        store.replace_setup_code(b"c", 60).unwrap();
        assert!(matches!(store.onboard(b"c", "bob", "phc", &Actor::system()), Err(StoreError::Conflict(_))));
        assert!(matches!(store.onboard(b"c", "root", "phc", &Actor::system()).unwrap(), Onboarded::Done(_)));
    }

    #[test]
    fn sessions_expire_and_end_on_password_change() {
        let (_dir, store) = temp_store();
        let user = store.create_account("alice", Role::User, "phc", &Actor::system()).unwrap();
        let id = store.create_session(user.id, b"s1", 60, &Actor::system()).unwrap();
        store.create_session(user.id, b"old", -1, &Actor::system()).unwrap();
        assert_eq!(store.user_for_session_hash(b"s1").unwrap().unwrap().0, id);
        assert!(store.user_for_session_hash(b"old").unwrap().is_none());
        store.set_password(user.id, "phc2", &Actor::system()).unwrap();
        assert!(store.user_for_session_hash(b"s1").unwrap().is_none());
        let first = store.insert_token(user.id, "a", "hth_a", b"ha").unwrap();
        let second = store.insert_token(user.id, "b", "hth_b", b"hb").unwrap();
        store.revoke_token_id(first, None, &Actor::system()).unwrap();
        assert_eq!(
            store.revoke_tokens_of(user.id, &Actor::system()).unwrap(),
            vec![second],
            "only the live ones"
        );
        assert!(store.user_for_token_hash(b"hb").unwrap().is_none());
        let accounts = store.list_accounts().unwrap();
        assert!(accounts[0].has_password);
    }

    #[test]
    fn tokens_are_revoked_only_by_their_owner_or_an_admin() {
        let (_dir, store) = temp_store();
        let alice = store.create_user("alice", Role::User).unwrap();
        let bob = store.create_user("bob", Role::User).unwrap();
        let token = store.insert_token(alice.id, "laptop", "hth_a", b"h").unwrap();
        assert!(matches!(
            store.revoke_token_id(token, Some(bob.id), &Actor::system()),
            Err(StoreError::NotFound(_))
        ));
        store.revoke_token_id(token, Some(alice.id), &Actor::system()).unwrap();
        assert!(store.revoke_token_id(token, None, &Actor::system()).is_err(), "already revoked");
    }
}
