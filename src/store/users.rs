//! Users and their API tokens. Tokens are stored only as sha256 hashes.

use super::{audit, now, Result, Store, StoreError};
use crate::audit::{user_target, Action, Actor, Event};
use crate::auth::scopes::{Scopes, TokenGrant};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }

    fn parse(s: &str) -> Role {
        if s == "admin" {
            Role::Admin
        } else {
            Role::User
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub created_at: i64,
}

/// A live token's owner and what the token may do (`Store::user_for_token_hash`).
#[derive(Debug, Clone)]
pub struct TokenOwner {
    pub token_id: i64,
    pub user: User,
    pub scopes: Scopes,
    /// Its own request limit per minute; `None`: only its user's.
    pub requests_per_minute: Option<u32>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    pub id: i64,
    pub user: String,
    pub label: String,
    /// The first characters of the token, enough to recognise it; never the secret.
    pub prefix: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked: bool,
    /// What it may be used for (`chat`, `documents`, `voice`, `admin`).
    #[schema(value_type = Vec<String>)]
    pub scopes: Vec<&'static str>,
    /// Unix seconds after which it no longer works; `None`: until revoked.
    pub expires_at: Option<i64>,
    /// Its own request limit per minute; `None`: only its user's.
    pub requests_per_minute: Option<u32>,
}

/// Names: 1-64 characters of letters, digits, `.`, `_`, `-` and `@`.
pub fn valid_user_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

fn user_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        name: row.get(1)?,
        role: Role::parse(&row.get::<_, String>(2)?),
        created_at: row.get(3)?,
    })
}

impl Store {
    /// A user without a password, recorded as made by the system.
    pub fn create_user(&self, name: &str, role: Role) -> Result<User> {
        self.create_user_by(name, role, &Actor::system())
    }

