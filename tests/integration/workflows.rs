//! Workflows and signed webhooks (issue 23): a scheduled workflow runs on time and its
//! runs are listed with each step's result (and written in the owner's history); files
//! with errors are named by file, line and field; a signed webhook runs its workflow,
//! while a bad signature, an old timestamp or a replay gets 401 and runs nothing; the
//! hook's secret never reaches the log.

use crate::common::{create_user, small_model, Server, ServerOptions, BIN};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

const TICK: &str = "\
name: tick
description: Tells the time every two seconds
owner: alice
trigger:
  every: 2s
steps:
  - id: time
    skill: clock
  - notify: \"Workflow says: {{ steps.time.output }}\"
";

/// A data dir with users made before the server reads the workflows (owners are resolved
/// at start), and the workflows folder with `files`.
fn prepared(files: &[(&str, &str)]) -> (tempfile::TempDir, std::path::PathBuf, String, String) {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let alice = create_user(&data, "alice");
    let bob = create_user(&data, "bob");
    let dir = temp.path().join("workflows");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    (temp, dir, alice, bob)
}

fn runs(server: &Server, token: &str, name: &str) -> Vec<Value> {
    let (status, body) = server.call("GET", &format!("/api/workflows/{name}/runs"), Some(token), None);
    assert_eq!(status, 200, "{body}");
    body["runs"].as_array().unwrap().clone()
}

