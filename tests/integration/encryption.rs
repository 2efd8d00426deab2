//! Encryption at rest (issue 25) against the real server and CLI: with encryption on, a
//! conversation and a document with marker sentences, a search, a restart (KV disk cache
//! and WAL written) and a backup leave neither marker in any file under the data dir;
//! with it off the same scan finds them (so the scan works). A wrong key is a clear error
//! and changes nothing; a passphrase box starts locked (503 `locked`), refuses a wrong
//! passphrase (401 `wrong_key`) and serves chats once unlocked.

use crate::common::{small_model, Server, ServerOptions};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHAT_MARKER: &str = "ZANZIBAR-QUOKKA-4417";
const DOC_MARKER: &str = "PELICAN-MARMALADE-9081";
const PASSPHRASE: &str = "correct horse battery staple";

/// Runs the CLI with extra environment and standard input; (exit code, stdout, stderr).
fn hearth(data_dir: &Path, args: &[&str], env: &[(&str, &str)], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("HEARTH_CONFIG", "/dev/null")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running hearth");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A user and a token for it.
fn user(data_dir: &Path, name: &str, env: &[(&str, &str)], stdin: &str) -> String {
    let (code, _, err) = hearth(data_dir, &["users", "add", name], env, stdin);
    assert_eq!(code, 0, "users add: {err}");
    let (code, out, err) = hearth(data_dir, &["tokens", "create", "--user", name], env, stdin);
    assert_eq!(code, 0, "tokens create: {err}");
    out.lines().last().unwrap().trim().to_string()
}

/// Every file under `dir` whose bytes hold `needle` (what `grep -r` would name).
fn files_holding(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).unwrap().flatten() {
            let path = entry.path();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() {
                let bytes = std::fs::read(&path).unwrap_or_default();
                if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                    found.push(path);
                }
            }
        }
    }
    found.sort();
    found
}

