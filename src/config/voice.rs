//! The `[voice]` settings: speech to text, text to speech and the Wyoming server.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VoiceSettings {
    /// Whisper model (whisper.cpp ggml file): a manifest name such as `whisper-base`, or a
    /// path. Empty: the best installed manifest model (base, else tiny.en).
    pub stt_model: String,
    /// Piper voice: a manifest name, or a path to the `.onnx` file (its `.onnx.json` beside
    /// it). Empty: the manifest's default voice.
    pub tts_voice: String,
    /// ONNX Runtime shared library Piper runs on. Empty: the one `hearth models pull
    /// onnxruntime` installs (data dir, then the model cache), else the system's.
    pub onnxruntime: String,
    /// The language people speak to the box, ISO 639-1 (`en`, `de`), used when a request
    /// does not say; several separated by commas (`en,de`): detected per utterance among
    /// those only. Empty: detected among all, which costs multilingual models (base) an
    /// extra encoder pass per utterance; English-only models assume `en`.
    pub language: String,
    /// Threads for speech recognition and synthesis (0: one per core, at most 4).
    pub threads: u32,
    /// Longest audio accepted for transcription, in seconds.
    pub max_audio_seconds: u32,
    /// Longest text accepted for synthesis, in characters.
    pub max_speech_chars: usize,
    /// Address the Wyoming server (Home Assistant voice satellites) listens on, e.g.
    /// `0.0.0.0:10300`. Empty: off.
    pub wyoming_listen: String,
    /// Peers the Wyoming server serves without a token (Home Assistant cannot send
    /// one); others must send an `auth` event with an API token first.
    pub wyoming_allow: Vec<String>,
    /// The Hearth user satellite turns belong to: their conversations, reminders and
    /// workflows (the user must exist at start). Reminders set from a satellite ring there
    /// through Home Assistant (`[home_assistant] announce_entity`). Empty: satellites
    /// speak for no user (no history, no timers).
    pub wyoming_user: String,
}

impl Default for VoiceSettings {
    fn default() -> Self {
        Self {
            stt_model: String::new(),
            tts_voice: String::new(),
            onnxruntime: String::new(),
            language: String::new(),
            threads: 0,
            max_audio_seconds: 300,
            max_speech_chars: 4000,
            wyoming_listen: String::new(),
            wyoming_allow: vec!["127.0.0.1".into(), "::1".into()],
            wyoming_user: String::new(),
        }
    }
}

impl VoiceSettings {
    pub(super) fn validate(&self) -> Result<(), String> {
        let bad = |key: &str, why: &str| Err(format!("invalid value for voice.{key}: {why}"));
        if self.threads > 64 {
            return bad("threads", "must be at most 64 (0 = automatic)");
        }
        if !self.language.is_empty() && !valid_languages(&self.language) {
            return bad(
                "language",
                "must be two-letter ISO 639-1 codes such as en or de (several: en,de), or empty to detect",
            );
        }
        if !(1..=3600).contains(&self.max_audio_seconds) {
            return bad("max_audio_seconds", "must be between 1 and 3600");
        }
        if !(1..=100_000).contains(&self.max_speech_chars) {
            return bad("max_speech_chars", "must be between 1 and 100000");
        }
        if !self.wyoming_listen.is_empty() && self.wyoming_listen.parse::<SocketAddr>().is_err() {
            return bad(
                "wyoming_listen",
                &format!(
                    "'{}' is not ADDRESS:PORT (e.g. 0.0.0.0:10300), or empty for off",
                    self.wyoming_listen
                ),
            );
        }
        if let Some(peer) = self.wyoming_allow.iter().find(|a| a.parse::<IpAddr>().is_err()) {
            return bad("wyoming_allow", &format!("'{peer}' is not an IP address"));
        }
        if !self.wyoming_user.is_empty() && !crate::store::valid_user_name(&self.wyoming_user) {
            return bad("wyoming_user", &format!("'{}' is not a user name", self.wyoming_user));
        }
        Ok(())
    }

