//! Skills that reach out (issue 23): Home Assistant service calls reach a fake Home
//! Assistant started here with the right path, body and token; webhook skills refuse
//! loopback, link-local and metadata addresses, names that resolve to them and redirects to
//! them, and the forbidden servers see no request. The skills run as the assistant runs
//! them (`Skills::allowed`, then `Allowed::run` with a model's `ToolCall`), and one call comes from the default
//! model through `/api/chat`.

use crate::common::{default_model, Server, ServerOptions};
use hearth::config::Settings;
use hearth::engine::ToolCall;
use hearth::skills::{Context, Skills, ToolRun};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

/// A request as a fake server saw it.
#[derive(Debug)]
pub(crate) struct Seen {
    pub(crate) method: String,
    pub(crate) path: String,
    headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Seen {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A fake HTTP server on `address`: each request is reported, then answered by `answer`
/// (status line and extra headers, body).
pub(crate) struct Fake {
    pub(crate) port: u16,
    seen: mpsc::Receiver<Seen>,
}

impl Fake {
    pub(crate) fn start(address: &str, answer: impl Fn(&Seen) -> (String, String) + Send + 'static) -> Fake {
        let listener = TcpListener::bind(address).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, seen) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let Some(request) = read_request(&mut stream) else { continue };
                let (head, body) = answer(&request);
                let _ = tx.send(request);
                let reply = format!(
                    "HTTP/1.1 {head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        Fake { port, seen }
    }

    pub(crate) fn next(&self) -> Seen {
        self.seen.recv_timeout(Duration::from_secs(10)).expect("a request")
    }

    /// The next request within `wait`, if any.
    pub(crate) fn next_within(&self, wait: Duration) -> Option<Seen> {
        self.seen.recv_timeout(wait).ok()
    }

    pub(crate) fn saw_nothing(&self) -> bool {
        self.seen.recv_timeout(Duration::from_millis(300)).is_err()
    }
}

fn read_request(stream: &mut std::net::TcpStream) -> Option<Seen> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 || line == "\r\n" {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let length = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("content-length"));
    let mut body = vec![0; length.map_or(0, |(_, v)| v.parse().unwrap_or(0))];
    reader.read_exact(&mut body).ok()?;
    Some(Seen { method, path, headers, body: String::from_utf8_lossy(&body).into_owned() })
}

fn settings(toml_text: &str) -> Settings {
    let settings: Settings = toml::from_str(toml_text).unwrap();
    settings.validate().unwrap();
    settings
}

fn skills(settings: &Settings) -> Skills {
    Skills::built_in(&[], Duration::from_secs(20), None, None).with_configured(settings).unwrap()
}

async fn call(skills: &Skills, name: &str, arguments: Value) -> ToolRun {
    let ctx = Context::new(None, hearth::notices::Channel::Console);
    skills.allowed(&ctx).await.unwrap().run(&ToolCall::new(name, arguments), ctx).await.0
}

const TOKEN: &str = "llat-test-token-123";

fn fake_home_assistant() -> Fake {
    Fake::start("127.0.0.1:0", |seen| {
        match (seen.method.as_str(), seen.path.as_str()) {
        ("POST", "/api/services/light/turn_on") => {
            ("200 OK".into(), r#"[{"entity_id": "light.kitchen", "state": "on", "attributes": {}}]"#.into())
        }
        ("GET", "/api/states/sensor.outside") => (
            "200 OK".into(),
            r#"{"entity_id": "sensor.outside", "state": "12.5", "attributes": {"friendly_name": "Outside", "unit_of_measurement": "°C"}}"#.into(),
        ),
        ("GET", _) => ("404 Not Found".into(), r#"{"message": "Entity not found."}"#.into()),
        ("POST", "/api/template") => ("200 OK".into(), "light.kitchen (Kitchen light): on\nswitch.kettle (Kettle): off\n".into()),
        _ => ("400 Bad Request".into(), "{}".into()),
    }
    })
}

#[tokio::test]
async fn home_assistant_service_calls_states_and_areas_reach_its_rest_api_with_the_token() {
    let ha = fake_home_assistant();
    let skills = skills(&settings(&format!(
        "[home_assistant]\nurl = \"http://127.0.0.1:{}\"\ntoken = \"{TOKEN}\"\nservices = [\"light.*\"]\n",
        ha.port
    )));

    let run =
        call(&skills, "ha_call_service", json!({"entity_id": "light.kitchen", "service": "turn_on"})).await;
    assert!(run.ok, "{run:?}");
    assert_eq!(run.result, "Called light.turn_on for light.kitchen; it is now on.");
    let seen = ha.next();
    assert_eq!((seen.method.as_str(), seen.path.as_str()), ("POST", "/api/services/light/turn_on"));
    assert_eq!(seen.header("Authorization"), Some(format!("Bearer {TOKEN}").as_str()));
    assert_eq!(seen.header("Content-Type"), Some("application/json"));
    assert_eq!(serde_json::from_str::<Value>(&seen.body).unwrap(), json!({"entity_id": "light.kitchen"}));

    let run = call(&skills, "ha_get_state", json!({"entity_id": "sensor.outside"})).await;
    assert_eq!((run.ok, run.result.as_str()), (true, "Outside (sensor.outside) is 12.5 °C."), "{run:?}");
    let seen = ha.next();
    assert_eq!((seen.method.as_str(), seen.path.as_str()), ("GET", "/api/states/sensor.outside"));
    assert_eq!(seen.header("Authorization"), Some(format!("Bearer {TOKEN}").as_str()));
    let run = call(&skills, "ha_get_state", json!({"entity_id": "sensor.nothing"})).await;
    assert!(!run.ok && run.result.contains("Home Assistant has no entity sensor.nothing"), "{run:?}");
    ha.next();

    let run = call(&skills, "ha_area_entities", json!({"area": "kitchen'}}{{ 7*7 }}"})).await;
    assert!(run.ok, "{run:?}");
    let seen = ha.next();
    let body: Value = serde_json::from_str(&seen.body).unwrap();
    assert_eq!(
        body["variables"],
        json!({"area": "kitchen'}}{{ 7*7 }}"}),
        "the area is a variable, not template text"
    );
    assert!(body["template"].as_str().unwrap().contains("area_entities(area)"), "{body}");
    assert!(
        run.result.starts_with("In kitchen") && run.result.contains("light.kitchen (Kitchen light): on"),
        "{run:?}"
    );

    // Not on [home_assistant] services: refused before anything is sent.
    let run =
        call(&skills, "ha_call_service", json!({"entity_id": "lock.front_door", "service": "unlock"})).await;
    assert!(!run.ok && run.result.contains("lock.unlock is not a service the assistant may call"), "{run:?}");
    let run =
        call(&skills, "ha_call_service", json!({"entity_id": "light.kitchen", "service": "../../x"})).await;
    assert!(!run.ok, "{run:?}");
    assert!(ha.saw_nothing(), "refused calls send nothing");
}

/// A webhook skill named `name` calling `url`.
fn webhook(name: &str, url: &str, allow_local: bool) -> String {
    format!(
        "[[skills.webhooks]]\nname = \"{name}\"\ndescription = \"Calls {name}.\"\nurl = \"{url}\"\nallow_local = {allow_local}\n"
    )
}

fn refusal(run: &ToolRun) -> String {
    assert!(!run.ok, "{run:?}");
    let result: Value = serde_json::from_str(&run.result).unwrap();
    let error = result["error"].as_str().unwrap().to_string();
    assert!(error.starts_with("refused: "), "{error}");
    error
}

#[tokio::test]
async fn webhook_skills_refuse_loopback_link_local_and_metadata_addresses_names_and_redirects() {
    // The servers a webhook must never reach, on this box.
    let forbidden = Fake::start("127.0.0.1:0", |_| ("200 OK".into(), "leaked".into()));
    let forbidden6 = Fake::start("[::1]:0", |_| ("200 OK".into(), "leaked".into()));
    let (f, f6) = (forbidden.port, forbidden6.port);
    // An allowed server (its own address opted in) that redirects to them.
    let redirects = Fake::start("127.0.0.1:0", move |seen| {
        let to = match seen.path.as_str() {
            "/to-loopback" => format!("http://127.0.0.1:{f}/"),
            "/to-ipv6" => format!("http://[::1]:{f6}/"),
            "/to-localhost" => format!("http://localhost:{f}/"),
            "/to-metadata" => "http://169.254.169.254/latest/meta-data/".to_string(),
            _ => return ("200 OK".into(), r#"{"fine": true}"#.into()),
        };
        (format!("302 Found\r\nLocation: {to}"), String::new())
    });
    let r = redirects.port;
    let config = [
        "[outbound]\nallowed_hosts = [\"127.0.0.1\", \"::1\", \"::ffff:127.0.0.1\", \"localhost\", \"169.254.169.254\"]\n".to_string(),
        webhook("loopback", &format!("http://127.0.0.1:{f}/"), false),
        webhook("ipv6", &format!("http://[::1]:{f6}/"), false),
        webhook("by_name", &format!("http://localhost:{f}/"), false),
        webhook("metadata", "http://169.254.169.254/latest/meta-data/", true),
        webhook("mapped", &format!("http://[::ffff:127.0.0.1]:{f}/"), false),
        webhook("fine", &format!("http://127.0.0.1:{r}/fine"), true),
        webhook("to_loopback", &format!("http://127.0.0.1:{r}/to-loopback"), true),
        webhook("to_ipv6", &format!("http://127.0.0.1:{r}/to-ipv6"), true),
        webhook("to_localhost", &format!("http://127.0.0.1:{r}/to-localhost"), true),
        webhook("to_metadata", &format!("http://127.0.0.1:{r}/to-metadata"), true),
    ]
    .concat();
    let skills = skills(&settings(&config));

    assert_eq!(
        refusal(&call(&skills, "loopback", json!({})).await),
        "refused: 127.0.0.1 is a loopback address"
    );
    assert_eq!(refusal(&call(&skills, "ipv6", json!({})).await), "refused: ::1 is a loopback address");
    assert_eq!(
        refusal(&call(&skills, "by_name", json!({})).await),
        "refused: localhost resolves to 127.0.0.1, a loopback address"
    );
    assert_eq!(
        refusal(&call(&skills, "metadata", json!({})).await),
        "refused: 169.254.169.254 is a cloud metadata address",
        "even a webhook that opts its own host in"
    );
    assert_eq!(
        refusal(&call(&skills, "mapped", json!({})).await),
        "refused: ::ffff:127.0.0.1 is a loopback address"
    );

    // The redirecting server is reachable (the refusals below are the redirects').
    let run = call(&skills, "fine", json!({})).await;
    assert_eq!((run.ok, run.result.as_str()), (true, r#"{"fine":true}"#), "{run:?}");
    assert_eq!(redirects.next().path, "/fine");
    for (name, target) in [
        ("to_loopback", format!("http://127.0.0.1:{f}/ was refused: 127.0.0.1 is a loopback address")),
        ("to_ipv6", format!("http://[::1]:{f6}/ was refused: ::1 is a loopback address")),
        ("to_localhost", format!("http://localhost:{f}/ was refused: localhost resolves to 127.0.0.1")),
        ("to_metadata", "http://169.254.169.254/latest/meta-data/ was refused: 169.254.169.254 is a cloud metadata address".into()),
    ] {
        let error = refusal(&call(&skills, name, json!({})).await);
        assert!(error.starts_with(&format!("refused: the redirect to {target}")), "{name}: {error}");
        assert!(redirects.next().path.starts_with("/to-"), "the allowed server was asked first");
    }
    assert!(forbidden.saw_nothing(), "no request reached 127.0.0.1:{f}");
    assert!(forbidden6.saw_nothing(), "no request reached [::1]:{f6}");
}

#[test]
fn the_model_turns_on_a_light_through_a_fake_home_assistant() {
    let ha = fake_home_assistant();
    let options = ServerOptions::new(default_model())
        .env("HEARTH_MAX_TOKENS", "80")
        .env("HEARTH_SKILLS", "")
        .env("HEARTH_HOME_ASSISTANT_URL", &format!("http://127.0.0.1:{}", ha.port))
        .env("HEARTH_HOME_ASSISTANT_TOKEN", TOKEN);
    let server = Server::start(options);
    let token = server.user("alice");
    let body = json!({"message": "Turn on the kitchen light (entity light.kitchen).", "temperature": 0});
    let (status, answer) = server.call("POST", "/api/chat", Some(&token), Some(&body));
    assert_eq!(status, 200, "{answer}\n{}", server.log());
    let calls = answer["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{answer}");
    assert_eq!((&calls[0]["name"], &calls[0]["ok"]), (&json!("ha_call_service"), &json!(true)), "{answer}");
    let seen = ha.next();
    assert_eq!((seen.method.as_str(), seen.path.as_str()), ("POST", "/api/services/light/turn_on"));
    assert_eq!(seen.header("Authorization"), Some(format!("Bearer {TOKEN}").as_str()));
    assert_eq!(serde_json::from_str::<Value>(&seen.body).unwrap()["entity_id"], "light.kitchen");
    assert!(!server.log().contains(TOKEN), "the token is never logged");
}
