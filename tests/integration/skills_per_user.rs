//! Skills per user (issue 23): the owner turns a skill off for one user, and that user's
//! turns no longer offer it while everyone else's do; the admin API refuses unknown
//! skills and users and non-admins; `hearth users skills` sets and prints the same
//! settings the API shows; a workflow's skill step runs as its owner and is refused a
//! skill turned off for them.

use crate::common::{cli, code, default_model, small_model, Server, ServerOptions};
use serde_json::{json, Value};

/// An administrator's token (a user made with the CLI, then a token for it).
fn admin(server: &Server) -> String {
    let (status, _, err) = cli(&server.data_dir, &["users", "add", "root", "--admin"]);
    assert_eq!(status, 0, "{err}");
    let (status, out, err) = cli(&server.data_dir, &["tokens", "create", "--user", "root"]);
    assert_eq!(status, 0, "{err}");
    out.lines().last().unwrap().trim().to_string()
}

fn user_id(server: &Server, admin: &str, name: &str) -> i64 {
    let (status, body) = server.call("GET", "/api/users", Some(admin), None);
    assert_eq!(status, 200, "{body}");
    let users = body["users"].as_array().unwrap();
    users.iter().find(|u| u["name"] == name).unwrap()["id"].as_i64().unwrap()
}

/// The skill named `name` in a `skills` list.
fn skill<'a>(body: &'a Value, name: &str) -> &'a Value {
    let skills = body["skills"].as_array().unwrap_or_else(|| panic!("no skills: {body}"));
    skills.iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no {name}: {body}"))
}

/// Asks "What time is it?" in a new conversation; returns the answer and the stored
/// reply (with its tool calls).
fn ask_the_time(server: &Server, token: &str) -> (Value, Value) {
    let body = json!({"message": "What time is it?"});
    let (status, answer) = server.call("POST", "/api/chat", Some(token), Some(&body));
    assert_eq!(status, 200, "{answer}\n{}", server.log());
    let id = answer["conversation_id"].as_str().unwrap();
    let (status, stored) = server.call("GET", &format!("/api/conversations/{id}"), Some(token), None);
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["messages"][1]["role"], "assistant", "{stored}");
    (answer, stored["messages"][1].clone())
}

fn called(calls: &Value) -> Vec<String> {
    calls
        .as_array()
        .map_or_else(Vec::new, |c| c.iter().map(|c| c["name"].as_str().unwrap().to_string()).collect())
}

#[test]
fn with_the_clock_off_for_bob_only_alices_turn_calls_it_and_bobs_is_not_offered_it() {
    let options = ServerOptions::new(default_model())
        .env("HEARTH_MAX_TOKENS", "60")
        .env("HEARTH_TEMPERATURE", "0")
        .env("HEARTH_SKILLS", "clock");
    let server = Server::start(options);
    let (alice, bob, root) = (server.user("alice"), server.user("bob"), admin(&server));
    let bob_id = user_id(&server, &root, "bob");
    let path = format!("/api/admin/users/{bob_id}/skills");
    let (status, body) = server.call("PUT", &path, Some(&root), Some(&json!({"clock": false})));
    assert_eq!(status, 200, "{body}");
    assert_eq!(skill(&body, "clock")["enabled"], false, "{body}");

    let (answer, stored) = ask_the_time(&server, &alice);
    assert_eq!(called(&answer["tool_calls"]), ["clock"], "alice has the clock: {answer}");
    assert_eq!(called(&stored["tool_calls"]), ["clock"], "the call is stored: {stored}");
    assert_eq!(stored["tool_calls"][0]["ok"], true, "{stored}");

    // Bob has no skill left at all, so his turn is a plain one: nothing is offered,
    // nothing called, nothing stored but the reply.
    let (status, own) = server.call("GET", "/api/skills", Some(&bob), None);
    assert_eq!(status, 200, "{own}");
    assert!(own["skills"].as_array().unwrap().iter().all(|s| s["enabled"] == false), "{own}");
    let (answer, stored) = ask_the_time(&server, &bob);
    assert!(called(&answer["tool_calls"]).is_empty(), "bob is not offered the clock: {answer}");
    assert!(called(&stored["tool_calls"]).is_empty(), "{stored}");
    let reply = answer["reply"].as_str().unwrap();
    assert!(!reply.contains("<tool_call>") && !reply.contains("\"clock\""), "no call written out: {reply}");

    // Back to the box's default: bob's next turn calls the clock too.
    let (status, body) = server.call("PUT", &path, Some(&root), Some(&json!({"clock": null})));
    assert_eq!(status, 200, "{body}");
    let (answer, _) = ask_the_time(&server, &bob);
    assert_eq!(called(&answer["tool_calls"]), ["clock"], "{answer}");
}

