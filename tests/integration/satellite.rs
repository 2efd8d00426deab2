//! Voice satellites as a user's channel (issue 23). With `voice.wyoming_user`, a Wyoming
//! `handle` turn (driven by the official `wyoming` Python client, as Home Assistant drives
//! it) is that user's: stored in a conversation, with their timer skills. A timer set
//! there rings on the satellite through a fake Home Assistant started here
//! (`assist_satellite.announce` with the right path, body and token); when Home Assistant
//! fails, the reminder still reaches the web UI's event stream and the failure is logged
//! without the token. An unknown `wyoming_user` stops the start with a clear error.

use crate::common::{create_user, default_model, small_model, Server, ServerOptions, BIN};
use crate::outbound::{Fake, Seen};
use crate::reminders::{messages, Events};
use serde_json::{json, Value};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) const HA_TOKEN: &str = "llat-satellite-token-456";
pub(crate) const KITCHEN: &str = "assist_satellite.kitchen";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A fake Home Assistant: `announce` answers `[]`, or 500 while `failing` is set.
pub(crate) fn fake_home_assistant(failing: Arc<AtomicBool>) -> Fake {
    Fake::start("127.0.0.1:0", move |seen| match (seen.method.as_str(), seen.path.as_str()) {
        ("POST", "/api/services/assist_satellite/announce") if failing.load(Ordering::SeqCst) => {
            ("500 Internal Server Error".into(), "Server got itself in trouble".into())
        }
        ("POST", "/api/services/assist_satellite/announce") => ("200 OK".into(), "[]".into()),
        _ => ("404 Not Found".into(), "{}".into()),
    })
}

/// The settings that make `alice` the satellites' user, announced on the kitchen
/// satellite through `ha`.
pub(crate) fn satellite_options(options: ServerOptions, ha: &Fake) -> ServerOptions {
    options
        .env("HEARTH_WYOMING_USER", "alice")
        .env("HEARTH_HOME_ASSISTANT_URL", &format!("http://127.0.0.1:{}", ha.port))
        .env("HEARTH_HOME_ASSISTANT_TOKEN", HA_TOKEN)
        .env("HEARTH_HOME_ASSISTANT_ANNOUNCE_ENTITY", KITCHEN)
}

/// Checks an announcement as Home Assistant received it.
pub(crate) fn assert_announced(seen: &Seen, message: &str) {
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("POST", "/api/services/assist_satellite/announce")
    );
    assert_eq!(seen.header("Authorization"), Some(format!("Bearer {HA_TOKEN}").as_str()));
    assert_eq!(seen.header("Content-Type"), Some("application/json"));
    let body: Value = serde_json::from_str(&seen.body).unwrap();
    assert_eq!(body, json!({"entity_id": KITCHEN, "message": message}));
}

/// Each text as a transcript for the Wyoming handler, on one connection; the answers.
fn handle(port: u16, texts: &[&str]) -> Vec<Value> {
    let python = crate::voice_pipeline::python();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/wyoming_handle.py");
    let out =
        Command::new(python).arg(script).args(["127.0.0.1", &port.to_string()]).args(texts).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "wyoming client failed:\n{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
    report["handled"].as_array().unwrap().clone()
}

/// Alice's one conversation's id.
fn only_conversation(server: &Server, token: &str) -> String {
    let (status, list) = server.call("GET", "/api/conversations", Some(token), None);
    assert_eq!(status, 200, "{list}");
    let all = list["conversations"].as_array().unwrap();
    assert_eq!(all.len(), 1, "{list}");
    all[0]["id"].as_str().unwrap().to_string()
}

/// A server whose satellites are alice's, announced through `ha`, on the default model at
/// temperature 0; alice's token, the Wyoming port, and alice's web UI event stream, open.
fn satellite_server(ha: &Fake) -> (Server, String, u16, Events, tempfile::TempDir) {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let alice = create_user(&data, "alice");
    let port = free_port();
    let options = ServerOptions::new(default_model())
        .env("HEARTH_TEMPERATURE", "0")
        .env("HEARTH_MAX_TOKENS", "80")
        .env("HEARTH_WYOMING_LISTEN", &format!("127.0.0.1:{port}"));
    let server = Server::start_in(&data, satellite_options(options, ha));
    // The web UI is open: it tells every reminder of alice's too.
    let (events, missed) = Events::open(&server, &alice);
    assert!(missed.is_empty(), "{missed:?}");
    (server, alice, port, events, temp)
}

/// Asks for a timer over Wyoming; checks the turn is alice's, stored with the skill's
/// call; returns the conversation's id.
fn set_timer_by_satellite(server: &Server, alice: &str, port: u16, asked: &str) -> String {
    let answers = handle(port, &[asked]);
    let answer = answers[0].as_str().unwrap_or_default();
    assert!(!answer.trim().is_empty(), "{answers:?}\n{}", server.log());
    let conversation = only_conversation(server, alice);
    let (status, body) = server.call("GET", &format!("/api/conversations/{conversation}"), Some(alice), None);
    assert_eq!(status, 200, "{body}");
    let stored = body["messages"].as_array().unwrap();
    assert_eq!(stored[0]["content"], asked, "{body}");
    assert_eq!(stored[1]["content"].as_str(), Some(answer), "{body}");
    let calls = stored[1]["tool_calls"].as_array().unwrap_or_else(|| panic!("no tool call: {body}"));
    assert_eq!((&calls[0]["name"], &calls[0]["ok"]), (&json!("set_timer"), &json!(true)), "{body}");
    conversation
}

