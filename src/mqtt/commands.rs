//! Commands over MQTT: a message on `<base_topic>/<device_id>/command/<name>` with a JSON
//! object as its payload (empty is `{}`), optionally with an `id` (a string or a number)
//! that the result repeats. Who may publish there is the broker's to decide (its
//! passwords and ACL); which commands run is the owner's (`[mqtt] commands`, empty by
//! default). Each outcome goes to `<base_topic>/<device_id>/result`:
//!
//! ```json
//! {"id": 7, "command": "load_model", "status": "ok", "result": {"model": "...", "loaded": true}}
//! {"id": 8, "command": "announce", "status": "error", "error": {"code": "command_not_allowed", "message": "..."}}
//! ```
//!
//! Parsing and the allowlist are here (pure, unit-tested), and the [`Runner`] that takes
//! the commands one at a time; the work is `control/`'s.

use crate::config::MQTT_COMMANDS;
use crate::control::Control;
use crate::error::{ApiError, ErrorCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

/// Commands waiting for the one that runs; more are refused (`overloaded`).
const QUEUE: usize = 4;

/// What a command did, or why it did not run.
pub type Outcome = Result<Value, ApiError>;

/// The largest payload read; a bigger one is `bad_payload`.
pub const MAX_PAYLOAD_BYTES: usize = 8 * 1024;

/// A command the box understood and may run.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Announce { text: String },
    ReloadConfig,
    LoadModel { model: String },
    UnloadModel { model: String },
}

/// A message on the command topic, read: its name and `id` (for the result) and the
/// command, or why it is refused.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub name: String,
    pub id: Value,
    pub command: Result<Command, ApiError>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Announce {
    text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Model {
    model: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Nothing {}

/// Reads a command: `name` is the topic's last level. Unknown names are
/// `unknown_command`, names not in `allowed` `command_not_allowed` (before the payload is
/// looked at), payloads that are not a JSON object of the command's fields `bad_payload`.
/// A `retained` message (the broker's copy, sent on subscribing) is `bad_payload` too: it
/// would run again at every connection.
pub fn read(name: &str, payload: &[u8], retained: bool, allowed: &[String]) -> Request {
    let bad = |message: String| ApiError::new(ErrorCode::BadPayload, message);
    let (id, fields) = match object(payload) {
        Ok((id, fields)) => (id, Ok(fields)),
        Err(message) => (Value::Null, Err(bad(message))),
    };
    let command = if !MQTT_COMMANDS.contains(&name) {
        Err(ApiError::new(
            ErrorCode::UnknownCommand,
            format!("'{}' is not a command; known: {}", printable(name), MQTT_COMMANDS.join(", ")),
        ))
    } else if !allowed.iter().any(|a| a == name) {
        Err(ApiError::new(
            ErrorCode::CommandNotAllowed,
            format!("'{name}' is not in this box's [mqtt] commands; the owner may add it"),
        ))
    } else if retained {
        Err(bad("a retained command is not run (it would run again at every connection); \
                 publish it without retain, and clear the retained one"
            .into()))
    } else {
        fields.and_then(|fields| parse(name, fields).map_err(bad))
    };
    Request { name: printable(name), id, command }
}

/// The payload as a JSON object without its `id`, and the `id`.
fn object(payload: &[u8]) -> Result<(Value, Map<String, Value>), String> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(format!("the payload is {} bytes; at most {MAX_PAYLOAD_BYTES}", payload.len()));
    }
    let text = std::str::from_utf8(payload).map_err(|_| "the payload is not UTF-8".to_string())?;
    if text.trim().is_empty() {
        return Ok((Value::Null, Map::new()));
    }
    let mut fields = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(fields)) => fields,
        Ok(_) => return Err("the payload must be a JSON object".into()),
        Err(e) => return Err(format!("the payload is not JSON: {e}")),
    };
    let id = fields.remove("id").unwrap_or(Value::Null);
    match &id {
        Value::Null | Value::Number(_) => {}
        Value::String(s) if s.len() <= 128 => {}
        _ => return Err("id must be a number or a string of at most 128 bytes".into()),
    }
    Ok((id, fields))
}

fn parse(name: &str, fields: Map<String, Value>) -> Result<Command, String> {
    fn args<T: DeserializeOwned>(name: &str, fields: Map<String, Value>) -> Result<T, String> {
        serde_json::from_value(Value::Object(fields)).map_err(|e| format!("{name}: {e}"))
    }
    Ok(match name {
        "announce" => Command::Announce { text: args::<Announce>(name, fields)?.text },
        "reload_config" => {
            args::<Nothing>(name, fields)?;
            Command::ReloadConfig
        }
        "load_model" => Command::LoadModel { model: args::<Model>(name, fields)?.model },
        "unload_model" => Command::UnloadModel { model: args::<Model>(name, fields)?.model },
        other => return Err(format!("'{other}' is not a command")),
    })
}

/// A topic level as it may be shown: at most 64 characters, nothing unprintable.
fn printable(name: &str) -> String {
    name.chars().take(64).map(|c| if c.is_control() { '?' } else { c }).collect()
}

/// Runs a command.
pub async fn run(control: &Control, command: Command) -> Outcome {
    match command {
        Command::Announce { text } => control.announce(&text, "mqtt"),
        Command::ReloadConfig => {
            let reloaded = control.reload_config().await?;
            serde_json::to_value(reloaded).map_err(|e| ApiError::internal(e.to_string()))
        }
        Command::LoadModel { model } => control.load_model(&model).await,
        Command::UnloadModel { model } => control.unload_model(&model),
    }
}

