//! MQTT telemetry and Home Assistant discovery (issue 24) against a real mosquitto started
//! here (apt `mosquitto mosquitto-clients`, installed by scripts/deps.sh): with a password
//! file; discovery retained and well-formed; state at the interval; the broker killed and
//! restarted while chats go on; the last will when hearth is killed -9; and once over TLS
//! with a client certificate. `/metrics`, with the sampler's and MQTT's figures, passes
//! `promtool check metrics` (apt `prometheus`).

use crate::common::{cli, small_model, Server, ServerOptions};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) const USER: &str = "hearth";
pub(crate) const PASSWORD: &str = "mqtt-PASSWORD-never-logged";

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Fails, saying how to install it, when `tool` (from the apt `packages`) is missing.
pub(crate) fn require(tool: &str, packages: &str) {
    let found =
        Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().unwrap().status.success();
    assert!(
        found,
        "{tool} is missing: install it with `sudo apt-get install -y {packages}` (scripts/deps.sh does)"
    );
}

/// TLS material for the broker, made here with rcgen; the clients' certificate and key
/// (`client.crt`, `client.key`, CN `hearth`) are written beside it.
pub(crate) struct Certs {
    pub(crate) ca: PathBuf,
    pub(crate) server_cert: PathBuf,
    pub(crate) server_key: PathBuf,
}

impl Certs {
    pub(crate) fn make(dir: &Path) -> Certs {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
            KeyUsagePurpose, SanType,
        };
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::default();
        ca_params.distinguished_name.push(DnType::CommonName, "MQTT test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::from_ca_cert_der(ca.der(), &ca_key).unwrap();
        let leaf = |name: &str, usage: ExtendedKeyUsagePurpose| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::default();
            params.distinguished_name.push(DnType::CommonName, name);
            params.subject_alt_names = vec![
                SanType::IpAddress([127, 0, 0, 1].into()),
                SanType::DnsName("localhost".try_into().unwrap()),
            ];
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![usage];
            params.use_authority_key_identifier_extension = true;
            (params.signed_by(&key, &issuer).unwrap().pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth);
        let (client_cert, client_key) = leaf(USER, ExtendedKeyUsagePurpose::ClientAuth);
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        write("client.crt", &client_cert);
        write("client.key", &client_key);
        Certs {
            ca: write("ca.crt", &ca.pem()),
            server_cert: write("server.crt", &server_cert),
            server_key: write("server.key", &server_key),
        }
    }
}

/// A mosquitto on a free loopback port: password file (user `hearth`), or TLS with client
/// certificates. Killed when dropped.
pub(crate) struct Broker {
    pub(crate) port: u16,
    pub(crate) dir: tempfile::TempDir,
    child: Option<Child>,
    tls: bool,
}

impl Broker {
    pub(crate) fn start(tls: bool) -> Broker {
        require("mosquitto", "mosquitto mosquitto-clients");
        require("mosquitto_sub", "mosquitto mosquitto-clients");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        // As root, mosquitto would switch to its own user, who cannot read a test's files.
        let root = unsafe { libc::geteuid() } == 0;
        let mut conf = format!("listener {port} 127.0.0.1\n{}", if root { "user root\n" } else { "" });
        if tls {
            let certs = Certs::make(dir.path());
            conf += &format!(
                "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\nuse_identity_as_username true\n",
                certs.ca.display(),
                certs.server_cert.display(),
                certs.server_key.display()
            );
        } else {
            let passwd = dir.path().join("passwd");
            let made = Command::new("mosquitto_passwd")
                .args(["-b", "-c"])
                .arg(&passwd)
                .args([USER, PASSWORD])
                .status()
                .unwrap();
            assert!(made.success());
            conf += &format!("allow_anonymous false\npassword_file {}\n", passwd.display());
        }
        std::fs::write(dir.path().join("mosquitto.conf"), conf).unwrap();
        let mut broker = Broker { port, dir, child: None, tls };
        broker.restart();
        broker
    }

