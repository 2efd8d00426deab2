//! The audit log: who did what to whom, from where, and how it ended (issue 25).
//!
//! Rows are appended to the `audit_log` table and never changed: the code has no UPDATE
//! or DELETE of it, and SQLite triggers abort any that is tried. Each row carries the
//! hash of the row before it (`prev_hash`) and its own (`hash`, SHA-256 over a canonical
//! encoding of its fields and `prev_hash`, [`chain`]), so an edited, deleted or
//! reordered row breaks the chain and `hearth audit verify` names it.
//!
//! Changes to accounts (users, passwords, tokens, sessions, skills) are recorded by the
//! store in the same transaction as the change ([`Actor`] is passed in), so a change is
//! never unrecorded. Events that change nothing (a failed login, an administrator
//! reading another user's data, a refused address) go through [`record`]. Every append
//! reads the chain's head and inserts in one writer transaction, so concurrent appends
//! never fork the chain (and `prev_hash` is UNIQUE, so a fork could not be stored).
//!
//! Never put a password, token, session or other secret in a row. A failed login names
//! the account only when the typed name is a user's (a password typed into the name
//! field must not land here), as the log does.

pub mod chain;
pub mod quiet;

use crate::store::{Store, StoreError};
use serde::Serialize;
use serde_json::json;

/// What happened: a stable snake_case vocabulary clients and filters may rely on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Action {
    Login,
    LoginFailed,
    Logout,
    Onboarded,
    UserCreated,
    UserDisabled,
    UserEnabled,
    UserDeleted,
    PasswordReset,
    PasswordChanged,
    TokenCreated,
    TokenRevoked,
    /// Reserved: no route changes a role yet.
    RoleChanged,
    SkillsChanged,
    ConfigChanged,
    WorkflowsReloaded,
    AdminRead,
    AdminAddressRefused,
    /// For the backup, export and retention modules (their own transactions call
    /// [`record`]).
    Export,
    Import,
    Backup,
    Restore,
    RetentionDeleted,
}

impl Action {
    pub const ALL: &'static [Action] = &[
        Action::Login,
        Action::LoginFailed,
        Action::Logout,
        Action::Onboarded,
        Action::UserCreated,
        Action::UserDisabled,
        Action::UserEnabled,
        Action::UserDeleted,
        Action::PasswordReset,
        Action::PasswordChanged,
        Action::TokenCreated,
        Action::TokenRevoked,
        Action::RoleChanged,
        Action::SkillsChanged,
        Action::ConfigChanged,
        Action::WorkflowsReloaded,
        Action::AdminRead,
        Action::AdminAddressRefused,
        Action::Export,
        Action::Import,
        Action::Backup,
        Action::Restore,
        Action::RetentionDeleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Login => "login",
            Action::LoginFailed => "login_failed",
            Action::Logout => "logout",
            Action::Onboarded => "onboarded",
            Action::UserCreated => "user_created",
            Action::UserDisabled => "user_disabled",
            Action::UserEnabled => "user_enabled",
            Action::UserDeleted => "user_deleted",
            Action::PasswordReset => "password_reset",
            Action::PasswordChanged => "password_changed",
            Action::TokenCreated => "token_created",
            Action::TokenRevoked => "token_revoked",
            Action::RoleChanged => "role_changed",
            Action::SkillsChanged => "skills_changed",
            Action::ConfigChanged => "config_changed",
            Action::WorkflowsReloaded => "workflows_reloaded",
            Action::AdminRead => "admin_read",
            Action::AdminAddressRefused => "admin_address_refused",
            Action::Export => "export",
            Action::Import => "import",
            Action::Backup => "backup",
            Action::Restore => "restore",
            Action::RetentionDeleted => "retention_deleted",
        }
    }

    /// The action with this name, for filters.
    pub fn parse(name: &str) -> Option<Action> {
        Action::ALL.iter().copied().find(|a| a.as_str() == name)
    }
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Done.
    Success,
    /// Tried and failed (a wrong password).
    Failure,
    /// Not allowed to try (locked out, an address not on the allowlist).
    Refused,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Success, Outcome::Failure, Outcome::Refused];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Refused => "refused",
        }
    }

    pub fn parse(name: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == name)
    }
}

