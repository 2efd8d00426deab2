//! One update: who wrote, what they said (typed or spoken), the turn, and the reply
//! delivered piece by piece.

use super::api::{BotError, Update, Voice as VoiceNote};
use super::split::{split, MAX_MESSAGE};
use super::{blocking, Channel};
use crate::assistant::{Conversation, Style, Turn, Who};
use crate::audio::{decode_ogg_opus_16k_mono, encode_ogg_opus, AudioLimits};
use crate::store::{StoreError, TelegramReply};
use crate::voice::stt::TranscribeRequest;
use crate::voice::tts::SpeakRequest;
use std::collections::HashSet;
use std::time::Duration;

/// Telegram's limit for files a bot downloads.
const MAX_DOWNLOAD_BYTES: usize = 20 << 20;

/// Why an update was left for later (it comes again with the next poll).
#[derive(Debug, thiserror::Error)]
pub(super) enum Stop {
    #[error(transparent)]
    Bot(#[from] BotError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a message asks, once read.
enum Said {
    Typed(String),
    Spoken(String),
    /// Nothing to answer with a turn; this note goes back instead.
    Unanswerable(String),
}

impl Channel {
    /// Handles one update: `Ok` once it is answered or ignored for good (the offset has
    /// moved past it), `Err` when it should come again.
    pub(super) async fn handle(&self, update: Update, ignored: &mut HashSet<i64>) -> Result<(), Stop> {
        let update_id = update.update_id;
        // Answered before a restart, and not all sent: send the rest, without a second turn.
        if let Some(pending) = self.store.run(move |s| s.telegram_pending_reply(update_id)).await? {
            tracing::info!(
                update_id,
                chat_id = pending.chat_id,
                "Telegram: sending a reply stored before a restart"
            );
            return self.deliver(pending).await;
        }
        let Some(message) = update.message else {
            return self.handled(update_id).await;
        };
        let chat_id = message.chat.id;
        let Some(name) = self.allowed.get(&chat_id) else {
            if ignored.insert(chat_id) {
                tracing::warn!(
                    chat_id,
                    "Telegram: a chat that is not in telegram.chats wrote to the bot; not answered \
                     (logged once per chat)"
                );
            }
            return self.handled(update_id).await;
        };
        let user_id = {
            let wanted = name.clone();
            match self.store.run(move |s| s.telegram_user(&wanted)).await? {
                Some(id) => id,
                None => {
                    if ignored.insert(chat_id) {
                        tracing::warn!(
                            chat_id, user = %name,
                            "Telegram: telegram.chats names a user that does not exist or is disabled; not answered"
                        );
                    }
                    return self.handled(update_id).await;
                }
            }
        };
        let _typing = self.typing(chat_id);
        let said = match (message.text, message.voice) {
            (Some(text), _) if !text.trim().is_empty() => Said::Typed(text),
            (_, Some(voice)) => self.transcribe(&voice).await?,
            _ => Said::Unanswerable("I can answer text and voice messages.".into()),
        };
        let (question, spoken) = match said {
            Said::Typed(text) => (text, false),
            Said::Spoken(text) => (text, true),
            Said::Unanswerable(note) => return self.note(update_id, chat_id, &note).await,
        };
        tracing::debug!(update_id, chat_id, user = %name, spoken, "Telegram: answering");

        let conversation = self.store.run(move |s| s.telegram_conversation(chat_id, user_id)).await?;
        let speak = spoken && self.voice_replies;
        let turn = Turn {
            stream: false,
            skills: true,
            style: if speak { Style::Spoken } else { Style::Written },
            channel: crate::notices::Channel::Telegram(chat_id),
            ..Turn::new(
                Who::user(user_id),
                Conversation::Stored { id: conversation, message: question.clone() },
            )
        };
        let answered = async { self.assistant.prepare(turn).await?.run().await?.finish().await }.await;
        let outcome = match answered {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::warn!(update_id, chat_id, error = %e, "Telegram: the turn failed");
                return self.note(update_id, chat_id, &format!("Sorry, I could not answer: {e}")).await;
            }
        };
        let Some(ids) = outcome.stored else {
            return self.note(update_id, chat_id, "Sorry, the answer could not be stored.").await;
        };
        let answer = match outcome.text.trim() {
            "" => "(no answer)".to_string(),
            text => text.to_string(),
        };
        let text =
            if spoken { format!("🎤 “{}”\n\n{answer}", question.trim()) } else { answer.clone() };
        let reply = TelegramReply { update_id, chat_id, text, speak: speak.then_some(answer), parts_sent: 0 };
        {
            let reply = reply.clone();
            let conversation_id = ids.conversation_id;
            self.store.run(move |s| s.telegram_reply_stored(&reply, user_id, &conversation_id)).await?;
        }
        self.deliver(reply).await
    }

    /// Sends what is left of a stored reply, then its voice message, then marks the
    /// update handled. A piece Telegram refuses for good (the chat blocked the bot) ends
    /// it; a transient failure leaves it for the next try.
    async fn deliver(&self, reply: TelegramReply) -> Result<(), Stop> {
        let (update_id, chat_id) = (reply.update_id, reply.chat_id);
        let pieces = split(&reply.text, MAX_MESSAGE);
        for (n, piece) in pieces.into_iter().enumerate().skip(reply.parts_sent as usize) {
            let api = self.api.clone();
            match blocking("sendMessage", move || api.send_message(chat_id, &piece)).await {
                Ok(()) => {
                    let sent = n as u32 + 1;
                    self.store.run(move |s| s.telegram_parts_sent(update_id, sent)).await?;
                }
                Err(e) if e.transient() => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(update_id, chat_id, error = %e, "Telegram refused the reply; it is dropped");
                    return self.handled(update_id).await;
                }
            }
        }
        if let Some(text) = reply.speak {
            if let Err(e) = self.speak(chat_id, text).await {
                // The text went out; the voice is a courtesy and is not tried again.
                tracing::warn!(update_id, chat_id, error = %e, "Telegram: no voice reply");
            }
        }
        self.handled(update_id).await
    }

