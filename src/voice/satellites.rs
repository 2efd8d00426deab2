//! Hearth's engines behind the Wyoming protocol, for voice satellites: whisper for
//! `transcribe`, Piper for `synthesize`, a turn of the assistant for `handle`, and API
//! tokens for `auth`. With `voice.wyoming_user`, `handle` turns are that user's (stored,
//! their timers, their workflows' phrases); what they set up rings on the satellites
//! through Home Assistant (`channels/satellite.rs`).

use super::stt::{SttState, TranscribeRequest};
use super::tts::{SpeakRequest, TtsState};
use super::wyoming::events::{Handled, Synthesize, Transcribe, Transcript};
use super::wyoming::info::{Artifact, AsrProgram, HandleProgram, Info, LanguageModel, TtsProgram, TtsVoice};
use super::wyoming::{ServiceError, Synthesized, VoiceServices};
use super::Voice;
use crate::assistant::{Assistant, Conversation, Sampling, Style, Turn, Who};
use crate::engine::ChatMessage;
use crate::store::Store;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const BY: (&str, &str) = ("Hearth", "https://github.com/hearth-appliance/hearth");

/// Most tokens of a spoken answer to a satellite.
const SPOKEN_MAX_TOKENS: u32 = 256;

/// A satellite conversation quiet this long is over; the next utterance starts a new one.
const CONVERSATION_GAP: Duration = Duration::from_secs(300);

/// The services one server offers over Wyoming.
pub struct Satellites {
    pub voice: Voice,
    pub assistant: Assistant,
    /// Where the tokens of `auth` are checked.
    pub store: Store,
    /// `voice.wyoming_user`'s id: satellite turns are theirs, stored in their
    /// conversations, with their skills (timers). `None`: turns of no user.
    pub user: Option<i64>,
    /// The satellites' current conversation and when it last spoke.
    pub conversation: Mutex<Option<(String, Instant)>>,
}

fn failure(e: impl Into<crate::error::ApiError>) -> ServiceError {
    let e = e.into();
    ServiceError::new(e.code.code(), e.message)
}

impl Satellites {
    pub fn new(voice: Voice, assistant: Assistant, store: Store, user: Option<i64>) -> Satellites {
        Satellites { voice, assistant, store, user, conversation: Mutex::new(None) }
    }

    /// The conversation an utterance continues: the current one unless it has been quiet
    /// for [`CONVERSATION_GAP`].
    fn current(&self) -> Option<String> {
        let current = self.conversation.lock().unwrap_or_else(|p| p.into_inner());
        current.as_ref().filter(|(_, at)| at.elapsed() < CONVERSATION_GAP).map(|(id, _)| id.clone())
    }

    /// The answer to one utterance, spoken. With `voice.wyoming_user`, the turn is that
    /// user's: stored in the satellites' conversation, with their skills (a timer set here
    /// rings on the satellites). Without, the turn has no history and is not stored.
    pub async fn answer(&self, text: &str) -> Result<String, ServiceError> {
        let (who, conversation) = match self.user {
            Some(user_id) => {
                (Who::user(user_id), Conversation::Stored { id: self.current(), message: text.to_string() })
            }
            None => {
                (Who::SATELLITES, Conversation::Ephemeral { messages: vec![ChatMessage::new("user", text)] })
            }
        };
        let turn = Turn {
            sampling: Sampling { max_tokens: Some(SPOKEN_MAX_TOKENS), ..Sampling::default() },
            knowledge: Some(false),
            stream: false, // spoken whole
            style: Style::Spoken,
            skills: true,
            channel: crate::notices::Channel::Satellite,
            ..Turn::new(who, conversation)
        };
        let prepared = self.assistant.prepare(turn).await.map_err(failure)?;
        let outcome = prepared.run().await.map_err(failure)?.finish().await.map_err(failure)?;
        if let Some(stored) = &outcome.stored {
            let mut current = self.conversation.lock().unwrap_or_else(|p| p.into_inner());
            *current = Some((stored.conversation_id.clone(), Instant::now()));
        }
        Ok(outcome.text.trim().to_string())
    }

