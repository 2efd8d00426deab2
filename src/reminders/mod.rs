//! Timers and reminders: set (by a skill, the API or the web UI), kept in SQLite with a job
//! that waits for their time, fired by the job runner's timer worker (after a restart
//! too), written into the conversation they were set in, and told to the user through
//! [`Notices`] on the channels they are connected by.

pub mod when;

use crate::jobs::Wake;
use crate::notices::{Channel, Notice, Notices};
use crate::store::{NewReminder, Reminder, Store, StoreError};
use chrono::{DateTime, Local};

/// What to set.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// Rings after a wait; the label may be empty.
    Timer { label: String },
    /// Says `text` at its time.
    Reminder { text: String },
}

/// Who sets it, from where, and in which conversation it is written when it fires.
#[derive(Debug, Clone)]
pub struct Origin {
    pub user_id: i64,
    pub channel: Channel,
    pub conversation_id: Option<String>,
}

/// The service. Clone it freely.
#[derive(Clone)]
pub struct Reminders {
    store: Store,
    notices: Notices,
    /// Wakes the timer worker when a reminder may be due sooner than it waits.
    wake: Wake,
}

#[derive(Debug, thiserror::Error)]
pub enum ReminderError {
    /// What was asked cannot be set; the text says why.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Most pending reminders one user may have.
pub const MAX_PENDING: usize = 100;
const TEXT_CHARS: usize = 500;

impl Reminders {
    pub fn new(store: Store, notices: Notices, wake: Wake) -> Reminders {
        Reminders { store, notices, wake }
    }

    pub fn notices(&self) -> &Notices {
        &self.notices
    }

    /// Sets a timer or reminder due at `due`.
    pub async fn set(
        &self,
        origin: Origin,
        kind: Kind,
        due: DateTime<Local>,
    ) -> Result<Reminder, ReminderError> {
        // The instant `due` was counted from (the caller's "now", a moment ago).
        let asked = Local::now().timestamp();
        let (kind, text) = match kind {
            Kind::Timer { label } => ("timer", label),
            Kind::Reminder { text } => ("reminder", text),
        };
        let text = text.trim().to_string();
        if kind == "reminder" && text.is_empty() {
            return Err(ReminderError::Invalid("a reminder needs a text: what to remind of".into()));
        }
        if text.chars().count() > TEXT_CHARS {
            return Err(ReminderError::Invalid(format!("the text is longer than {TEXT_CHARS} characters")));
        }
        let new = NewReminder {
            user_id: origin.user_id,
            conversation_id: origin.conversation_id,
            channel: origin.channel.as_stored(),
            kind,
            text,
            due_at: due.timestamp(),
            created_at: asked,
        };
        let user_id = new.user_id;
        let pending = self.store.run(move |store| store.reminders(user_id, true, MAX_PENDING as u32)).await?;
        if pending.len() >= MAX_PENDING {
            return Err(ReminderError::Invalid(format!(
                "there are already {MAX_PENDING} pending timers and reminders; cancel some first"
            )));
        }
        let reminder = self.store.run(move |store| store.add_reminder(&new)).await?;
        self.wake.notify();
        tracing::info!(reminder = reminder.id, kind = %reminder.kind, due_at = reminder.due_at, "reminder set");
        Ok(reminder)
    }

    /// The user's pending reminders, soonest first; or all of them, newest first.
    pub async fn list(&self, user_id: i64, pending_only: bool) -> Result<Vec<Reminder>, StoreError> {
        self.store.run(move |store| store.reminders(user_id, pending_only, 200)).await
    }

    pub async fn cancel(&self, user_id: i64, id: i64) -> Result<Reminder, StoreError> {
        let reminder = self.store.run(move |store| store.cancel_reminder(user_id, id)).await?;
        tracing::info!(reminder = id, "reminder cancelled");
        Ok(reminder)
    }

