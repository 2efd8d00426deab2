use super::*;
use std::collections::BTreeSet;

/// Every method and path `http/mod.rs` registers (`resource("…")` then its
/// `web::method()` routes, or `.route("…", web::method()…)`; the Ollama scope's prefix
/// applies to the resources after it) and the locked server's (`locked.rs`).
fn registered() -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    let source = include_str!("../mod.rs");
    let (mut prefix, mut resource) = (String::new(), None::<String>);
    let mut rest = source;
    while let Some(at) = rest.find(['r', 'w']) {
        rest = &rest[at..];
        if let Some(tail) = rest.strip_prefix("resource(\"") {
            let end = tail.find('"').expect("a closing quote");
            resource = Some(format!("{prefix}{}", &tail[..end]));
        } else if let Some(tail) = rest.strip_prefix("route(\"") {
            // `.route("/path", web::get()...)` straight on the config.
            let end = tail.find('"').expect("a closing quote");
            resource = Some(format!("{prefix}{}", &tail[..end]));
        } else if let Some(tail) = rest.strip_prefix("web::scope(\"") {
            let end = tail.find('"').expect("a closing quote");
            prefix = tail[..end].to_string();
        } else if let Some(method) = method_at(rest) {
            let path = resource.clone().expect("a route after its resource");
            routes.insert((method, path));
        }
        rest = &rest[1..];
    }
    let locked = include_str!("../locked.rs");
    for piece in locked.split(".route(\"").skip(1) {
        let end = piece.find('"').expect("a closing quote");
        let method = method_at(piece[end..].trim_start_matches(['"', ',', ' '])).expect("a method");
        routes.insert((method, piece[..end].to_string()));
    }
    routes
}

fn method_at(text: &str) -> Option<String> {
    ["get", "post", "put", "patch", "delete", "head"]
        .into_iter()
        .find(|m| text.starts_with(&format!("web::{m}()")))
        .map(str::to_string)
}

fn documented() -> BTreeSet<(String, String)> {
    let doc: serde_json::Value = serde_json::from_str(text()).unwrap();
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            routes.insert((method.clone(), path.clone()));
        }
    }
    routes
}

#[test]
fn every_registered_route_is_documented_and_nothing_else() {
    let (registered, documented) = (registered(), documented());
    assert!(registered.len() > 80, "the route scanner found only {}: {registered:?}", registered.len());
    let missing: Vec<_> = registered.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&registered).collect();
    assert!(
        missing.is_empty(),
        "registered but not in the OpenAPI document (add #[utoipa::path]): {missing:?}"
    );
    assert!(extra.is_empty(), "in the OpenAPI document but not registered: {extra:?}");
}

#[test]
fn the_scanner_sees_scoped_and_locked_routes() {
    let routes = registered();
    for (method, path) in [
        ("get", "/api/tags"),
        ("post", "/api/chat"),
        ("post", "/api/unlock"),
        ("get", "/assets/{version}/{file}"),
        ("get", "/api/openapi.json"),
    ] {
        assert!(routes.contains(&(method.into(), path.into())), "{method} {path}");
    }
}

#[test]
fn operations_carry_security_and_their_errors() {
    let doc: serde_json::Value = serde_json::from_str(text()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let codes = doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(codes, ErrorCode::ALL.len());
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let security = operation["security"].as_array().unwrap();
            let public = security.iter().any(|r| r.as_object().unwrap().is_empty());
            assert_eq!(
                public,
                super::super::auth::is_public(path) || path.ends_with("unlock"),
                "{method} {path}"
            );
            if !public {
                assert!(operation["responses"]["401"].is_object(), "{method} {path}: no 401");
                assert!(operation["x-hearth-role"].is_string(), "{method} {path}: no role");
            }
            for (status, response) in operation["responses"].as_object().unwrap() {
                if status.starts_with('4') || status.starts_with('5') {
                    assert!(response["content"].is_object(), "{method} {path} {status}: no body");
                }
            }
        }
    }
    let mut ids = BTreeSet::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for operation in item.as_object().unwrap().values() {
            let id = operation["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_string()), "operationId {id} twice");
        }
    }
    let admin = &doc["paths"]["/api/users"]["get"];
    assert_eq!(admin["x-hearth-role"], "admin");
    assert_eq!(admin["security"][0]["bearer"][0], "admin");
    assert_eq!(doc["paths"]["/api/notes"]["get"]["x-hearth-scope"], "chat");
}

/// Each annotated handler's role in the document is the one its signature demands: an
/// [`crate::http::Admin`] argument, and `x-hearth-role = "admin"` in its annotation, go
/// together (read from the sources of `src/http/`).
#[test]
fn admin_handlers_and_admin_annotations_go_together() {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http"), &mut files);
    let mut checked = 0;
    for file in files {
        let source = std::fs::read_to_string(&file).unwrap();
        for block in source.split("#[utoipa::path(").skip(1) {
            let start = block.find("async fn ").expect("an annotated fn");
            let (annotation, function) = block.split_at(start);
            let signature = &function[..function.find('{').unwrap_or(function.len())];
            let takes_admin = signature.contains(": Admin");
            let says_admin = annotation.contains(r#""x-hearth-role" = json!("admin")"#);
            let name = signature.split(['(', '<']).next().unwrap_or_default();
            assert_eq!(takes_admin, says_admin, "{}: {name}", file.display());
            checked += 1;
        }
    }
    assert!(checked > 80, "only {checked} annotated handlers found");
}
