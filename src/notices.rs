//! Notices: what reaches a user outside a reply: a reminder that rang, what a
//! workflow's `notify` step says, or an announcement for everyone (an MQTT `announce`
//! command). One type with what it is [`About`]; the domain
//! publishes, and each channel subscribes and tells its user the notices meant for it
//! ([`Notice::is_for`]): the web UI's event stream and voice WebSocket (`Target::Web`),
//! Telegram (`channels/telegram/reminders.rs`) and the voice satellites through Home
//! Assistant (`channels/satellite.rs`).

use crate::store::Reminder;
use serde::Serialize;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Where a turn came from, and so where what it set up (a timer) is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// `/api/chat`: the web UI's chat, or an API client.
    Chat,
    /// The voice WebSocket (`/api/ws`), the web UI's voice mode among others.
    Voice,
    /// A voice satellite over Wyoming.
    Satellite,
    /// `hearth chat` at the box.
    Console,
    /// A Telegram chat (its id).
    Telegram(i64),
}

impl Channel {
    /// The stored form: `chat`, `voice`, `satellite`, `console`, `telegram:<chat id>`.
    pub fn as_stored(&self) -> String {
        match self {
            Channel::Chat => "chat".into(),
            Channel::Voice => "voice".into(),
            Channel::Satellite => "satellite".into(),
            Channel::Console => "console".into(),
            Channel::Telegram(chat) => format!("telegram:{chat}"),
        }
    }

    /// The stored form read back; an unknown one (from a newer version) is `Chat`.
    pub fn parse(stored: &str) -> Channel {
        match stored {
            "voice" => Channel::Voice,
            "satellite" => Channel::Satellite,
            "console" => Channel::Console,
            other => match other.strip_prefix("telegram:").and_then(|c| c.parse().ok()) {
                Some(chat) => Channel::Telegram(chat),
                None => Channel::Chat,
            },
        }
    }
}

/// Where a notice may be told, besides the live connection it came from: what a
/// workflow's `notify` step names (`to:`); a reminder is told where it was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// The web UI (its event stream `/api/events`).
    Web,
    /// The owner's allowlisted Telegram chat(s).
    Telegram,
    /// The voice satellites, announced through Home Assistant (`voice.wyoming_user`'s).
    Satellite,
}

impl Target {
    pub const ALL: [Target; 3] = [Target::Web, Target::Telegram, Target::Satellite];

    pub fn parse(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.as_str() == name)
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Target::Web => "web",
            Target::Telegram => "telegram",
            Target::Satellite => "satellite",
        }
    }
}

/// What a notice is about.
#[derive(Debug, Clone, PartialEq)]
pub enum About {
    /// A timer or reminder that rang; kept until a channel told it (`delivered_at`).
    Reminder(Reminder),
    /// A workflow's `notify` step; not kept for later (the run's record and the owner's
    /// history keep it).
    Workflow { workflow: String, run_id: i64, to: Vec<Target> },
    /// Said to everyone listening (every user's web UI and voice connections, and the
    /// satellites); not kept for later. `source` says who asked (`mqtt`).
    Announcement { source: &'static str },
}

/// One thing to tell a user.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub user_id: i64,
    /// What to say, as a sentence.
    pub text: String,
    pub about: About,
}

impl Notice {
    /// A reminder that rang.
    pub fn reminder(reminder: Reminder, text: String) -> Notice {
        Notice { user_id: reminder.user_id, text, about: About::Reminder(reminder) }
    }

    /// An announcement for everyone (`user_id` 0: no one in particular).
    pub fn announcement(text: String, source: &'static str) -> Notice {
        Notice { user_id: 0, text, about: About::Announcement { source } }
    }

    /// The reminder it tells, if it is one.
    pub fn rung(&self) -> Option<&Reminder> {
        match &self.about {
            About::Reminder(r) => Some(r),
            About::Workflow { .. } | About::Announcement { .. } => None,
        }
    }

    /// Whether `user_id` is told it: their own notices, and announcements.
    pub fn concerns(&self, user_id: i64) -> bool {
        self.user_id == user_id || self.is_announcement()
    }

    /// Whether it is an announcement for everyone.
    pub fn is_announcement(&self) -> bool {
        matches!(self.about, About::Announcement { .. })
    }

    /// Whether a voice connection speaks it: reminders and announcements (what workflows
    /// tell shows in the web UI's events).
    pub fn spoken(&self) -> bool {
        matches!(self.about, About::Reminder(_) | About::Announcement { .. })
    }

