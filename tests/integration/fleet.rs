//! The fleet setup of docs/fleet.md, made true with the files in `deploy/`: a box's
//! local mosquitto bridged (`deploy/fleet/box-bridge.conf`) to a central one over TLS
//! with passwords and the ACL (`central.conf`, `central-acl`) carries the box's discovery
//! and state to the centre and a command back; another box's account cannot command it.
//! Every Hearth metric named in the Grafana dashboard (`deploy/grafana/hearth.json`) and
//! the alert rules appears in a real server's `/metrics`, read with the scoped token the
//! Prometheus config says to make; `promtool check config` accepts `prometheus.yml`.

use crate::common::{cli, small_model, Server, ServerOptions};
use crate::mqtt::{chat, check_discovery, free_port, require, Certs, Subscriber, PASSWORD, USER};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BOX: &str = "testbox";
const BRIDGE_PASSWORD: &str = "bridge-PASSWORD";
const ADMIN_PASSWORD: &str = "admin-PASSWORD";
const OTHER_PASSWORD: &str = "other-PASSWORD";

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy").join(path)
}

/// A deploy file with its `@NAME@` placeholders filled in; every placeholder must be.
fn filled(path: &str, values: &[(&str, String)]) -> String {
    let mut text = std::fs::read_to_string(deploy(path)).unwrap();
    for (name, value) in values {
        text = text.replace(&format!("@{name}@"), value);
    }
    let body: String =
        text.lines().filter(|l| !l.trim_start().starts_with('#')).collect::<Vec<_>>().join("\n");
    assert!(!body.contains('@'), "{path}: a placeholder is left:\n{body}");
    // As root, mosquitto would switch to its own user, who cannot read a test's files.
    if unsafe { libc::geteuid() } == 0 {
        text += "\nuser root\n";
    }
    text
}

fn passwd(file: &Path, users: &[(&str, &str)]) {
    for (i, (user, password)) in users.iter().enumerate() {
        let mut cmd = Command::new("mosquitto_passwd");
        cmd.arg("-b");
        if i == 0 {
            cmd.arg("-c");
        }
        assert!(cmd.arg(file).args([user, password]).status().unwrap().success());
    }
}

/// A mosquitto with a config file, killed when dropped.
struct Mosquitto {
    child: Child,
    log: PathBuf,
}

