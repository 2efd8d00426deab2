//! Timers and reminders: pending → fired (or cancelled). Each pending one has a job that
//! waits for its time (`jobs.run_at`), so a reminder set before a crash or restart fires
//! after it. Firing writes the reminder into the conversation it was set in, in the same
//! transaction, so it is in the history (and the search index) even when nobody was
//! connected to hear it; `delivered_at` records that a live channel told the user.

use super::{now, Result, Store, StoreError};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Reminder {
    pub id: i64,
    #[serde(skip)]
    pub user_id: i64,
    /// The conversation it was set in, where it is written when it fires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// Where it was set (`notices::Channel`'s text form), where it is told.
    pub channel: String,
    /// `timer` or `reminder`.
    pub kind: String,
    /// What to remind of, or the timer's label (may be empty for a timer).
    pub text: String,
    /// Unix seconds.
    pub due_at: i64,
    pub created_at: i64,
    /// `pending`, `fired` or `cancelled`.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fired_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<i64>,
}

/// A reminder to set.
#[derive(Debug, Clone)]
pub struct NewReminder {
    pub user_id: i64,
    pub conversation_id: Option<String>,
    pub channel: String,
    pub kind: &'static str,
    pub text: String,
    pub due_at: i64,
    /// When it was asked for, Unix seconds: a timer's length is `due_at - created_at`, so
    /// this is the instant `due_at` was counted from (taken later, a five-second timer that
    /// crossed a second while being stored was told as four).
    pub created_at: i64,
}

/// How long a reminder waits for its new conversation to be stored before it rings anyway.
pub const WAIT_FOR_CONVERSATION: i64 = 60;

const COLUMNS: &str =
    "id, user_id, conversation_id, channel, kind, text, due_at, created_at, state, fired_at, delivered_at";

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Reminder> {
    Ok(Reminder {
        id: row.get(0)?,
        user_id: row.get(1)?,
        conversation_id: row.get(2)?,
        channel: row.get(3)?,
        kind: row.get(4)?,
        text: row.get(5)?,
        due_at: row.get(6)?,
        created_at: row.get(7)?,
        state: row.get(8)?,
        fired_at: row.get(9)?,
        delivered_at: row.get(10)?,
    })
}

fn get(conn: &rusqlite::Connection, id: i64) -> Result<Reminder> {
    conn.query_row(&format!("SELECT {COLUMNS} FROM reminders WHERE id = ?1"), [id], from_row)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("reminder {id}")))
}