#[test]
fn the_owner_sets_a_users_skills_by_api_and_cli_and_bad_input_is_refused() {
    let server = Server::start(ServerOptions::new(small_model()));
    let (bob, root) = (server.user("bob"), admin(&server));
    let bob_id = user_id(&server, &root, "bob");
    let path = format!("/api/admin/users/{bob_id}/skills");

    let (status, body) = server.call("GET", &path, Some(&root), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user_id"], bob_id);
    let clock = skill(&body, "clock");
    assert_eq!(
        (&clock["default"], &clock["setting"], &clock["enabled"]),
        (&json!(true), &Value::Null, &json!(true))
    );
    assert!(clock["description"].as_str().unwrap().contains("time"), "{clock}");
    let calculate = skill(&body, "calculate");
    assert_eq!(
        (&calculate["default"], &calculate["enabled"]),
        (&json!(false), &json!(false)),
        "opt-in by default"
    );

    let change = json!({"clock": false, "calculate": true});
    let (status, body) = server.call("PUT", &path, Some(&root), Some(&change));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&skill(&body, "clock")["setting"], &skill(&body, "clock")["enabled"]),
        (&json!(false), &json!(false))
    );
    assert_eq!(skill(&body, "calculate")["enabled"], true);
    let (_, own) = server.call("GET", "/api/skills", Some(&bob), None);
    assert_eq!(
        (&skill(&own, "clock")["enabled"], &skill(&own, "calculate")["enabled"]),
        (&json!(false), &json!(true))
    );

    // An unknown skill: 400 naming it, and nothing of the request is applied.
    let (status, body) =
        server.call("PUT", &path, Some(&root), Some(&json!({"clock": null, "weather": true})));
    assert_eq!((status, code(&body)), (400, "unknown_skill"), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("'weather'"), "{body}");
    let (_, after) = server.call("GET", &path, Some(&root), None);
    assert_eq!(skill(&after, "clock")["setting"], false, "all or nothing: {after}");
    let (status, body) = server.call("PUT", &path, Some(&root), Some(&json!({"clock": "yes"})));
    assert_eq!(status, 400, "a setting is true, false or null: {body}");
    let (status, body) = server.call("PUT", &path, Some(&root), Some(&json!(["clock"])));
    assert_eq!(status, 400, "{body}");
    for method in ["GET", "PUT"] {
        let (status, body) =
            server.call(method, "/api/admin/users/999/skills", Some(&root), Some(&json!({})));
        assert_eq!((status, code(&body)), (404, "not_found"), "{method}: {body}");
    }
    // Not the owner's: a plain user may not read or change anyone's, their own included.
    for method in ["GET", "PUT"] {
        let (status, body) = server.call(method, &path, Some(&bob), Some(&json!({"clock": true})));
        assert_eq!((status, code(&body)), (403, "forbidden"), "{method}: {body}");
    }
    assert_eq!(server.call("GET", "/api/skills", None, None).0, 401);

    // The command line reads and writes the same settings.
    let (status, out, err) = cli(&server.data_dir, &["users", "skills", "bob"]);
    assert_eq!(status, 0, "{err}");
    let line = |out: &str, name: &str| -> Vec<String> {
        let line = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{out}"));
        line.split_whitespace().map(str::to_string).collect()
    };
    assert_eq!(line(&out, "clock")[..2], ["clock", "off"], "{out}");
    assert!(out.contains("set for bob (box default: on)"), "{out}");
    assert_eq!(line(&out, "calculate")[1], "on", "{out}");
    assert_eq!(line(&out, "set_timer")[1..], ["on", "box", "default"], "{out}");

    let args = [
        "users",
        "skills",
        "bob",
        "--reset",
        "clock,calculate",
        "--disable",
        "set_timer",
        "--enable",
        "create_note",
    ];
    let (status, out, err) = cli(&server.data_dir, &args);
    assert_eq!(status, 0, "{err}");
    assert_eq!(line(&out, "clock")[1..], ["on", "box", "default"], "{out}");
    assert_eq!(line(&out, "calculate")[1], "off", "{out}");
    assert_eq!(line(&out, "set_timer")[1], "off", "{out}");
    assert_eq!(line(&out, "create_note")[1], "on", "{out}");
    let (_, api) = server.call("GET", &path, Some(&root), None);
    for (name, setting, enabled) in [
        ("clock", Value::Null, true),
        ("calculate", Value::Null, false),
        ("set_timer", json!(false), false),
        ("create_note", json!(true), true),
    ] {
        assert_eq!(
            (&skill(&api, name)["setting"], skill(&api, name)["enabled"].as_bool()),
            (&setting, Some(enabled)),
            "{name}: {api}"
        );
    }

    let (status, _, err) = cli(&server.data_dir, &["users", "skills", "bob", "--enable", "weather"]);
    assert!(status != 0 && err.contains("no skill is named 'weather'"), "{status}: {err}");
    let (status, _, err) =
        cli(&server.data_dir, &["users", "skills", "bob", "--enable", "clock", "--disable", "clock"]);
    assert!(status != 0 && err.contains("'clock' is named twice"), "{status}: {err}");
    let (status, _, err) = cli(&server.data_dir, &["users", "skills", "nobody"]);
    assert!(status != 0 && err.contains("no user 'nobody'"), "{status}: {err}");
    let (status, help, _) = cli(&server.data_dir, &["users", "skills", "--help"]);
    assert_eq!(status, 0);
    assert!(help.contains("--enable <SKILL>") && help.contains("off_by_default"), "{help}");

    // Deleting bob deletes his settings: the owner is told there is no such user.
    let (status, body) = server.call("DELETE", &format!("/api/users/{bob_id}"), Some(&root), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.call("GET", &path, Some(&root), None).0, 404);
}

