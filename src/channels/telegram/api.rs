//! The Bot API over HTTPS (ureq, blocking: callers run it off the async runtime).
//!
//! Every URL carries the token (`/bot<token>/method`), so no URL, and no error that could
//! hold one, is ever formatted: errors name the method and what went wrong, and any text
//! from elsewhere passes through [`BotApi::scrub`].

use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::io::Read;
use std::time::Duration;

/// Why a Bot API call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BotError {
    /// No answer: the network, DNS, TLS or a timeout.
    #[error("{method}: cannot reach the Bot API: {reason}")]
    Network { method: &'static str, reason: String },
    /// Telegram answered with an error (`ok: false` or an HTTP error status).
    #[error("{method}: Telegram answered {status}: {description}")]
    Refused { method: &'static str, status: u16, description: String, retry_after: Option<u64> },
    /// An answer that is not what the Bot API sends.
    #[error("{method}: unexpected answer: {reason}")]
    Unexpected { method: &'static str, reason: String },
    /// A chat not in `telegram.chats`.
    #[error("chat {0} is not in telegram.chats")]
    NotAllowed(i64),
}

impl BotError {
    /// Worth trying again later (the network, Telegram's own trouble, too many requests),
    /// rather than a request Telegram will always refuse (a chat that blocked the bot).
    pub fn transient(&self) -> bool {
        match self {
            BotError::Network { .. } => true,
            BotError::Refused { status, .. } => *status == 429 || *status >= 500,
            BotError::Unexpected { .. } | BotError::NotAllowed(_) => false,
        }
    }

    /// How long Telegram asked us to wait (429 `retry_after`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            BotError::Refused { retry_after: Some(s), .. } => Some(Duration::from_secs(*s)),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            BotError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// One incoming update; kinds other than `message` are skipped.
#[derive(Debug, Clone, Deserialize)]
pub struct Update {
    pub update_id: i64,
    #[serde(default)]
    pub message: Option<Message>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    pub message_id: i64,
    pub chat: Chat,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub voice: Option<Voice>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Chat {
    pub id: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Voice {
    pub file_id: String,
    /// Seconds, as the sender's app measured.
    #[serde(default)]
    pub duration: u32,
    #[serde(default)]
    pub file_size: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct File {
    #[serde(default)]
    file_path: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Answer<T> {
    ok: bool,
    #[serde(default = "Option::default")]
    result: Option<T>,
    #[serde(default)]
    error_code: Option<u16>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Parameters>,
}

#[derive(Debug, Deserialize)]
struct Parameters {
    #[serde(default)]
    retry_after: Option<u64>,
}

/// Largest answer read from a method call.
const MAX_ANSWER_BYTES: u64 = 8 << 20;
/// Time for a call other than the long poll.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A Bot API client for one bot; clone freely (ureq's agent shares its connections).
#[derive(Clone)]
pub struct BotApi {
    agent: ureq::Agent,
    base: String,
    token: String,
}

impl BotApi {
    pub fn new(base: &str, token: String) -> BotApi {
        let agent = ureq::AgentBuilder::new().timeout_connect(Duration::from_secs(15)).build();
        BotApi { agent, base: base.trim_end_matches('/').to_string(), token }
    }

    /// `text` with the token blanked out, for anything that reaches a log.
    pub fn scrub(&self, text: &str) -> String {
        text.replace(&self.token, "<token>")
    }

    /// Long polling: updates from `offset` on (`None`: all Telegram keeps), waiting up to
    /// `timeout` for one to arrive. Confirms every update below `offset`.
    pub fn get_updates(&self, offset: Option<i64>, timeout: Duration) -> Result<Vec<Update>, BotError> {
        let mut body = serde_json::json!({ "timeout": timeout.as_secs(), "allowed_updates": ["message"] });
        if let Some(offset) = offset {
            body["offset"] = offset.into();
        }
        self.call("getUpdates", &body, timeout + Duration::from_secs(15))
    }

    /// Sends plain text (no markup: whatever the model writes is shown as written).
    pub fn send_message(&self, chat_id: i64, text: &str) -> Result<(), BotError> {
        let body = serde_json::json!({ "chat_id": chat_id, "text": text });
        self.call::<serde_json::Value>("sendMessage", &body, CALL_TIMEOUT).map(drop)
    }

    /// "typing…" in the chat for about five seconds.
    pub fn send_typing(&self, chat_id: i64) -> Result<(), BotError> {
        let body = serde_json::json!({ "chat_id": chat_id, "action": "typing" });
        self.call::<serde_json::Value>("sendChatAction", &body, CALL_TIMEOUT).map(drop)
    }

    /// Downloads a file (`getFile`, then `file/bot<token>/<path>`), refusing more than
    /// `max_bytes`.
    pub fn download(&self, file_id: &str, max_bytes: usize) -> Result<Vec<u8>, BotError> {
        let file: File = self.call("getFile", &serde_json::json!({ "file_id": file_id }), CALL_TIMEOUT)?;
        let unexpected = |reason: String| BotError::Unexpected { method: "file download", reason };
        let path = file.file_path.ok_or_else(|| unexpected("getFile gave no file_path".into()))?;
        if path.contains("..") || path.starts_with('/') || path.contains(['?', '#']) {
            return Err(unexpected("getFile gave a strange file_path".into()));
        }
        let url = format!("{}/file/bot{}/{path}", self.base, self.token);
        let response =
            self.agent.get(&url).timeout(CALL_TIMEOUT).call().map_err(|e| self.error("file download", e))?;
        let mut bytes = Vec::new();
        response
            .into_reader()
            .take(max_bytes as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| BotError::Network { method: "file download", reason: self.scrub(&e.to_string()) })?;
        if bytes.len() > max_bytes {
            return Err(unexpected(format!("the file is larger than {max_bytes} bytes")));
        }
        Ok(bytes)
    }

    /// Sends an OGG/Opus voice message.
    pub fn send_voice(&self, chat_id: i64, ogg: &[u8]) -> Result<(), BotError> {
        let boundary = format!("hearth-{:016x}", rand::random::<u64>());
        let mut body = Vec::with_capacity(ogg.len() + 512);
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"chat_id\"\r\n\r\n{chat_id}\r\n\
                 --{boundary}\r\nContent-Disposition: form-data; name=\"voice\"; filename=\"reply.ogg\"\r\n\
                 Content-Type: audio/ogg\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(ogg);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let request = self
            .agent
            .post(&self.url("sendVoice"))
            .timeout(CALL_TIMEOUT)
            .set("Content-Type", &format!("multipart/form-data; boundary={boundary}"));
        let answer = request.send_bytes(&body);
        self.answer::<serde_json::Value>("sendVoice", answer).map(drop)
    }

    fn url(&self, method: &str) -> String {
        format!("{}/bot{}/{method}", self.base, self.token)
    }

    fn call<T: DeserializeOwned>(
        &self,
        method: &'static str,
        body: &serde_json::Value,
        timeout: Duration,
    ) -> Result<T, BotError> {
        let answer = self.agent.post(&self.url(method)).timeout(timeout).send_json(body);
        self.answer(method, answer)
    }

    /// Reads `{"ok": true, "result": ...}`, or Telegram's error with its code and advice.
    fn answer<T: DeserializeOwned>(
        &self,
        method: &'static str,
        answer: Result<ureq::Response, ureq::Error>,
    ) -> Result<T, BotError> {
        let (status, response) = match answer {
            Ok(response) => (response.status(), response),
            Err(ureq::Error::Status(status, response)) => (status, response),
            Err(e) => return Err(self.error(method, e)),
        };
        let mut text = String::new();
        response
            .into_reader()
            .take(MAX_ANSWER_BYTES)
            .read_to_string(&mut text)
            .map_err(|e| BotError::Network { method, reason: self.scrub(&e.to_string()) })?;
        let refused = |description: String, retry_after| BotError::Refused {
            method,
            status,
            description: self.scrub(&description),
            retry_after,
        };
        let parsed: Answer<T> = match serde_json::from_str(&text) {
            Ok(parsed) => parsed,
            Err(_) if status >= 400 => return Err(refused(format!("HTTP {status}"), None)),
            Err(e) => {
                return Err(BotError::Unexpected { method, reason: format!("not the Bot API's JSON: {e}") })
            }
        };
        match parsed {
            Answer { ok: true, result: Some(result), .. } if status < 400 => Ok(result),
            Answer { ok: true, .. } if status < 400 => {
                Err(BotError::Unexpected { method, reason: "an answer without a result".into() })
            }
            Answer { error_code, description, parameters, .. } => Err(BotError::Refused {
                method,
                status: error_code.unwrap_or(status),
                description: self.scrub(&description.unwrap_or_else(|| format!("HTTP {status}"))),
                retry_after: parameters.and_then(|p| p.retry_after),
            }),
        }
    }

    /// A transport error without its URL (which holds the token).
    fn error(&self, method: &'static str, e: ureq::Error) -> BotError {
        match e {
            ureq::Error::Status(status, _) => {
                BotError::Refused { method, status, description: format!("HTTP {status}"), retry_after: None }
            }
            ureq::Error::Transport(t) => {
                let reason = match t.message() {
                    Some(message) => format!("{}: {}", t.kind(), self.scrub(message)),
                    None => t.kind().to_string(),
                };
                BotError::Network { method, reason }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_never_carry_the_token() {
        // Nothing listens on port 9 of localhost: a transport error, whose own text has the URL.
        let api = BotApi::new("http://127.0.0.1:9", "123:SECRETtoken".into());
        let err = api.send_message(1, "hi").unwrap_err();
        assert!(matches!(err, BotError::Network { method: "sendMessage", .. }), "{err}");
        assert!(err.transient());
        assert!(!format!("{err} {err:?}").contains("SECRETtoken"), "{err:?}");
        assert_eq!(api.scrub("GET /bot123:SECRETtoken/getMe"), "GET /bot<token>/getMe");
    }

    #[test]
    fn telegram_errors_are_read_with_their_advice() {
        let api = BotApi::new("http://x", "1:a".into());
        let answer = |status: u16, body: &str| {
            let response = ureq::Response::new(status, "x", body).unwrap();
            let answer =
                if status >= 400 { Err(ureq::Error::Status(status, response)) } else { Ok(response) };
            api.answer::<serde_json::Value>("getUpdates", answer)
        };
        let err = answer(
            429,
            r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 7","parameters":{"retry_after":7}}"#,
        )
        .unwrap_err();
        assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
        assert!(err.transient());
        let err = answer(409, r#"{"ok":false,"error_code":409,"description":"Conflict: terminated by other getUpdates request"}"#)
            .unwrap_err();
        assert_eq!(err.status(), Some(409));
        assert!(!err.transient());
        assert_eq!(answer(502, "<html>Bad Gateway</html>").unwrap_err().status(), Some(502));
        assert!(matches!(answer(200, "nope").unwrap_err(), BotError::Unexpected { .. }));
        assert_eq!(answer(200, r#"{"ok":true,"result":[]}"#).unwrap(), serde_json::json!([]));
    }
}