impl Mosquitto {
    fn start(dir: &Path, name: &str, conf: &str, port: u16) -> Mosquitto {
        let file = dir.join(format!("{name}.conf"));
        std::fs::write(&file, conf).unwrap();
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let m = Mosquitto { child, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto {name} did not start: {}", m.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        m
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sample names in a Prometheus text exposition.
fn sample_names(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect()
}

/// The `hearth_*` names in a query.
fn hearth_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("hearth_") {
        let name: String =
            rest[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        rest = &rest[at + name.len()..];
        names.push(name);
    }
    names
}

/// Every `expr` in the dashboard, at any depth.
fn exprs(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr", Value::String(e)) => found.push(e.clone()),
                    _ => exprs(v, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| exprs(v, found)),
        _ => {}
    }
}

#[test]
fn a_bridged_box_reaches_the_central_broker_and_the_dashboard_names_real_metrics() {
    require("mosquitto", "mosquitto mosquitto-clients");
    require("mosquitto_passwd", "mosquitto mosquitto-clients");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // The centre: TLS, a password per box and operator, the ACL as shipped.
    let certs = Certs::make(d);
    passwd(
        &d.join("central-passwd"),
        &[(BOX, BRIDGE_PASSWORD), ("fleet-admin", ADMIN_PASSWORD), ("otherbox", OTHER_PASSWORD)],
    );
    std::fs::copy(deploy("fleet/central-acl"), d.join("central-acl")).unwrap();
    let central_port = free_port();
    let path = |p: &Path| p.display().to_string();
    let central = Mosquitto::start(
        d,
        "central",
        &filled(
            "fleet/central.conf",
            &[
                ("PORT", central_port.to_string()),
                ("CERT", path(&certs.server_cert)),
                ("KEY", path(&certs.server_key)),
                ("CA", path(&certs.ca)),
                ("PASSWD", path(&d.join("central-passwd"))),
                ("ACL", path(&d.join("central-acl"))),
            ],
        ),
        central_port,
    );

    // The box: its local broker, bridged.
    passwd(&d.join("local-passwd"), &[(USER, PASSWORD)]);
    let local_port = free_port();
    let local = Mosquitto::start(
        d,
        "local",
        &filled(
            "fleet/box-bridge.conf",
            &[
                ("DEVICE_ID", BOX.to_string()),
                ("LOCAL_PORT", local_port.to_string()),
                ("LOCAL_PASSWD", path(&d.join("local-passwd"))),
                ("CENTRAL", format!("127.0.0.1:{central_port}")),
                ("CENTRAL_CA", path(&certs.ca)),
                ("BRIDGE_PASSWORD", BRIDGE_PASSWORD.to_string()),
            ],
        ),
        local_port,
    );
    let password_file = d.join("hearth-password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let server = Server::start(
        ServerOptions::new(small_model())
            .env("HEARTH_MQTT_ENABLED", "true")
            .env("HEARTH_MQTT_URL", &format!("mqtt://127.0.0.1:{local_port}"))
            .env("HEARTH_MQTT_DEVICE_ID", BOX)
            .env("HEARTH_MQTT_INTERVAL_SECS", "1")
            .env("HEARTH_MQTT_USERNAME", USER)
            .env("HEARTH_MQTT_PASSWORD_FILE", &path(&password_file))
            .env("HEARTH_MQTT_COMMANDS", "announce"),
    );
    let token = server.user("alice");

    // At the centre, as an operator: the box's discovery (retained) and its state.
    let at_centre = |user: &str, password: &str| -> Vec<String> {
        let port = central_port.to_string();
        ["-h", "127.0.0.1", "-p", &port, "--cafile", &path(&certs.ca), "-u", user, "-P", password]
            .map(String::from)
            .to_vec()
    };
    let admin = Subscriber::with(at_centre("fleet-admin", ADMIN_PASSWORD));
    let state = format!("hearth/{BOX}/state");
    let why = || format!("\ncentral:\n{}\nlocal:\n{}", central.log(), local.log());
    let states = admin.wait(&server, &state, "state bridged to the centre", |m| !m.is_empty());
    assert_eq!(states.last().unwrap().json()["version"], env!("CARGO_PKG_VERSION"), "{}", why());
    let discovery = format!("homeassistant/device/{BOX}/config");
    let late = Subscriber::with(at_centre("fleet-admin", ADMIN_PASSWORD));
    let configs =
        late.wait(&server, &discovery, "retained discovery at the centre", |m| m.iter().any(|m| m.retained));
    check_discovery(&configs.iter().find(|m| m.retained).unwrap().json());
    drop(late);

    // Another box's account cannot command this one; an operator can, and the result
    // comes back through the bridge. The ACL drops the forged command silently; it
    // would have reached the bridge before the operator's, which comes after it.
    let publish = |args: Vec<String>, topic: &str, payload: &str| {
        let ok =
            Command::new("mosquitto_pub").args(args).args(["-t", topic, "-m", payload, "-q", "1"]).status();
        assert!(ok.unwrap().success(), "mosquitto_pub failed{}", why());
    };
    let announce = format!("hearth/{BOX}/command/announce");
    publish(at_centre("otherbox", OTHER_PASSWORD), &announce, r#"{"id": "forged", "text": "FORGED"}"#);
    publish(at_centre("fleet-admin", ADMIN_PASSWORD), &announce, r#"{"id": "fleet", "text": "Hello fleet"}"#);
    let result = format!("hearth/{BOX}/result");
    let results = admin.wait(&server, &result, "the command's result at the centre", |m| {
        m.iter().any(|m| m.json()["id"] == "fleet")
    });
    let ours = results.iter().map(|m| m.json()).find(|r| r["id"] == "fleet").unwrap();
    assert_eq!((ours["status"].as_str(), ours["command"].as_str()), (Some("ok"), Some("announce")), "{ours}");
    assert!(
        results.iter().all(|m| m.json()["id"] != "forged"),
        "another box commanded this one: {results:?}"
    );
    assert!(!server.log().contains("forged"), "the forged command reached hearth:\n{}", server.log());

    // The metrics the dashboard and the alert rules query are real, read the way
    // prometheus.yml does: a user of its own with a token scoped to admin routes.
    chat(&server, &token);
    assert_eq!(cli(&server.data_dir, &["users", "add", "prometheus"]).0, 0);
    let (code, out, err) = cli(
        &server.data_dir,
        &["tokens", "create", "--user", "prometheus", "--label", "prometheus", "--scope", "admin"],
    );
    assert_eq!(code, 0, "{err}");
    let scraper = out.lines().last().unwrap().trim().to_string();
    let (status, _) = server.call("POST", "/api/chat", Some(&scraper), Some(&json!({"message": "hi"})));
    assert_eq!(status, 403, "the scraper's token cannot chat");
    let text = server
        .agent()
        .get(&format!("{}/metrics", server.url))
        .set("Authorization", &format!("Bearer {scraper}"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let exposed = sample_names(&text);
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(deploy("grafana/hearth.json")).unwrap()).unwrap();
    let mut queries = Vec::new();
    exprs(&dashboard, &mut queries);
    assert!(queries.len() >= 15, "{queries:?}");
    let rules = std::fs::read_to_string(deploy("fleet/hearth-rules.yml")).unwrap();
    queries.extend(rules.lines().filter_map(|l| l.trim().strip_prefix("expr:")).map(str::to_string));
    // Shown only on boards with the sensor (a thermal zone, a Raspberry Pi's firmware):
    // these must at least be what Hearth registers.
    let registered =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/telemetry/metrics.rs"))
            .unwrap();
    let board_only = ["hearth_temperature_celsius", "hearth_throttled"];
    let mut checked = 0;
    for name in queries.iter().flat_map(|q| hearth_names(q)) {
        if board_only.contains(&name.as_str()) {
            let bare = name.strip_prefix("hearth_").unwrap();
            assert!(registered.contains(&format!("\"{bare}\"")), "{name} is not a metric Hearth registers");
        } else {
            assert!(
                exposed.contains(&name),
                "{name} (in a dashboard or rule query) is not in /metrics:\n{text}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 25, "{checked}");
}

#[test]
fn promtool_accepts_the_fleet_prometheus_config() {
    require("promtool", "prometheus");
    let dir = tempfile::tempdir().unwrap();
    // The config names the token and CA files a real install has; here they are made.
    let files = dir.path().join("hearth");
    std::fs::create_dir(&files).unwrap();
    let config = std::fs::read_to_string(deploy("fleet/prometheus.yml")).unwrap();
    let config = config.replace("/etc/prometheus/hearth/", &format!("{}/", files.display()));
    for line in config.lines().filter(|l| !l.trim_start().starts_with('#')) {
        if let Some(file) = line.split_once("_file: ").map(|(_, f)| f.trim()) {
            assert!(
                file.starts_with(&files.display().to_string()),
                "{file} is not under /etc/prometheus/hearth/"
            );
            std::fs::write(file, "made by the test\n").unwrap();
        }
    }
    std::fs::write(dir.path().join("prometheus.yml"), &config).unwrap();
    std::fs::copy(deploy("fleet/hearth-rules.yml"), dir.path().join("hearth-rules.yml")).unwrap();
    let out = Command::new("promtool")
        .args(["check", "config"])
        .arg(dir.path().join("prometheus.yml"))
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool check config: {said}");
    assert!(said.contains("6 rules found"), "{said}");
}
