//! Notes (issue 23): kept per user through `/api/notes`, found by their words (by
//! `?q=` and by `/api/search`, the same index as history and documents), changed and
//! deleted; another user's note is a 404; bad input gets clear 4xx codes. And the
//! calculator and notes skills in a chat with the default model.

use crate::common::{code, default_model, small_model, Server, ServerOptions};
use serde_json::{json, Value};

fn ids(body: &Value, key: &str) -> Vec<i64> {
    body[key]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|n| n["id"].as_i64().unwrap())
        .collect()
}

#[test]
fn notes_are_kept_found_changed_and_deleted_for_their_owner_only() {
    let server = Server::start(ServerOptions::new(small_model()).env("HEARTH_MAX_TOKENS", "8"));
    let alice = server.user("alice");
    let bob = server.user("bob");

    let body =
        json!({"text": "The plumber comes on Friday at ten.\nBring the spare key.", "title": "Plumber"});
    let (status, plumber) = server.call("POST", "/api/notes", Some(&alice), Some(&body));
    assert_eq!(status, 201, "{plumber}");
    assert_eq!(plumber["title"], "Plumber");
    let (status, wifi) = server.call(
        "POST",
        "/api/notes",
        Some(&alice),
        Some(&json!({"text": "Guest wifi password: marmalade-42"})),
    );
    assert_eq!(status, 201, "{wifi}");
    assert_eq!(wifi["title"], "Guest wifi password: marmalade-42", "no title: the text's first line");
    let (_, bobs) =
        server.call("POST", "/api/notes", Some(&bob), Some(&json!({"text": "bob's plumber is Dave"})));

    let (status, listed) = server.call("GET", "/api/notes", Some(&alice), None);
    assert_eq!(status, 200, "{listed}");
    assert_eq!(ids(&listed, "notes"), [wifi["id"].as_i64().unwrap(), plumber["id"].as_i64().unwrap()]);
    let (_, theirs) = server.call("GET", "/api/notes", Some(&bob), None);
    assert_eq!(ids(&theirs, "notes"), [bobs["id"].as_i64().unwrap()], "bob sees only his own");

    // Found by a word of its text (stemmed), by `?q=` and by the search every item shares.
    let (status, found) = server.call("GET", "/api/notes?q=plumbers", Some(&alice), None);
    assert_eq!(status, 200, "{found}");
    assert_eq!(ids(&found, "notes"), [plumber["id"].as_i64().unwrap()], "{found}");
    assert!(found["notes"][0]["snippet"].as_str().unwrap().contains("plumber"), "{found}");
    let (status, search) = server.call("GET", "/api/search?q=marmalade", Some(&alice), None);
    assert_eq!(status, 200, "{search}");
    let hit = &search["results"][0];
    assert_eq!((hit["kind"].as_str(), hit["id"].as_i64()), (Some("note"), wifi["id"].as_i64()), "{search}");
    assert_eq!(hit["note_title"], wifi["title"]);
    let (_, notes_only) = server.call("GET", "/api/search?q=plumber&kind=note", Some(&alice), None);
    assert_eq!(notes_only["total"], 1, "alice's plumber note, not bob's: {notes_only}");
    let (_, bob_search) = server.call("GET", "/api/search?q=marmalade", Some(&bob), None);
    assert_eq!(bob_search["total"], 0, "{bob_search}");

    // Changed: the index follows.
    let path = format!("/api/notes/{}", wifi["id"]);
    let (status, changed) =
        server.call("PATCH", &path, Some(&alice), Some(&json!({"text": "Guest wifi: jam-7"})));
    assert_eq!(status, 200, "{changed}");
    assert_eq!(
        (changed["text"].as_str(), changed["title"].as_str()),
        (Some("Guest wifi: jam-7"), wifi["title"].as_str()),
        "the title stays unless given"
    );
    let (status, retitled) = server.call("PATCH", &path, Some(&alice), Some(&json!({"title": "Wifi"})));
    assert_eq!(
        (status, retitled["title"].as_str(), retitled["text"].as_str()),
        (200, Some("Wifi"), Some("Guest wifi: jam-7"))
    );
    let (_, old) = server.call("GET", "/api/notes?q=marmalade", Some(&alice), None);
    assert_eq!(ids(&old, "notes"), Vec::<i64>::new(), "{old}");
    let (_, new) = server.call("GET", "/api/search?q=jam", Some(&alice), None);
    assert_eq!(new["results"][0]["id"], wifi["id"], "{new}");

    // Another user's note does not exist for bob: read, change or delete.
    for method in ["GET", "PATCH", "DELETE"] {
        let body = (method == "PATCH").then(|| json!({"text": "mine now"}));
        let (status, answer) = server.call(method, &path, Some(&bob), body.as_ref());
        assert_eq!((status, code(&answer)), (404, "note_not_found"), "{method}: {answer}");
    }
    let (_, still) = server.call("GET", &path, Some(&alice), None);
    assert_eq!(still["text"], "Guest wifi: jam-7");

    // Bad input: clear 4xx, nothing stored.
    let too_long = "x".repeat(20_001);
    for (method, path, body, status, error) in [
        ("POST", "/api/notes", json!({"text": "   "}), 400, "invalid_request"),
        ("POST", "/api/notes", json!({"title": "no text"}), 400, "invalid_request"),
        ("POST", "/api/notes", json!({"text": "x", "colour": "red"}), 400, "invalid_request"),
        ("POST", "/api/notes", json!({"text": too_long}), 413, "payload_too_large"),
        ("POST", "/api/notes", json!({"text": "x", "title": "a\nb"}), 400, "invalid_request"),
        ("PATCH", path.as_str(), json!({}), 400, "invalid_request"),
        ("PATCH", path.as_str(), json!({"text": ""}), 400, "invalid_request"),
        ("PATCH", "/api/notes/999999", json!({"text": "x"}), 404, "note_not_found"),
    ] {
        let (got, answer) = server.call(method, path, Some(&alice), Some(&body));
        assert_eq!((got, code(&answer)), (status, error), "{method} {path} {body}: {answer}");
    }
    for bad in ["/api/notes/abc", "/api/notes?limit=0", "/api/notes?q=", "/api/notes?sort=new"] {
        let (status, answer) = server.call("GET", bad, Some(&alice), None);
        assert_eq!(status / 100, 4, "{bad}: {answer}");
        assert_ne!(status, 404, "{bad}: {answer}");
    }
    let (_, listed) = server.call("GET", "/api/notes", Some(&alice), None);
    assert_eq!(listed["notes"].as_array().unwrap().len(), 2, "nothing stored by bad requests: {listed}");

    // Deleted: gone from the list and the search.
    let (status, _) = server.call("DELETE", &path, Some(&alice), None);
    assert_eq!(status, 204);
    let (status, answer) = server.call("DELETE", &path, Some(&alice), None);
    assert_eq!((status, code(&answer)), (404, "note_not_found"));
    let (_, gone) = server.call("GET", "/api/search?q=jam", Some(&alice), None);
    assert_eq!(gone["total"], 0, "{gone}");
    let (status, _) = server.call("GET", "/api/notes", None, None);
    assert_eq!(status, 401);
}

