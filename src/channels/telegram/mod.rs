//! The Telegram channel: a bot that answers the chats in `telegram.chats`, each as its
//! Hearth user, in a conversation of its own that continues across messages and restarts.
//!
//! - **Polling** (`poll.rs`): `getUpdates` long polling on a thread of its own; the offset
//!   is kept in SQLite and moves past an update only once it was handled, so a restart
//!   neither loses nor repeats a message (`store::telegram` has the crash points).
//!   Failures back off (`backoff.rs`), `retry_after` is obeyed, `409 Conflict` (another
//!   poller, or a webhook) is said plainly.
//! - **Answering** (`answer.rs`): a text message, or a voice message transcribed (OGG/Opus
//!   → whisper), is a turn through [`crate::assistant`] with the user's skills; the reply
//!   goes back with `sendMessage` in pieces of at most 4096 characters (`split.rs`),
//!   "typing…" shows meanwhile, and a voice message is also answered with a voice message
//!   when `telegram.voice_replies` is on. Chats not on the list get nothing at all.
//! - **Sending** ([`TelegramSender`]): text to an allowlisted chat from elsewhere in Hearth.
//! - **The Bot API** (`api.rs`, ureq): blocking calls, off the async runtime; the token is
//!   in every URL, so URLs are never logged.

mod answer;
mod api;
mod backoff;
mod poll;
mod reminders;
mod split;

pub use api::{BotApi, BotError};
pub use split::{split, MAX_MESSAGE};

pub use reminders::tell_notices;

use crate::assistant::Assistant;
use crate::config::Settings;
use crate::store::Store;
use crate::voice::Voice;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The channel, ready to run.
pub struct Telegram {
    channel: Arc<Channel>,
}

/// What the poll loop and the answers share.
struct Channel {
    api: BotApi,
    /// Chat id → Hearth user name.
    allowed: Arc<BTreeMap<i64, String>>,
    voice_replies: bool,
    poll_timeout: Duration,
    max_audio_seconds: u32,
    assistant: Assistant,
    voice: Voice,
    store: Store,
}

impl Telegram {
    /// The channel as `[telegram]` describes it; `None` when it is off. An error (a token
    /// that cannot be read) names the setting and never holds the token.
    pub fn new(
        settings: &Settings,
        assistant: Assistant,
        voice: Voice,
        store: Store,
    ) -> Result<Option<Telegram>, String> {
        let t = &settings.telegram;
        if !t.enabled {
            return Ok(None);
        }
        let api = BotApi::new(t.api_base(), t.read_token()?);
        let channel = Channel {
            api,
            allowed: Arc::new(t.allowed_chats()),
            voice_replies: t.voice_replies,
            poll_timeout: Duration::from_secs(u64::from(t.poll_timeout_secs)),
            max_audio_seconds: settings.voice.max_audio_seconds,
            assistant,
            voice,
            store,
        };
        Ok(Some(Telegram { channel: Arc::new(channel) }))
    }

    /// A handle that sends text to the allowlisted chats.
    pub fn sender(&self) -> TelegramSender {
        TelegramSender { api: self.channel.api.clone(), allowed: self.channel.allowed.clone() }
    }

    /// Polls and answers until the runtime stops; logs and survives every failure. Spawn
    /// it on the server's runtime (its turns are local tasks, like the HTTP handlers').
    pub async fn run(self) {
        tracing::info!(
            chats = self.channel.allowed.len(),
            voice_replies = self.channel.voice_replies,
            "Telegram channel: polling for messages"
        );
        poll::run(self.channel).await
    }
}

/// Sends messages to the chats in `telegram.chats` (reminders, workflows); clone freely.
#[derive(Clone)]
pub struct TelegramSender {
    api: BotApi,
    allowed: Arc<BTreeMap<i64, String>>,
}

impl TelegramSender {
    /// Sends `text` (in pieces when longer than one message) to an allowlisted chat.
    pub async fn send_text(&self, chat_id: i64, text: &str) -> Result<(), BotError> {
        if !self.allowed.contains_key(&chat_id) {
            return Err(BotError::NotAllowed(chat_id));
        }
        for piece in split(text, MAX_MESSAGE) {
            let api = self.api.clone();
            blocking("sendMessage", move || api.send_message(chat_id, &piece)).await?;
        }
        Ok(())
    }

    /// The chat ids that may be written to, and their users.
    pub fn chats(&self) -> &BTreeMap<i64, String> {
        &self.allowed
    }
}

/// Runs a blocking Bot API call on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    method: &'static str,
    call: impl FnOnce() -> Result<T, BotError> + Send + 'static,
) -> Result<T, BotError> {
    tokio::task::spawn_blocking(call)
        .await
        .map_err(|e| BotError::Unexpected { method, reason: format!("the call's thread failed: {e}") })?
}