/// Runs commands one at a time, in the order they came, on a task of the MQTT thread's
/// runtime; the task ends when this is dropped.
pub struct Runner {
    jobs: mpsc::Sender<(Request, Command)>,
    done: mpsc::Receiver<(Request, Outcome)>,
    worker: tokio::task::JoinHandle<()>,
}

impl Runner {
    /// Starts the task (on the current runtime).
    pub fn start(control: Control) -> Runner {
        let (jobs, mut queue) = mpsc::channel::<(Request, Command)>(QUEUE);
        let (tell, done) = mpsc::channel(QUEUE + 1);
        let worker = tokio::spawn(async move {
            while let Some((request, command)) = queue.recv().await {
                // A command that panicked is answered and logged; the next ones still run.
                let running = std::panic::AssertUnwindSafe(run(&control, command));
                let outcome = futures_util::FutureExt::catch_unwind(running).await.unwrap_or_else(|_| {
                    tracing::error!(command = %request.name, "an MQTT command panicked");
                    Err(ApiError::internal("the command failed unexpectedly; see the log"))
                });
                if tell.send((request, outcome)).await.is_err() {
                    return;
                }
            }
        });
        Runner { jobs, done, worker }
    }

    /// Queues a request that may run; what to answer at once for one that cannot (refused
    /// by [`read`], or the queue is full: `overloaded`).
    pub fn submit(&self, request: Request) -> Option<(Request, Outcome)> {
        let command = match request.command.clone() {
            Ok(command) => command,
            Err(refused) => return Some((request, Err(refused))),
        };
        match self.jobs.try_send((request, command)) {
            Ok(()) => None,
            Err(
                mpsc::error::TrySendError::Full((request, _))
                | mpsc::error::TrySendError::Closed((request, _)),
            ) => {
                let busy = ApiError::new(ErrorCode::Overloaded, "commands are still running; retry shortly");
                Some((request, Err(busy)))
            }
        }
    }

    /// The next command that finished.
    pub async fn next(&mut self) -> Option<(Request, Outcome)> {
        self.done.recv().await
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.worker.abort();
    }
}

/// The result message for a request.
pub fn result(request: &Request, outcome: &Outcome) -> Value {
    match outcome {
        Ok(result) => json!({"id": request.id, "command": request.name, "status": "ok", "result": result}),
        Err(e) => json!({
            "id": request.id, "command": request.name, "status": "error",
            "error": {"code": e.code.code(), "message": e.message},
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<String> {
        MQTT_COMMANDS.iter().map(|c| c.to_string()).collect()
    }

    fn code(r: &Request) -> &'static str {
        r.command.as_ref().unwrap_err().code.code()
    }

    #[test]
    fn commands_read_with_their_id() {
        let r = read("announce", br#"{"id": "a1", "text": "Dinner"}"#, false, &all());
        assert_eq!((r.id, r.command), (json!("a1"), Ok(Command::Announce { text: "Dinner".into() })));
        let r = read("reload_config", b"", false, &all());
        assert_eq!((r.id, r.command), (Value::Null, Ok(Command::ReloadConfig)));
        let r = read("load_model", br#"{"id": 3, "model": "m"}"#, false, &all());
        assert_eq!((r.id, r.command), (json!(3), Ok(Command::LoadModel { model: "m".into() })));
        assert_eq!(
            read("unload_model", br#"{"model": "m"}"#, false, &all()).command,
            Ok(Command::UnloadModel { model: "m".into() })
        );
    }

    #[test]
    fn the_allowlist_comes_first_then_the_payload() {
        let only_announce = vec!["announce".to_string()];
        let r = read("load_model", b"not json", false, &only_announce);
        assert_eq!(code(&r), "command_not_allowed");
        assert_eq!(code(&read("announce", br#"{"text": "x"}"#, false, &[])), "command_not_allowed");
        assert_eq!(code(&read("reboot", b"{}", false, &all())), "unknown_command");
        for bad in [
            &b"not json"[..],
            b"[1]",
            b"{\"text\": 5}",
            b"{}",
            b"{\"text\": \"x\", \"extra\": 1}",
            b"{\"id\": [1], \"text\": \"x\"}",
            b"\xff",
        ] {
            assert_eq!(code(&read("announce", bad, false, &only_announce)), "bad_payload", "{bad:?}");
        }
        let big = format!(r#"{{"text": "{}"}}"#, "a".repeat(MAX_PAYLOAD_BYTES));
        assert_eq!(code(&read("announce", big.as_bytes(), false, &only_announce)), "bad_payload");
        assert_eq!(code(&read("reload_config", b"{\"now\": true}", false, &all())), "bad_payload");
        assert_eq!(code(&read("reload_config", b"{}", true, &all())), "bad_payload", "retained");
    }

    #[test]
    fn results_say_ok_or_the_error_code() {
        let r = read("announce", br#"{"id": 9, "text": "x"}"#, false, &[]);
        let out = result(&r, &r.command.clone().map(|_| json!({})));
        assert_eq!(out["status"], "error");
        assert_eq!(
            (out["id"].clone(), out["error"]["code"].clone()),
            (json!(9), json!("command_not_allowed"))
        );
        let out = result(&r, &Ok(json!({"announced": true})));
        assert_eq!((out["status"].as_str(), out["command"].as_str()), (Some("ok"), Some("announce")));
    }
}