/// The default model at temperature 0 works a product out with `calculate` and answers
/// with its result, and takes a note with `create_note` (the skills on, with the clock).
#[test]
fn the_default_model_calculates_and_takes_notes_with_the_skills() {
    let skills = "clock,calculate,create_note,list_notes,search_notes";
    let server = Server::start(
        ServerOptions::new(default_model()).env("HEARTH_MAX_TOKENS", "60").env("HEARTH_SKILLS", skills),
    );
    let token = server.user("alice");

    let body = json!({"message": "What is 17 times 23?", "temperature": 0});
    let (status, answer) = server.call("POST", "/api/chat", Some(&token), Some(&body));
    assert_eq!(status, 200, "{answer}\n{}", server.log());
    let calls = answer["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{answer}");
    assert_eq!(
        (calls[0]["name"].as_str(), calls[0]["ok"].as_bool()),
        (Some("calculate"), Some(true)),
        "{answer}"
    );
    assert!(calls[0]["result"].as_str().unwrap().ends_with("= 391."), "{answer}");
    assert!(answer["reply"].as_str().unwrap().contains("391"), "{answer}");

    let body = json!({"message": "Take a note: the plumber comes on Friday at ten.", "temperature": 0});
    let (status, answer) = server.call("POST", "/api/chat", Some(&token), Some(&body));
    assert_eq!(status, 200, "{answer}");
    let calls = answer["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{answer}");
    assert_eq!(
        (calls[0]["name"].as_str(), calls[0]["ok"].as_bool()),
        (Some("create_note"), Some(true)),
        "{answer}"
    );
    let (_, notes) = server.call("GET", "/api/notes?q=plumber", Some(&token), None);
    assert_eq!(notes["notes"].as_array().map(Vec::len), Some(1), "the note is kept: {notes}");
    assert!(notes["notes"][0]["text"].as_str().unwrap().to_lowercase().contains("friday"), "{notes}");
}
