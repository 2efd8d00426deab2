//! `hearth chat`: a terminal chat, either with a running service (`--url`, history
//! kept by the service) or in-process (loads the model here and answers with the
//! assistant's turns; history lives only for the session).

use super::ModelArgs;
use crate::assistant::{Assistant, Conversation, Event, Turn, Who};
use crate::config::{Loaded, Settings};
use crate::engine::{ChatMessage, ModelState, Registry};
use crate::telemetry::Metrics;
use anyhow::{bail, Context};
use clap::Args;
use std::io::{BufRead, Write};
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct ChatArgs {
    /// Send this one message, print the reply and exit (otherwise: interactive).
    message: Option<String>,

    /// URL of a running service, e.g. http://127.0.0.1:8080 [env: HEARTH_URL].
    /// Without it the model is loaded in this process.
    #[arg(long, env = "HEARTH_URL", value_name = "URL")]
    url: Option<String>,

    /// API token for --url [env: HEARTH_TOKEN]
    #[arg(long, env = "HEARTH_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    token: Option<String>,

    /// Continue this conversation (with --url).
    #[arg(long, value_name = "ID")]
    conversation: Option<String>,

    #[command(flatten)]
    pub model: ModelArgs,
}

impl ChatArgs {
    /// Without --url the model runs here, with the data dir's disk cache.
    pub fn in_process(&self) -> bool {
        self.url.is_none()
    }
}

/// One way of getting replies; prints tokens as they arrive and returns the reply.
trait Backend {
    fn send(&mut self, message: &str, out: &mut dyn Write) -> anyhow::Result<String>;
}

pub fn run(args: ChatArgs, loaded: Loaded) -> anyhow::Result<()> {
    let mut backend: Box<dyn Backend> = match &args.url {
        Some(url) => {
            let token = args.token.clone().context("--url needs --token (or HEARTH_TOKEN)")?;
            Box::new(Remote {
                url: format!("{}/api/chat", url.trim_end_matches('/')),
                token,
                conversation: args.conversation.clone(),
                agent: crate::tls::client::agent(&loaded.settings),
            })
        }
        None => Box::new(Local::start(loaded.settings)?),
    };
    let stdout = std::io::stdout();
    if let Some(message) = &args.message {
        backend.send(message, &mut stdout.lock())?;
        println!();
        return Ok(());
    }
    eprintln!("Type a message and press Enter. Ctrl-D to quit.");
    let stdin = std::io::stdin();
    loop {
        eprint!("> ");
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            eprintln!();
            return Ok(());
        }
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match backend.send(line, &mut stdout.lock()) {
            Ok(_) => println!("\n"),
            Err(e) => eprintln!("\nerror: {e:#}\n"),
        }
    }
}

/// Chat through a running service's `/api/chat` SSE stream.
struct Remote {
    url: String,
    token: String,
    conversation: Option<String>,
    /// Trusts the box's local CA besides the system's roots.
    agent: ureq::Agent,
}

impl Backend for Remote {
    fn send(&mut self, message: &str, out: &mut dyn Write) -> anyhow::Result<String> {
        let body = serde_json::json!({
            "message": message, "conversation_id": self.conversation, "stream": true,
        });
        let response = match self
            .agent
            .post(&self.url)
            .set("Authorization", &format!("Bearer {}", self.token))
            .send_json(body)
        {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                let text = r.into_string().unwrap_or_default();
                bail!("the service answered {code}: {text}");
            }
            Err(e) if e.to_string().contains("certificate") => bail!(
                "cannot reach {}: {e} (on the box, --data-dir or --config lets hearth trust its own CA; \
                 elsewhere install the box's /ca.crt)",
                self.url
            ),
            Err(e) => bail!("cannot reach {}: {e}", self.url),
        };
        let mut reply = String::new();
        let mut event = String::new();
        for line in std::io::BufReader::new(response.into_reader()).lines() {
            let line = line?;
            if let Some(name) = line.strip_prefix("event: ") {
                event = name.to_string();
            } else if let Some(data) = line.strip_prefix("data: ") {
                let value: serde_json::Value = serde_json::from_str(data)?;
                match event.as_str() {
                    "token" => {
                        let text = value["text"].as_str().unwrap_or_default();
                        reply.push_str(text);
                        write!(out, "{text}")?;
                        out.flush()?;
                    }
                    "done" => {
                        self.conversation = value["conversation_id"].as_str().map(str::to_owned);
                        return Ok(reply);
                    }
                    "error" => bail!("{}", value["error"]["message"].as_str().unwrap_or(data)),
                    _ => {}
                }
            }
        }
        bail!("the stream ended before the reply was complete")
    }
}

