//! Notices told in Telegram: a timer or reminder set from a Telegram chat rings in that
//! chat (the web UI and voice page tell it too when they are open), and what a workflow
//! tells Telegram (`notify` with `to: telegram`, or to every channel) goes to the chats of
//! `telegram.chats` that belong to its owner. Reminders that rang while nothing could send
//! them (the box was starting) are sent when this starts.

use super::TelegramSender;
use crate::notices::{Channel, Notice, Target};
use crate::reminders::Reminders;
use crate::store::Store;
use tokio::sync::broadcast::error::RecvError;

/// Runs until the server stops.
pub async fn tell_notices(sender: TelegramSender, reminders: Reminders, store: Store) {
    let mut live = reminders.notices().subscribe();
    for notice in reminders.missed_on("telegram:").await {
        tell(&sender, &reminders, &store, &notice).await;
    }
    loop {
        match live.recv().await {
            Ok(notice) => tell(&sender, &reminders, &store, &notice).await,
            Err(RecvError::Lagged(_)) => {
                for notice in reminders.missed_on("telegram:").await {
                    tell(&sender, &reminders, &store, &notice).await;
                }
            }
            Err(RecvError::Closed) => break,
        }
    }
}

/// The chats a notice goes to: a reminder's own chat; for a workflow's, the allowlisted
/// chats of its owner.
async fn chats(sender: &TelegramSender, store: &Store, notice: &Notice) -> Vec<i64> {
    if !notice.is_for(Target::Telegram) {
        return Vec::new();
    }
    if let Some(reminder) = notice.rung() {
        return match Channel::parse(&reminder.channel) {
            Channel::Telegram(chat) => vec![chat],
            _ => Vec::new(),
        };
    }
    let (user_id, chats) = (notice.user_id, sender.chats().clone());
    let mine = store
        .run(move |s| {
            let owned = |name: &String| s.find_user(name).is_ok_and(|u| u.id == user_id);
            Ok(chats.iter().filter(|(_, name)| owned(name)).map(|(chat, _)| *chat).collect())
        })
        .await;
    mine.unwrap_or_else(|e: crate::store::StoreError| {
        tracing::warn!(user_id, error = %e, "Telegram: cannot read whose chats these are");
        Vec::new()
    })
}

async fn tell(sender: &TelegramSender, reminders: &Reminders, store: &Store, notice: &Notice) {
    let mark = match notice.rung() {
        Some(_) => "⏰ ",
        None => "",
    };
    for chat in chats(sender, store, notice).await {
        match sender.send_text(chat, &format!("{mark}{}", notice.text)).await {
            Ok(()) => {
                if let Some(reminder) = notice.rung() {
                    reminders.delivered(reminder.id).await;
                }
            }
            // The chat id is in the log, never the text.
            Err(e) => tracing::warn!(
                reminder = notice.rung().map(|r| r.id),
                chat,
                error = %e,
                "Telegram: a notice could not be sent"
            ),
        }
    }
}
