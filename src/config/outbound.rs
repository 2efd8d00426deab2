//! The settings of skills that reach out: `[outbound]` (the guard every skill's HTTP
//! request goes through), `[[skills.webhooks]]` (webhook skills) and `[home_assistant]`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// Where skills' HTTP requests may go (see `outbound/`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboundSettings {
    /// Hosts webhook skills may call, and be redirected to: a name (`api.example.com`),
    /// `*.example.com` for the names under it, or an address. Empty: none.
    pub allowed_hosts: Vec<String>,
    /// Whether private (LAN) addresses may be reached by any allowed host. Off: only a
    /// webhook with `allow_local` reaches its own host on the LAN or this box.
    pub allow_private: bool,
    /// Longest a request may take, redirects included, in seconds.
    pub timeout_secs: u64,
    /// Largest answer read, in bytes; a larger one fails the call.
    pub max_response_bytes: usize,
    /// Redirects followed (each one checked like the first URL).
    pub max_redirects: u32,
}

impl Default for OutboundSettings {
    fn default() -> Self {
        Self {
            allowed_hosts: Vec::new(),
            allow_private: false,
            timeout_secs: 8,
            max_response_bytes: 1 << 20,
            max_redirects: 3,
        }
    }
}

/// A skill that calls an HTTP endpoint, defined in `[[skills.webhooks]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// The tool's name the model calls: letters, digits, `_` and `-`.
    pub name: String,
    /// What the model reads to decide when to call it.
    pub description: String,
    /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE`.
    #[serde(default = "get")]
    pub method: String,
    /// `http(s)://host/path?query`, with `{argument}` placeholders in the path and query
    /// (URL-encoded when filled). The host must be on `[outbound] allowed_hosts`.
    pub url: String,
    /// Headers sent: a value, or a secret read at start from `{ env = "VAR" }` or
    /// `{ file = "/path" }` (never logged, not sent on to another host by a redirect).
    #[serde(default)]
    pub headers: BTreeMap<String, HeaderSetting>,
    /// A JSON schema of the arguments: `type = "object"`, `properties` (each with a
    /// `type`: string, integer, number, boolean, array, object; optional `enum`,
    /// `description`), `required`. Checked before each call.
    #[serde(default = "no_parameters")]
    pub parameters: serde_json::Value,
    /// A JSON body: a string that is exactly `"{argument}"` becomes the argument's value,
    /// other strings have their placeholders filled as text. None: no body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    /// Let this webhook's own host and port be a loopback or LAN address (a service on
    /// this box or the LAN). Redirects elsewhere stay refused.
    #[serde(default)]
    pub allow_local: bool,
}

fn get() -> String {
    "GET".into()
}

fn no_parameters() -> serde_json::Value {
    serde_json::json!({"type": "object", "properties": {}})
}

/// A header's value: text, or a secret read from the environment or a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HeaderSetting {
    Text(String),
    Env(EnvSecret),
    File(FileSecret),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvSecret {
    pub env: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSecret {
    pub file: PathBuf,
}

impl HeaderSetting {
    /// The value, and whether it is a secret; `field` names it in errors.
    pub fn read(&self, field: &str) -> Result<(String, bool), String> {
        match self {
            HeaderSetting::Text(text) => Ok((text.clone(), false)),
            HeaderSetting::Env(EnvSecret { env }) => match std::env::var(env) {
                Ok(value) if !value.trim().is_empty() => Ok((value.trim().to_string(), true)),
                _ => Err(format!("{field}: the environment variable {env} is not set")),
            },
            HeaderSetting::File(FileSecret { file }) => read_secret_file(file, field).map(|v| (v, true)),
        }
    }
}

/// A secret file's trimmed contents, or an error naming the field and the file.
pub fn read_secret_file(path: &std::path::Path, field: &str) -> Result<String, String> {
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_string()),
        Ok(_) => Err(format!("{field}: {} is empty", path.display())),
        Err(e) => Err(format!("{field}: cannot read {}: {e}", path.display())),
    }
}

/// A secret given in the configuration: hidden from `Debug` and `print-config`.
#[derive(Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "<hidden>" })
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "<hidden>" })
    }
}

/// Home Assistant control (`ha_call_service`, `ha_get_state`, `ha_area_entities`): on
/// when `url` is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HomeAssistantSettings {
    /// Home Assistant's address, e.g. `http://homeassistant.local:8123`. Empty: off. It
    /// may be on the LAN or this box: that host and port alone are let through the guard.
    pub url: String,
    /// A long-lived access token (Home Assistant: Profile → Security). Prefer `token_file`.
    pub token: Secret,
    /// A file holding the token (read at start).
    pub token_file: PathBuf,
    /// Services the assistant may call: `light.turn_on`, `light.*` for a domain's, `*`
    /// for all.
    pub services: Vec<String>,
    /// The voice satellite(s) that say reminders set from a satellite and workflow notices
    /// meant for it, e.g. `assist_satellite.kitchen` (or a list): Hearth calls the
    /// `assist_satellite.announce` service with them (a Wyoming server cannot speak to a
    /// satellite on its own). Empty: nothing is announced.
    #[serde(deserialize_with = "one_or_many")]
    pub announce_entity: Vec<String>,
}

