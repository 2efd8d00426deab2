//! Timers and reminders as skills: `set_timer`, `set_reminder`, `list_reminders` and
//! `cancel_reminder`, over the reminders service (`crate::reminders`). What they answer is
//! a sentence the model can repeat ("Timer set for 5 minutes; it rings at 16:45 today.").

use super::{string_arg, Context, Output, Skill, SkillError};
use crate::reminders::{when, Kind, Origin, ReminderError, Reminders};
use crate::store::Reminder;
use chrono::{DateTime, Local};
use futures_util::future::BoxFuture;
use serde_json::{json, Value};

pub(super) const SET_TIMER: &str = "set_timer";
pub(super) const SET_REMINDER: &str = "set_reminder";
pub(super) const LIST: &str = "list_reminders";
pub(super) const CANCEL: &str = "cancel_reminder";
pub(super) const NAMES: [&str; 4] = [SET_TIMER, SET_REMINDER, LIST, CANCEL];

/// The skill `name`, over `reminders`.
pub(super) fn skill(name: &str, reminders: Reminders) -> Option<std::sync::Arc<dyn Skill>> {
    let which = match name {
        SET_TIMER => Which::SetTimer,
        SET_REMINDER => Which::SetReminder,
        LIST => Which::List,
        CANCEL => Which::Cancel,
        _ => return None,
    };
    Some(std::sync::Arc::new(Timers { which, reminders }))
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Which {
    SetTimer,
    SetReminder,
    List,
    Cancel,
}

pub struct Timers {
    which: Which,
    reminders: Reminders,
}

fn failed(e: ReminderError) -> SkillError {
    match e {
        ReminderError::Invalid(why) => SkillError::InvalidArguments(why),
        ReminderError::Store(e) => SkillError::Failed(e.to_string()),
    }
}

fn origin(ctx: &Context) -> Result<Origin, SkillError> {
    Ok(Origin {
        user_id: ctx.user_id.ok_or_else(|| SkillError::Failed("timers need a user".into()))?,
        channel: ctx.channel,
        conversation_id: ctx.conversation_id.as_deref().map(str::to_string),
    })
}

fn due(reminder: &Reminder) -> DateTime<Local> {
    DateTime::from_timestamp(reminder.due_at, 0).unwrap_or_default().with_timezone(&Local)
}

fn describe(reminder: &Reminder, now: DateTime<Local>) -> String {
    let at = when::say_at(due(reminder), now);
    match (reminder.kind.as_str(), reminder.text.is_empty()) {
        ("timer", true) => format!("timer that rings at {at}"),
        ("timer", false) => format!("timer for {} that rings at {at}", reminder.text),
        _ => format!("reminder at {at}: {}", reminder.text),
    }
}

fn list(pending: &[Reminder], now: DateTime<Local>) -> String {
    pending.iter().map(|r| describe(r, now)).collect::<Vec<_>>().join("; ")
}

/// Which pending reminder `what` means: the soonest whose text shares a word with it (or
/// a timer, for "timer"); the soonest of all when `what` is empty or says only "my", "the".
fn choose(pending: &[Reminder], what: &str) -> Option<i64> {
    const VAGUE: [&str; 8] = ["", "my", "the", "a", "next", "it", "that", "one"];
    let words: Vec<String> = what
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !VAGUE.contains(w))
        .map(str::to_string)
        .collect();
    if words.is_empty() {
        return pending.first().map(|r| r.id);
    }
    pending
        .iter()
        .find(|r| {
            let text = r.text.to_lowercase();
            words.iter().any(|w| text.split(|c: char| !c.is_alphanumeric()).any(|t| t == w) || *w == r.kind)
        })
        .map(|r| r.id)
}