fn all_files(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).unwrap().flatten() {
            if entry.file_type().unwrap().is_dir() {
                pending.push(entry.path());
            } else {
                names.push(entry.path().strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    names.sort();
    names
}

fn search(server: &Server, token: &str, q: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = server.call("GET", &format!("/api/search?q={q}"), Some(token), None);
        assert_eq!(status, 200, "{body}");
        let results = body["results"].as_array().unwrap().clone();
        // The index follows the database every few seconds (and is rebuilt after a start).
        if !results.is_empty() || Instant::now() > deadline {
            return results;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The whole story on one data dir; returns it (stopped) with what is in it.
fn scenario(encrypted: bool) -> (tempfile::TempDir, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("hearth.key");
    let key = key_file.to_str().unwrap().to_string();
    let mut env: Vec<(&str, &str)> = Vec::new();
    if encrypted {
        let (code, out, err) =
            hearth(data.path(), &["encryption", "enable", "--new-key-file", &key], &[], "");
        assert_eq!(code, 0, "{out}{err}");
        env.push(("HEARTH_KEY_FILE", &key));
    }
    let token = user(data.path(), "alice", &env, "");
    let mut options = ServerOptions::new(small_model());
    for (k, v) in &env {
        options = options.env(k, v);
    }
    let server = Server::start_in(data.path(), options);
    assert_eq!(server.health().unwrap()["encrypted"], encrypted);
    let message = format!(
        "Please remember this for later, it matters to me: the word on the garden gate is {CHAT_MARKER}. \
         I wrote it down so that I would not forget it when the winter comes and the gate is covered in snow."
    );
    let body = json!({"message": message, "max_tokens": 8, "temperature": 0});
    let (status, reply) = server.call("POST", "/api/chat", Some(&token), Some(&body));
    assert_eq!(status, 200, "{reply}");
    let document =
        format!("# Vault\n\nThe code of the cellar vault is {DOC_MARKER}, written on the back of the map.\n");
    let (status, body) = server.upload(&token, &[("vault.md", document.as_bytes())]);
    assert!(status < 300, "{body}");
    let job = server.wait_job(&token, body["documents"][0]["job_id"].as_str().unwrap());
    assert_eq!(job["state"], "done", "{job}");
    assert!(!search(&server, &token, DOC_MARKER).is_empty(), "the document is found");
    assert!(!search(&server, &token, CHAT_MARKER).is_empty(), "the conversation is found");
    // SIGTERM saves the conversation's KV cache to disk; the restart reads the WAL back.
    let server = server.stop_and_restart();
    assert!(!search(&server, &token, DOC_MARKER).is_empty(), "found again after the restart");
    let (code, out, err) = hearth(data.path(), &["backup"], &env, "");
    assert_eq!(code, 0, "{out}{err}");
    drop(server);
    let kv: Vec<String> = all_files(data.path()).into_iter().filter(|f| f.starts_with("kv-cache/")).collect();
    assert!(!kv.is_empty(), "the restart left the KV disk cache written: {:?}", all_files(data.path()));
    (data, keys)
}

#[test]
fn with_encryption_on_no_file_under_the_data_dir_holds_a_marker() {
    let (data, _keys) = scenario(true);
    let files = all_files(data.path());
    assert!(files.iter().any(|f| f == "hearth.db"), "{files:?}");
    assert!(files.iter().any(|f| f.starts_with("backups/")), "{files:?}");
    assert!(!files.iter().any(|f| f.starts_with("index/")), "no index on disk: {files:?}");
    for marker in [CHAT_MARKER, DOC_MARKER] {
        assert_eq!(files_holding(data.path(), marker), Vec::<PathBuf>::new(), "{marker} in {files:?}");
    }
}

#[test]
fn with_encryption_off_the_same_scan_finds_the_markers() {
    let (data, _keys) = scenario(false);
    for marker in [CHAT_MARKER, DOC_MARKER] {
        let found = files_holding(data.path(), marker);
        let named = |prefix: &str| {
            found.iter().any(|f| f.strip_prefix(data.path()).unwrap().to_string_lossy().starts_with(prefix))
        };
        assert!(named("hearth.db"), "{marker} not in the database or its WAL: {found:?}");
        assert!(named("index/"), "{marker} not in the index: {found:?}");
    }
}

#[test]
fn a_wrong_key_is_a_clear_error_and_changes_nothing() {
    let data = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let (right, wrong) = (keys.path().join("right.key"), keys.path().join("wrong.key"));
    let (right, wrong) = (right.to_str().unwrap(), wrong.to_str().unwrap());
    let (code, _, err) = hearth(data.path(), &["encryption", "enable", "--new-key-file", right], &[], "");
    assert_eq!(code, 0, "{err}");
    user(data.path(), "alice", &[("HEARTH_KEY_FILE", right)], "");
    // A second key file, made by a second box.
    let other = tempfile::tempdir().unwrap();
    let (code, _, err) = hearth(other.path(), &["encryption", "enable", "--new-key-file", wrong], &[], "");
    assert_eq!(code, 0, "{err}");
    let before = std::fs::read(data.path().join("hearth.db")).unwrap();

    let (code, _, err) = hearth(data.path(), &["users", "list"], &[("HEARTH_KEY_FILE", wrong)], "");
    assert_ne!(code, 0);
    assert!(err.contains("wrong key"), "{err}");
    let (code, _, err) = hearth(data.path(), &["users", "list"], &[], "not the passphrase\n");
    assert_ne!(code, 0);
    assert!(err.contains("wrong key"), "{err}");
    let served = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["serve", "--tls", "off", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env("HEARTH_CONFIG", "/dev/null")
        .env("HEARTH_KEY_FILE", wrong)
        .output()
        .unwrap();
    assert!(!served.status.success());
    let log = String::from_utf8_lossy(&served.stderr);
    assert!(log.contains("wrong key"), "{log}");

    assert_eq!(std::fs::read(data.path().join("hearth.db")).unwrap(), before, "not a byte changed");
    let (code, out, err) = hearth(data.path(), &["users", "list"], &[("HEARTH_KEY_FILE", right)], "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("alice"), "{out}");
}

#[test]
fn a_passphrase_box_starts_locked_and_unlocks_over_the_api() {
    let data = tempfile::tempdir().unwrap();
    let twice = format!("{PASSPHRASE}\n{PASSPHRASE}\n");
    let (code, out, err) = hearth(data.path(), &["encryption", "enable"], &[], &twice);
    assert_eq!(code, 0, "{out}{err}");
    let token = user(data.path(), "alice", &[], &format!("{PASSPHRASE}\n"));
    let mut server = Server::start_in_locked(data.path(), ServerOptions::new(small_model()));
    let health = server.health().unwrap();
    assert_eq!(health["status"], "locked", "{health}");
    let (status, body) = server.call("GET", "/api/conversations", Some(&token), None);
    assert_eq!((status, crate::common::code(&body)), (503, "locked"), "{body}");
    let (status, body) =
        server.call("POST", "/api/unlock", None, Some(&json!({"passphrase": "not it at all"})));
    assert_eq!((status, crate::common::code(&body)), (401, "wrong_key"), "{body}");
    assert_eq!(server.health().unwrap()["status"], "locked", "still locked");
    let (status, body) = server.call("POST", "/api/unlock", None, Some(&json!({"passphrase": PASSPHRASE})));
    assert_eq!(status, 200, "{body}");
    server.wait_settled();
    let body = json!({"message": "Hello", "max_tokens": 4, "temperature": 0});
    let (status, reply) = server.call("POST", "/api/chat", Some(&token), Some(&body));
    assert_eq!(status, 200, "{reply}");
    assert_eq!(server.health().unwrap()["encrypted"], true);
}

#[test]
fn onboarding_can_turn_encryption_on_and_rekey_changes_the_secret() {
    let data = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let (first, second) = (keys.path().join("first.key"), keys.path().join("second.key"));
    let (first, second) = (first.to_str().unwrap(), second.to_str().unwrap());
    let (code, out, err) = hearth(data.path(), &["onboard", "--encrypt-key-file", first], &[], "");
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.lines().last().unwrap().trim().is_empty(), "the setup code is printed: {out}");
    let (_, status, _) = hearth(data.path(), &["encryption", "status"], &[("HEARTH_KEY_FILE", first)], "");
    assert!(status.contains("encrypted (SQLCipher"), "{status}");
    user(data.path(), "alice", &[("HEARTH_KEY_FILE", first)], "");
    let env = [("HEARTH_KEY_FILE", first)];
    let (code, out, err) = hearth(data.path(), &["encryption", "rekey", "--new-key-file", second], &env, "");
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = hearth(data.path(), &["users", "list"], &[("HEARTH_KEY_FILE", first)], "");
    assert!(code != 0 && err.contains("wrong key"), "the old key no longer opens it: {err}");
    let (code, out, err) = hearth(data.path(), &["users", "list"], &[("HEARTH_KEY_FILE", second)], "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("alice"), "{out}");
}

#[test]
fn an_encrypted_backup_restores_on_a_new_box_with_its_key_only() {
    let data = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let (key, other) = (keys.path().join("box.key"), keys.path().join("other.key"));
    let (key, other) = (key.to_str().unwrap(), other.to_str().unwrap());
    let (code, _, err) = hearth(data.path(), &["encryption", "enable", "--new-key-file", key], &[], "");
    assert_eq!(code, 0, "{err}");
    let env = [("HEARTH_KEY_FILE", key)];
    user(data.path(), "marker-user-5521", &env, "");
    let (code, out, err) = hearth(data.path(), &["backup"], &env, "");
    assert_eq!(code, 0, "{err}");
    let archive = out.lines().last().unwrap().trim().to_string();
    let bytes = std::fs::read(&archive).unwrap();
    assert!(bytes.starts_with(b"HEARTHB1"), "a sealed archive");

    let elsewhere = tempfile::tempdir().unwrap();
    let (code, _, err) =
        hearth(elsewhere.path(), &["encryption", "enable", "--new-key-file", other], &[], "");
    assert_eq!(code, 0, "{err}");
    let target = tempfile::tempdir().unwrap();
    let (code, _, err) = hearth(target.path(), &["restore", &archive], &[("HEARTH_KEY_FILE", other)], "");
    assert!(code != 0 && err.contains("wrong key"), "another box's key: {err}");
    assert_eq!(std::fs::read_dir(target.path()).unwrap().count(), 0, "nothing was written");
    let (code, out, err) = hearth(target.path(), &["restore", &archive], &env, "");
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = hearth(target.path(), &["users", "list"], &env, "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("marker-user-5521"), "{out}");
    assert!(files_holding(target.path(), "marker-user-5521").is_empty(), "restored encrypted");
}