impl Store {
    /// Stores a reminder and the job that fires it, in one transaction.
    pub fn add_reminder(&self, new: &NewReminder) -> Result<Reminder> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        let t = now();
        tx.execute(
            "INSERT INTO reminders (user_id, conversation_id, channel, kind, text, due_at, created_at, state)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending')",
            params![
                new.user_id,
                new.conversation_id,
                new.channel,
                new.kind,
                new.text,
                new.due_at,
                new.created_at.min(t)
            ],
        )?;
        let id = tx.last_insert_rowid();
        super::jobs::insert_timed_job(&tx, new.user_id, "reminder", id, new.due_at)?;
        let reminder = get(&tx, id)?;
        tx.commit()?;
        Ok(reminder)
    }

    /// One of this user's reminders.
    pub fn reminder(&self, user_id: i64, id: i64) -> Result<Reminder> {
        mine(get(&self.reader(), id)?, user_id)
    }

    /// This user's reminders: the pending ones (soonest first), or all (newest first).
    pub fn reminders(&self, user_id: i64, pending_only: bool, limit: u32) -> Result<Vec<Reminder>> {
        let conn = self.reader();
        let sql = match pending_only {
            true => format!(
                "SELECT {COLUMNS} FROM reminders WHERE user_id = ?1 AND state = 'pending'
                 ORDER BY due_at, id LIMIT ?2"
            ),
            false => format!("SELECT {COLUMNS} FROM reminders WHERE user_id = ?1 ORDER BY id DESC LIMIT ?2"),
        };
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(params![user_id, limit], from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Cancels a pending reminder of this user (its job ends too). A reminder that already
    /// fired or was cancelled is a conflict.
    pub fn cancel_reminder(&self, user_id: i64, id: i64) -> Result<Reminder> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        let reminder = mine(get(&tx, id)?, user_id)?;
        if reminder.state != "pending" {
            return Err(StoreError::Conflict(format!("reminder {id} is already {}", reminder.state)));
        }
        let t = now();
        tx.execute("UPDATE reminders SET state = 'cancelled' WHERE id = ?1", [id])?;
        tx.execute(
            "UPDATE jobs SET state = 'done', updated_at = ?2 WHERE reminder_id = ?1 AND state IN ('queued', 'running')",
            params![id, t],
        )?;
        let reminder = get(&tx, id)?;
        tx.commit()?;
        Ok(reminder)
    }

    /// Fires a pending reminder: marks it fired and writes `said` into its conversation (when
    /// that conversation exists), in one transaction. `None` when it was cancelled meanwhile,
    /// or when it waits: its conversation is a new one whose first turn is not stored yet (a
    /// short timer set by voice rings before the answer that set it was spoken and stored),
    /// so its job is put back a second, for up to [`WAIT_FOR_CONVERSATION`] seconds. The
    /// reminder as it stands when it had already fired (a job run again after a crash:
    /// nothing is written twice).
    pub fn fire_reminder(&self, id: i64, said: impl Fn(&Reminder) -> String) -> Result<Option<Reminder>> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        let reminder = get(&tx, id)?;
        match reminder.state.as_str() {
            "cancelled" => return Ok(None),
            "fired" => return Ok(Some(reminder)),
            _ => {}
        }
        let t = now();
        if let Some(conversation) = &reminder.conversation_id {
            let stored: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM conversations WHERE id = ?1)",
                [conversation],
                |r| r.get(0),
            )?;
            if !stored && t - reminder.due_at < WAIT_FOR_CONVERSATION {
                tx.execute(
                    "UPDATE jobs SET state = 'queued', owner = NULL, run_at = ?2, attempts = max(attempts - 1, 0)
                     WHERE reminder_id = ?1 AND state = 'running'",
                    params![id, t + 1],
                )?;
                tx.commit()?;
                return Ok(None);
            }
        }
        tx.execute("UPDATE reminders SET state = 'fired', fired_at = ?2 WHERE id = ?1", params![id, t])?;
        if let Some(conversation) = &reminder.conversation_id {
            let written = tx.execute(
                "INSERT INTO messages (conversation_id, role, content, created_at)
                 SELECT id, 'assistant', ?3, ?4 FROM conversations WHERE id = ?1 AND user_id = ?2",
                params![conversation, reminder.user_id, said(&reminder), t],
            )?;
            if written > 0 {
                tx.execute(
                    "UPDATE conversations SET updated_at = ?2 WHERE id = ?1",
                    params![conversation, t],
                )?;
            }
        }
        let reminder = get(&tx, id)?;
        tx.commit()?;
        Ok(Some(reminder))
    }

    /// This user's fired reminders no live channel has told yet, oldest first.
    pub fn undelivered_reminders(&self, user_id: i64) -> Result<Vec<Reminder>> {
        let conn = self.reader();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM reminders WHERE user_id = ?1 AND state = 'fired' AND delivered_at IS NULL
             ORDER BY fired_at, id LIMIT 50"
        ))?;
        let rows = stmt.query_map([user_id], from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Fired reminders set on channels whose stored form starts with `prefix` (every
    /// user's) that no channel has told yet, oldest first.
    pub fn undelivered_reminders_on(&self, prefix: &str) -> Result<Vec<Reminder>> {
        let conn = self.reader();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM reminders
             WHERE state = 'fired' AND delivered_at IS NULL AND substr(channel, 1, length(?1)) = ?1
             ORDER BY fired_at, id LIMIT 50"
        ))?;
        let rows = stmt.query_map([prefix], from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records that a live channel told the user (the first time only).
    pub fn mark_reminder_delivered(&self, id: i64) -> Result<()> {
        self.writer().execute(
            "UPDATE reminders SET delivered_at = ?2 WHERE id = ?1 AND delivered_at IS NULL",
            params![id, now()],
        )?;
        Ok(())
    }
}

/// The reminder when it is this user's; another user's is not found.
fn mine(reminder: Reminder, user_id: i64) -> Result<Reminder> {
    match reminder.user_id == user_id {
        true => Ok(reminder),
        false => Err(StoreError::NotFound(format!("reminder {}", reminder.id))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{temp_store, NewTurn, Role};

    /// A turn starting a conversation (with this id, when given).
    fn turn(user_id: i64, new_id: Option<&str>, asked: &str, reply: &str) -> NewTurn {
        NewTurn {
            conversation_id: None,
            new_id: new_id.map(Into::into),
            user_id,
            user_message: asked.into(),
            reply: reply.into(),
            model: "m".into(),
            prompt_tokens: 1,
            completion_tokens: 1,
            finish_reason: "stop".into(),
            knowledge: None,
            citations: None,
            tool_calls: None,
        }
    }

    fn new(user_id: i64, conversation_id: Option<String>, due_at: i64) -> NewReminder {
        NewReminder {
            user_id,
            conversation_id,
            channel: "voice".into(),
            kind: "reminder",
            text: "take the bread out".into(),
            due_at,
            created_at: now(),
        }
    }

    #[test]
    fn a_reminder_waits_for_its_time_then_fires_once_into_its_conversation() {
        let (_dir, store) = temp_store();
        let alice = store.create_user("alice", Role::User).unwrap().id;
        let turn = turn(alice, None, "remind me", "I will.");
        let ids = store.append_turn(&turn).unwrap();
        let due = now() + 2;
        let reminder = store.add_reminder(&new(alice, Some(ids.conversation_id.clone()), due)).unwrap();
        assert_eq!((reminder.state.as_str(), reminder.due_at), ("pending", due));
        assert!(store.claim_timed_job("me", now()).unwrap().is_none(), "not before its time");
        let job = store.claim_timed_job("me", due).unwrap().expect("due: its job is claimed");
        assert_eq!(job.reminder_id, Some(reminder.id));

        let fired = store.fire_reminder(reminder.id, |r| format!("Reminder: {}", r.text)).unwrap().unwrap();
        assert_eq!(fired.state, "fired");
        let again = store.fire_reminder(reminder.id, |r| format!("Reminder: {}", r.text)).unwrap().unwrap();
        assert_eq!(again, fired, "fired again after a crash: the same, nothing written twice");
        let messages = store.messages(alice, &ids.conversation_id).unwrap();
        let said: Vec<&str> = messages.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(said, ["remind me", "I will.", "Reminder: take the bread out"]);
        assert_eq!(store.undelivered_reminders(alice).unwrap(), std::slice::from_ref(&fired));
        store.mark_reminder_delivered(fired.id).unwrap();
        assert!(store.undelivered_reminders(alice).unwrap().is_empty());
    }

    #[test]
    fn a_reminder_of_a_conversation_not_yet_stored_waits_for_it_then_comes_after_its_turn() {
        let (_dir, store) = temp_store();
        let alice = store.create_user("alice", Role::User).unwrap().id;
        let due = now();
        let reminder = store.add_reminder(&new(alice, Some("the-new-one".into()), due)).unwrap();
        store.claim_timed_job("me", due).unwrap().expect("due");
        assert_eq!(store.fire_reminder(reminder.id, |_| "Ring.".into()).unwrap(), None, "waits");
        assert_eq!(store.reminder(alice, reminder.id).unwrap().state, "pending");
        assert!(store.claim_timed_job("me", due).unwrap().is_none(), "put back a second");
        let turn = turn(alice, Some("the-new-one"), "set a timer", "Set.");
        store.append_turn(&turn).unwrap();
        store.claim_timed_job("me", due + 1).unwrap().expect("due again");
        assert_eq!(store.fire_reminder(reminder.id, |_| "Ring.".into()).unwrap().unwrap().state, "fired");
        let said: Vec<String> =
            store.messages(alice, "the-new-one").unwrap().into_iter().map(|m| m.content).collect();
        assert_eq!(said, ["set a timer", "Set.", "Ring."]);
    }

    #[test]
    fn a_cancelled_reminder_never_fires_and_others_cannot_touch_it() {
        let (_dir, store) = temp_store();
        let alice = store.create_user("alice", Role::User).unwrap().id;
        let bob = store.create_user("bob", Role::User).unwrap().id;
        let reminder = store.add_reminder(&new(alice, None, now() + 60)).unwrap();
        assert!(matches!(store.cancel_reminder(bob, reminder.id), Err(StoreError::NotFound(_))));
        assert!(matches!(store.reminder(bob, reminder.id), Err(StoreError::NotFound(_))));
        assert!(store.reminders(bob, false, 10).unwrap().is_empty());
        assert_eq!(store.cancel_reminder(alice, reminder.id).unwrap().state, "cancelled");
        assert!(matches!(store.cancel_reminder(alice, reminder.id), Err(StoreError::Conflict(_))));
        assert!(store.claim_timed_job("me", now() + 3600).unwrap().is_none(), "its job ended");
        assert_eq!(store.fire_reminder(reminder.id, |_| String::new()).unwrap(), None);
        assert!(store.reminders(alice, true, 10).unwrap().is_empty());
        assert_eq!(store.reminders(alice, false, 10).unwrap().len(), 1);
    }
}
