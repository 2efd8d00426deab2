//! Backups, restore, retention and export/import against the real server and CLI
//! (issue 25): a backup taken while chats run restores into another data dir where a
//! server gives the same searches, logins, conversations and documents; a `kill -9` of
//! `hearth backup` leaves the earlier archive good and nothing that looks complete; a
//! tampered archive is refused; retention deletes an old conversation and its search
//! hits; an export imports into another user once.

use crate::common::{cli, code, small_model, Server, ServerOptions};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const NETWORK: &str =
    "# Network\n\nThe guest network is called Hearth-Guest and its password is otter-lantern-57.";

fn admin_token(data_dir: &Path) -> String {
    let (status, _, err) = cli(data_dir, &["users", "add", "root", "--admin"]);
    assert_eq!(status, 0, "{err}");
    let (status, out, err) = cli(data_dir, &["tokens", "create", "--user", "root"]);
    assert_eq!(status, 0, "{err}");
    out.lines().last().unwrap().trim().to_string()
}

fn chat(server: &Server, token: &str, message: &str) -> Value {
    let body = json!({"message": message, "max_tokens": 8, "temperature": 0});
    let (status, reply) = server.call("POST", "/api/chat", Some(token), Some(&body));
    assert_eq!(status, 200, "{reply}");
    reply
}

/// Search results without scores (BM25 statistics depend on the whole index).
fn search(server: &Server, token: &str, q: &str) -> Vec<Value> {
    let (status, body) = server.call("GET", &format!("/api/search?q={q}&limit=100"), Some(token), None);
    assert_eq!(status, 200, "{body}");
    let mut results = body["results"].as_array().unwrap().clone();
    for r in &mut results {
        r.as_object_mut().unwrap().remove("score");
    }
    results.sort_by_key(|r| (r["kind"].to_string(), r["id"].as_i64()));
    results
}

