//! Issue 25's audit log and admin address allowlist, against the real server: logins,
//! failures, token and account changes appear in `GET /api/audit` with who, from where
//! and how it ended; an edited row is found by `hearth audit verify`; concurrent appends
//! keep one chain; administrators from an address not on `server.admin_allow` are refused
//! (and that refusal is recorded).

use crate::common::{cli, code, small_model, Server, ServerOptions};
use serde_json::{json, Value};
use std::io::{Read, Write};

const PASSWORD: &str = "correct horse battery";

/// An administrator made with the command line, and a token for them.
fn admin(server: &Server, name: &str) -> String {
    let (status, _, err) = cli(&server.data_dir, &["users", "add", name, "--admin"]);
    assert_eq!(status, 0, "{err}");
    let (status, out, err) = cli(&server.data_dir, &["tokens", "create", "--user", name]);
    assert_eq!(status, 0, "{err}");
    out.lines().last().unwrap().trim().to_string()
}

/// `POST /api/login` as the web UI sends it; the status.
fn login(server: &Server, name: &str, password: &str) -> u16 {
    let result = server
        .agent()
        .post(&format!("{}/api/login", server.url))
        .set("X-Hearth-CSRF", "1")
        .send_json(json!({ "name": name, "password": password }));
    crate::common::response_parts(result).0
}

/// The audit entries a query gives (admin token), newest first.
fn entries(server: &Server, token: &str, query: &str) -> Vec<Value> {
    let (status, body) = server.call("GET", &format!("/api/audit?{query}"), Some(token), None);
    assert_eq!(status, 200, "{query}: {body}");
    body["entries"].as_array().unwrap().clone()
}

fn find<'a>(entries: &'a [Value], action: &str, target_has: &str) -> &'a Value {
    entries
        .iter()
        .find(|e| e["action"] == action && e["target"].as_str().unwrap().contains(target_has))
        .unwrap_or_else(|| panic!("no {action} on {target_has} in {entries:#?}"))
}