/// A string or a list of strings, as a list.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) if s.is_empty() => Vec::new(),
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

impl Default for HomeAssistantSettings {
    fn default() -> Self {
        Self {
            url: String::new(),
            token: Secret::default(),
            token_file: PathBuf::new(),
            services: ["light", "switch", "fan", "cover", "media_player", "climate", "scene", "script"]
                .iter()
                .map(|d| format!("{d}.*"))
                .chain(["input_boolean.*".to_string()])
                .collect(),
            announce_entity: Vec::new(),
        }
    }
}

impl HomeAssistantSettings {
    pub fn enabled(&self) -> bool {
        !self.url.is_empty()
    }

    /// The token, from `token` or `token_file`.
    pub fn read_token(&self) -> Result<String, String> {
        if !self.token.0.is_empty() {
            return Ok(self.token.0.trim().to_string());
        }
        read_secret_file(&self.token_file, "home_assistant.token_file")
    }

    /// Whether reminders and notices can be announced on satellites.
    pub fn announces(&self) -> bool {
        self.enabled() && !self.announce_entity.is_empty()
    }

    pub(super) fn validate(&self) -> Result<(), String> {
        let bad = |key: &str, why: &str| Err(format!("invalid value for home_assistant.{key}: {why}"));
        let slug = |s: &str| {
            !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        if let Some(e) =
            self.announce_entity.iter().find(|e| !e.split_once('.').is_some_and(|(d, o)| slug(d) && slug(o)))
        {
            return bad(
                "announce_entity",
                &format!("'{e}' is not an entity id such as assist_satellite.kitchen"),
            );
        }
        if !self.enabled() {
            if !self.announce_entity.is_empty() {
                return bad(
                    "announce_entity",
                    "set home_assistant.url and a token to announce on satellites",
                );
            }
            return Ok(());
        }
        match url::Url::parse(&self.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => {
                return bad(
                    "url",
                    &format!("'{}' is not an http(s) URL such as http://homeassistant.local:8123", self.url),
                )
            }
        }
        match (self.token.0.is_empty(), self.token_file.as_os_str().is_empty()) {
            (true, true) => return bad("token", "set token or token_file (a long-lived access token)"),
            (false, false) => return bad("token", "set token or token_file, not both"),
            _ => {}
        }
        let name = |s: &str| {
            s == "*"
                || (!s.is_empty()
                    && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
        };
        if let Some(s) = self
            .services
            .iter()
            .find(|s| *s != "*" && !s.split_once('.').is_some_and(|(d, v)| d != "*" && name(d) && name(v)))
        {
            return bad("services", &format!("'{s}' is not domain.service, domain.* or *"));
        }
        Ok(())
    }
}

impl OutboundSettings {
    pub(super) fn validate(&self) -> Result<(), String> {
        let bad = |key: &str, why: &str| Err(format!("invalid value for outbound.{key}: {why}"));
        if let Some(h) = self
            .allowed_hosts
            .iter()
            .find(|h| h.is_empty() || h.contains(['/', ' ', ':']) && h.parse::<std::net::Ipv6Addr>().is_err())
        {
            return bad(
                "allowed_hosts",
                &format!("'{h}' is not a host name, *.domain or address (no scheme, port or path)"),
            );
        }
        if !(1..=600).contains(&self.timeout_secs) {
            return bad("timeout_secs", "must be between 1 and 600");
        }
        if !(1024..=64 << 20).contains(&self.max_response_bytes) {
            return bad("max_response_bytes", "must be between 1024 and 67108864");
        }
        if self.max_redirects > 10 {
            return bad("max_redirects", "must be at most 10");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::load_from;
    use std::io::Write;
    use std::path::Path;

    const NO_SYSTEM: &str = "/nonexistent/hearth.toml";

    fn load(text: &str, env: &[(&str, &str)]) -> Result<super::super::Settings, String> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        load_from(Some(f.path()), Path::new(NO_SYSTEM), &env, &[])
            .map(|l| l.settings)
            .map_err(|e| e.to_string())
    }

    const WEATHER: &str = r#"
[outbound]
allowed_hosts = ["api.example.com"]

[[skills.webhooks]]
name = "weather"
description = "Get the weather forecast for a city."
url = "https://api.example.com/forecast?city={city}"
headers = { Accept = "application/json", "X-Api-Key" = { env = "WEATHER_KEY" } }
[skills.webhooks.parameters]
type = "object"
required = ["city"]
properties = { city = { type = "string", description = "The city" } }
"#;

    #[test]
    fn webhooks_and_home_assistant_are_read_from_the_file_and_the_environment() {
        let env = [
            ("HEARTH_HOME_ASSISTANT_URL", "http://192.168.1.5:8123"),
            ("HEARTH_HOME_ASSISTANT_TOKEN", "abc"),
        ];
        let settings = load(WEATHER, &env).unwrap();
        let w = &settings.skills.webhooks[0];
        assert_eq!((w.name.as_str(), w.method.as_str()), ("weather", "GET"));
        assert_eq!(
            w.headers["X-Api-Key"],
            super::HeaderSetting::Env(super::EnvSecret { env: "WEATHER_KEY".into() })
        );
        assert_eq!(w.parameters["properties"]["city"]["type"], "string");
        assert_eq!(settings.home_assistant.read_token().unwrap(), "abc");
        assert!(!format!("{settings:?}").contains("abc"), "the token is not in Debug output");
        let printed = toml::to_string_pretty(&settings).unwrap();
        assert!(printed.contains("token = \"<hidden>\"") && !printed.contains("\"abc\""), "{printed}");
        assert!(printed.contains("[[skills.webhooks]]"), "{printed}");
    }

    #[test]
    fn satellites_announce_on_one_entity_or_a_list() {
        let ha = "[home_assistant]\nurl = \"http://ha.lan:8123\"\ntoken = \"t\"\n";
        let one = load(&format!("{ha}announce_entity = \"assist_satellite.kitchen\"\n"), &[]).unwrap();
        assert_eq!(one.home_assistant.announce_entity, ["assist_satellite.kitchen"]);
        assert!(one.home_assistant.announces());
        let env = [("HEARTH_HOME_ASSISTANT_ANNOUNCE_ENTITY", "assist_satellite.a,assist_satellite.b")];
        let two = load(ha, &env).unwrap();
        assert_eq!(two.home_assistant.announce_entity, ["assist_satellite.a", "assist_satellite.b"]);
        assert!(!load(ha, &[]).unwrap().home_assistant.announces(), "none named: off");
        let e = load(&format!("{ha}announce_entity = [\"kitchen\"]\n"), &[]).unwrap_err();
        assert!(e.contains("home_assistant.announce_entity: 'kitchen' is not an entity id"), "{e}");
        let e = load("[home_assistant]\nannounce_entity = \"assist_satellite.k\"\n", &[]).unwrap_err();
        assert!(e.contains("home_assistant.announce_entity: set home_assistant.url"), "{e}");
        let e = load("[voice]\nwyoming_user = \"a b\"\n", &[]).unwrap_err();
        assert!(e.contains("voice.wyoming_user: 'a b' is not a user name"), "{e}");
        assert_eq!(load("[voice]\nwyoming_user = \"alice\"\n", &[]).unwrap().voice.wyoming_user, "alice");
    }

    #[test]
    fn a_configured_skill_may_be_off_by_default() {
        let env = [("HEARTH_SKILLS_OFF_BY_DEFAULT", "weather,ha_call_service")];
        let settings = load(WEATHER, &env).unwrap();
        assert_eq!(settings.skills.off_by_default, ["weather", "ha_call_service"]);
        assert!(!crate::skills::box_default(&settings, "weather"));
        assert!(crate::skills::box_default(&settings, "clock"), "built-ins follow skills.enabled");
        assert!(!crate::skills::box_default(&settings, "calculate"));
    }

    #[test]
    fn bad_definitions_are_errors_that_name_the_field() {
        for (text, env, expected) in [
            (WEATHER.replace("api.example.com\"]", "other.example.com\"]"), vec![], "skills.webhooks[weather].url: the host api.example.com is not on outbound.allowed_hosts"),
            (WEATHER.replace("name = \"weather\"", "name = \"clock\""), vec![], "skills.webhooks[clock].name: a built-in skill is named 'clock'"),
            (WEATHER.replace("name = \"weather\"", "name = \"ha_get_state\""), vec![], "a built-in skill is named 'ha_get_state'"),
            (format!("{WEATHER}\n[[skills.webhooks]]\nname = \"weather\"\ndescription = \"x\"\nurl = \"https://api.example.com/\"\n"), vec![], "skills.webhooks[weather].name: defined twice"),
            (WEATHER.replace("description", "descripton"), vec![], "descripton"),
            (String::new(), vec![("HEARTH_HOME_ASSISTANT_URL", "http://ha.lan:8123")], "home_assistant.token: set token or token_file"),
            (String::new(), vec![("HEARTH_HOME_ASSISTANT_URL", "ha.lan"), ("HEARTH_HOME_ASSISTANT_TOKEN", "t")], "home_assistant.url"),
            ("[home_assistant]\nurl = \"http://ha.lan\"\ntoken = \"t\"\nservices = [\"lock\"]\n".into(), vec![], "home_assistant.services: 'lock' is not domain.service"),
            ("[outbound]\nallowed_hosts = [\"https://api.example.com/\"]\n".into(), vec![], "outbound.allowed_hosts"),
            (WEATHER.to_string(), vec![("HEARTH_SKILLS_OFF_BY_DEFAULT", "weather,clock")], "skills.off_by_default: 'clock' is not a webhook or Home Assistant skill"),
        ] {
            let e = load(&text, &env).unwrap_err();
            assert!(e.contains(expected), "{e}\nexpected: {expected}");
        }
    }
}