fn archives(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

fn complete(names: &[String]) -> Vec<&String> {
    names.iter().filter(|n| n.starts_with("hearth-backup-") && n.ends_with(".tar.gz")).collect()
}

fn user_id(server: &Server, admin: &str, name: &str) -> i64 {
    let (_, users) = server.call("GET", "/api/users", Some(admin), None);
    users["users"].as_array().unwrap().iter().find(|u| u["name"] == name).unwrap()["id"].as_i64().unwrap()
}

fn login(server: &Server, name: &str, password: &str) -> u16 {
    let result = ureq::post(&format!("{}/api/login", server.url))
        .set("X-Hearth-CSRF", "1")
        .send_json(json!({"name": name, "password": password}));
    crate::common::response_parts(result).0
}

#[test]
fn a_backup_taken_during_chats_restores_to_the_same_searches_logins_and_lists() {
    let server = Server::start(ServerOptions::new(small_model()));
    let root = admin_token(&server.data_dir);
    let alice = server.user("alice");
    let alice_id = user_id(&server, &root, "alice");
    let (status, body) = server.call(
        "PUT",
        &format!("/api/users/{alice_id}/password"),
        Some(&root),
        Some(&json!({"password": "a long enough secret 42"})),
    );
    assert!(status < 300, "{body}");
    let (status, body) = server.upload(&alice, &[("network.md", NETWORK.as_bytes())]);
    assert_eq!(status, 202, "{body}");
    let job = server.wait_job(&alice, body["documents"][0]["job_id"].as_str().unwrap());
    assert_eq!(job["state"], "done", "{job}");
    chat(&server, &alice, "Tell me about marmalade");
    chat(&server, &alice, "Is marmalade sweet?");

    // Chats keep running (three at a time) while the CLI backs up the live data dir.
    let backups = tempfile::tempdir().unwrap();
    let load: Vec<_> = (0..3)
        .map(|n| {
            let (url, token) = (server.url.clone(), alice.clone());
            std::thread::spawn(move || {
                for i in 0..3 {
                    let body = json!({"message": format!("Say hello number {n}{i}"), "max_tokens": 8});
                    let r = ureq::post(&format!("{url}/api/chat"))
                        .set("Authorization", &format!("Bearer {token}"))
                        .timeout(Duration::from_secs(600))
                        .send_json(body);
                    assert!(r.is_ok(), "{r:?}");
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let to = backups.path().to_str().unwrap();
    let (status, out, err) = cli(&server.data_dir, &["backup", "--to", to]);
    assert_eq!(status, 0, "{err}");
    for t in load {
        t.join().unwrap();
    }
    let archive = PathBuf::from(out.trim());
    assert!(archive.is_file(), "{out}");
    let (status, out, err) = cli(&server.data_dir, &["backup", "verify", archive.to_str().unwrap()]);
    assert_eq!(status, 0, "{out}{err}");

    // The admin API makes one too, as a job; GET lists it.
    let (status, body) = server.call("POST", "/api/admin/backups", Some(&root), None);
    assert_eq!(status, 202, "{body}");
    let (status, body) = server.call("POST", "/api/admin/backups", Some(&alice), None);
    assert_eq!(status, 403, "admins only: {body}");
    let deadline = Instant::now() + Duration::from_secs(120);
    let listed = loop {
        let (status, body) = server.call("GET", "/api/admin/backups", Some(&root), None);
        assert_eq!(status, 200, "{body}");
        if body["running"].is_null() && !body["last"].is_null() {
            break body;
        }
        assert!(Instant::now() < deadline, "the API's backup did not end: {body}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(listed["last"]["error"].is_null(), "{listed}");
    assert_eq!(listed["archives"].as_array().unwrap().len(), 1, "{listed}");

    let restored = tempfile::tempdir().unwrap();
    let target = restored.path().join("data");
    let (status, out, err) = cli(&target, &["restore", archive.to_str().unwrap()]);
    assert_eq!(status, 0, "{out}{err}");
    let (status, _, err) = cli(&target, &["restore", archive.to_str().unwrap()]);
    assert_ne!(status, 0);
    assert!(err.contains("not empty"), "{err}");
    assert!(!target.join("index").exists(), "the index is rebuilt, not restored");

    let copy = Server::start_in(&target, ServerOptions::new(small_model()));
    // The same users: alice's token and password, root's admin token.
    assert_eq!(login(&copy, "alice", "a long enough secret 42"), 200);
    assert_eq!(login(&copy, "alice", "wrong"), 401);
    let (status, _) = copy.call("GET", "/api/users", Some(&root), None);
    assert_eq!(status, 200);
    // The same documents, and every conversation the backup has is whole (no half turns).
    let (_, docs_then) = server.call("GET", "/api/documents", Some(&alice), None);
    let (_, docs_now) = copy.call("GET", "/api/documents", Some(&alice), None);
    assert_eq!(docs_then["documents"], docs_now["documents"]);
    let (_, then) = server.call("GET", "/api/conversations?limit=100", Some(&alice), None);
    let (_, now) = copy.call("GET", "/api/conversations?limit=100", Some(&alice), None);
    let then = then["conversations"].as_array().unwrap().clone();
    let now = now["conversations"].as_array().unwrap().clone();
    assert!(now.len() >= 2 && now.len() <= then.len(), "{now:?}");
    for c in &now {
        assert!(then.contains(c), "{c} is the original's");
        let (_, whole) = copy.call(
            "GET",
            &format!("/api/conversations/{}", c["id"].as_str().unwrap()),
            Some(&alice),
            None,
        );
        assert_eq!(whole["messages"].as_array().unwrap().len() % 2, 0, "{whole}");
    }
    // The same searches, once the copy rebuilt its index from SQLite.
    for q in ["otter", "marmalade", "guest%20network"] {
        let expected = search(&server, &alice, q);
        assert!(!expected.is_empty(), "{q}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = search(&copy, &alice, q);
            if got == expected {
                break;
            }
            assert!(Instant::now() < deadline, "{q}: {got:?}\n!=\n{expected:?}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// A data dir with `mib` MiB of incompressible document bytes, so a backup takes a while.
fn heavy_data_dir(dir: &Path, mib: usize) {
    let (status, _, err) = cli(dir, &["users", "add", "bob"]);
    assert_eq!(status, 0, "{err}");
    let conn = rusqlite::Connection::open(dir.join("hearth.db")).unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for n in 0..mib / 4 {
        let mut data = vec![0u8; 4 << 20];
        for chunk in data.chunks_mut(8) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            chunk.copy_from_slice(&seed.to_le_bytes()[..chunk.len()]);
        }
        let sha = format!("{n:064x}");
        conn.execute(
            "INSERT INTO blobs (sha256, size, data, created_at) VALUES (?1, ?2, ?3, 0)",
            rusqlite::params![sha, data.len() as i64, data],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO documents (user_id, name, kind, sha256, size, status, created_at)
             VALUES (1, ?1, 'text', ?2, ?3, 'ready', 0)",
            rusqlite::params![format!("big{n}.txt"), sha, data.len() as i64],
        )
        .unwrap();
    }
}

#[test]
fn a_killed_backup_leaves_the_earlier_archive_good_and_a_tampered_one_is_refused() {
    let data = tempfile::tempdir().unwrap();
    heavy_data_dir(data.path(), 24);
    let backups = tempfile::tempdir().unwrap();
    let to = backups.path().to_str().unwrap();
    let (status, out, err) = cli(data.path(), &["backup", "--to", to]);
    assert_eq!(status, 0, "{err}");
    let first = PathBuf::from(out.trim());

    // kill -9 while the archive is being written (its temporary file is there).
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["backup", "--to", to, "--data-dir"])
        .arg(data.path())
        .env("HEARTH_CONFIG", "/dev/null")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !archives(backups.path()).iter().any(|n| n.ends_with(".tar.gz.tmp")) {
        assert!(Instant::now() < deadline, "no temporary file appeared");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success(), "the backup was killed before it ended");
    let names = archives(backups.path());
    assert!(names.iter().any(|n| n.starts_with(".hearth-backup-") && n.ends_with(".tmp")), "{names:?}");
    assert_eq!(complete(&names), [&first.file_name().unwrap().to_string_lossy().into_owned()], "{names:?}");
    let (status, out, err) = cli(data.path(), &["backup", "verify", first.to_str().unwrap()]);
    assert_eq!(status, 0, "{out}{err}");
    let (status, out, _) = cli(data.path(), &["backup", "list", "--to", to]);
    assert_eq!((status, out.lines().count()), (0, 1), "{out}");
    // The next backup clears what the killed one left.
    let (status, _, err) = cli(data.path(), &["backup", "--to", to]);
    assert_eq!(status, 0, "{err}");
    let names = archives(backups.path());
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    assert_eq!(complete(&names).len(), 2);

    // One byte changed inside the database member: verify and restore refuse, nothing is written.
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&first).unwrap()).read_to_end(&mut plain).unwrap();
    plain[512 + 4096] ^= 0x55;
    let tampered = backups.path().join("tampered.tar.gz");
    let mut gz =
        flate2::write::GzEncoder::new(std::fs::File::create(&tampered).unwrap(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    gz.finish().unwrap();
    let (status, _, err) = cli(data.path(), &["backup", "verify", tampered.to_str().unwrap()]);
    assert_ne!(status, 0);
    assert!(err.contains("cannot be trusted") && err.contains("hearth.db"), "{err}");
    let target = tempfile::tempdir().unwrap();
    let fresh = target.path().join("fresh");
    let (status, _, err) = cli(&fresh, &["restore", tampered.to_str().unwrap()]);
    assert_ne!(status, 0);
    assert!(err.contains("cannot be trusted"), "{err}");
    assert!(!fresh.join("hearth.db").exists());
}

#[test]
fn retention_deletes_old_conversations_and_their_hits_and_exports_import_once() {
    // Also: the scheduled backup and the daily retention run soon after the start.
    let server = Server::start(
        ServerOptions::new(small_model())
            .env("HEARTH_RETENTION_CONVERSATIONS_DAYS", "30")
            .env("HEARTH_BACKUP_EVERY", "1d")
            .env("HEARTH_BACKUP_KEEP", "2"),
    );
    let root = admin_token(&server.data_dir);
    let alice = server.user("alice");
    let bob = server.user("bob");
    let old = chat(&server, &alice, "Remember the quokka festival")["conversation_id"]
        .as_str()
        .unwrap()
        .to_string();
    let kept =
        chat(&server, &alice, "Remember the pelican parade")["conversation_id"].as_str().unwrap().to_string();
    let bobs =
        chat(&server, &bob, "Remember the quokka picnic")["conversation_id"].as_str().unwrap().to_string();

    // Export and import before retention: alice's conversations into bob's, once.
    let response = ureq::get(&format!("{}/api/conversations/export?format=json", server.url))
        .set("Authorization", &format!("Bearer {alice}"))
        .call()
        .unwrap();
    assert!(response.header("Content-Disposition").unwrap().contains("attachment"));
    let export: Value = response.into_json().unwrap();
    assert_eq!(export["conversations"].as_array().unwrap().len(), 2, "{export}");
    let (status, done) = server.call("POST", "/api/conversations/import", Some(&bob), Some(&export));
    assert_eq!(
        (status, done["conversations"].as_i64(), done["skipped"].as_i64()),
        (200, Some(2), Some(0)),
        "{done}"
    );
    let (_, again) = server.call("POST", "/api/conversations/import", Some(&bob), Some(&export));
    assert_eq!((again["conversations"].as_i64(), again["skipped"].as_i64()), (Some(0), Some(2)), "{again}");
    let (_, bob_export) = server.call("GET", "/api/conversations/export", Some(&bob), None);
    for c in export["conversations"].as_array().unwrap() {
        let same = bob_export["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["title"] == c["title"] && b["created_at"] == c["created_at"])
            .unwrap_or_else(|| panic!("{c} imported"));
        assert_eq!(same["messages"], c["messages"], "lossless");
    }
    let (status, body) = server.call("GET", "/api/conversations/export?format=markdown", Some(&alice), None);
    assert_eq!(status, 200);
    assert!(body.as_str().unwrap().contains("quokka festival"), "{body}");
    let (status, body) = server.call("GET", "/api/conversations/export?format=pdf", Some(&alice), None);
    assert_eq!((status, code(&body)), (400, "invalid_request"));
    let (status, body) =
        server.call("POST", "/api/conversations/import", Some(&bob), Some(&json!({"kind": "x"})));
    assert_eq!((status, code(&body)), (400, "invalid_import"), "{body}");
    let big = vec![b' '; (32 << 20) + 1];
    let (status, body) = server.raw("/api/conversations/import", &bob, "application/json", &big);
    assert_eq!((status, code(&body)), (413, "payload_too_large"), "{body}");
    // The CLI does the same for a third user.
    let carol = server.user("carol");
    let file = server.data_dir.join("alice.json");
    let (status, _, err) =
        cli(&server.data_dir, &["export", "--user", "alice", "-o", file.to_str().unwrap()]);
    assert_eq!(status, 0, "{err}");
    let (status, out, err) = cli(&server.data_dir, &["import", "--user", "carol", file.to_str().unwrap()]);
    assert_eq!(status, 0, "{err}");
    assert!(out.contains("imported 2 conversations"), "{out}");
    let (_, carols) = server.call("GET", "/api/conversations", Some(&carol), None);
    assert_eq!(carols["conversations"].as_array().unwrap().len(), 2);

    // The maintenance thread made the scheduled backup and ran retention once, soon after the
    // start (nothing was old then); when is kept in SQLite.
    let conn = rusqlite::Connection::open(server.data_dir.join("hearth.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let ran = |task: &str| -> bool {
        conn.query_row("SELECT COUNT(*) FROM maintenance_runs WHERE task = ?1", [task], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap()
            == 1
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ran("retention") {
        assert!(Instant::now() < deadline, "no maintenance pass: {}", server.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(ran("backup"));
    let (status, listed) = server.call("GET", "/api/admin/backups", Some(&root), None);
    assert_eq!(status, 200);
    assert_eq!(listed["archives"].as_array().unwrap().len(), 1, "the scheduled backup: {listed}");
    assert_eq!(listed["last"]["trigger"], "schedule", "{listed}");

    // Alice's first conversation and bob's are 40 days old; bob keeps his forever.
    assert!(!search(&server, &alice, "quokka").is_empty());
    let past = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
        - 40 * 86_400;
    conn.execute(
        "UPDATE conversations SET updated_at = ?1 WHERE id IN (?2, ?3)",
        rusqlite::params![past, old, bobs],
    )
    .unwrap();
    let bob_id = user_id(&server, &root, "bob");
    let (status, body) = server.call(
        "PUT",
        &format!("/api/admin/users/{bob_id}/retention"),
        Some(&root),
        Some(&json!({"conversations_days": 0, "documents_days": null})),
    );
    assert_eq!((status, body["own"]["conversations_days"].as_i64()), (200, Some(0)), "{body}");
    let (status, body) =
        server.call("PUT", &format!("/api/admin/users/{bob_id}/retention"), Some(&alice), Some(&json!({})));
    assert_eq!(status, 403, "{body}");
    let (status, body) = server.call("POST", "/api/admin/retention", Some(&root), None);
    assert_eq!(status, 200, "{body}");
    let deleted = body["deleted"].as_array().unwrap();
    assert_eq!(deleted.len(), 1, "{body}");
    assert_eq!(deleted[0]["conversations"], json!([old]));

    let (status, _) = server.call("GET", &format!("/api/conversations/{old}"), Some(&alice), None);
    assert_eq!(status, 404);
    let (status, _) = server.call("GET", &format!("/api/conversations/{kept}"), Some(&alice), None);
    assert_eq!(status, 200);
    let (status, _) = server.call("GET", &format!("/api/conversations/{bobs}"), Some(&bob), None);
    assert_eq!(status, 200, "bob keeps his");
    let hits = search(&server, &alice, "quokka");
    assert!(hits.iter().all(|h| h["conversation_id"] != old.as_str()), "{hits:?}");
    assert!(!search(&server, &alice, "pelican").is_empty());
}