#[test]
fn logins_failures_tokens_and_deletions_are_recorded_and_an_edit_is_found() {
    let mut server = Server::start(ServerOptions::new(small_model()));
    let root = admin(&server, "root");
    let (status, made) = server.call(
        "POST",
        "/api/users",
        Some(&root),
        Some(&json!({ "name": "alice", "password": PASSWORD })),
    );
    assert_eq!(status, 201, "{made}");
    let alice_id = made["user"]["id"].as_i64().unwrap();

    assert_eq!(login(&server, "alice", PASSWORD), 200);
    assert_eq!(login(&server, "alice", "wrong password!"), 401);
    // A password typed into the name field must not reach the log.
    assert_eq!(login(&server, "hunter2-typed-as-name", PASSWORD), 401);

    let (status, token) =
        server.call("POST", "/api/tokens", Some(&root), Some(&json!({ "label": "laptop" })));
    assert_eq!(status, 201, "{token}");
    let (token_id, prefix, secret) = (
        token["id"].as_i64().unwrap(),
        token["prefix"].as_str().unwrap().to_string(),
        token["token"].as_str().unwrap().to_string(),
    );
    let (status, _) = server.call("DELETE", &format!("/api/tokens/{token_id}"), Some(&root), None);
    assert_eq!(status, 200);
    let (status, body) = server.call("DELETE", &format!("/api/users/{alice_id}"), Some(&root), None);
    assert_eq!(status, 200, "{body}");

    let all = entries(&server, &root, "limit=500");
    let whole = serde_json::to_string(&all).unwrap();
    for secret in [PASSWORD, "wrong password!", "hunter2-typed-as-name", secret.as_str()] {
        assert!(!whole.contains(secret), "'{secret}' is in the audit log: {whole}");
    }
    let alice = format!("user:{alice_id} alice");
    let created = find(&all, "user_created", &alice);
    assert_eq!((created["actor"].as_str(), created["outcome"].as_str()), (Some("root"), Some("success")));
    assert_eq!(created["address"], "127.0.0.1");
    let ok = find(&all, "login", &alice);
    assert_eq!((ok["actor"].as_str(), ok["address"].as_str()), (Some("alice"), Some("127.0.0.1")));
    assert_eq!(ok["outcome"], "success");
    let failed = find(&all, "login_failed", &alice);
    assert_eq!((failed["actor"].as_str(), failed["outcome"].as_str()), (Some("anonymous"), Some("failure")));
    assert_eq!(
        (failed["address"].as_str(), failed["detail"]["reason"].as_str()),
        (Some("127.0.0.1"), Some("wrong_password"))
    );
    let unknown =
        all.iter().find(|e| e["action"] == "login_failed" && e["target"] == "").expect("unknown name");
    assert_eq!(unknown["detail"]["reason"], "unknown_user");
    let target = format!("token:{token_id} {prefix}");
    let made = find(&all, "token_created", &target);
    assert_eq!((made["actor"].as_str(), made["detail"]["label"].as_str()), (Some("root"), Some("laptop")));
    let revoked = find(&all, "token_revoked", &target);
    assert_eq!((revoked["actor"].as_str(), revoked["outcome"].as_str()), (Some("root"), Some("success")));
    let deleted = find(&all, "user_deleted", &alice);
    assert_eq!((deleted["actor"].as_str(), deleted["address"].as_str()), (Some("root"), Some("127.0.0.1")));
    let cli_made = find(&all, "user_created", "root");
    assert_eq!((cli_made["actor"].as_str(), cli_made["address"].as_str()), (Some("cli"), None));

    // Filters and pages.
    let failures = entries(&server, &root, "action=login_failed");
    assert_eq!(failures.len(), 2, "{failures:#?}");
    assert!(entries(&server, &root, "outcome=failure").iter().all(|e| e["outcome"] == "failure"));
    assert!(entries(&server, &root, "actor=root").iter().all(|e| e["actor"] == "root"));
    let (_, first) = server.call("GET", "/api/audit?limit=2", Some(&root), None);
    let next = first["next_before"].as_i64().expect("a full page says where the next starts");
    let second = entries(&server, &root, &format!("limit=2&before={next}"));
    assert!(second.iter().all(|e| e["id"].as_i64().unwrap() < next));
    let (status, body) = server.call("GET", "/api/audit?action=nope", Some(&root), None);
    assert_eq!((status, code(&body)), (400, "invalid_request"), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("login_failed"), "{body}");

    // Not for users.
    let bob = server.user("bob");
    let (status, body) = server.call("GET", "/api/audit", Some(&bob), None);
    assert_eq!((status, code(&body)), (403, "forbidden"), "{body}");

    let (status, out, err) = cli(&server.data_dir, &["audit", "verify"]);
    assert_eq!(status, 0, "{out}{err}");
    assert!(out.contains("audit log OK"), "{out}");
    let (status, out, _) = cli(&server.data_dir, &["audit", "list", "--action", "user_deleted", "--json"]);
    assert_eq!(status, 0);
    let listed: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(listed["target"], alice.as_str());

    // The server stops; someone with the file edits a row. The triggers refuse, so they
    // drop the trigger first, as an attacker with the file would.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let db = rusqlite::Connection::open(server.data_dir.join("hearth.db")).unwrap();
    let refused = db.execute("UPDATE audit_log SET outcome = 'success' WHERE action = 'login_failed'", []);
    assert!(refused.unwrap_err().to_string().contains("append-only"));
    let refused = db.execute("DELETE FROM audit_log WHERE action = 'login_failed'", []);
    assert!(refused.unwrap_err().to_string().contains("append-only"));
    let edited = failed["id"].as_i64().unwrap();
    db.execute_batch(&format!(
        "DROP TRIGGER audit_log_no_update; UPDATE audit_log SET outcome = 'success' WHERE id = {edited};"
    ))
    .unwrap();
    drop(db);
    let (status, out, err) = cli(&server.data_dir, &["audit", "verify"]);
    assert_ne!(status, 0, "an edited log verified: {out}");
    assert!(err.contains(&format!("BROKEN at row {edited}")), "{err}");
}