    pub(crate) fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", if self.tls { "mqtts" } else { "mqtt" }, self.port)
    }

    pub(crate) fn file(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// (Re)starts mosquitto on the same port and waits until it accepts connections.
    fn restart(&mut self) {
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("log")).unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not start: {}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no goodbye to anyone.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// The client's connection arguments for mosquitto_sub and mosquitto_pub.
    pub(crate) fn client_args(&self) -> Vec<String> {
        let mut args: Vec<String> =
            ["-h", "127.0.0.1", "-p", &self.port.to_string()].map(String::from).to_vec();
        if self.tls {
            for (flag, file) in [("--cafile", "ca.crt"), ("--cert", "client.crt"), ("--key", "client.key")] {
                args.extend([flag.to_string(), self.file(file)]);
            }
        } else {
            args.extend(["-u", USER, "-P", PASSWORD].map(String::from));
        }
        args
    }

    /// Hearth's settings for this broker.
    pub(crate) fn hearth(&self, options: ServerOptions, interval: u64) -> ServerOptions {
        self.connect(options).env("HEARTH_MQTT_INTERVAL_SECS", &interval.to_string())
    }

    /// Hearth's settings for this broker, the interval left to the config file.
    pub(crate) fn connect(&self, options: ServerOptions) -> ServerOptions {
        let options = options
            .env("HEARTH_MQTT_ENABLED", "true")
            .env("HEARTH_MQTT_URL", &self.url())
            .env("HEARTH_MQTT_DEVICE_ID", "testbox");
        if self.tls {
            options
                .env("HEARTH_MQTT_CA_FILE", &self.file("ca.crt"))
                .env("HEARTH_MQTT_CLIENT_CERT", &self.file("client.crt"))
                .env("HEARTH_MQTT_CLIENT_KEY", &self.file("client.key"))
        } else {
            let password = self.dir.path().join("hearth-password");
            std::fs::write(&password, format!("{PASSWORD}\n")).unwrap();
            options
                .env("HEARTH_MQTT_USERNAME", USER)
                .env("HEARTH_MQTT_PASSWORD_FILE", &password.display().to_string())
        }
    }

    pub(crate) fn publish(&self, topic: &str, payload: &str) {
        let ok = Command::new("mosquitto_pub")
            .args(self.client_args())
            .args(["-t", topic, "-m", payload, "-q", "1"])
            .status()
            .unwrap();
        assert!(ok.success(), "mosquitto_pub failed: {}", self.log());
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One message a subscriber saw.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub(crate) retained: bool,
    pub(crate) topic: String,
    pub(crate) payload: String,
}

impl Message {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.payload)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {}", self.topic, self.payload))
    }
}

/// mosquitto_sub on everything Hearth and Home Assistant use, recording each message.
pub(crate) struct Subscriber {
    child: Child,
    seen: Arc<Mutex<Vec<Message>>>,
}

impl Subscriber {
    pub(crate) fn start(broker: &Broker) -> Subscriber {
        Subscriber::with(broker.client_args())
    }