    fn asr(&self) -> Vec<AsrProgram> {
        let SttState::Ready { model, multilingual } = self.voice.stt.state() else { return Vec::new() };
        let languages = if multilingual { whisper_languages() } else { vec!["en".to_string()] };
        vec![AsrProgram {
            artifact: Artifact::new("hearth-whisper", "Speech to text (whisper.cpp)", BY, None),
            models: vec![LanguageModel {
                artifact: Artifact::new(
                    &model,
                    "Whisper",
                    ("OpenAI", "https://github.com/openai/whisper"),
                    None,
                ),
                languages,
            }],
            // Segments come as `transcript-chunk`s between `transcript-start` and `-stop`.
            supports_transcript_streaming: true,
        }]
    }

    fn tts(&self) -> Vec<TtsProgram> {
        if !matches!(self.voice.tts.state(), TtsState::Ready { .. }) {
            return Vec::new();
        }
        let voices = self
            .voice
            .tts
            .voices()
            .into_iter()
            .map(|v| TtsVoice {
                artifact: Artifact::new(
                    &v.name,
                    "Piper voice",
                    ("Piper", "https://github.com/rhasspy/piper"),
                    None,
                ),
                languages: vec![v.language],
                speakers: None,
            })
            .collect();
        vec![TtsProgram {
            artifact: Artifact::new("hearth-piper", "Text to speech (Piper)", BY, None),
            voices,
            supports_synthesize_streaming: false,
        }]
    }

    async fn speak(&self, request: &Synthesize) -> Result<Synthesized, ServiceError> {
        let voice = request.voice.as_ref().and_then(|v| v.name.clone()).filter(|n| n != "default");
        let speech = self
            .voice
            .tts
            .synthesize(SpeakRequest { text: request.text.clone(), voice, speed: None })
            .await
            .map_err(failure)?;
        Ok(Synthesized { rate: speech.rate, channels: 1, samples: speech.samples })
    }

    fn handle_programs(&self) -> Vec<HandleProgram> {
        let model = self.assistant.models().default_id();
        vec![HandleProgram {
            artifact: Artifact::new("hearth-assistant", "Answers with the local language model", BY, None),
            models: vec![LanguageModel {
                artifact: Artifact::new(&model, "Local language model", BY, None),
                languages: vec!["en".into()],
            }],
            supports_handled_streaming: false,
        }]
    }
}

/// Languages a multilingual whisper model understands.
fn whisper_languages() -> Vec<String> {
    [
        "en", "de", "fr", "es", "it", "nl", "pt", "pl", "ru", "uk", "zh", "ja", "ko", "sv", "da", "no", "fi",
        "tr",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

impl VoiceServices for Satellites {
    fn info(&self) -> Info {
        Info { asr: self.asr(), tts: self.tts(), handle: self.handle_programs(), ..Default::default() }
    }

    async fn transcribe(&self, request: &Transcribe, audio: Vec<f32>) -> Result<Transcript, ServiceError> {
        let request = TranscribeRequest {
            audio,
            language: request.language.clone().or_else(|| self.voice.default_language()),
            prompt: None,
            fast: true,
        };
        let t = self.voice.stt.transcribe(request).await.map_err(failure)?;
        Ok(Transcript { text: t.text, language: Some(t.language), context: None })
    }

    async fn synthesize(&self, request: &Synthesize) -> Result<Synthesized, ServiceError> {
        self.speak(request).await
    }

    async fn handle(&self, transcript: &Transcript) -> Result<Option<Handled>, ServiceError> {
        if transcript.text.trim().is_empty() {
            return Ok(None);
        }
        let text = self.answer(&transcript.text).await?;
        Ok(Some(Handled { text: Some(text), context: None }))
    }

    async fn authorize(&self, token: &str) -> bool {
        let hash = crate::auth::hash_token(token);
        // Satellites speak: the token must allow voice.
        matches!(self.store.run(move |s| s.user_for_token_hash(&hash)).await,
            Ok(Some(owner)) if owner.scopes.has(crate::auth::scopes::Scope::Voice))
    }
}
