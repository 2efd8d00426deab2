//! The command line: help, configuration layering and errors, tokens.

use crate::common::{cli, small_model, Server, ServerOptions, BIN};
use std::process::Command;

#[test]
fn help_explains_every_subcommand() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for sub in ["serve", "chat", "users", "tokens", "models", "print-config"] {
        assert!(help.contains(sub), "--help lacks {sub}:\n{help}");
    }
    let out = Command::new(BIN).args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in ["--listen", "--data-dir", "--model", "HEARTH_LISTEN", "HEARTH_MODEL"] {
        assert!(help.contains(flag), "serve --help lacks {flag}:\n{help}");
    }
}

#[test]
fn print_config_shows_layers_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hearth.toml");
    std::fs::write(&file, "[model]\nmax_tokens = 100\ntemperature = 0.2\n").unwrap();
    let out = Command::new(BIN)
        .args(["print-config", "--config"])
        .arg(&file)
        .env("HEARTH_TEMPERATURE", "0.3")
        .env("HEARTH_LISTEN", "0.0.0.0:9999")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let parsed: toml::Table = toml::from_str(&text).unwrap();
    assert_eq!(parsed["model"]["max_tokens"].as_integer(), Some(100), "file applies");
    assert_eq!(parsed["model"]["temperature"].as_float(), Some(0.3f32 as f64), "env beats file");
    assert_eq!(parsed["server"]["listen"].as_str(), Some("0.0.0.0:9999"));
}

#[test]
fn config_errors_name_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hearth.toml");
    std::fs::write(&file, "[model]\nthreds = 2\n").unwrap();
    let out = Command::new(BIN).args(["print-config", "--config"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains(file.to_str().unwrap()) && err.contains("threds"), "{err}");

    let out = Command::new(BIN).args(["print-config", "--config", "/nonexistent/h.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("/nonexistent/h.toml"));
}

#[test]
fn tokens_are_printed_once_alone_on_the_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = cli(dir.path(), &["tokens", "create", "--user", "ghost"]);
    assert_ne!(code, 0);
    assert!(err.contains("no user 'ghost'"), "{err}");

    let (code, _, _) = cli(dir.path(), &["users", "add", "alice", "--admin"]);
    assert_eq!(code, 0);
    let (code, out, _) = cli(dir.path(), &["tokens", "create", "--user", "alice", "--label", "laptop"]);
    assert_eq!(code, 0);
    let token = out.lines().last().unwrap();
    assert!(token.starts_with("hth_") && token.len() == 68, "{out}");

    let (_, listing, _) = cli(dir.path(), &["tokens", "list"]);
    assert!(listing.contains("laptop") && listing.contains(&token[..12]), "{listing}");
    assert!(!listing.contains(token), "list must not show the secret");
    let (_, users, _) = cli(dir.path(), &["users", "list"]);
    assert!(users.contains("alice") && users.contains("admin"), "{users}");
}

#[test]
fn chat_talks_to_a_running_service_and_keeps_history_there() {
    let server = Server::start(ServerOptions::new(small_model()));
    let token = server.user("alice");
    let out =
        Command::new(BIN).args(["chat", "--url", &server.url, "--max-tokens-hint-unused"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "unknown flags are rejected");

    let out = Command::new(BIN)
        .args(["chat", "Say hello.", "--url", &server.url])
        .env("HEARTH_TOKEN", &token)
        .env("HEARTH_CONFIG", "/dev/null")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(!stdout.trim().is_empty());
    let (_, list) = server.call("GET", "/api/conversations", Some(&token), None);
    assert_eq!(list["conversations"][0]["title"], "Say hello.");

    let out = Command::new(BIN)
        .args(["chat", "Hi", "--url", &server.url, "--token", "hth_wrong"])
        .env("HEARTH_CONFIG", "/dev/null")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
}

#[test]
fn chat_runs_in_process_without_a_service() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["chat", "Say hello.", "--threads", "1", "--model"])
        .arg(small_model())
        .arg("--data-dir")
        .arg(dir.path())
        .env("HEARTH_CONFIG", "/dev/null")
        .env("HEARTH_MAX_TOKENS", "16")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(!stdout.trim().is_empty(), "{stderr}");
    assert!(stderr.contains("ready"), "{stderr}");
}

#[test]
fn completions_and_the_manual_page_come_from_the_cli() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(BIN)
            .args(["completions", shell])
            .env("HEARTH_CONFIG", "/dev/null")
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("serve") && text.contains("tls"),
            "{shell} completions lack subcommands or flags"
        );
    }
    let out = Command::new(BIN).arg("manpage").env("HEARTH_CONFIG", "/dev/null").output().unwrap();
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && page.contains(".TH hearth") && page.contains("serve"), "{page}");
    let out = Command::new(BIN).args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "an unknown shell is a usage error");
}

#[test]
fn users_are_disabled_enabled_and_deleted_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(cli(dir.path(), &["users", "add", "bob"]).0, 0);
    assert_eq!(cli(dir.path(), &["users", "disable", "bob"]).0, 0);
    assert_eq!(cli(dir.path(), &["users", "enable", "bob"]).0, 0);
    let (status, _, err) = cli(dir.path(), &["users", "delete", "bob"]);
    assert_ne!(status, 0);
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(cli(dir.path(), &["users", "delete", "bob", "--yes"]).0, 0);
    let (_, list, _) = cli(dir.path(), &["users", "list"]);
    assert!(!list.contains("bob"), "{list}");
    let (status, _, err) = cli(dir.path(), &["users", "disable", "nobody"]);
    assert!(status != 0 && err.contains("no user 'nobody'"), "{err}");
}