/// Bob's workflow calls the clock, which the owner turned off for bob: the step is
/// refused when it runs (the workflow runs as its owner), and the run says why; turned
/// back on, the same workflow reads the clock.
#[test]
fn a_workflow_runs_its_skills_as_its_owner_and_a_skill_off_for_them_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let bob = crate::common::create_user(&data, "bob");
    let (status, _, err) = cli(&data, &["users", "skills", "bob", "--disable", "clock"]);
    assert_eq!(status, 0, "{err}");
    let workflows = temp.path().join("workflows");
    std::fs::create_dir_all(&workflows).unwrap();
    let text =
        "name: time\nowner: bob\ntrigger:\n  phrase: what does the clock say\nsteps:\n  - skill: clock\n";
    std::fs::write(workflows.join("time.yaml"), text).unwrap();
    let options = ServerOptions::new(small_model()).env("HEARTH_WORKFLOWS_DIR", workflows.to_str().unwrap());
    let server = Server::start_in(&data, options);

    let finished = |server: &Server| -> Value {
        let (status, started) = server.call("POST", "/api/workflows/time/run", Some(&bob), None);
        assert_eq!(status, 202, "{started}");
        let path = format!("/api/workflow-runs/{}", started["run_id"]);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let (_, run) = server.call("GET", &path, Some(&bob), None);
            if run["state"] != "running" {
                return run;
            }
            assert!(std::time::Instant::now() < deadline, "{run}");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    let run = finished(&server);
    assert_eq!(run["state"], "failed", "{run}");
    assert!(run.to_string().contains("the tool 'clock' is not enabled for this user"), "{run}");

    let (status, _, err) = cli(&data, &["users", "skills", "bob", "--reset", "clock"]);
    assert_eq!(status, 0, "{err}");
    let run = finished(&server);
    assert_eq!(run["state"], "done", "{run}");
    assert!(run.to_string().contains("It is "), "the clock's reading: {run}");
}
