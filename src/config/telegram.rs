//! The `[telegram]` settings: the Telegram channel (`channels/telegram`).

use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;

/// What `print-config` shows instead of the bot token.
const HIDDEN: &str = "(hidden)";

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelegramSettings {
    /// Answer Telegram messages (long polling `getUpdates`). Off by default.
    pub enabled: bool,
    /// The bot's token from @BotFather (`123456789:AA...`). A secret: prefer `token_file`.
    #[serde(serialize_with = "hidden")]
    pub token: String,
    /// A file holding the token (e.g. mode 0600, owned by the service's user).
    pub token_file: String,
    /// The Bot API's address; tests point it at a fake server.
    pub api_base: String,
    /// The chats answered, and the Hearth user each speaks as: `12345 = "alice"` (a
    /// private chat's id is the person's Telegram user id; groups are negative). Messages
    /// from any other chat are ignored.
    pub chats: BTreeMap<String, String>,
    /// Answer voice messages with a voice message too (and always with text).
    pub voice_replies: bool,
    /// How long one `getUpdates` call waits for new messages, in seconds.
    pub poll_timeout_secs: u32,
}

impl Default for TelegramSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            token: String::new(),
            token_file: String::new(),
            api_base: "https://api.telegram.org".into(),
            chats: BTreeMap::new(),
            voice_replies: false,
            poll_timeout_secs: 30,
        }
    }
}

/// Never the token, not even in a debug print.
impl std::fmt::Debug for TelegramSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramSettings")
            .field("enabled", &self.enabled)
            .field("token", &if self.token.is_empty() { "" } else { HIDDEN })
            .field("token_file", &self.token_file)
            .field("api_base", &self.api_base)
            .field("chats", &self.chats)
            .field("voice_replies", &self.voice_replies)
            .field("poll_timeout_secs", &self.poll_timeout_secs)
            .finish()
    }
}

fn hidden<S: Serializer>(token: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(if token.is_empty() { "" } else { HIDDEN })
}

impl TelegramSettings {
    /// The bot token, from `token` or `token_file`. Errors name the key, never the token.
    pub fn read_token(&self) -> Result<String, String> {
        let bad = |key: &str, why: &str| format!("invalid value for telegram.{key}: {why}");
        let (token, key) = match (self.token.is_empty(), self.token_file.is_empty()) {
            (false, false) => return Err(bad("token", "set token or token_file, not both")),
            (true, true) => return Err(bad("token", "telegram.enabled needs token or token_file")),
            (false, true) => (self.token.trim().to_string(), "token"),
            (true, false) => {
                let text = std::fs::read_to_string(&self.token_file)
                    .map_err(|e| bad("token_file", &format!("cannot read {}: {e}", self.token_file)))?;
                (text.trim().to_string(), "token_file")
            }
        };
        // It goes into every URL's path: `bot<token>/method`.
        let well_formed = token.split_once(':').is_some_and(|(id, secret)| {
            !id.is_empty()
                && id.chars().all(|c| c.is_ascii_digit())
                && !secret.is_empty()
                && secret.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
        if !well_formed {
            return Err(bad(
                key,
                "not a bot token: @BotFather gives one like 123456789:AAH... (digits, ':', letters)",
            ));
        }
        Ok(token)
    }

    /// The allowlist as chat id → user name (validated by [`TelegramSettings::validate`]).
    pub fn allowed_chats(&self) -> BTreeMap<i64, String> {
        self.chats.iter().filter_map(|(id, user)| Some((id.trim().parse().ok()?, user.clone()))).collect()
    }

    /// The API base without a trailing `/`.
    pub fn api_base(&self) -> &str {
        self.api_base.trim_end_matches('/')
    }

    pub(super) fn validate(&self) -> Result<(), String> {
        let bad = |key: &str, why: &str| Err(format!("invalid value for telegram.{key}: {why}"));
        let base = self.api_base();
        if !(base.starts_with("https://") || base.starts_with("http://")) || base.contains(['?', '#', ' ']) {
            return bad("api_base", &format!("'{}' is not an http(s) URL", self.api_base));
        }
        if !(1..=50).contains(&self.poll_timeout_secs) {
            return bad("poll_timeout_secs", "must be between 1 and 50");
        }
        for (id, user) in &self.chats {
            if id.trim().parse::<i64>().is_err() {
                return bad(
                    "chats",
                    &format!("'{id}' is not a chat id (a whole number, negative for groups)"),
                );
            }
            if !crate::store::valid_user_name(user) {
                return bad("chats", &format!("chat {id}: '{user}' is not a Hearth user name"));
            }
        }
        if self.enabled {
            self.read_token()?;
            if self.chats.is_empty() {
                return bad(
                    "chats",
                    "telegram.enabled answers only the chats listed here: list at least one",
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(token: &str) -> TelegramSettings {
        TelegramSettings {
            enabled: true,
            token: token.into(),
            chats: [("12345".to_string(), "alice".to_string())].into(),
            ..TelegramSettings::default()
        }
    }

    #[test]
    fn off_by_default_and_valid() {
        let s = TelegramSettings::default();
        assert!(!s.enabled);
        s.validate().unwrap();
    }

    #[test]
    fn errors_name_the_field_and_never_the_token() {
        on("123:abc_DEF-9").validate().unwrap();
        let err = on("123:abc/../x").validate().unwrap_err();
        assert!(err.contains("telegram.token") && !err.contains("abc"), "{err}");
        let err = on("").validate().unwrap_err();
        assert!(err.contains("telegram.token"), "{err}");
        let err = TelegramSettings { token_file: "/nonexistent/t".into(), ..on("") }.validate().unwrap_err();
        assert!(err.contains("telegram.token_file") && err.contains("/nonexistent/t"), "{err}");
        let err = TelegramSettings { token_file: "/x".into(), ..on("1:a") }.validate().unwrap_err();
        assert!(err.contains("not both"), "{err}");
        let err = TelegramSettings { chats: BTreeMap::new(), ..on("1:a") }.validate().unwrap_err();
        assert!(err.contains("telegram.chats"), "{err}");
        let chats = [("alice".to_string(), "alice".to_string())].into();
        let err = TelegramSettings { chats, ..on("1:a") }.validate().unwrap_err();
        assert!(err.contains("telegram.chats") && err.contains("'alice' is not a chat id"), "{err}");
        let err = TelegramSettings { api_base: "ftp://x".into(), ..on("1:a") }.validate().unwrap_err();
        assert!(err.contains("telegram.api_base"), "{err}");
        let err = TelegramSettings { poll_timeout_secs: 0, ..on("1:a") }.validate().unwrap_err();
        assert!(err.contains("telegram.poll_timeout_secs"), "{err}");
    }

    #[test]
    fn the_token_is_read_from_its_file_and_hidden_when_printed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "42:secretSECRET\n").unwrap();
        let s = TelegramSettings { token_file: file.display().to_string(), ..on("") };
        assert_eq!(s.read_token().unwrap(), "42:secretSECRET");
        let shown = on("42:secretSECRET");
        assert!(!format!("{shown:?}").contains("secret"));
        assert!(!toml::to_string(&shown).unwrap().contains("secret"));
        assert_eq!(shown.allowed_chats()[&12345], "alice");
    }
}