impl Skill for Timers {
    fn name(&self) -> &'static str {
        match self.which {
            Which::SetTimer => SET_TIMER,
            Which::SetReminder => SET_REMINDER,
            Which::List => LIST,
            Which::Cancel => CANCEL,
        }
    }

    fn description(&self) -> &'static str {
        match self.which {
            Which::SetTimer => "Start a countdown timer that rings after some minutes or seconds.",
            Which::SetReminder => {
                "Remind the user of something at a time of day, or after some minutes. Use it when \
                 they say 'remind me'."
            }
            Which::List => "List the user's timers and reminders that have not rung yet.",
            Which::Cancel => "Cancel a timer or reminder that has not rung yet.",
        }
    }

    fn parameters(&self) -> Value {
        match self.which {
            // One phrase in the user's own words: the default 0.5B model, given minutes and
            // seconds as numbers, set "10 seconds" as `{"minutes": 10, "seconds": 0}`.
            Which::SetTimer => json!({
                "type": "object",
                "properties": {
                    "duration": { "type": "string", "description": "How long, in the user's words: 10 seconds, 5 minutes" },
                    "label": { "type": "string", "description": "What the timer is for, only if the user said it" }
                },
                "required": ["duration"]
            }),
            Which::SetReminder => json!({
                "type": "object",
                "properties": {
                    "text": { "type": "string", "description": "What to remind the user of" },
                    "when": { "type": "string", "description": "In the user's words: 18:30, in 10 minutes, tomorrow at 9:00" }
                },
                "required": ["text", "when"]
            }),
            Which::List => crate::engine::ToolSpec::no_parameters(),
            Which::Cancel => json!({
                "type": "object",
                "properties": {
                    "what": { "type": "string", "description": "Which one: a word of its text, or 'timer'; empty for the next one" }
                }
            }),
        }
    }

    fn available(&self, ctx: &Context) -> bool {
        ctx.user_id.is_some()
    }

    fn execute(&self, arguments: Value, ctx: Context) -> BoxFuture<'static, Result<Output, SkillError>> {
        let (which, reminders) = (self.which, self.reminders.clone());
        Box::pin(async move {
            let now = Local::now();
            let said = match which {
                Which::SetTimer => {
                    let duration = match arguments.get("duration") {
                        Some(Value::Number(n)) => n.to_string(),
                        _ => string_arg(&arguments, "duration")?.to_string(),
                    };
                    let wait = when::parse_wait(duration.trim_start_matches("in ")).ok_or_else(|| {
                        SkillError::InvalidArguments(format!(
                            "'{duration}' is not a length of time, like 5 minutes"
                        ))
                    })?;
                    let at = when::after(wait, now).map_err(SkillError::InvalidArguments)?;
                    let label = arguments.get("label").and_then(Value::as_str).unwrap_or("").trim();
                    // A label that only repeats the length ("5 seconds", "10 seconds timer")
                    // says nothing.
                    let bare: Vec<&str> =
                        label.split_whitespace().filter(|w| !w.eq_ignore_ascii_case("timer")).collect();
                    let label = match bare.is_empty() || when::parse_wait(&bare.join(" ")).is_some() {
                        true => String::new(),
                        false => label.to_string(),
                    };
                    let set =
                        reminders.set(origin(&ctx)?, Kind::Timer { label }, at).await.map_err(failed)?;
                    let length = when::say_duration(set.due_at - set.created_at);
                    format!("Timer set for {length}; it rings at {}.", when::say_at(due(&set), now))
                }
                Which::SetReminder => {
                    let text = string_arg(&arguments, "text")?.to_string();
                    let at = when::parse_when(string_arg(&arguments, "when")?, now)
                        .map_err(SkillError::InvalidArguments)?;
                    let set =
                        reminders.set(origin(&ctx)?, Kind::Reminder { text }, at).await.map_err(failed)?;
                    format!("Reminder set for {}: {}.", when::say_at(due(&set), now), set.text)
                }
                Which::List => {
                    let pending =
                        reminders.list(origin(&ctx)?.user_id, true).await.map_err(|e| failed(e.into()))?;
                    match pending.is_empty() {
                        true => "There are no timers or reminders.".to_string(),
                        false => format!("{} pending: {}.", pending.len(), list(&pending, now)),
                    }
                }
                Which::Cancel => {
                    let user_id = origin(&ctx)?.user_id;
                    let pending = reminders.list(user_id, true).await.map_err(|e| failed(e.into()))?;
                    let what = arguments.get("what").and_then(Value::as_str).unwrap_or("");
                    match choose(&pending, what) {
                        None if pending.is_empty() => "There is no timer or reminder to cancel.".to_string(),
                        None => format!("None of them matches '{what}'; pending: {}.", list(&pending, now)),
                        Some(id) => {
                            let cancelled =
                                reminders.cancel(user_id, id).await.map_err(|e| failed(e.into()))?;
                            format!("Cancelled the {}.", describe(&cancelled, now))
                        }
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

    fn pending(id: i64, kind: &str, text: &str) -> Reminder {
        Reminder {
            id,
            user_id: 1,
            conversation_id: None,
            channel: "chat".into(),
            kind: kind.into(),
            text: text.into(),
            due_at: 1_800_000_000 + id,
            created_at: 1_800_000_000,
            state: "pending".into(),
            fired_at: None,
            delivered_at: None,
        }
    }

    #[test]
    fn cancel_picks_the_one_meant_or_the_next_one() {
        let list = [pending(1, "reminder", "call mum"), pending(2, "timer", "eggs"), pending(3, "timer", "")];
        assert_eq!(choose(&list, ""), Some(1), "nothing said: the next to ring");
        assert_eq!(choose(&list, "my"), Some(1));
        assert_eq!(choose(&list, "the eggs"), Some(2));
        assert_eq!(choose(&list, "timer"), Some(2), "the next timer");
        assert_eq!(choose(&list, "Mum"), Some(1));
        assert_eq!(choose(&list, "dentist"), None);
        assert_eq!(choose(&[], ""), None);
    }
}