    /// The Wyoming server's address, when it is on.
    pub fn wyoming_addr(&self) -> Option<SocketAddr> {
        self.wyoming_listen.parse().ok()
    }

    /// Peers served without a token.
    pub fn wyoming_allowed(&self) -> Vec<IpAddr> {
        self.wyoming_allow.iter().filter_map(|a| a.parse().ok()).collect()
    }

    /// The configured language, if any (see `Voice::default_language` for the one in effect).
    pub fn default_language(&self) -> Option<String> {
        (!self.language.is_empty()).then(|| self.language.clone())
    }

    /// Threads for the speech engines: the configured number, else one per core (at most 4).
    pub fn speech_threads(&self) -> u32 {
        match self.threads {
            0 => (std::thread::available_parallelism().map_or(1, |n| n.get()) as u32).clamp(1, 4),
            n => n,
        }
    }
}

/// Whether `text` is one or more two-letter ISO 639-1 codes separated by commas.
pub fn valid_languages(text: &str) -> bool {
    let iso_639_1 = |code: &str| code.len() == 2 && code.chars().all(|c| c.is_ascii_lowercase());
    text.split(',').map(str::trim).all(iso_639_1)
}

/// The box's own language, from its locale (`LC_ALL`, `LC_MESSAGES`, `LANG`, else
/// Debian's `/etc/default/locale` or `/etc/locale.conf`, as a service under systemd has
/// no locale variables): the setup page offers it first. English when none is set.
pub fn system_language() -> String {
    let from_env = ["LC_ALL", "LC_MESSAGES", "LANG"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()));
    let from_file = || {
        ["/etc/default/locale", "/etc/locale.conf"].iter().find_map(|f| {
            let text = std::fs::read_to_string(f).ok()?;
            text.lines().find_map(|l| l.trim().strip_prefix("LANG=").map(|v| v.trim_matches('"').to_string()))
        })
    };
    language_of_locale(&from_env.or_else(from_file).unwrap_or_default())
}

/// `de_DE.UTF-8` -> `de`; `C`, `POSIX` and nonsense -> `en`.
fn language_of_locale(locale: &str) -> String {
    let code = locale.split(['_', '.', '@']).next().unwrap_or("");
    match code.len() == 2 && code.chars().all(|c| c.is_ascii_lowercase()) {
        true => code.to_string(),
        false => "en".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voice_settings_are_checked() {
        assert_eq!(VoiceSettings::default().validate(), Ok(()));
        let with = |f: fn(&mut VoiceSettings)| {
            let mut v = VoiceSettings::default();
            f(&mut v);
            v.validate()
        };
        assert!(with(|v| v.language = "english".into()).unwrap_err().contains("voice.language"));
        assert_eq!(with(|v| v.language = "de".into()), Ok(()));
        assert_eq!(with(|v| v.language = "en, de".into()), Ok(()));
        assert!(with(|v| v.language = "en,deu".into()).is_err());
        assert!(with(|v| v.wyoming_listen = "10300".into()).unwrap_err().contains("voice.wyoming_listen"));
        assert!(with(|v| v.wyoming_allow = vec!["homeassistant.local".into()])
            .unwrap_err()
            .contains("not an IP"));
        assert!(with(|v| v.max_audio_seconds = 0).is_err());
        let on = VoiceSettings { wyoming_listen: "0.0.0.0:10300".into(), ..VoiceSettings::default() };
        assert_eq!(on.wyoming_addr().map(|a| a.port()), Some(10300));
        assert_eq!(on.wyoming_allowed().len(), 2);
        assert_eq!(VoiceSettings::default().wyoming_addr(), None, "off by default");
    }

    #[test]
    fn the_locale_names_the_language() {
        assert_eq!(language_of_locale("de_DE.UTF-8"), "de");
        assert_eq!(language_of_locale("fr"), "fr");
        assert_eq!(language_of_locale("C.UTF-8"), "en");
        assert_eq!(language_of_locale("POSIX"), "en");
        assert_eq!(language_of_locale(""), "en");
    }
}