    /// Fires reminder `id` (from the timer worker's thread): writes it into its conversation
    /// and tells the user's live channels. A reminder cancelled meanwhile does nothing.
    pub fn fire(&self, id: i64) -> Result<(), String> {
        let fired = self.store.fire_reminder(id, |r| said(r, Local::now())).map_err(|e| e.to_string())?;
        let Some(reminder) = fired else { return Ok(()) };
        tracing::info!(reminder = id, late_secs = crate::store::now() - reminder.due_at, "reminder fired");
        if reminder.delivered_at.is_none() {
            let text = said(&reminder, Local::now());
            self.notices.publish(Notice::reminder(reminder, text));
        }
        Ok(())
    }

    /// The notices a user missed while no channel was connected, to tell on connecting.
    pub async fn missed(&self, user_id: i64) -> Vec<Notice> {
        notices(self.store.run(move |store| store.undelivered_reminders(user_id)).await)
    }

    /// Reminders set on a channel (its stored form starts with `channel`: `telegram:`,
    /// `satellite`) that rang and were told nowhere yet, every user's.
    pub async fn missed_on(&self, channel: &'static str) -> Vec<Notice> {
        notices(self.store.run(move |store| store.undelivered_reminders_on(channel)).await)
    }

    /// Records that a channel told the user.
    pub async fn delivered(&self, id: i64) {
        if let Err(e) = self.store.run(move |store| store.mark_reminder_delivered(id)).await {
            tracing::warn!(reminder = id, error = %e, "cannot record a reminder as told");
        }
    }
}

/// Fired reminders read back as the notices that tell them; a read that failed is logged
/// and tells nothing (they stay undelivered, for the next try).
fn notices(read: Result<Vec<Reminder>, StoreError>) -> Vec<Notice> {
    match read {
        Ok(reminders) => reminders
            .into_iter()
            .map(|r| {
                let text = said(&r, Local::now());
                Notice::reminder(r, text)
            })
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the reminders no channel told");
            Vec::new()
        }
    }
}

/// What is said when it fires: "Reminder: take the bread out." / "Your timer for the eggs
/// (5 minutes) is done." A reminder told late (the box was off) says when it was due.
pub fn said(reminder: &Reminder, now: DateTime<Local>) -> String {
    let mut text = match reminder.kind.as_str() {
        "timer" => {
            let wait = when::say_duration(reminder.due_at - reminder.created_at);
            match reminder.text.is_empty() {
                true => format!("Your timer for {wait} is done."),
                false => format!("Your timer for {} ({wait}) is done.", reminder.text.trim_end_matches('.')),
            }
        }
        _ => format!("Reminder: {}.", reminder.text.trim_end_matches('.')),
    };
    let late = now.timestamp() - reminder.due_at;
    if late > 120 {
        if let Some(due) = DateTime::from_timestamp(reminder.due_at, 0) {
            text.push_str(&format!(" (It was due at {}.)", when::say_at(due.with_timezone(&Local), now)));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reminder(kind: &str, text: &str, created_at: i64, due_at: i64) -> Reminder {
        Reminder {
            id: 1,
            user_id: 1,
            conversation_id: None,
            channel: "voice".into(),
            kind: kind.into(),
            text: text.into(),
            due_at,
            created_at,
            state: "fired".into(),
            fired_at: Some(due_at),
            delivered_at: None,
        }
    }

    #[test]
    fn what_is_said_names_the_timer_or_the_reminder() {
        let t = 1_800_000_000;
        let now = DateTime::from_timestamp(t + 300, 0).unwrap().with_timezone(&Local);
        assert_eq!(said(&reminder("timer", "", t, t + 300), now), "Your timer for 5 minutes is done.");
        assert_eq!(
            said(&reminder("timer", "the eggs", t, t + 300), now),
            "Your timer for the eggs (5 minutes) is done."
        );
        assert_eq!(
            said(&reminder("reminder", "take the bread out.", t, t + 300), now),
            "Reminder: take the bread out."
        );
        let later = DateTime::from_timestamp(t + 3600, 0).unwrap().with_timezone(&Local);
        assert!(said(&reminder("reminder", "call mum", t, t + 300), later).contains("(It was due at "));
    }
}