/// Chat with a model loaded in this process: each message is an ephemeral turn of the
/// assistant, for the console, carrying the session's history.
struct Local {
    assistant: Assistant,
    /// Runs the turns (the engine itself has its own thread).
    runtime: tokio::runtime::Runtime,
    /// The session so far, without the system prompt (the assistant adds it).
    history: Vec<ChatMessage>,
}

impl Local {
    fn start(settings: Settings) -> anyhow::Result<Local> {
        let settings = Arc::new(settings);
        let path = crate::models::resolve_model_path(&settings.model.path, &settings.storage.data_dir)
            .map_err(anyhow::Error::msg)?;
        let models = Registry::start(settings.clone(), Ok(path.clone()), Metrics::new());
        let engine = models.default_engine();
        let state = loop {
            match engine.state() {
                ModelState::Loading { progress, .. } => {
                    let filled = (progress * 30.0).round() as usize;
                    eprint!(
                        "\rLoading {} [{:<30}] {:>3.0}%",
                        path.display(),
                        "#".repeat(filled),
                        progress * 100.0
                    );
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                settled => break settled,
            }
        };
        eprintln!();
        match state {
            ModelState::Ready(info) => eprintln!("Model {} ready ({:.1} s).", info.id, info.load_seconds),
            ModelState::Failed { error, .. } => bail!("{error}"),
            ModelState::Loading { .. } => unreachable!("the loop ends when loading does"),
        }
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let skills = crate::skills::Skills::built_in(
            &settings.skills.enabled,
            std::time::Duration::from_secs(settings.skills.timeout_secs),
            None,
            None,
        )
        .with_configured(&settings)
        .map_err(anyhow::Error::msg)?;
        Ok(Local {
            assistant: Assistant::new(settings, models).with_skills(skills),
            runtime,
            history: Vec::new(),
        })
    }
}

impl Backend for Local {
    fn send(&mut self, message: &str, out: &mut dyn Write) -> anyhow::Result<String> {
        let mut messages = self.history.clone();
        messages.push(ChatMessage::new("user", message));
        let conversation = Conversation::Ephemeral { messages: messages.clone() };
        let turn = Turn {
            knowledge: Some(false),
            skills: true,
            channel: crate::notices::Channel::Console,
            ..Turn::new(Who::CONSOLE, conversation)
        };
        let assistant = &self.assistant;
        let outcome = self.runtime.block_on(async {
            let mut running = assistant.prepare(turn).await?.run().await?;
            loop {
                match running.next().await {
                    Some(Event::Token(t)) => {
                        write!(out, "{t}")?;
                        out.flush()?;
                    }
                    // What the assistant looked up, on stderr: stdout is the reply.
                    Some(Event::ToolCall(call)) => eprintln!("[{} {}]", call.name, call.arguments),
                    Some(Event::ToolResult(run)) if !run.ok => {
                        eprintln!("[{} failed: {}]", run.name, run.result)
                    }
                    Some(Event::ToolResult(_)) => {}
                    Some(Event::Complete(complete)) => return Ok(complete.persist().await?),
                    Some(Event::Error(e)) => return Err(anyhow::Error::from(e)),
                    None => bail!("the engine stopped"),
                }
            }
        })?;
        messages.push(ChatMessage::new("assistant", outcome.text.clone()));
        self.history = messages;
        Ok(outcome.text)
    }
}
