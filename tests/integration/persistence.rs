//! Acknowledged turns survive `kill -9` and a restart.

use crate::common::{small_model, Server, ServerOptions};
use serde_json::json;

#[test]
fn history_survives_kill_9_and_restart() {
    let server = Server::start(ServerOptions::new(small_model()));
    let token = server.user("alice");
    let mut ids = Vec::new();
    let mut conversation: Option<String> = None;
    for message in ["Remember the word lantern.", "And the number 12."] {
        let body = json!({"message": message, "conversation_id": conversation, "max_tokens": 8});
        let (status, reply) = server.call("POST", "/api/chat", Some(&token), Some(&body));
        assert_eq!(status, 200, "{reply}");
        conversation = reply["conversation_id"].as_str().map(str::to_owned);
        ids.push(reply["message_id"].as_i64().unwrap());
    }
    let id = conversation.unwrap();
    let (_, before) = server.call("GET", &format!("/api/conversations/{id}"), Some(&token), None);

    // SIGKILL straight after the acknowledgement: no clean shutdown, no flush.
    let server = server.kill_and_restart();
    let (status, after) = server.call("GET", &format!("/api/conversations/{id}"), Some(&token), None);
    assert_eq!(status, 200, "{after}");
    assert_eq!(after, before);
    assert_eq!(after["messages"].as_array().unwrap().len(), 4);
    assert_eq!(after["messages"][3]["id"].as_i64().unwrap(), ids[1]);

    // The conversation goes on after the restart.
    let body = json!({"message": "What word?", "conversation_id": id, "max_tokens": 8});
    let (status, _) = server.call("POST", "/api/chat", Some(&token), Some(&body));
    assert_eq!(status, 200);
    let (_, later) = server.call("GET", &format!("/api/conversations/{id}"), Some(&token), None);
    assert_eq!(later["messages"].as_array().unwrap().len(), 6);
}