    /// A short answer that is no turn (nothing stored): sent once, then handled.
    async fn note(&self, update_id: i64, chat_id: i64, text: &str) -> Result<(), Stop> {
        let api = self.api.clone();
        let text = text.to_string();
        match blocking("sendMessage", move || api.send_message(chat_id, &text)).await {
            Err(e) if e.transient() => return Err(e.into()),
            Err(e) => tracing::warn!(update_id, chat_id, error = %e, "Telegram refused a note"),
            Ok(()) => {}
        }
        self.handled(update_id).await
    }

    async fn handled(&self, update_id: i64) -> Result<(), Stop> {
        Ok(self.store.run(move |s| s.telegram_handled(update_id)).await?)
    }

    /// A voice message as text, or a note saying why not. Only a download that may work
    /// later is an error (the update comes again).
    async fn transcribe(&self, voice: &VoiceNote) -> Result<Said, Stop> {
        let max_seconds = self.max_audio_seconds;
        if voice.duration > max_seconds {
            return Ok(Said::Unanswerable(format!(
                "That voice message is too long for me: at most {max_seconds} seconds, please."
            )));
        }
        if voice.file_size.is_some_and(|size| size > MAX_DOWNLOAD_BYTES as u64) {
            return Ok(Said::Unanswerable("That voice message is too large for me.".into()));
        }
        let (api, file_id) = (self.api.clone(), voice.file_id.clone());
        let ogg = match blocking("getFile", move || api.download(&file_id, MAX_DOWNLOAD_BYTES)).await {
            Ok(bytes) => bytes,
            Err(e) if e.transient() => return Err(e.into()),
            Err(e) => {
                tracing::warn!(error = %e, "Telegram: cannot download a voice message");
                return Ok(Said::Unanswerable("I could not fetch that voice message.".into()));
            }
        };
        let limits = AudioLimits { max_bytes: MAX_DOWNLOAD_BYTES, max_seconds: f64::from(max_seconds) };
        let decoded = tokio::task::spawn_blocking(move || decode_ogg_opus_16k_mono(&ogg, &limits)).await;
        let audio = match decoded {
            Ok(Ok(audio)) => audio,
            Ok(Err(e)) => return Ok(Said::Unanswerable(format!("I could not play that voice message: {e}"))),
            Err(e) => return Ok(Said::Unanswerable(format!("I could not play that voice message: {e}"))),
        };
        let request =
            TranscribeRequest { audio, language: self.voice.default_language(), prompt: None, fast: true };
        match self.voice.stt.transcribe(request).await {
            Ok(t) if !t.text.trim().is_empty() => Ok(Said::Spoken(t.text.trim().to_string())),
            Ok(_) => Ok(Said::Unanswerable("I heard no words in that voice message.".into())),
            Err(e) => {
                tracing::warn!(error = %e, "Telegram: a voice message could not be transcribed");
                Ok(Said::Unanswerable(format!("I could not transcribe that voice message: {e}")))
            }
        }
    }

    /// Synthesizes `text` and sends it as a voice message.
    async fn speak(&self, chat_id: i64, text: String) -> Result<(), String> {
        let speech = self
            .voice
            .tts
            .synthesize(SpeakRequest { text, voice: None, speed: None })
            .await
            .map_err(|e| e.to_string())?;
        let ogg = tokio::task::spawn_blocking(move || encode_ogg_opus(&speech.samples, speech.rate))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let api = self.api.clone();
        blocking("sendVoice", move || api.send_voice(chat_id, &ogg)).await.map_err(|e| e.to_string())
    }

    /// "typing…" every four seconds (it lasts five) until the guard is dropped.
    fn typing(&self, chat_id: i64) -> Typing {
        let api = self.api.clone();
        let task = actix_web::rt::spawn(async move {
            loop {
                let api = api.clone();
                if let Err(e) = blocking("sendChatAction", move || api.send_typing(chat_id)).await {
                    tracing::debug!(chat_id, error = %e, "Telegram: no typing indicator");
                }
                tokio::time::sleep(Duration::from_secs(4)).await;
            }
        });
        Typing(task)
    }
}

/// Stops the typing indicator's task when the answer is done (or dropped).
struct Typing(tokio::task::JoinHandle<()>);

impl Drop for Typing {
    fn drop(&mut self) {
        self.0.abort();
    }
}