#[test]
fn concurrent_failed_logins_and_token_creations_leave_a_chain_that_verifies() {
    let server = Server::start(ServerOptions::new(small_model()));
    let root = admin(&server, "root");
    let bob = server.user("bob");
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..50)
            .map(|n| {
                let (server, bob) = (&server, &bob);
                s.spawn(move || {
                    // Failed (401), or refused once the address has failed too often or
                    // the box is busy checking others (429).
                    let status = login(server, "bob", "not bob's password");
                    assert!(matches!(status, 401 | 429), "{status}");
                    let label = json!({ "label": format!("t{n}") });
                    let (made, body) = server.call("POST", "/api/tokens", Some(bob), Some(&label));
                    assert_eq!(made, 201, "{body}");
                    status
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    // Every checked password is recorded; refusals once a minute per address (the next
    // record says how many were left out: `audit::quiet`'s unit tests).
    let failed = statuses.iter().filter(|s| **s == 401).count();
    assert_eq!(entries(&server, &root, "action=login_failed&outcome=failure&limit=500").len(), failed);
    let refused = entries(&server, &root, "action=login_failed&outcome=refused&limit=500");
    assert_eq!(refused.len(), usize::from(failed < 50), "{refused:#?}");
    assert_eq!(entries(&server, &root, "action=token_created&actor=bob&limit=500").len(), 50);
    let (status, out, err) = cli(&server.data_dir, &["audit", "verify"]);
    assert_eq!(status, 0, "{out}{err}");
    assert!(out.contains("audit log OK"), "{out}");
}

/// A GET from a chosen loopback source address (Linux routes all of 127/8 to this box):
/// status and body.
fn get_from(source: [u8; 4], server: &Server, path: &str, token: &str) -> (u16, Value) {
    use std::os::fd::FromRawFd;
    let port: u16 = server.url.rsplit(':').next().unwrap().parse().unwrap();
    let address = |ip: [u8; 4], port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(ip) },
        sin_zero: [0; 8],
    };
    let size = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: a fresh socket, plain sockaddr_in values that outlive the calls; the
    // descriptor is owned by the TcpStream from then on.
    let mut stream = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let stream = std::net::TcpStream::from_raw_fd(fd);
        let local = address(source, 0);
        let bound = libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), size);
        assert_eq!(bound, 0, "bind: {}", std::io::Error::last_os_error());
        let remote = address([127, 0, 0, 1], port);
        let connected = libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), size);
        assert_eq!(connected, 0, "connect: {}", std::io::Error::last_os_error());
        stream
    };
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.split(' ').nth(1).unwrap().parse().unwrap();
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::String(body.into())))
}

#[test]
fn the_admin_allowlist_refuses_other_addresses_and_records_it() {
    // Requests from the test come from 127.0.0.1, which is not listed; 127.0.0.2 is.
    let options = ServerOptions::new(small_model()).env("HEARTH_ADMIN_ALLOW", "10.0.0.0/8,127.0.0.2/32");
    let server = Server::start(options);
    let root = admin(&server, "root");
    let bob = server.user("bob");

    for path in ["/api/users", "/api/audit", "/api/system", "/api/tokens?all=true"] {
        let (status, body) = server.call("GET", path, Some(&root), None);
        assert_eq!((status, code(&body)), (403, "admin_address_refused"), "{path}: {body}");
    }
    // A forwarding header is not the address: anyone can send one.
    let forged = server
        .agent()
        .get(&format!("{}/api/users", server.url))
        .set("Authorization", &format!("Bearer {root}"))
        .set("X-Forwarded-For", "127.0.0.2")
        .set("Forwarded", "for=127.0.0.2")
        .call();
    let (status, body) = crate::common::response_parts(forged);
    assert_eq!((status, code(&body)), (403, "admin_address_refused"), "{body}");
    // What any user may do stays open to an administrator anywhere.
    let (status, _) = server.call("GET", "/api/tokens", Some(&root), None);
    assert_eq!(status, 200);
    // Not an administrator: forbidden as before, wherever from.
    let (status, body) = server.call("GET", "/api/users", Some(&bob), None);
    assert_eq!((status, code(&body)), (403, "forbidden"), "{body}");

    let (status, body) = get_from([127, 0, 0, 2], &server, "/api/users", &root);
    assert_eq!(status, 200, "{body}");
    let (status, body) =
        get_from([127, 0, 0, 2], &server, "/api/audit?action=admin_address_refused&limit=500", &root);
    assert_eq!(status, 200, "{body}");
    let refused = body["entries"].as_array().unwrap();
    assert_eq!(refused.len(), 5, "{body:#}");
    let users = refused.iter().find(|e| e["target"] == "GET /api/users").expect("the refusal of /api/users");
    assert_eq!((users["actor"].as_str(), users["address"].as_str()), (Some("root"), Some("127.0.0.1")));
    assert_eq!(users["outcome"], "refused");
}
