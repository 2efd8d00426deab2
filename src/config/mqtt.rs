//! The `[mqtt]` settings: telemetry to an MQTT broker and Home Assistant discovery (`mqtt/`).

use serde::{Deserialize, Serialize, Serializer};

/// What `print-config` shows instead of the password.
const HIDDEN: &str = "(hidden)";

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttSettings {
    /// Publish telemetry to the broker. Off by default.
    pub enabled: bool,
    /// The broker: `mqtt://host[:1883]` or `mqtts://host[:8883]` (TLS).
    pub url: String,
    /// The user name the broker knows Hearth by; empty: none.
    pub username: String,
    /// The password. A secret: prefer `password_file` or `HEARTH_MQTT_PASSWORD`.
    #[serde(serialize_with = "hidden")]
    pub password: String,
    /// A file holding the password (mode 0600, owned by the service's user).
    pub password_file: String,
    /// With `mqtts://`: a client certificate (PEM) and its private key, for brokers that
    /// authenticate clients by certificate.
    pub client_cert: String,
    pub client_key: String,
    /// With `mqtts://`: the CA certificate(s) (PEM) that signed the broker's certificate.
    /// Empty: the system's roots and the box's own local CA.
    pub ca_file: String,
    /// This box's id in topics and in Home Assistant. Empty: the host name.
    pub device_id: String,
    /// Seconds between state messages.
    pub interval_secs: u64,
    /// Topics are `<base_topic>/<device_id>/state` and `.../availability`.
    pub base_topic: String,
    /// Home Assistant's discovery prefix; empty: no discovery messages.
    pub discovery_prefix: String,
    /// State messages kept while the broker cannot be reached; the oldest go first.
    pub backlog: usize,
    /// The commands accepted on `<base_topic>/<device_id>/command/<name>` (see
    /// [`COMMANDS`]); empty (the default): none. Whoever the broker lets publish there
    /// may run them: restrict that topic with the broker's ACL.
    pub commands: Vec<String>,
}

/// Every command the box knows (`mqtt/commands.rs`).
pub const COMMANDS: &[&str] = &["announce", "reload_config", "load_model", "unload_model"];

impl Default for MqttSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            url: String::new(),
            username: String::new(),
            password: String::new(),
            password_file: String::new(),
            client_cert: String::new(),
            client_key: String::new(),
            ca_file: String::new(),
            device_id: String::new(),
            interval_secs: 30,
            base_topic: "hearth".into(),
            discovery_prefix: "homeassistant".into(),
            backlog: 100,
            commands: Vec::new(),
        }
    }
}

/// Never the password, not even in a debug print.
impl std::fmt::Debug for MqttSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttSettings")
            .field("enabled", &self.enabled)
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &if self.password.is_empty() { "" } else { HIDDEN })
            .field("password_file", &self.password_file)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .field("ca_file", &self.ca_file)
            .field("device_id", &self.device_id)
            .field("interval_secs", &self.interval_secs)
            .field("base_topic", &self.base_topic)
            .field("discovery_prefix", &self.discovery_prefix)
            .field("backlog", &self.backlog)
            .field("commands", &self.commands)
            .finish()
    }
}

fn hidden<S: Serializer>(password: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(if password.is_empty() { "" } else { HIDDEN })
}

