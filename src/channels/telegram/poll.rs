//! The long-poll loop: fetch updates from the stored offset, answer each in order, and
//! move the offset past it only once it was handled.

use super::answer::Stop;
use super::api::{BotApi, BotError, Update};
use super::backoff::Backoff;
use super::Channel;
use std::collections::HashSet;
use std::sync::{mpsc, Arc};
use std::time::Duration;
use tokio::sync::oneshot;

type Polled = Result<Vec<Update>, BotError>;

/// `getUpdates` on a thread of its own (`hearth-telegram`): a call waits up to the poll
/// timeout for news, and a thread of tokio's blocking pool would hold up shutdown as long.
struct Poller {
    requests: mpsc::Sender<(Option<i64>, oneshot::Sender<Polled>)>,
}

impl Poller {
    fn start(api: BotApi, timeout: Duration) -> std::io::Result<Poller> {
        let (requests, incoming) = mpsc::channel::<(Option<i64>, oneshot::Sender<Polled>)>();
        std::thread::Builder::new().name("hearth-telegram".into()).spawn(move || {
            // Ends when the loop (the sender) is gone.
            for (offset, reply) in incoming {
                let _ = reply.send(api.get_updates(offset, timeout));
            }
        })?;
        Ok(Poller { requests })
    }

    async fn poll(&self, offset: Option<i64>) -> Polled {
        let (tx, rx) = oneshot::channel();
        let gone =
            || BotError::Unexpected { method: "getUpdates", reason: "the polling thread stopped".into() };
        self.requests.send((offset, tx)).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
}

pub(super) async fn run(channel: Arc<Channel>) {
    let poller = match Poller::start(channel.api.clone(), channel.poll_timeout) {
        Ok(poller) => poller,
        Err(e) => {
            tracing::error!(error = %e, "Telegram channel: cannot start its polling thread; Telegram is off");
            return;
        }
    };
    let mut backoff = Backoff::default();
    // Chats not on the list, each logged once.
    let mut ignored = HashSet::new();
    loop {
        let offset = match channel.store.run(|s| s.telegram_offset()).await {
            Ok(offset) => offset,
            Err(e) => {
                tracing::error!(error = %e, "Telegram channel: cannot read the poll offset; retrying in 5 s");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        let updates = match poller.poll(offset).await {
            Ok(updates) => {
                backoff.reset();
                updates
            }
            Err(e) => {
                let wait = backoff.after(&e);
                if e.status() == Some(409) {
                    tracing::error!(
                        error = %e, retry_in_s = wait.as_secs(),
                        "Telegram channel: another program is polling with this bot's token, or a \
                         webhook is set (409 Conflict); only one may receive its messages"
                    );
                } else {
                    tracing::warn!(error = %e, retry_in_s = wait.as_secs(), "Telegram channel: polling failed");
                }
                tokio::time::sleep(wait).await;
                continue;
            }
        };
        for update in updates {
            // Telegram sends none below the offset; should one come, it was handled.
            if offset.is_some_and(|o| update.update_id < o) {
                continue;
            }
            let update_id = update.update_id;
            match channel.handle(update, &mut ignored).await {
                Ok(()) => {}
                Err(stop) => {
                    // Not handled: the offset stays, and the update comes again.
                    let wait = match &stop {
                        Stop::Bot(e) => backoff.after(e),
                        Stop::Store(_) => Duration::from_secs(5),
                    };
                    tracing::warn!(
                        update_id, error = %stop, retry_in_s = wait.as_secs(),
                        "Telegram channel: an update is not handled yet; trying again"
                    );
                    tokio::time::sleep(wait).await;
                    break;
                }
            }
        }
    }
}