    /// A user without a password (tokens only, or a password later), recorded as made
    /// by `by` in the same transaction.
    pub fn create_user_by(&self, name: &str, role: Role, by: &Actor) -> Result<User> {
        if !valid_user_name(name) {
            return Err(StoreError::Conflict(format!(
                "invalid user name '{name}': use 1-64 letters, digits, '.', '_', '-' or '@'"
            )));
        }
        let mut conn = self.writer();
        let tx = Store::write_tx(&mut conn)?;
        let created_at = now();
        let inserted = tx.execute(
            "INSERT INTO users (name, role, created_at) VALUES (?1, ?2, ?3)",
            params![name, role.as_str(), created_at],
        );
        let user = match inserted {
            Ok(_) => User { id: tx.last_insert_rowid(), name: name.into(), role, created_at },
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                return Err(StoreError::Conflict(format!("user '{name}' already exists")))
            }
            Err(e) => return Err(e.into()),
        };
        let event = Event::new(by, Action::UserCreated)
            .target(user_target(user.id, name))
            .detail(serde_json::json!({ "role": role.as_str(), "password": false }));
        audit::append(&tx, &event)?;
        tx.commit()?;
        Ok(user)
    }

    pub fn list_users(&self) -> Result<Vec<User>> {
        let conn = self.reader();
        let mut stmt = conn.prepare("SELECT id, name, role, created_at FROM users ORDER BY id")?;
        let users = stmt.query_map([], user_from_row)?.collect::<rusqlite::Result<_>>()?;
        Ok(users)
    }

    pub fn find_user(&self, name: &str) -> Result<User> {
        self.reader()
            .query_row("SELECT id, name, role, created_at FROM users WHERE name = ?1", [name], user_from_row)
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("user '{name}'")))
    }

    /// Stores a token's hash with every scope and no expiry, recorded as made by the
    /// system. `prefix` must be unique.
    pub fn insert_token(&self, user_id: i64, label: &str, prefix: &str, hash: &[u8]) -> Result<i64> {
        self.insert_token_with(user_id, label, prefix, hash, TokenGrant::default(), &Actor::system())
    }

    /// Stores a token's hash with what it may do and until when, recorded as made by
    /// `by` in the same transaction (its prefix, never the secret).
    pub fn insert_token_with(
        &self,
        user_id: i64,
        label: &str,
        prefix: &str,
        hash: &[u8],
        grant: TokenGrant,
        by: &Actor,
    ) -> Result<i64> {
        let mut conn = self.writer();
        let tx = Store::write_tx(&mut conn)?;
        let owner: String = tx
            .query_row("SELECT name FROM users WHERE id = ?1", [user_id], |r| r.get(0))
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("user {user_id}")))?;
        tx.execute(
            "INSERT INTO api_tokens (user_id, label, prefix, hash, created_at, scopes, expires_at,
                                     requests_per_minute)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                user_id,
                label,
                prefix,
                hash,
                now(),
                grant.scopes.to_stored(),
                grant.expires_at,
                grant.requests_per_minute
            ],
        )?;
        let id = tx.last_insert_rowid();
        let event = Event::new(by, Action::TokenCreated).target(format!("token:{id} {prefix}")).detail(
            serde_json::json!({
                "user": user_target(user_id, &owner), "label": label,
                "scopes": grant.scopes.names(), "expires_at": grant.expires_at,
                "requests_per_minute": grant.requests_per_minute,
            }),
        );
        audit::append(&tx, &event)?;
        tx.commit()?;
        Ok(id)
    }

    /// The user owning a live (not revoked, not expired) token with this hash, what the
    /// token may do, and its own request limit per minute.
    pub fn user_for_token_hash(&self, hash: &[u8]) -> Result<Option<TokenOwner>> {
        let found = self
            .reader()
            .query_row(
                "SELECT t.id, u.id, u.name, u.role, u.created_at, t.scopes, t.requests_per_minute
                 FROM api_tokens t JOIN users u ON u.id = t.user_id
                 WHERE t.hash = ?1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > ?2)
                   AND u.disabled_at IS NULL",
                params![hash, now()],
                |row| {
                    let token_id: i64 = row.get(0)?;
                    let user = User {
                        id: row.get(1)?,
                        name: row.get(2)?,
                        role: Role::parse(&row.get::<_, String>(3)?),
                        created_at: row.get(4)?,
                    };
                    let scopes = Scopes::from_stored(row.get::<_, Option<String>>(5)?.as_deref());
                    Ok(TokenOwner { token_id, user, scopes, requests_per_minute: row.get(6)? })
                },
            )
            .optional()?;
        Ok(found)
    }

    /// Records when a token was last used (at most once a minute per token).
    pub fn touch_token(&self, token_id: i64) -> Result<()> {
        let t = now();
        self.writer().execute(
            "UPDATE api_tokens SET last_used_at = ?2
             WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2 - 60)",
            params![token_id, t],
        )?;
        Ok(())
    }

    pub fn list_tokens(&self, user: Option<&str>) -> Result<Vec<TokenInfo>> {
        let conn = self.reader();
        let mut stmt = conn.prepare(
            "SELECT t.id, u.name, t.label, t.prefix, t.created_at, t.last_used_at, t.revoked_at, t.scopes,
                    t.expires_at, t.requests_per_minute
             FROM api_tokens t JOIN users u ON u.id = t.user_id
             WHERE ?1 IS NULL OR u.name = ?1 ORDER BY t.id",
        )?;
        let tokens = stmt
            .query_map([user], |row| {
                Ok(TokenInfo {
                    id: row.get(0)?,
                    user: row.get(1)?,
                    label: row.get(2)?,
                    prefix: row.get(3)?,
                    created_at: row.get(4)?,
                    last_used_at: row.get(5)?,
                    revoked: row.get::<_, Option<i64>>(6)?.is_some(),
                    scopes: Scopes::from_stored(row.get::<_, Option<String>>(7)?.as_deref()).names(),
                    expires_at: row.get(8)?,
                    requests_per_minute: row.get(9)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(tokens)
    }

    /// Revokes a token by its displayed prefix (or the whole token's prefix part).
    /// Recorded as done by `by`, in the same transaction.
    pub fn revoke_token(&self, prefix: &str, by: &Actor) -> Result<()> {
        let mut conn = self.writer();
        let tx = Store::write_tx(&mut conn)?;
        let found: Option<i64> = tx
            .query_row("SELECT id FROM api_tokens WHERE prefix = ?1 AND revoked_at IS NULL", [prefix], |r| {
                r.get(0)
            })
            .optional()?;
        let Some(id) = found else {
            return Err(StoreError::NotFound(format!("active token with prefix '{prefix}'")));
        };
        tx.execute("UPDATE api_tokens SET revoked_at = ?2 WHERE id = ?1", params![id, now()])?;
        audit::append(&tx, &token_revoked(&tx, by, id)?)?;
        tx.commit()?;
        Ok(())
    }
}

/// The `token_revoked` event for token `id` (its prefix and owner, never the secret).
pub(super) fn token_revoked(tx: &rusqlite::Connection, by: &Actor, id: i64) -> Result<Event> {
    let (prefix, owner_id, owner): (String, i64, String) = tx.query_row(
        "SELECT t.prefix, u.id, u.name FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    Ok(Event::new(by, Action::TokenRevoked)
        .target(format!("token:{id} {prefix}"))
        .detail(serde_json::json!({ "user": user_target(owner_id, &owner) })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::temp_store;

    #[test]
    fn users_are_unique_and_named_sensibly() {
        let (_dir, store) = temp_store();
        let alice = store.create_user("alice", Role::Admin).unwrap();
        assert_eq!(store.find_user("alice").unwrap(), alice);
        assert!(matches!(store.create_user("alice", Role::User), Err(StoreError::Conflict(_))));
        assert!(matches!(store.create_user("bad name", Role::User), Err(StoreError::Conflict(_))));
        assert!(matches!(store.find_user("bob"), Err(StoreError::NotFound(_))));
    }

    #[test]
    fn revoked_tokens_stop_working() {
        let (_dir, store) = temp_store();
        let user = store.create_user("alice", Role::User).unwrap();
        store.insert_token(user.id, "laptop", "hth_abcd", b"hash-1").unwrap();
        let found = store.user_for_token_hash(b"hash-1").unwrap().unwrap().user;
        assert_eq!(found.name, "alice");
        assert!(store.user_for_token_hash(b"hash-2").unwrap().is_none());
        store.revoke_token("hth_abcd", &Actor::cli()).unwrap();
        assert!(store.user_for_token_hash(b"hash-1").unwrap().is_none());
        assert!(store.revoke_token("hth_abcd", &Actor::cli()).is_err(), "second revoke reports not found");
        let log = store.audit_rows(&crate::store::AuditFilter { limit: 10, ..Default::default() }).unwrap();
        let actions: Vec<_> = log.iter().map(|r| (r.action.as_str(), r.actor.as_str())).collect();
        assert_eq!(
            actions,
            [("token_revoked", "cli"), ("token_created", "system"), ("user_created", "system")]
        );
        assert_eq!(log[0].target, "token:1 hth_abcd");
        assert!(store.list_tokens(Some("alice")).unwrap()[0].revoked);
    }
}