    /// Whether it is for `target`: a reminder for the web UI always and for the channel it
    /// was set on (a Telegram chat, a satellite); a workflow's where its step says.
    pub fn is_for(&self, target: Target) -> bool {
        match &self.about {
            About::Reminder(r) => match (target, Channel::parse(&r.channel)) {
                (Target::Web, _) => true,
                (Target::Telegram, Channel::Telegram(_)) => true,
                (Target::Satellite, Channel::Satellite) => true,
                _ => false,
            },
            About::Workflow { to, .. } => to.contains(&target),
            About::Announcement { .. } => matches!(target, Target::Web | Target::Satellite),
        }
    }

    /// The web UI's event: its name and data (`reminder`: `{"text", "reminder"}`,
    /// `workflow`: `{"text", "workflow", "run_id"}`, `announcement`: `{"text", "source"}`).
    pub fn event(&self) -> (&'static str, serde_json::Value) {
        match &self.about {
            About::Reminder(r) => ("reminder", serde_json::json!({ "text": self.text, "reminder": r })),
            About::Workflow { workflow, run_id, .. } => {
                ("workflow", serde_json::json!({ "text": self.text, "workflow": workflow, "run_id": run_id }))
            }
            About::Announcement { source } => {
                ("announcement", serde_json::json!({ "text": self.text, "source": source }))
            }
        }
    }
}

/// How many notices a slow subscriber may fall behind before it misses some (it then
/// reads the undelivered reminders from the store).
const BACKLOG: usize = 64;

/// The hub notices go through: reminders that rang and what workflows tell. Clone it
/// freely.
#[derive(Clone)]
pub struct Notices {
    tx: broadcast::Sender<Arc<Notice>>,
}

impl Default for Notices {
    fn default() -> Self {
        Notices { tx: broadcast::channel(BACKLOG).0 }
    }
}

impl Notices {
    /// Tells every subscriber; `false` when nobody listens.
    pub fn publish(&self, notice: Notice) -> bool {
        self.tx.send(Arc::new(notice)).is_ok()
    }

    /// Every notice from now on (each subscriber keeps its user's, for its target).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Notice>> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_read_back_as_stored() {
        for c in
            [Channel::Chat, Channel::Voice, Channel::Satellite, Channel::Console, Channel::Telegram(-1001)]
        {
            assert_eq!(Channel::parse(&c.as_stored()), c);
        }
        assert_eq!(Channel::parse("pigeon"), Channel::Chat);
        assert_eq!(Channel::parse("telegram:x"), Channel::Chat);
    }

    fn rung(channel: &str) -> Notice {
        let reminder = Reminder {
            id: 7,
            user_id: 1,
            conversation_id: None,
            channel: channel.into(),
            kind: "timer".into(),
            text: String::new(),
            due_at: 0,
            created_at: 0,
            state: "fired".into(),
            fired_at: Some(0),
            delivered_at: None,
        };
        Notice::reminder(reminder, "Your timer is done.".into())
    }

    #[test]
    fn a_reminder_is_for_the_web_and_where_it_was_set_a_workflow_notice_where_it_says() {
        let targets = |n: &Notice| Target::ALL.into_iter().filter(|t| n.is_for(*t)).collect::<Vec<_>>();
        assert_eq!(targets(&rung("chat")), [Target::Web]);
        assert_eq!(targets(&rung("satellite")), [Target::Web, Target::Satellite]);
        assert_eq!(targets(&rung("telegram:42")), [Target::Web, Target::Telegram]);
        let told = Notice {
            user_id: 1,
            text: "Backup done".into(),
            about: About::Workflow { workflow: "backup".into(), run_id: 3, to: vec![Target::Telegram] },
        };
        assert_eq!(targets(&told), [Target::Telegram]);
        assert_eq!(
            told.event(),
            ("workflow", serde_json::json!({"text": "Backup done", "workflow": "backup", "run_id": 3}))
        );
        let (name, data) = rung("chat").event();
        assert_eq!((name, data["reminder"]["id"].as_i64()), ("reminder", Some(7)));
        for t in Target::ALL {
            assert_eq!(Target::parse(t.as_str()), Some(t));
        }
    }

    #[test]
    fn an_announcement_is_for_everyone_on_the_web_voice_and_satellites_not_telegram() {
        let said = Notice::announcement("Dinner is ready".into(), "mqtt");
        let targets: Vec<Target> = Target::ALL.into_iter().filter(|t| said.is_for(*t)).collect();
        assert_eq!(targets, [Target::Web, Target::Satellite]);
        assert!(said.concerns(1) && said.concerns(42) && said.spoken() && said.rung().is_none());
        assert!(!rung("chat").concerns(2) && rung("chat").concerns(1) && rung("chat").spoken());
        assert_eq!(
            said.event(),
            ("announcement", serde_json::json!({"text": "Dinner is ready", "source": "mqtt"}))
        );
    }
}
