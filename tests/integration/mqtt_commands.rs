//! MQTT commands (issue 24) through a real mosquitto with a password file: a command not
//! in `[mqtt] commands` is refused with a result and has no effect; malformed payloads get
//! `bad_payload` and the box keeps answering; `load_model` and `unload_model` change what
//! `/api/health` reports (a model beyond the memory is refused); `reload_config` rejects a broken file (nothing changes) and then
//! applies a new interval and allowlist (Home Assistant's command entities follow), after
//! which `announce` reaches the web UI's
//! `/api/events`; an announcement is spoken on voice connections and on the satellites.

use crate::common::{create_user, small_model, Server, ServerOptions};
use crate::mqtt::{chat, Broker, Subscriber, PASSWORD};
use crate::reminders::{read_turn_until, Events};
use crate::satellite::{assert_announced, fake_home_assistant, satellite_options};
use crate::voice_pipeline::connect;
use serde_json::{json, Value};
use std::time::Duration;

const RESULT: &str = "hearth/testbox/result";
const DISCOVERY: &str = "homeassistant/device/testbox/config";
const STATE: &str = "hearth/testbox/state";

fn command(broker: &Broker, name: &str, payload: &str) {
    broker.publish(&format!("hearth/testbox/command/{name}"), payload);
}

/// The result whose `id` is `id`, waiting for it.
fn result(sub: &Subscriber, server: &Server, id: Value) -> Value {
    let what = format!("the result of command {id}");
    let got = sub.wait(server, RESULT, &what, |m| m.iter().any(|m| m.json()["id"] == id));
    got.into_iter().map(|m| m.json()).find(|r| r["id"] == id).unwrap()
}

fn error_code(result: &Value) -> &str {
    assert_eq!(result["status"], "error", "{result}");
    result["error"]["code"].as_str().unwrap()
}

fn loaded_models(server: &Server) -> Vec<(String, String)> {
    let health = server.health().unwrap();
    health["components"]["models"]
        .as_array()
        .or_else(|| health["models"].as_array())
        .unwrap_or_else(|| panic!("no models in /api/health: {health}"))
        .iter()
        .map(|m| (m["id"].as_str().unwrap().to_string(), m["state"].as_str().unwrap().to_string()))
        .collect()
}

fn config(allowed: &[&str], extra: &str) -> String {
    let list: Vec<String> = allowed.iter().map(|c| format!("\"{c}\"")).collect();
    format!("[mqtt]\ncommands = [{}]\n{extra}", list.join(", "))
}