#[test]
fn a_scheduled_workflow_runs_on_time_and_its_runs_are_listed_with_their_steps() {
    let (temp, dir, alice, bob) = prepared(&[("tick.yaml", TICK)]);
    let options = ServerOptions::new(small_model()).env("HEARTH_WORKFLOWS_DIR", dir.to_str().unwrap());
    let server = Server::start_in(&temp.path().join("data"), options);

    let (status, listed) = server.call("GET", "/api/workflows", Some(&alice), None);
    assert_eq!(status, 200, "{listed}");
    let tick = &listed["workflows"][0];
    assert_eq!((tick["name"].as_str(), tick["enabled"].as_bool()), (Some("tick"), Some(true)), "{listed}");
    assert_eq!(tick["trigger"], "schedule");
    assert!(tick["next_run"].as_i64().is_some(), "{listed}");

    // Runs on time: the first within a few seconds, then one every two seconds or so.
    let started = Instant::now();
    let done = loop {
        let done: Vec<Value> =
            runs(&server, &alice, "tick").into_iter().filter(|r| r["state"] == "done").collect();
        if done.len() >= 2 {
            break done;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no runs in 30 s: {:?}\n{}", done, server.log());
        std::thread::sleep(Duration::from_millis(200));
    };
    let run = &done[1];
    assert_eq!(run["trigger"], "schedule");
    let steps = run["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{run}");
    assert_eq!((steps[0]["id"].as_str(), steps[0]["kind"].as_str()), (Some("time"), Some("skill")));
    let time = steps[0]["output"].as_str().unwrap();
    assert!(time.starts_with("It is "), "{run}");
    assert_eq!(steps[1]["kind"], "notify");
    assert_eq!(steps[1]["output"].as_str().unwrap(), format!("Workflow says: {time}"), "the template filled");
    assert!(steps[0]["error"].is_null() && steps[0]["ms"].as_u64().is_some());

    let (status, one) = server.call("GET", &format!("/api/workflow-runs/{}", run["id"]), Some(&alice), None);
    assert_eq!((status, &one["id"]), (200, &run["id"]), "{one}");
    // In the owner's history: the run's summary is a message of the workflow's conversation.
    let conversation = one["conversation_id"].as_str().expect("a conversation");
    let (status, history) =
        server.call("GET", &format!("/api/conversations/{conversation}"), Some(&alice), None);
    assert_eq!(status, 200, "{history}");
    assert!(
        history["messages"].as_array().unwrap().iter().any(|m| m["content"]
            .as_str()
            .unwrap()
            .contains("Workflow 'tick' (schedule) done: Workflow says: It is")),
        "{history}"
    );

    // Bob sees neither the workflow nor its runs.
    let (_, listed) = server.call("GET", "/api/workflows", Some(&bob), None);
    assert_eq!(listed["workflows"], json!([]));
    let (status, e) = server.call("GET", "/api/workflows/tick/runs", Some(&bob), None);
    assert_eq!((status, e["error"]["code"].as_str()), (404, Some("workflow_not_found")));
    let (status, e) = server.call("GET", &format!("/api/workflow-runs/{}", run["id"]), Some(&bob), None);
    assert_eq!((status, e["error"]["code"].as_str()), (404, Some("workflow_run_not_found")));

    // Off: it stops running and stays off after a restart; run now still works.
    let (status, changed) =
        server.call("PATCH", "/api/workflows/tick", Some(&alice), Some(&json!({"enabled": false})));
    assert_eq!((status, changed["enabled"].as_bool()), (200, Some(false)), "{changed}");
    assert!(changed["next_run"].is_null());
    let (status, e) =
        server.call("PATCH", "/api/workflows/tick", Some(&alice), Some(&json!({"enabled": "no"})));
    assert_eq!(status, 400, "{e}");
    let server = server.kill_and_restart();
    std::thread::sleep(Duration::from_secs(1));
    let before = runs(&server, &alice, "tick").len();
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(runs(&server, &alice, "tick").len(), before, "an off workflow does not run");
    let (_, listed) = server.call("GET", "/api/workflows", Some(&alice), None);
    assert_eq!(listed["workflows"][0]["enabled"], false, "off survives a restart");
    let (status, started) = server.call("POST", "/api/workflows/tick/run", Some(&alice), None);
    assert_eq!(status, 202, "{started}");
    let id = started["run_id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, run) = server.call("GET", &format!("/api/workflow-runs/{id}"), Some(&alice), None);
        if run["state"] == "done" {
            assert_eq!(run["trigger"], "manual");
            break;
        }
        assert!(Instant::now() < deadline, "{run}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn check(dir: &Path) -> (i32, String) {
    let out = std::process::Command::new(BIN)
        .args(["workflows", "check"])
        .env("HEARTH_CONFIG", "/dev/null")
        .env("HEARTH_WORKFLOWS_DIR", dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn files_with_errors_are_named_by_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tick.yaml"), TICK).unwrap();
    let (code, out) = check(dir.path());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok:") && out.contains("(tick)"), "{out}");
    for (file, text, expected) in [
        (
            "skill.yaml",
            TICK.replace("skill: clock", "skill: clok"),
            "skill.yaml:8: steps[0].skill: no skill is named 'clok'",
        ),
        (
            "cron.yaml",
            TICK.replace("every: 2s", "schedule: \"99 * * * *\""),
            "cron.yaml:5: trigger.schedule:",
        ),
        (
            "var.yaml",
            TICK.replace("steps.time.output", "steps.tme.output"),
            "var.yaml:9: steps[1].notify: 'steps.tme' is no earlier step",
        ),
        ("kind.yaml", TICK.replace("  - notify:", "  - shout:"), "kind.yaml:9"),
    ] {
        std::fs::write(
            dir.path().join(file),
            text.replace("name: tick", &format!("name: {}", &file[..file.len() - 5])),
        )
        .unwrap();
        let (code, out) = check(dir.path());
        assert_eq!(code, 1, "{out}");
        assert!(out.contains(expected), "{out}\nexpected: {expected}");
        std::fs::remove_file(dir.path().join(file)).unwrap();
    }
}

const SECRET: &str = "hook-secret-5f2a9c";

fn signature(timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn post_hook(server: &Server, timestamp: &str, signature: &str, body: &[u8]) -> (u16, Value) {
    let result = server
        .agent()
        .post(&format!("{}/api/hooks/deploy", server.url))
        .set("X-Hearth-Timestamp", timestamp)
        .set("X-Hearth-Signature", signature)
        .set("Content-Type", "application/json")
        .timeout(Duration::from_secs(60))
        .send_bytes(body);
    crate::common::response_parts(result)
}

#[test]
fn a_signed_webhook_runs_its_workflow_and_bad_old_or_replayed_ones_run_nothing() {
    const DEPLOY: &str = "\
name: deployed
owner: bob
trigger: { webhook: deploy }
steps:
  - id: time
    skill: clock
  - reply: \"Deployed {{ input.json.version }}\"
";
    let (temp, dir, _alice, bob) = prepared(&[("deploy.yaml", DEPLOY)]);
    let config = temp.path().join("hearth.toml");
    std::fs::write(&config, "[[hooks]]\nname = \"deploy\"\nsecret = { env = \"DEPLOY_HOOK_SECRET\" }\n")
        .unwrap();
    let options = ServerOptions::new(small_model())
        .env("HEARTH_WORKFLOWS_DIR", dir.to_str().unwrap())
        .env("HEARTH_CONFIG", config.to_str().unwrap())
        .env("DEPLOY_HOOK_SECRET", SECRET);
    let server = Server::start_in(&temp.path().join("data"), options);
    let now =
        || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs().to_string();
    let body = br#"{"version": "1.2"}"#;

    // Refused, and nothing runs: a wrong signature, an old or future timestamp, none at all.
    let ts = now();
    let (status, e) = post_hook(&server, &ts, &signature(&ts, b"{}"), body);
    assert_eq!((status, e["error"]["code"].as_str()), (401, Some("invalid_signature")), "{e}");
    let old = (ts.parse::<i64>().unwrap() - 301).to_string();
    let (status, e) = post_hook(&server, &old, &signature(&old, body), body);
    assert_eq!((status, e["error"]["code"].as_str()), (401, Some("invalid_signature")), "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("replay window"), "{e}");
    let future = (ts.parse::<i64>().unwrap() + 301).to_string();
    assert_eq!(post_hook(&server, &future, &signature(&future, body), body).0, 401);
    assert_eq!(post_hook(&server, &ts, "sha256=00", body).0, 401);
    let (status, e) = server.call("POST", "/api/hooks/nope", None, Some(&json!({})));
    assert_eq!((status, e["error"]["code"].as_str()), (404, Some("hook_not_found")), "{e}");
    assert!(runs(&server, &bob, "deployed").is_empty(), "no run for a refused hook");

    // A good signature runs the workflow; the answer is its reply, the run is recorded.
    let ts = now();
    let good = signature(&ts, body);
    let (status, answer) = post_hook(&server, &ts, &good, body);
    assert_eq!(status, 200, "{answer}\n{}", server.log());
    assert_eq!(
        (answer["state"].as_str(), answer["output"].as_str()),
        (Some("done"), Some("Deployed 1.2")),
        "{answer}"
    );
    let recorded = runs(&server, &bob, "deployed");
    assert_eq!(recorded.len(), 1);
    assert_eq!(
        (recorded[0]["trigger"].as_str(), recorded[0]["id"].as_i64()),
        (Some("webhook"), answer["run_id"].as_i64())
    );
    assert!(recorded[0]["steps"][0]["output"].as_str().unwrap().starts_with("It is "));

    // The exact request again is a replay.
    let (status, e) = post_hook(&server, &ts, &good, body);
    assert_eq!((status, e["error"]["code"].as_str()), (401, Some("invalid_signature")), "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("replay"), "{e}");
    assert_eq!(runs(&server, &bob, "deployed").len(), 1, "a replay runs nothing");
    assert!(!server.log().contains(SECRET), "the secret is not in the log");
}

/// `POST /api/chat` (no stream): the reply and the conversation's id.
fn say(server: &Server, token: &str, message: &str) -> (String, String) {
    let body = json!({"message": message, "stream": false, "max_tokens": 8});
    let (status, answer) = server.call("POST", "/api/chat", Some(token), Some(&body));
    assert_eq!(status, 200, "{answer}\n{}", server.log());
    (answer["reply"].as_str().unwrap().to_string(), answer["conversation_id"].as_str().unwrap().to_string())
}

const NIGHT: &str = "\
name: night
owner: alice
trigger: { phrase: Good Night }
steps:
  - id: time
    skill: clock
  - reply: \"Sleep well, {{ workflow.owner }}. You said: {{ input.text }}\"
";

/// Issue 23: a phrase said in chat runs its owner's workflow, whose reply is the turn's
/// answer, stored like any; a workflow that is off, or another user's, does not run.
#[test]
fn a_phrase_said_in_chat_runs_its_workflow_and_its_reply_is_the_answer() {
    let off =
        NIGHT.replace("name: night", "name: sesame\nenabled: false").replace("Good Night", "open sesame");
    let (temp, dir, alice, bob) = prepared(&[("night.yaml", NIGHT), ("sesame.yaml", &off)]);
    let options = ServerOptions::new(small_model()).env("HEARTH_WORKFLOWS_DIR", dir.to_str().unwrap());
    let server = Server::start_in(&temp.path().join("data"), options);

    let (reply, conversation) = say(&server, &alice, "good night, Hearth!");
    assert_eq!(reply, "Sleep well, alice. You said: good night, Hearth!");
    let (status, body) =
        server.call("GET", &format!("/api/conversations/{conversation}"), Some(&alice), None);
    assert_eq!(status, 200, "{body}");
    let stored: Vec<&str> =
        body["messages"].as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(stored, ["good night, Hearth!", reply.as_str()]);
    assert_eq!(body["messages"][1]["model"], "workflow:night", "{body}");
    let ran = runs(&server, &alice, "night");
    assert_eq!(ran.len(), 1, "{ran:?}");
    assert_eq!(
        (ran[0]["trigger"].as_str(), ran[0]["state"].as_str()),
        (Some("phrase"), Some("done")),
        "{ran:?}"
    );

    // Off: the model answers. Another user's phrase: the model answers.
    let (reply, _) = say(&server, &alice, "open sesame");
    assert!(!reply.contains("You said"), "{reply}");
    assert!(runs(&server, &alice, "sesame").is_empty());
    let (reply, _) = say(&server, &bob, "Good night!");
    assert!(!reply.contains("You said"), "{reply}");
    assert_eq!(runs(&server, &alice, "night").len(), 1);
}

/// Issue 23: `POST /api/workflows/reload` (administrators) reads the files again without a
/// restart: a changed file takes effect, a new one appears, and a broken one keeps the
/// version it held while the error names its file and line.
#[test]
fn workflow_files_reload_without_a_restart_and_a_broken_file_keeps_its_last_good_version() {
    let (temp, dir, alice, _bob) = prepared(&[("night.yaml", NIGHT)]);
    let data = temp.path().join("data");
    assert_eq!(crate::common::cli(&data, &["users", "add", "root", "--admin"]).0, 0);
    let (_, out, _) = crate::common::cli(&data, &["tokens", "create", "--user", "root"]);
    let root = out.lines().last().unwrap().trim().to_string();
    let options = ServerOptions::new(small_model()).env("HEARTH_WORKFLOWS_DIR", dir.to_str().unwrap());
    let server = Server::start_in(&data, options);
    let reload = |token: &str| server.call("POST", "/api/workflows/reload", Some(token), None);

    std::fs::write(dir.join("night.yaml"), NIGHT.replace("Sleep well", "Sweet dreams")).unwrap();
    let (status, e) = reload(&alice);
    assert_eq!((status, e["error"]["code"].as_str()), (403, Some("forbidden")), "{e}");
    assert!(say(&server, &alice, "good night").0.starts_with("Sleep well"), "not reloaded yet");
    let (status, reloaded) = reload(&root);
    assert_eq!(status, 200, "{reloaded}");
    assert_eq!(reloaded, json!({"workflows": 1, "errors": [], "kept": []}));
    assert!(say(&server, &alice, "good night").0.starts_with("Sweet dreams"));

    // Broken: the last good version stays, and the error says where.
    std::fs::write(dir.join("night.yaml"), NIGHT.replace("skill: clock", "skill: clok")).unwrap();
    std::fs::write(dir.join("tick.yaml"), TICK).unwrap();
    let (status, reloaded) = reload(&root);
    assert_eq!(status, 200, "{reloaded}");
    let errors = reloaded["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{reloaded}");
    let error = errors[0].as_str().unwrap();
    assert!(error.contains("night.yaml:6: steps[0].skill: no skill is named 'clok'"), "{reloaded}");
    assert_eq!(
        (reloaded["workflows"].as_u64(), &reloaded["kept"]),
        (Some(2), &json!(["night"])),
        "{reloaded}"
    );
    assert!(say(&server, &alice, "good night").0.starts_with("Sweet dreams"), "the last good version");
    let (_, listed) = server.call("GET", "/api/workflows", Some(&root), None);
    assert_eq!(listed["errors"].as_array().map(Vec::len), Some(1), "{listed}");
    let names: Vec<&str> =
        listed["workflows"].as_array().unwrap().iter().map(|w| w["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["night", "tick"], "{listed}");
    // The new scheduled one runs.
    let deadline = Instant::now() + Duration::from_secs(30);
    while runs(&server, &alice, "tick").is_empty() {
        assert!(Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    // Removed: gone, and its schedule with it; `hearth workflows reload` asks the service.
    std::fs::remove_file(dir.join("tick.yaml")).unwrap();
    std::fs::write(dir.join("night.yaml"), NIGHT).unwrap();
    let (code, out, err) =
        crate::common::cli(&data, &["workflows", "reload", "--url", &server.url, "--token", &root]);
    assert_eq!((code, out.trim()), (0, "reloaded: 1 workflows"), "{out}{err}");
    let (status, _) = server.call("POST", "/api/workflows/tick/run", Some(&alice), None);
    assert_eq!(status, 404);
}

/// Issue 23: a workflow's `notify` step reaches the channels it names (`to:`), or every
/// channel its owner has: the web UI's event stream, the owner's Telegram chat (a fake Bot
/// API here) and the voice satellites (a fake Home Assistant's `assist_satellite.announce`).
#[test]
fn notify_steps_reach_telegram_the_satellite_and_the_web_as_the_workflow_says() {
    let notify = |name: &str, step: &str| {
        format!("name: {name}\nowner: alice\ntrigger: {{ phrase: {name} now }}\nsteps:\n  - notify: {step}\n")
    };
    let files = [
        ("everywhere.yaml", notify("everywhere", "\"To every channel\"")),
        ("telegram.yaml", notify("telegram", "{ text: \"Only on Telegram\", to: telegram }")),
        (
            "satellite.yaml",
            notify("satellite", "{ text: \"On the satellite and the web\", to: [satellite, web] }"),
        ),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(f, t)| (*f, t.as_str())).collect();
    let (temp, dir, alice, _bob) = prepared(&files);
    let bot = crate::telegram::FakeBot::start();
    let ha = crate::satellite::fake_home_assistant(Default::default());
    let options =
        crate::telegram::options(small_model(), &bot).env("HEARTH_WORKFLOWS_DIR", dir.to_str().unwrap());
    let server =
        Server::start_in(&temp.path().join("data"), crate::satellite::satellite_options(options, &ha));
    assert!(
        server.log().contains("workflows read") && !server.log().contains("left out"),
        "{}",
        server.log()
    );
    let (mut events, _) = crate::reminders::Events::open(&server, &alice);

    // One by its phrase in chat (the turn's answer is the notice's text), two by "run now".
    let (reply, _) = say(&server, &alice, "Everywhere now, please");
    assert_eq!(reply, "To every channel");
    for name in ["telegram", "satellite"] {
        let (status, started) =
            server.call("POST", &format!("/api/workflows/{name}/run"), Some(&alice), None);
        assert_eq!(status, 202, "{started}");
        // One at a time: the order each channel sees is the order they ran.
        let deadline = Instant::now() + Duration::from_secs(30);
        while runs(&server, &alice, name).first().is_none_or(|r| r["state"] == "running") {
            assert!(Instant::now() < deadline, "{}", server.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let chat = crate::telegram::ALICE_CHAT;
    let sent = bot.wait_messages(&server, chat, 2);
    assert_eq!(sent, ["To every channel", "Only on Telegram"]);
    let mut announced = Vec::new();
    for _ in 0..2 {
        let seen = ha.next_within(Duration::from_secs(30)).unwrap_or_else(|| panic!("{}", server.log()));
        let message =
            serde_json::from_str::<Value>(&seen.body).unwrap()["message"].as_str().unwrap().to_string();
        crate::satellite::assert_announced(&seen, &message);
        announced.push(message);
    }
    assert_eq!(announced, ["To every channel", "On the satellite and the web"]);
    let mut told = Vec::new();
    while told.len() < 2 {
        if events.line() == "event: workflow" {
            told.push(events.data()["text"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(told, ["To every channel", "On the satellite and the web"]);
    assert!(ha.saw_nothing() && bot.messages(chat).len() == 2, "nothing else was told");
    assert!(!server.log().contains(crate::satellite::HA_TOKEN));
}
