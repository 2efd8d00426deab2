//! Timers and reminders set from a Telegram chat ring there: each notice whose reminder
//! came from `telegram:<chat id>` is sent to that chat (the web UI and voice page tell it
//! too when they are open). Those that rang while nothing could send them (the box was
//! starting) are sent when this starts.

use super::TelegramSender;
use crate::notices::{Channel, Notice};
use crate::reminders::Reminders;
use tokio::sync::broadcast::error::RecvError;

/// Runs until the server stops.
pub async fn tell_reminders(sender: TelegramSender, reminders: Reminders) {
    let mut live = reminders.notices().subscribe();
    for notice in reminders.missed_on_telegram().await {
        tell(&sender, &reminders, &notice).await;
    }
    loop {
        match live.recv().await {
            Ok(notice) => tell(&sender, &reminders, &notice).await,
            Err(RecvError::Lagged(_)) => {
                for notice in reminders.missed_on_telegram().await {
                    tell(&sender, &reminders, &notice).await;
                }
            }
            Err(RecvError::Closed) => break,
        }
    }
}

async fn tell(sender: &TelegramSender, reminders: &Reminders, notice: &Notice) {
    let Channel::Telegram(chat) = Channel::parse(&notice.reminder.channel) else { return };
    match sender.send_text(chat, &format!("⏰ {}", notice.text)).await {
        Ok(()) => reminders.delivered(notice.reminder.id).await,
        // The chat id is in the log, never the text.
        Err(e) => {
            tracing::warn!(reminder = notice.reminder.id, chat, error = %e, "Telegram: a reminder could not be sent")
        }
    }
}