/// Who acted, and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The user's id; `None` for the system, the command line, or nobody logged in.
    pub user_id: Option<i64>,
    /// The user's name, or `system`, `cli`, `anonymous`.
    pub name: String,
    /// The client's address as the socket saw it (never a forwarding header); `None`
    /// off the network.
    pub address: Option<String>,
}

impl Actor {
    /// Hearth itself (start-up, timers, tests).
    pub fn system() -> Actor {
        Actor { user_id: None, name: "system".into(), address: None }
    }

    /// Someone on the box with the command line (`hearth users ...`): whoever can open
    /// the database file.
    pub fn cli() -> Actor {
        Actor { user_id: None, name: "cli".into(), address: None }
    }

    /// A user, from an address.
    pub fn user(user_id: i64, name: &str, address: Option<String>) -> Actor {
        Actor { user_id: Some(user_id), name: name.into(), address }
    }

    /// Nobody logged in (a failed login), from an address.
    pub fn anonymous(address: Option<String>) -> Actor {
        Actor { user_id: None, name: "anonymous".into(), address }
    }
}

/// One thing to record.
#[derive(Debug, Clone)]
pub struct Event {
    pub actor: Actor,
    pub action: Action,
    /// What it was done to, e.g. `user:7 bob`, `token:12 hth_1a2b3c4d`; empty: nothing.
    pub target: String,
    pub outcome: Outcome,
    /// A small JSON object of facts; never a secret.
    pub detail: serde_json::Value,
}

impl Event {
    /// A successful action with no target or detail yet.
    pub fn new(actor: &Actor, action: Action) -> Event {
        Event {
            actor: actor.clone(),
            action,
            target: String::new(),
            outcome: Outcome::Success,
            detail: serde_json::Value::Object(Default::default()),
        }
    }

    pub fn target(mut self, target: impl Into<String>) -> Event {
        self.target = target.into();
        self
    }

    pub fn outcome(mut self, outcome: Outcome) -> Event {
        self.outcome = outcome;
        self
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Event {
        self.detail = detail;
        self
    }
}

/// `user:<id> <name>`: the target form for accounts.
pub fn user_target(id: i64, name: &str) -> String {
    format!("user:{id} {name}")
}

/// One row as the API gives it: `detail` as JSON, the chain's hashes for those who
/// check them elsewhere.
pub fn entry(row: &chain::Row) -> serde_json::Value {
    json!({
        "id": row.id,
        "at": row.at,
        "actor": row.actor,
        "actor_id": row.actor_id,
        "address": row.address,
        "action": row.action,
        "target": row.target,
        "outcome": row.outcome,
        "detail": serde_json::from_str::<serde_json::Value>(&row.detail).unwrap_or(json!(row.detail)),
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    })
}

/// Appends one event in a transaction of its own, off the async runtime; returns the
/// row's id. For events that change nothing else: account changes are recorded by the
/// store in their own transaction.
pub async fn record(store: &Store, event: Event) -> Result<i64, StoreError> {
    store.run(move |s| s.audit(&event)).await
}

/// [`record`], for callers that must go on when the log cannot be written (a failed
/// login is refused either way): the failure is logged.
pub async fn record_or_warn(store: &Store, event: Event) {
    let action = event.action.as_str();
    if let Err(e) = record(store, event).await {
        tracing::warn!(error = %e, action, "could not write the audit log");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_snake_case_and_parse_back() {
        let mut seen = std::collections::HashSet::new();
        for a in Action::ALL {
            let name = a.as_str();
            assert!(name.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{name}");
            assert!(seen.insert(name), "{name} twice");
            assert_eq!(Action::parse(name), Some(*a));
            assert_eq!(serde_json::to_value(a).unwrap(), name);
        }
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
        }
        assert_eq!(Action::parse("nope"), None);
    }
}