#[test]
fn commands_are_allowlisted_answered_and_act_on_the_box() {
    let broker = Broker::start(false);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hearth.toml");
    // State once an hour: the reload below makes it every second.
    let hourly = config(&["reload_config", "load_model", "unload_model"], "interval_secs = 3600\n");
    std::fs::write(&file, hourly).unwrap();
    // A command left retained on the broker reaches hearth when it subscribes: not run.
    let retained = ["-t", "hearth/testbox/command/reload_config", "-m", r#"{"id": "old"}"#, "-q", "1", "-r"];
    let ok = std::process::Command::new("mosquitto_pub").args(broker.client_args()).args(retained).status();
    assert!(ok.unwrap().success());
    let sub = Subscriber::start(&broker);
    let options = broker.connect(ServerOptions::new(small_model()));
    let server = Server::start(options.env("HEARTH_CONFIG", &file.display().to_string()));
    let token = server.user("alice");
    sub.wait(&server, STATE, "a state message", |m| !m.is_empty());
    let (mut events, _) = Events::open(&server, &token);
    let old = result(&sub, &server, json!("old"));
    assert_eq!(error_code(&old), "bad_payload", "{old}");
    assert!(old["error"]["message"].as_str().unwrap().contains("retained"), "{old}");

    // Not in the allowlist: refused, with the id, and nothing is said.
    command(&broker, "announce", r#"{"id": 1, "text": "NOT-TO-BE-SAID"}"#);
    let refused = result(&sub, &server, json!(1));
    assert_eq!(error_code(&refused), "command_not_allowed", "{refused}");
    assert_eq!(refused["command"], "announce");
    command(&broker, "reboot", r#"{"id": 2}"#);
    assert_eq!(error_code(&result(&sub, &server, json!(2))), "unknown_command");

    // Malformed payloads: bad_payload, and the box keeps answering.
    command(&broker, "load_model", "{not json");
    let no_id = |m: &crate::mqtt::Message| m.json()["id"].is_null();
    let bad = sub.wait(&server, RESULT, "a result without an id", |m| m.iter().any(no_id));
    assert_eq!(error_code(&bad.into_iter().find(no_id).unwrap().json()), "bad_payload");
    command(&broker, "load_model", r#"{"id": 3, "model": 42}"#);
    assert_eq!(error_code(&result(&sub, &server, json!(3))), "bad_payload");
    command(&broker, "load_model", r#"{"id": "x4", "name": "spare"}"#);
    assert_eq!(error_code(&result(&sub, &server, json!("x4"))), "bad_payload");
    chat(&server, &token);

    // Load and unload a second model; the configured one stays.
    command(&broker, "load_model", r#"{"id": 5, "model": "no-such-model"}"#);
    assert_eq!(error_code(&result(&sub, &server, json!(5))), "unknown_model");
    let models = server.data_dir.join("models");
    std::fs::create_dir_all(&models).unwrap();
    std::os::unix::fs::symlink(small_model(), models.join("spare.gguf")).unwrap();
    assert!(!loaded_models(&server).iter().any(|(id, _)| id == "spare"));
    command(&broker, "load_model", r#"{"id": 6, "model": "spare"}"#);
    let loaded = result(&sub, &server, json!(6));
    assert_eq!(loaded["status"], "ok", "{loaded}");
    assert_eq!(
        (loaded["result"]["loaded"].as_bool(), loaded["result"]["already"].as_bool()),
        (Some(true), Some(false))
    );
    assert!(
        loaded_models(&server).contains(&("spare".into(), "ready".into())),
        "{:?}",
        loaded_models(&server)
    );
    command(&broker, "unload_model", r#"{"id": 7, "model": "spare"}"#);
    let unloaded = result(&sub, &server, json!(7));
    assert_eq!(
        (unloaded["status"].as_str(), unloaded["result"]["unloaded"].as_bool()),
        (Some("ok"), Some(true))
    );
    assert!(!loaded_models(&server).iter().any(|(id, _)| id == "spare"), "{:?}", loaded_models(&server));
    command(&broker, "unload_model", r#"{"id": 8, "model": "default"}"#);
    assert_eq!(error_code(&result(&sub, &server, json!(8))), "bad_payload");
    assert_eq!(loaded_models(&server)[0].1, "ready");
    // Through the registry's memory check: a sparse 2 TiB "model" is refused.
    std::fs::File::create(models.join("enormous.gguf")).unwrap().set_len(2 << 40).unwrap();
    command(&broker, "load_model", r#"{"id": "big", "model": "enormous"}"#);
    assert_eq!(error_code(&result(&sub, &server, json!("big"))), "insufficient_memory");
    command(&broker, "load_model", r#"{"id": "d", "model": "default"}"#);
    let default = result(&sub, &server, json!("d"));
    assert_eq!(
        (default["status"].as_str(), default["result"]["already"].as_bool()),
        (Some("ok"), Some(true))
    );

    // A broken file changes nothing, and the error does not quote the file's lines.
    std::fs::write(&file, "[mqtt]\ncommands = [\"announce\"\npassword = \"FILE-SECRET\"\n").unwrap();
    command(&broker, "reload_config", r#"{"id": 9}"#);
    let broken = result(&sub, &server, json!(9));
    assert_eq!(error_code(&broken), "invalid_config", "{broken}");
    assert!(!broken.to_string().contains("FILE-SECRET"), "{broken}");
    std::fs::write(&file, config(&["reload_config"], "[mqtt.unknown]\n")).unwrap();
    command(&broker, "reload_config", r#"{"id": 10}"#);
    assert_eq!(error_code(&result(&sub, &server, json!(10))), "invalid_config");
    command(&broker, "announce", r#"{"id": 11, "text": "STILL-NOT-SAID"}"#);
    assert_eq!(error_code(&result(&sub, &server, json!(11))), "command_not_allowed");

    // A good file: the allowlist applies at once; a key that needs a restart is named.
    let good =
        config(&["reload_config", "announce"], "interval_secs = 1\n[workflows]\nrun_timeout_secs = 77\n");
    std::fs::write(&file, good).unwrap();
    let states_before = sub.on(STATE).len();
    command(&broker, "reload_config", r#"{"id": 12}"#);
    let reloaded = result(&sub, &server, json!(12));
    assert_eq!(reloaded["status"], "ok", "{reloaded}");
    assert_eq!(reloaded["result"]["applied"], json!(["mqtt.commands", "mqtt.interval_secs"]), "{reloaded}");
    assert_eq!(reloaded["result"]["restart_required"], json!(["workflows.run_timeout_secs"]), "{reloaded}");
    assert!(reloaded["result"]["workflows"]["workflows"].is_number(), "{reloaded}");
    // Home Assistant is told: the device now has an Announce text entity and a Reload button.
    let configs = sub.wait(&server, DISCOVERY, "discovery with the command entities", |m| {
        m.iter().any(|m| m.json()["cmps"].get("announce").is_some())
    });
    let config = configs.iter().map(|m| m.json()).find(|c| c["cmps"].get("announce").is_some()).unwrap();
    crate::mqtt::check_discovery(&config);
    assert_eq!(config["cmps"]["announce"]["p"], "text", "{config}");
    assert_eq!(config["cmps"]["reload_config"]["p"], "button", "{config}");
    assert!(config["cmps"].get("load_model").is_none(), "{config}");
    // The state now comes every second (it would not for an hour).
    sub.wait(&server, STATE, "state at the new interval", |m| m.len() >= states_before + 3);

    // Now announce is allowed: it reaches the web UI's event stream (and only it does).
    command(&broker, "announce", r#"{"id": 13, "text": ""}"#);
    assert_eq!(error_code(&result(&sub, &server, json!(13))), "bad_payload");
    command(&broker, "announce", r#"{"id": 14, "text": "Dinner is ready"}"#);
    let said = result(&sub, &server, json!(14));
    assert_eq!(
        (said["status"].as_str(), said["result"]["listeners"].as_bool()),
        (Some("ok"), Some(true)),
        "{said}"
    );
    let told = loop {
        let line = events.line();
        assert!(!line.contains("NOT-TO-BE-SAID") && !line.contains("STILL-NOT-SAID"), "{line}");
        if line == "event: announcement" {
            break events.data();
        }
    };
    assert_eq!(told, json!({"text": "Dinner is ready", "source": "mqtt"}));
    command(&broker, "load_model", r#"{"id": 15, "model": "spare"}"#);
    assert_eq!(error_code(&result(&sub, &server, json!(15))), "command_not_allowed");
    chat(&server, &token);

    let log = server.log();
    assert!(log.contains("MQTT command refused or failed") && log.contains("command_not_allowed"), "{log}");
    assert!(!log.contains(PASSWORD) && !log.contains("FILE-SECRET"), "a secret is in the log");
    assert!(!log.contains("Dinner is ready"), "the announcement's text is not logged");
}

/// An announcement is for everyone: spoken on any user's voice connection, and announced
/// on the satellites through Home Assistant (with no satellite user set: the satellites
/// hear announcements all the same).
#[test]
fn an_announcement_is_spoken_on_voice_connections_and_the_satellites() {
    let broker = Broker::start(false);
    let ha = fake_home_assistant(Default::default());
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let bob = create_user(&data, "bob");
    let options = broker
        .hearth(ServerOptions::new(small_model()), 30)
        .env("HEARTH_MQTT_COMMANDS", "announce")
        .env("HEARTH_STT_MODEL", "whisper-tiny-en")
        .env("HEARTH_TTS_VOICE", "piper-joe");
    let options = satellite_options(options, &ha).env("HEARTH_WYOMING_USER", "");
    let server = Server::start_in(&data, options);
    server.wait_voice();
    let sub = Subscriber::start(&broker);
    sub.wait(&server, "hearth/testbox/availability", "online", |m| m.iter().any(|m| m.payload == "online"));
    let mut socket = connect(&server, &bob);

    command(&broker, "announce", r#"{"id": 1, "text": "The garage door is open."}"#);
    let said = result(&sub, &server, json!(1));
    assert_eq!(said["status"], "ok", "{said}");
    let told = read_turn_until(&mut socket, "notice_end");
    let kinds: Vec<&str> = told.events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(kinds, ["notice", "audio_start", "audio_end", "notice_end"], "{:?}", told.events);
    assert_eq!(told.events[0]["text"], "The garage door is open.");
    assert!(told.audio_bytes > 22_050, "spoken: {} bytes", told.audio_bytes);
    let seen =
        ha.next_within(Duration::from_secs(60)).unwrap_or_else(|| panic!("no announce\n{}", server.log()));
    assert_announced(&seen, "The garage door is open.");
    assert!(ha.saw_nothing());
}
