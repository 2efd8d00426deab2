use super::*;
use crate::config::{FileSecret, HeaderSetting};
use serde_json::json;

fn args(value: Value) -> impl FnMut(&str) -> Result<String, SkillError> {
    move |name| url_value(name, value.get(name))
}

#[test]
fn url_placeholders_are_filled_url_encoded() {
    let template = "https://api.example.com/v1/{city}/forecast?days={days}&q={missing}&raw={not a name}";
    let filled = fill(template, args(json!({"city": "São Paulo & co/x", "days": 3}))).unwrap();
    assert_eq!(
        filled,
        "https://api.example.com/v1/S%C3%A3o%20Paulo%20%26%20co%2Fx/forecast?days=3&q=&raw={not a name}"
    );
    assert_eq!(placeholders(template), ["city", "days", "missing"]);
    let e = fill("https://a/{x}", args(json!({"x": [1]}))).unwrap_err();
    assert_eq!(e, SkillError::InvalidArguments("'x' must be a string or a number".into()));
    assert_eq!(fill("{{a}} {", args(json!({"a": "?"}))).unwrap(), "{%3F} {");
}

#[test]
fn a_body_keeps_its_shape_and_the_arguments_their_types() {
    let template =
        json!({"entity": "{id}", "level": "{level}", "note": "set to {level}%", "list": ["{id}"], "n": 1});
    let body = fill_body(&template, &json!({"id": "light.a\"}", "level": 40})).unwrap();
    assert_eq!(
        body,
        json!({"entity": "light.a\"}", "level": 40, "note": "set to 40%", "list": ["light.a\"}"], "n": 1})
    );
    assert_eq!(fill_body(&json!({"x": "{gone}"}), &json!({})).unwrap(), json!({"x": null}));
}

fn webhook(url: &str) -> WebhookSettings {
    WebhookSettings {
        name: "weather".into(),
        description: "Get the weather for a city.".into(),
        method: "GET".into(),
        url: url.into(),
        headers: Default::default(),
        parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
        body: None,
        allow_local: false,
    }
}

fn outbound(hosts: &[&str]) -> OutboundSettings {
    OutboundSettings { allowed_hosts: hosts.iter().map(|h| h.to_string()).collect(), ..Default::default() }
}

#[test]
fn definitions_are_checked_and_errors_name_the_field() {
    let allowed = outbound(&["api.example.com"]);
    assert_eq!(check(&webhook("https://api.example.com/{city}"), &allowed), Ok(()));
    let cases = [
        (
            webhook("https://evil.example.net/{city}"),
            "skills.webhooks[weather].url: the host evil.example.net is not on outbound.allowed_hosts",
        ),
        (
            webhook("https://{city}.example.com/"),
            "skills.webhooks[weather].url: placeholders may be in the path and query only",
        ),
        (webhook("https://api.example.com/{town}"), "skills.webhooks[weather].url: {town} names no argument"),
        (
            webhook("file:///etc/passwd"),
            "skills.webhooks[weather].url: 'file:///etc/passwd' is not an http(s) URL",
        ),
        (
            WebhookSettings { method: "FETCH".into(), ..webhook("https://api.example.com/") },
            "skills.webhooks[weather].method",
        ),
        (
            WebhookSettings { body: Some(json!({})), ..webhook("https://api.example.com/") },
            "skills.webhooks[weather].body: a GET has no body",
        ),
        (
            WebhookSettings {
                method: "POST".into(),
                body: Some(json!({"a": "{b}"})),
                ..webhook("https://api.example.com/")
            },
            "skills.webhooks[weather].body: {b} names no argument",
        ),
        (
            WebhookSettings { name: "no spaces".into(), ..webhook("https://api.example.com/") },
            ".name: must be 1 to 64",
        ),
        (
            WebhookSettings { parameters: json!({"type": "string"}), ..webhook("https://api.example.com/") },
            ".parameters: type must be",
        ),
    ];
    for (w, expected) in cases {
        let e = check(&w, &allowed).unwrap_err();
        assert!(e.contains(expected), "{e}\nexpected: {expected}");
    }
}

/// One answer from a server on 127.0.0.1, and the request it got.
fn server(answer: &'static str) -> (u16, std::thread::JoinHandle<String>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        let mut buf = [0; 4096];
        while !String::from_utf8_lossy(&request).contains("\r\n\r\n") || !request.ends_with(b"}") {
            let n = stream.read(&mut buf).unwrap();
            request.extend_from_slice(&buf[..n]);
            if n == 0
                || (String::from_utf8_lossy(&request).starts_with("GET") && request.ends_with(b"\r\n\r\n"))
            {
                break;
            }
        }
        let reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
            answer.len()
        );
        stream.write_all(reply.as_bytes()).unwrap();
        String::from_utf8_lossy(&request).into_owned()
    });
    (port, handle)
}

#[tokio::test]
async fn a_webhook_sends_its_secret_header_and_filled_body_and_reads_the_answer() {
    let (port, request) = server(r#"{ "ok" : true }"#);
    let key = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(key.path(), "s3cret\n").unwrap();
    let w = WebhookSettings {
        method: "POST".into(),
        url: format!("http://127.0.0.1:{port}/hook/{{city}}"),
        headers: [("X-Api-Key".to_string(), HeaderSetting::File(FileSecret { file: key.path().into() }))]
            .into(),
        body: Some(json!({"city": "{city}", "days": "{days}"})),
        parameters: json!({"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]}),
        allow_local: true,
        ..webhook("")
    };
    let skill = Webhook::new(&w, &outbound(&["127.0.0.1"])).unwrap();
    assert_eq!(format!("{:?}", skill.headers), "[X-Api-Key: <secret>]");
    let ctx = Context::new(None, crate::notices::Channel::Console);
    let output = skill.execute(json!({"city": "Oslo", "days": "2"}), ctx.clone()).await.unwrap();
    assert_eq!(output.content, r#"{"ok":true}"#);
    let request = request.join().unwrap();
    assert!(request.starts_with("POST /hook/Oslo HTTP/1.1\r\n"), "{request}");
    assert!(request.contains("X-Api-Key: s3cret\r\n"), "{request}");
    assert!(request.ends_with(r#"{"city":"Oslo","days":2}"#), "{request}");

    let e = skill.execute(json!({"days": 2}), ctx).await.unwrap_err();
    assert_eq!(e, SkillError::InvalidArguments("'city' is required".into()));
    let missing = WebhookSettings {
        headers: [(
            "X-Api-Key".to_string(),
            HeaderSetting::File(FileSecret { file: "/nonexistent/key".into() }),
        )]
        .into(),
        ..w
    };
    let e = Webhook::new(&missing, &outbound(&["127.0.0.1"])).err().unwrap();
    assert!(e.starts_with("skills.webhooks[weather].headers.X-Api-Key: cannot read /nonexistent/key"), "{e}");
}