    /// mosquitto_sub with these connection arguments.
    pub(crate) fn with(client_args: Vec<String>) -> Subscriber {
        let mut child = Command::new("mosquitto_sub")
            .args(client_args)
            .args(["-t", "hearth/#", "-t", "homeassistant/#", "-q", "1", "-F", "%r %t %p"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let lines = BufReader::new(child.stdout.take().unwrap());
        let record = seen.clone();
        std::thread::spawn(move || {
            for line in lines.lines().map_while(Result::ok) {
                let mut parts = line.splitn(3, ' ');
                let (Some(r), Some(topic)) = (parts.next(), parts.next()) else { continue };
                let payload = parts.next().unwrap_or("").to_string();
                record.lock().unwrap().push(Message { retained: r == "1", topic: topic.into(), payload });
            }
        });
        Subscriber { child, seen }
    }

    pub(crate) fn on(&self, topic: &str) -> Vec<Message> {
        self.seen.lock().unwrap().iter().filter(|m| m.topic == topic).cloned().collect()
    }

    /// Waits (generously) until `done` holds for the messages on `topic`.
    pub(crate) fn wait(
        &self,
        server: &Server,
        topic: &str,
        what: &str,
        done: impl Fn(&[Message]) -> bool,
    ) -> Vec<Message> {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let got = self.on(topic);
            if done(&got) {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} on {topic}; seen: {got:?}\nhearth's log:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const STATE: &str = "hearth/testbox/state";
const AVAILABILITY: &str = "hearth/testbox/availability";
const DISCOVERY: &str = "homeassistant/device/testbox/config";

/// The discovery config as Home Assistant reads it: a device, an origin, and components
/// each with a unique id, a state topic and availability.
pub(crate) fn check_discovery(config: &Value) {
    assert_eq!(config["dev"]["ids"][0], "hearth_testbox", "{config}");
    assert!(config["dev"]["name"].as_str().is_some() && config["o"]["name"] == "Hearth", "{config}");
    let cmps = config["cmps"].as_object().expect("cmps");
    assert!(cmps.len() >= 10, "{config}");
    let mut unique = std::collections::HashSet::new();
    for (key, c) in cmps {
        let id = c["unique_id"].as_str().unwrap_or_else(|| panic!("{key} has no unique_id"));
        assert!(unique.insert(id), "{id} twice");
        assert!(c.get("object_id").is_none(), "{key}: object_id is deprecated");
        assert_eq!(c["default_entity_id"], format!("{}.{id}", c["p"].as_str().unwrap()), "{key}");
        match c["p"].as_str() {
            Some("sensor") => {
                assert_eq!(c["state_topic"], STATE, "{key}");
                assert_eq!(c["availability"][0]["topic"], AVAILABILITY, "{key}");
                assert!(c["value_template"].as_str().unwrap().starts_with("{{ "), "{key}");
            }
            Some("binary_sensor") => {
                assert_eq!(
                    (c["state_topic"].as_str(), c["device_class"].as_str()),
                    (Some(AVAILABILITY), Some("connectivity"))
                );
                assert_eq!(
                    (c["payload_on"].as_str(), c["payload_off"].as_str()),
                    (Some("online"), Some("offline"))
                );
            }
            // The command entities, for the commands the box allows.
            Some("text" | "button") => {
                assert_eq!(c["command_topic"], format!("hearth/testbox/command/{key}"), "{key}");
                assert_eq!(c["availability"][0]["topic"], AVAILABILITY, "{key}");
            }
            other => panic!("{key}: platform {other:?}"),
        }
    }
}

pub(crate) fn metric(server: &Server, token: &str, name: &str) -> f64 {
    let text = server
        .agent()
        .get(&format!("{}/metrics", server.url))
        .set("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    text.lines()
        .find(|l| l.split(' ').next() == Some(name))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

pub(crate) fn chat(server: &Server, token: &str) {
    let body = json!({"message": "Say hello.", "max_tokens": 8});
    let (status, reply) = server.call("POST", "/api/chat", Some(token), Some(&body));
    assert_eq!(status, 200, "{reply}");
    assert!(!reply["reply"].as_str().unwrap_or("").is_empty(), "{reply}");
}

#[test]
fn home_assistant_discovers_the_box_through_a_password_protected_broker() {
    let broker = Broker::start(false);
    let mut server = Server::start(broker.hearth(ServerOptions::new(small_model()), 1));
    let token = server.user("alice");
    let sub = Subscriber::start(&broker);
    sub.wait(&server, STATE, "a state message", |m| !m.is_empty());
    // Subscribed once hearth sends: what it announced comes back retained.
    let late = Subscriber::start(&broker);
    let configs =
        late.wait(&server, DISCOVERY, "retained discovery config", |m| m.iter().any(|m| m.retained));
    check_discovery(&configs.iter().find(|m| m.retained).unwrap().json());
    late.wait(&server, AVAILABILITY, "retained online", |m| {
        m.iter().any(|m| m.retained && m.payload == "online")
    });
    drop(late);

    // State at the interval (1 s): several, each a whole reading.
    chat(&server, &token);
    let states = sub
        .wait(&server, STATE, "three live state messages", |m| m.iter().filter(|m| !m.retained).count() >= 3);
    let state = states.last().unwrap().json();
    assert_eq!(state["version"], env!("CARGO_PKG_VERSION"), "{state}");
    assert_eq!(
        (state["health"].as_str(), state["model_state"].as_str()),
        (Some("ok"), Some("ready")),
        "{state}"
    );
    assert!(
        state["memory_total_bytes"].as_u64().unwrap() > 0 && state["disk_total_bytes"].as_u64().unwrap() > 0
    );
    assert!(state["requests_total"].as_u64().unwrap() >= 1, "{state}");
    let times: Vec<u64> = states.iter().map(|m| m.json()["time"].as_u64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");

    // Home Assistant's birth message: the device is announced again.
    let before = sub.on(DISCOVERY).len();
    broker.publish("homeassistant/status", "online");
    sub.wait(&server, DISCOVERY, "a discovery config after Home Assistant's birth", |m| m.len() > before);

    // The sampler on /metrics and /api/system; the publisher's own figures.
    assert_eq!(metric(&server, &token, "hearth_mqtt_connected"), 1.0);
    assert!(metric(&server, &token, "hearth_mqtt_messages_published_total") >= 5.0);
    assert!(metric(&server, &token, "hearth_memory_available_bytes") > 0.0);
    assert!(metric(&server, &token, "hearth_process_resident_memory_bytes") > 1e6);
    assert!(metric(&server, &token, "hearth_data_disk_total_bytes") > 0.0);
    assert!(metric(&server, &token, "hearth_cpu_usage_ratio{core=\"0\"}") >= 0.0);
    assert_eq!(cli(&server.data_dir, &["users", "add", "root", "--admin"]).0, 0);
    let root = cli(&server.data_dir, &["tokens", "create", "--user", "root"])
        .1
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string();
    let (status, system) = server.call("GET", "/api/system", Some(&root), None);
    assert_eq!(status, 200, "{system}");
    assert!(system["system"]["memory_available_bytes"].as_u64().unwrap() > 0, "{system}");
    assert!(system["system"]["cpu_usage"].as_array().is_some_and(|c| !c.is_empty()), "{system}");
    assert!(system["history"].as_array().is_some_and(|h| !h.is_empty()), "{system}");

    // Prometheus's own linter accepts the exposition (names, units, help, types).
    require("promtool", "prometheus");
    let text = server
        .agent()
        .get(&format!("{}/metrics", server.url))
        .set("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut promtool.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The password never reaches the log.
    assert!(!server.log().contains(PASSWORD), "the MQTT password is in the log");

    // Killed -9: the broker tells everyone, through the last will, retained.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    sub.wait(&server, AVAILABILITY, "the last will", |m| m.last().is_some_and(|m| m.payload == "offline"));
    let late = Subscriber::start(&broker);
    late.wait(&server, AVAILABILITY, "a retained offline", |m| {
        m.iter().any(|m| m.retained && m.payload == "offline")
    });
    assert!(!server.alive());
}

#[test]
fn telemetry_survives_the_broker_going_away_and_coming_back() {
    let mut broker = Broker::start(false);
    let server =
        Server::start(broker.hearth(ServerOptions::new(small_model()), 1).env("HEARTH_MQTT_BACKLOG", "3"));
    let token = server.user("alice");
    let sub = Subscriber::start(&broker);
    sub.wait(&server, STATE, "a state message", |m| !m.is_empty());
    drop(sub);

    broker.kill();
    // Chats are answered while the broker is gone, and the backlog stays at its bound.
    chat(&server, &token);
    let deadline = Instant::now() + Duration::from_secs(90);
    while metric(&server, &token, "hearth_mqtt_backlog_dropped_total") < 2.0 {
        assert!(Instant::now() < deadline, "the backlog never overflowed:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(metric(&server, &token, "hearth_mqtt_connected"), 0.0);
    assert_eq!(
        metric(&server, &token, "hearth_mqtt_backlog_messages"),
        3.0,
        "bounded by HEARTH_MQTT_BACKLOG"
    );
    chat(&server, &token);

    // Back: hearth reconnects, announces again (the broker kept nothing) and sends on.
    broker.restart();
    let sub = Subscriber::start(&broker);
    let configs = sub.wait(&server, DISCOVERY, "discovery again", |m| !m.is_empty());
    check_discovery(&configs[0].json());
    sub.wait(&server, AVAILABILITY, "online again", |m| m.iter().any(|m| m.payload == "online"));
    sub.wait(&server, STATE, "state again", |m| m.iter().filter(|m| !m.retained).count() >= 2);
    assert_eq!(metric(&server, &token, "hearth_mqtt_connected"), 1.0);
    assert_eq!(metric(&server, &token, "hearth_mqtt_backlog_messages"), 0.0);
    assert!(metric(&server, &token, "hearth_mqtt_connections_total") >= 2.0);
    chat(&server, &token);
}

#[test]
fn telemetry_over_tls_with_a_client_certificate() {
    let broker = Broker::start(true);
    let server = Server::start(broker.hearth(ServerOptions::new(small_model()), 1));
    let sub = Subscriber::start(&broker);
    sub.wait(&server, STATE, "a state message", |m| !m.is_empty());
    let late = Subscriber::start(&broker);
    let configs =
        late.wait(&server, DISCOVERY, "retained discovery config", |m| m.iter().any(|m| m.retained));
    check_discovery(&configs[0].json());
    let states = sub
        .wait(&server, STATE, "two live state messages", |m| m.iter().filter(|m| !m.retained).count() >= 2);
    assert_eq!(states.last().unwrap().json()["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        broker.log().contains(&format!("u'{USER}'")),
        "the broker knew hearth by its certificate:\n{}",
        broker.log()
    );
}

#[test]
fn a_broker_that_refuses_the_password_is_logged_and_chats_go_on() {
    let broker = Broker::start(false);
    let wrong = broker.dir.path().join("wrong-password");
    std::fs::write(&wrong, "not-the-PASSWORD\n").unwrap();
    let options = broker.hearth(ServerOptions::new(small_model()), 1);
    let server = Server::start(options.env("HEARTH_MQTT_PASSWORD_FILE", &wrong.display().to_string()));
    let token = server.user("alice");
    let deadline = Instant::now() + Duration::from_secs(90);
    while !server.log().contains("NotAuthorized") {
        assert!(Instant::now() < deadline, "the refusal was not logged:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    chat(&server, &token);
    assert_eq!(metric(&server, &token, "hearth_mqtt_connected"), 0.0);
    assert_eq!(metric(&server, &token, "hearth_mqtt_connections_total"), 0.0);
    let log = server.log();
    assert!(!log.contains("not-the-PASSWORD") && !log.contains(PASSWORD), "a password is in the log");
    // Logged once, not at every retry.
    assert_eq!(log.matches("NotAuthorized").count(), 1, "{log}");
}