/// Waits until the reminder's text is written into the conversation.
fn wait_written(server: &Server, alice: &str, conversation: &str, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !messages(server, alice, conversation).iter().any(|m| m == text) {
        assert!(Instant::now() < deadline, "{:?}", messages(server, alice, conversation));
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_timer_set_on_a_satellite_rings_there_through_home_assistant() {
    let ha = fake_home_assistant(Default::default());
    let (server, alice, port, mut events, _temp) = satellite_server(&ha);
    let conversation = set_timer_by_satellite(&server, &alice, port, "Set a timer for 5 seconds.");

    // It rings on the kitchen satellite through Home Assistant, and in the web UI.
    let seen =
        ha.next_within(Duration::from_secs(60)).unwrap_or_else(|| panic!("no announce\n{}", server.log()));
    assert_announced(&seen, "Your timer for 5 seconds is done.");
    let told = events.next();
    assert_eq!(told["text"], "Your timer for 5 seconds is done.", "{told}");
    assert_eq!(told["reminder"]["channel"], "satellite", "{told}");
    // It is written into the satellite's conversation, and told only once.
    wait_written(&server, &alice, &conversation, "Your timer for 5 seconds is done.");
    let (_, missed) = Events::open(&server, &alice);
    assert!(missed.is_empty(), "announced and shown: nothing left to tell {missed:?}");
    assert!(ha.saw_nothing());
    assert!(!server.log().contains(HA_TOKEN), "the token is never logged");
}

#[test]
fn when_home_assistant_fails_a_satellite_timer_still_reaches_the_web_ui() {
    let ha = fake_home_assistant(Arc::new(AtomicBool::new(true)));
    let (server, alice, port, mut events, _temp) = satellite_server(&ha);
    // The same words as above: at temperature 0 the default model set "3 seconds" as 3 minutes.
    let conversation = set_timer_by_satellite(&server, &alice, port, "Set a timer for 5 seconds.");
    let seen =
        ha.next_within(Duration::from_secs(60)).unwrap_or_else(|| panic!("no announce\n{}", server.log()));
    assert_announced(&seen, "Your timer for 5 seconds is done.");
    let told = events.next();
    assert_eq!(told["text"], "Your timer for 5 seconds is done.", "{told}");
    wait_written(&server, &alice, &conversation, "Your timer for 5 seconds is done.");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.log().contains("could not be announced") {
        assert!(Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = server.log();
    assert!(log.contains("Home Assistant answered HTTP 500"), "{log}");
    assert!(!log.contains(HA_TOKEN), "the token is never logged");
}

/// A phrase said to a satellite runs its owner's workflow (no model involved): its reply is
/// the satellite's answer, stored in the satellite's conversation, and the timer its skill
/// step sets rings on the satellite, as one the model set would.
#[test]
fn a_phrase_said_to_a_satellite_runs_its_workflow_and_its_timer_rings_there() {
    const EGGS: &str = "\
name: eggs
owner: alice
trigger: { phrase: boil the eggs }
steps:
  - id: timer
    skill: set_timer
    args: { duration: 2 seconds, label: eggs }
  - reply: \"Eggs on. {{ steps.timer.output }}\"
";
    let ha = fake_home_assistant(Default::default());
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let workflows = temp.path().join("workflows");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&workflows).unwrap();
    std::fs::write(workflows.join("eggs.yaml"), EGGS).unwrap();
    let alice = create_user(&data, "alice");
    let port = free_port();
    let options = ServerOptions::new(small_model())
        .env("HEARTH_WORKFLOWS_DIR", workflows.to_str().unwrap())
        .env("HEARTH_WYOMING_LISTEN", &format!("127.0.0.1:{port}"));
    let server = Server::start_in(&data, satellite_options(options, &ha));

    let answers = handle(port, &["Please boil the eggs."]);
    let answer = answers[0].as_str().unwrap_or_default().to_string();
    assert!(answer.starts_with("Eggs on. Timer set for 2 seconds; it rings at "), "{answers:?}");
    // The satellite's conversation, beside the run's summary ("Workflow: eggs").
    let (_, list) = server.call("GET", "/api/conversations", Some(&alice), None);
    let titled =
        |title: &str| list["conversations"].as_array().unwrap().iter().find(|c| c["title"] == title).cloned();
    assert!(titled("Workflow: eggs").is_some(), "{list}");
    let conversation = titled("Please boil the eggs.").unwrap_or_else(|| panic!("{list}"))["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(messages(&server, &alice, &conversation)[..2], ["Please boil the eggs.".to_string(), answer]);
    let seen =
        ha.next_within(Duration::from_secs(30)).unwrap_or_else(|| panic!("no announce\n{}", server.log()));
    assert_announced(&seen, "Your timer for eggs (2 seconds) is done.");
    wait_written(&server, &alice, &conversation, "Your timer for eggs (2 seconds) is done.");
}

#[test]
fn an_unknown_satellite_user_stops_the_start_with_a_clear_error() {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port()), "--data-dir"])
        .arg(data.path())
        .arg("--model")
        .arg(small_model())
        .env("HEARTH_CONFIG", "/dev/null")
        .env("HEARTH_TLS_MODE", "off")
        .env("HEARTH_HTTP_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("HEARTH_WYOMING_USER", "nobody")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("hearth serve did not stop for an unknown voice.wyoming_user");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!status.success());
    assert!(said.contains("voice.wyoming_user: there is no user named 'nobody'"), "{said}");
}
