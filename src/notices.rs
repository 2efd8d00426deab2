//! Notices: what reaches a user outside a reply, such as a reminder that fired. The
//! domain publishes; each live connection of the user (the web UI's event stream, a voice
//! WebSocket, a chat channel) subscribes and tells the user its own way.

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

/// One thing to tell a user.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notice {
    #[serde(skip)]
    pub user_id: i64,
    /// What to say, as a sentence.
    pub text: String,
    pub reminder: Reminder,
}

/// Something a workflow tells its owner (a `notify` step). Not kept for later: the run's
/// record and the owner's history keep it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Told {
    #[serde(skip)]
    pub user_id: i64,
    pub text: String,
    pub workflow: String,
    pub run_id: i64,
}

/// How many notices a slow subscriber may fall behind before it misses some (it then
/// reads the undelivered ones from the store).
const BACKLOG: usize = 64;

/// The hub notices go through. Clone it freely.
#[derive(Clone)]
pub struct Notices {
    tx: broadcast::Sender<Arc<Notice>>,
    told: broadcast::Sender<Arc<Told>>,
}

impl Default for Notices {
    fn default() -> Self {
        Notices { tx: broadcast::channel(BACKLOG).0, told: broadcast::channel(BACKLOG).0 }
    }
}

impl Notices {
    /// Tells every subscriber; `false` when nobody listens.
    pub fn publish(&self, notice: Notice) -> bool {
        self.tx.send(Arc::new(notice)).is_ok()
    }

    /// Every notice from now on (each subscriber keeps its user's).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Notice>> {
        self.tx.subscribe()
    }

    /// Tells what a workflow says; `false` when nobody listens.
    pub fn tell(&self, told: Told) -> bool {
        self.told.send(Arc::new(told)).is_ok()
    }

    /// What workflows say from now on.
    pub fn listen(&self) -> broadcast::Receiver<Arc<Told>> {
        self.told.subscribe()
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
}