/// The broker's address, from `url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl MqttSettings {
    /// The broker's host, port and whether it speaks TLS.
    pub fn broker(&self) -> Result<Broker, String> {
        let bad = |why: &str| format!("invalid value for mqtt.url: {why}");
        let url = url::Url::parse(self.url.trim()).map_err(|e| bad(&format!("'{}': {e}", self.url)))?;
        let tls = match url.scheme() {
            "mqtt" => false,
            "mqtts" => true,
            other => return Err(bad(&format!("'{other}://' is not mqtt:// or mqtts://"))),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("put the user name in mqtt.username and the password in mqtt.password_file"));
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(bad("only mqtt[s]://host[:port]"));
        }
        let host = match url.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(host) => host.to_string(),
            None => return Err(bad("no host")),
        };
        Ok(Broker { host, port: url.port().unwrap_or(if tls { 8883 } else { 1883 }), tls })
    }

    /// The password, from `password` or `password_file`; errors name the key, never the
    /// password.
    pub fn read_password(&self) -> Result<Option<String>, String> {
        match (self.password.is_empty(), self.password_file.is_empty()) {
            (false, false) => {
                Err("invalid value for mqtt.password: set password or password_file, not both".into())
            }
            (true, true) => Ok(None),
            (false, true) => Ok(Some(self.password.clone())),
            (true, false) => {
                super::read_secret_file(std::path::Path::new(&self.password_file), "mqtt.password_file")
                    .map(Some)
                    .map_err(|e| format!("invalid value for {e}"))
            }
        }
    }

    /// `device_id`, or the host name made fit for topics and entity ids.
    pub fn device_id(&self) -> String {
        if !self.device_id.is_empty() {
            return self.device_id.clone();
        }
        let host = crate::tls::names::host_name().unwrap_or_else(|| "hearth".into());
        let id: String = host
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
            .take(64)
            .collect();
        if id.is_empty() {
            "hearth".into()
        } else {
            id
        }
    }

    pub(super) fn validate(&self) -> Result<(), String> {
        let bad = |key: &str, why: &str| Err(format!("invalid value for mqtt.{key}: {why}"));
        if !(1..=86_400).contains(&self.interval_secs) {
            return bad("interval_secs", "must be between 1 and 86400");
        }
        if !(1..=100_000).contains(&self.backlog) {
            return bad("backlog", "must be between 1 and 100000");
        }
        if !self.device_id.is_empty()
            && (self.device_id.len() > 64
                || !self.device_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        {
            return bad("device_id", "use 1-64 letters, digits, '-' and '_'");
        }
        for (key, topic, may_be_empty) in
            [("base_topic", &self.base_topic, false), ("discovery_prefix", &self.discovery_prefix, true)]
        {
            if topic.is_empty() && may_be_empty {
                continue;
            }
            if topic.is_empty()
                || topic.starts_with('/')
                || topic.ends_with('/')
                || topic.contains(['+', '#', '\0'])
                || topic.split('/').any(str::is_empty)
            {
                return bad(key, &format!("'{topic}' is not a topic prefix (no wildcards, no empty levels)"));
            }
        }
        if let Some(unknown) = self.commands.iter().find(|c| !COMMANDS.contains(&c.as_str())) {
            return bad("commands", &format!("'{unknown}' is not a command; known: {}", COMMANDS.join(", ")));
        }
        if self.client_cert.is_empty() != self.client_key.is_empty() {
            return bad("client_cert", "set client_cert and client_key together");
        }
        if !self.enabled {
            return Ok(());
        }
        let broker = self.broker()?;
        if !broker.tls && (!self.client_cert.is_empty() || !self.ca_file.is_empty()) {
            return bad("url", "client_cert and ca_file need an mqtts:// broker");
        }
        if self.read_password()?.is_some() && self.username.is_empty() {
            return bad("username", "a password needs a user name");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(url: &str) -> MqttSettings {
        MqttSettings { enabled: true, url: url.into(), ..MqttSettings::default() }
    }

    #[test]
    fn off_by_default_and_urls_read() {
        let s = MqttSettings::default();
        assert!(!s.enabled && s.commands.is_empty(), "no command is accepted unless listed");
        s.validate().unwrap();
        assert_eq!(
            on("mqtt://broker.lan").broker().unwrap(),
            Broker { host: "broker.lan".into(), port: 1883, tls: false }
        );
        assert_eq!(
            on("mqtts://10.0.0.2:8884/").broker().unwrap(),
            Broker { host: "10.0.0.2".into(), port: 8884, tls: true }
        );
        assert_eq!(on("mqtt://[::1]:1884").broker().unwrap().host, "::1");
        for wrong in ["http://x", "mqtt://", "mqtt://u:p@x", "mqtt://x/topic", "broker:1883"] {
            let err = on(wrong).validate().unwrap_err();
            assert!(err.contains("mqtt.url"), "{wrong}: {err}");
        }
    }

    #[test]
    fn errors_name_the_key_and_never_the_password() {
        let err = MqttSettings { password: "s3cret".into(), ..on("mqtt://x") }.validate().unwrap_err();
        assert!(err.contains("mqtt.username") && !err.contains("s3cret"), "{err}");
        let both = MqttSettings { password: "s3cret".into(), password_file: "/p".into(), ..on("mqtt://x") };
        let err = both.validate().unwrap_err();
        assert!(err.contains("not both") && !err.contains("s3cret"), "{err}");
        let err =
            MqttSettings { password_file: "/nonexistent/p".into(), username: "u".into(), ..on("mqtt://x") }
                .validate()
                .unwrap_err();
        assert!(err.contains("mqtt.password_file") && err.contains("/nonexistent/p"), "{err}");
        let err = MqttSettings { client_cert: "/c.pem".into(), ..on("mqtts://x") }.validate().unwrap_err();
        assert!(err.contains("client_key"), "{err}");
        let err = MqttSettings { ca_file: "/ca.pem".into(), ..on("mqtt://x") }.validate().unwrap_err();
        assert!(err.contains("mqtts://"), "{err}");
        for (s, key) in [
            (MqttSettings { interval_secs: 0, ..on("mqtt://x") }, "interval_secs"),
            (MqttSettings { backlog: 0, ..on("mqtt://x") }, "backlog"),
            (MqttSettings { device_id: "a/b".into(), ..on("mqtt://x") }, "device_id"),
            (MqttSettings { base_topic: "a/#".into(), ..on("mqtt://x") }, "base_topic"),
            (MqttSettings { base_topic: "".into(), ..on("mqtt://x") }, "base_topic"),
            (MqttSettings { discovery_prefix: "ha/".into(), ..on("mqtt://x") }, "discovery_prefix"),
            (MqttSettings { commands: vec!["reboot".into()], ..on("mqtt://x") }, "commands"),
        ] {
            let err = s.validate().unwrap_err();
            assert!(err.contains(&format!("mqtt.{key}")), "{err}");
        }
        MqttSettings { discovery_prefix: "".into(), ..on("mqtt://x") }.validate().unwrap();
    }

    #[test]
    fn the_password_is_read_from_its_file_and_hidden_when_printed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("password");
        std::fs::write(&file, "s3cret\n").unwrap();
        let s = MqttSettings {
            username: "hearth".into(),
            password_file: file.display().to_string(),
            ..on("mqtt://localhost")
        };
        s.validate().unwrap();
        assert_eq!(s.read_password().unwrap().as_deref(), Some("s3cret"));
        let shown = MqttSettings { username: "hearth".into(), password: "s3cret".into(), ..on("mqtt://x") };
        assert!(!format!("{shown:?}").contains("s3cret"));
        assert!(!toml::to_string(&shown).unwrap().contains("s3cret"));
    }

    #[test]
    fn the_device_id_defaults_to_a_clean_host_name() {
        let id = MqttSettings::default().device_id();
        assert!(
            !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{id}"
        );
        assert_eq!(MqttSettings { device_id: "kitchen".into(), ..Default::default() }.device_id(), "kitchen");
    }
}
