//! The OpenAPI document (`GET /api/openapi.json`) against the real server: schemathesis
//! (PyPI `schemathesis>=4,<5`, in scripts/test.sh's .venv-test; set HEARTH_TEST_PYTHON)
//! sends generated requests to every documented operation, as an administrator and as a
//! plain user, and checks that no answer is a 5xx and that each answer's status, content
//! type and body (each server-sent event too) are the ones the document declares. Any
//! finding fails the test with schemathesis' report. The document's request examples give
//! each generating route one valid request (the examples phase); the coverage phase tries
//! every operation's boundary values; random requests follow.
//!
//! Left out of the fuzzing, and why (nothing else is):
//! - what would destroy the fuzzing credentials: `DELETE /api/users/{id}`,
//!   `POST /api/users/{id}/disable` and `PUT /api/users/{id}/password` (the administrator
//!   would delete, disable, or revoke the tokens of the plain user the second run uses),
//!   `DELETE /api/tokens/{id}` (revokes the fuzzing token itself), `PUT /api/me/password`;
//! - what is not a request and an answer: `GET /api/events` (server-sent events without
//!   end) and `GET /api/ws` (a WebSocket);
//! - what this server does not serve: `POST /api/unlock` and `POST /unlock` (served only
//!   by the locked server, `http/locked.rs`).

use crate::common::{cli, small_model, Server, ServerOptions};
use std::process::Command;

const EXCLUDED: &[(&str, &str)] = &[
    ("DELETE", "/api/users/{id}"),
    ("POST", "/api/users/{id}/disable"),
    ("PUT", "/api/users/{id}/password"),
    ("DELETE", "/api/tokens/{id}"),
    ("PUT", "/api/me/password"),
    ("GET", "/api/events"),
    ("GET", "/api/ws"),
    ("POST", "/api/unlock"),
    ("POST", "/unlock"),
];

const CHECKS: &str =
    "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance";

/// How much to send: schemathesis' coverage phase tries each operation's boundary values
/// (thousands of requests, among them real generations), its fuzzing phase `examples`
/// random requests per operation.
struct Run {
    phases: &'static str,
    examples: u32,
}

fn python() -> String {
    std::env::var("HEARTH_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Runs schemathesis with `token` against the server; returns its report on a finding.
fn fuzz(server: &Server, schema: &std::path::Path, token: &str, run: Run) -> Result<String, String> {
    let mut cmd = Command::new(python());
    cmd.args(["-m", "schemathesis.cli", "run"])
        .arg(schema)
        .args(["--url", &server.url])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["--checks", CHECKS])
        .args(["--max-examples", &run.examples.to_string()])
        .args(["--seed", "25"])
        .arg("--generation-deterministic")
        .args(["--generation-with-security-parameters", "false"])
        .args(["--phases", run.phases])
        .args(["--workers", "1"])
        .args(["--request-timeout", "120"])
        .args(["--suppress-health-check", "all"])
        .arg("--no-color")
        // Its cache (`.schemathesis/`) goes to the test's data dir, not the repository.
        .current_dir(&server.data_dir);
    let out = cmd.output().unwrap_or_else(|e| panic!("running {}: {e}", python()));
    let report =
        format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() {
        Ok(report)
    } else {
        Err(report)
    }
}

#[test]
fn the_document_needs_a_user_and_the_fuzzer_finds_nothing() {
    let found = Command::new(python()).args(["-c", "import schemathesis"]).output();
    assert!(
        found.as_ref().is_ok_and(|out| out.status.success()),
        "schemathesis is missing for {}: pip install 'schemathesis>=4,<5' (scripts/test.sh does, in \
         .venv-test), or set HEARTH_TEST_PYTHON ({found:?})",
        python()
    );
    // A small context bounds each generated reply (the fuzzer asks for any `max_tokens`).
    let mut options = ServerOptions::new(small_model())
        .env("HEARTH_STT_MODEL", "whisper-tiny-en")
        .env("HEARTH_TTS_VOICE", "piper-joe")
        .env("HEARTH_EMBEDDING_MODEL", "all-minilm-l6-v2");
    options.context_size = 256;
    let server = Server::start(options);
    let (status, _, err) = cli(&server.data_dir, &["users", "add", "root", "--admin"]);
    assert_eq!(status, 0, "{err}");
    let (status, out, err) = cli(&server.data_dir, &["tokens", "create", "--user", "root"]);
    assert_eq!(status, 0, "{err}");
    let admin = out.lines().last().unwrap().trim().to_string();
    let user = server.user("alice");

    let (status, _) = server.call("GET", "/api/openapi.json", None, None);
    assert_eq!(status, 401, "the document needs authentication");
    let (status, doc) = server.call("GET", "/api/openapi.json", Some(&user), None);
    assert_eq!(status, 200, "any user may read the document: {doc}");
    assert_eq!(doc["openapi"], "3.1.0");
    let mut fuzzed = doc.clone();
    for (method, path) in EXCLUDED {
        let item =
            fuzzed["paths"][*path].as_object_mut().unwrap_or_else(|| panic!("{path} is not documented"));
        assert!(item.remove(&method.to_lowercase()).is_some(), "{method} {path} is not documented");
        if item.is_empty() {
            fuzzed["paths"].as_object_mut().unwrap().remove(*path);
        }
    }
    let schema = server.data_dir.join("openapi.json");
    std::fs::write(&schema, fuzzed.to_string()).unwrap();

    // The administrator reaches every handler's logic: all phases. The plain user's run
    // checks that what a user is refused (the admin routes) is refused as documented.
    let admin_run = fuzz(&server, &schema, &admin, Run { phases: "examples,coverage,fuzzing", examples: 5 });
    let user_run = fuzz(&server, &schema, &user, Run { phases: "fuzzing", examples: 8 });
    let failed: Vec<String> = [("administrator", admin_run), ("plain user", user_run)]
        .into_iter()
        .filter_map(|(who, run)| run.err().map(|report| format!("=== as {who}:\n{report}")))
        .collect();
    assert!(
        failed.is_empty(),
        "schemathesis found problems:\n{}\nserver log tail:\n{}",
        failed.join("\n"),
        {
            let log = server.log();
            log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
        }
    );
    assert!(server.health().is_ok(), "the server survived");
}
