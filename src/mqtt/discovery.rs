//! Topics and Home Assistant's MQTT discovery, device form: one retained config on
//! `<prefix>/device/<id>/config` with the device (`dev`), the origin (`o`) and the
//! components (`cmps`), each a sensor reading one field of the state JSON; and for the
//! commands the owner allows, an entity that sends one (`announce`: a text entity,
//! `reload_config`: a button).

use crate::config::MqttSettings;
use serde_json::{json, Value};

/// The topics of one box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    pub device_id: String,
    /// JSON state at every interval.
    pub state: String,
    /// `online` (retained, after connecting) and `offline` (the last will, and on shutdown).
    pub availability: String,
    /// The discovery config; `None` when `discovery_prefix` is empty.
    pub discovery: Option<String>,
    /// Home Assistant's birth and last will (`online`/`offline`).
    pub ha_status: Option<String>,
    /// Commands arrive on `<commands>/<name>` (subscribed as `<commands>/+`).
    pub commands: String,
    /// Each command's outcome (not retained).
    pub result: String,
}

pub const ONLINE: &str = "online";
pub const OFFLINE: &str = "offline";

impl Topics {
    pub fn new(settings: &MqttSettings) -> Topics {
        let id = settings.device_id();
        let base = format!("{}/{id}", settings.base_topic);
        let prefix = Some(settings.discovery_prefix.as_str()).filter(|p| !p.is_empty());
        Topics {
            state: format!("{base}/state"),
            availability: format!("{base}/availability"),
            discovery: prefix.map(|p| format!("{p}/device/{id}/config")),
            ha_status: prefix.map(|p| format!("{p}/status")),
            commands: format!("{base}/command"),
            result: format!("{base}/result"),
            device_id: id,
        }
    }

    /// The id's form in entity ids and unique ids: lowercase letters, digits and `_`.
    fn object_prefix(&self) -> String {
        let id: String = self
            .device_id
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        format!("hearth_{id}")
    }
}

/// One sensor: its key (in `cmps`, the unique id and the entity id), name, and how it reads
/// the state JSON.
struct Sensor {
    key: &'static str,
    name: &'static str,
    template: &'static str,
    unit: Option<&'static str>,
    device_class: Option<&'static str>,
    state_class: Option<&'static str>,
    icon: Option<&'static str>,
    diagnostic: bool,
}

const fn sensor(key: &'static str, name: &'static str, template: &'static str) -> Sensor {
    Sensor {
        key,
        name,
        template,
        unit: None,
        device_class: None,
        state_class: None,
        icon: None,
        diagnostic: false,
    }
}

impl Sensor {
    const fn unit(mut self, unit: &'static str) -> Sensor {
        self.unit = Some(unit);
        self.state_class = Some("measurement");
        self
    }
    const fn class(mut self, class: &'static str) -> Sensor {
        self.device_class = Some(class);
        self
    }
    const fn total(mut self) -> Sensor {
        self.state_class = Some("total_increasing");
        self
    }
    const fn icon(mut self, icon: &'static str) -> Sensor {
        self.icon = Some(icon);
        self
    }
    const fn diagnostic(mut self) -> Sensor {
        self.diagnostic = true;
        self
    }
}

/// The sensors, in the order Home Assistant lists them. Each template reads a field of
/// [`super::state::State`]; a field that is `null` (no reading) shows as unknown.
fn sensors(with_temperature: bool) -> Vec<Sensor> {
    let mut all = vec![
        sensor("health", "Health", "{{ value_json.health }}").icon("mdi:heart-pulse"),
        sensor("model", "Model", "{{ value_json.model }}").icon("mdi:brain"),
        sensor("tokens_per_second", "Generation speed", "{{ value_json.tokens_per_second | round(1) }}")
            .unit("tokens/s")
            .icon("mdi:speedometer"),
        sensor("queue_depth", "Queued requests", "{{ value_json.queue_depth }}").unit("requests"),
        sensor("requests", "Requests", "{{ value_json.requests_total }}").total().icon("mdi:counter"),
        sensor("voice_latency", "Voice latency", "{{ value_json.voice_latency_seconds }}")
            .unit("s")
            .class("duration"),
        sensor("cpu", "CPU", "{{ value_json.cpu_percent | round(0) }}").unit("%").icon("mdi:cpu-64-bit"),
        sensor("memory_used", "Memory used", "{{ value_json.memory_used_percent | round(0) }}")
            .unit("%")
            .icon("mdi:memory"),
        sensor(
            "memory_available",
            "Memory available",
            "{{ (value_json.memory_available_bytes / 1048576) | round(0) }}",
        )
        .unit("MiB")
        .class("data_size"),
        sensor("disk_free", "Disk free", "{{ (value_json.disk_available_bytes / 1073741824) | round(1) }}")
            .unit("GiB")
            .class("data_size"),
        sensor(
            "hearth_memory",
            "Hearth memory",
            "{{ (value_json.process_resident_bytes / 1048576) | round(0) }}",
        )
        .unit("MiB")
        .class("data_size")
        .diagnostic(),
        sensor("governor", "Governor", "{{ value_json.governor_level }}").icon("mdi:speedometer-slow"),
        sensor("uptime", "Uptime", "{{ value_json.uptime_seconds }}")
            .unit("s")
            .class("duration")
            .diagnostic(),
        sensor("version", "Version", "{{ value_json.version }}").diagnostic(),
    ];
    if with_temperature {
        all.insert(
            9,
            sensor("temperature", "Temperature", "{{ value_json.temperature_celsius }}")
                .unit("°C")
                .class("temperature"),
        );
    }
    all
}

/// The device's discovery config: every sensor with its `unique_id`, `default_entity_id`,
/// `state_topic` and `availability`, a `binary_sensor` whose state is the availability
/// topic itself (so it reads "disconnected", not "unavailable", when the box is gone), and
/// the command entities for the `commands` allowed.
pub fn config(topics: &Topics, with_temperature: bool, commands: &[String]) -> Value {
    let version = env!("CARGO_PKG_VERSION");
    let object = topics.object_prefix();
    let availability = json!([{
        "topic": topics.availability, "payload_available": ONLINE, "payload_not_available": OFFLINE,
    }]);
    let mut cmps = serde_json::Map::new();
    for s in sensors(with_temperature) {
        let mut c = json!({
            "p": "sensor",
            "name": s.name,
            "unique_id": format!("{object}_{}", s.key),
            "default_entity_id": format!("sensor.{object}_{}", s.key),
            "state_topic": topics.state,
            "value_template": s.template,
            "availability": availability,
        });
        for (key, value) in [
            ("unit_of_measurement", s.unit),
            ("device_class", s.device_class),
            ("state_class", s.state_class),
            ("icon", s.icon),
            ("entity_category", s.diagnostic.then_some("diagnostic")),
        ] {
            if let Some(value) = value {
                c[key] = json!(value);
            }
        }
        cmps.insert(s.key.to_string(), c);
    }
    cmps.insert(
        "online".into(),
        json!({
            "p": "binary_sensor",
            "name": "Online",
            "unique_id": format!("{object}_online"),
            "default_entity_id": format!("binary_sensor.{object}_online"),
            "device_class": "connectivity",
            "state_topic": topics.availability,
            "payload_on": ONLINE,
            "payload_off": OFFLINE,
            "entity_category": "diagnostic",
        }),
    );
    let allowed = |name: &str| commands.iter().any(|c| c == name);
    if allowed("announce") {
        cmps.insert(
            "announce".into(),
            json!({
                "p": "text",
                "name": "Announce",
                "unique_id": format!("{object}_announce"),
                "default_entity_id": format!("text.{object}_announce"),
                "command_topic": format!("{}/announce", topics.commands),
                "command_template": "{{ {'text': value} | to_json }}",
                "max": 255,
                "mode": "text",
                "icon": "mdi:bullhorn",
                "availability": availability,
            }),
        );
    }
    if allowed("reload_config") {
        cmps.insert(
            "reload_config".into(),
            json!({
                "p": "button",
                "name": "Reload configuration",
                "unique_id": format!("{object}_reload_config"),
                "default_entity_id": format!("button.{object}_reload_config"),
                "command_topic": format!("{}/reload_config", topics.commands),
                "payload_press": "{}",
                "entity_category": "config",
                "icon": "mdi:reload",
                "availability": availability,
            }),
        );
    }
    json!({
        "dev": {
            "ids": [object],
            "name": format!("Hearth {}", topics.device_id),
            "mf": "Hearth",
            "mdl": "Hearth assistant",
            "sw": version,
        },
        "o": { "name": "Hearth", "sw": version },
        "cmps": cmps,
        "qos": 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(id: &str) -> MqttSettings {
        MqttSettings { device_id: id.into(), ..MqttSettings::default() }
    }

    #[test]
    fn topics_follow_the_settings() {
        let t = Topics::new(&settings("Kitchen-1"));
        assert_eq!(t.state, "hearth/Kitchen-1/state");
        assert_eq!(t.availability, "hearth/Kitchen-1/availability");
        assert_eq!(t.discovery.as_deref(), Some("homeassistant/device/Kitchen-1/config"));
        assert_eq!(t.ha_status.as_deref(), Some("homeassistant/status"));
        assert_eq!(
            (t.commands.as_str(), t.result.as_str()),
            ("hearth/Kitchen-1/command", "hearth/Kitchen-1/result")
        );
        let quiet = Topics::new(&MqttSettings { discovery_prefix: String::new(), ..settings("x") });
        assert_eq!((quiet.discovery, quiet.ha_status), (None, None));
    }

    #[test]
    fn every_component_is_complete_and_unique() {
        let t = Topics::new(&settings("Kitchen-1"));
        let c = config(&t, true, &["announce".into(), "reload_config".into(), "load_model".into()]);
        assert_eq!(c["dev"]["ids"][0], "hearth_kitchen_1");
        assert_eq!(c["o"]["name"], "Hearth");
        let cmps = c["cmps"].as_object().unwrap();
        let mut ids = std::collections::HashSet::new();
        for (key, cmp) in cmps {
            let unique = cmp["unique_id"].as_str().unwrap();
            assert!(ids.insert(unique.to_string()), "{unique} twice");
            let entity = cmp["default_entity_id"].as_str().unwrap();
            assert_eq!(entity, format!("{}.{unique}", cmp["p"].as_str().unwrap()));
            assert!(entity
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.'));
            assert!(cmp.get("object_id").is_none(), "object_id is deprecated");
            match cmp["p"].as_str().unwrap() {
                "sensor" => {
                    assert_eq!(cmp["state_topic"], t.state, "{key}");
                    assert_eq!(cmp["availability"][0]["topic"], t.availability, "{key}");
                    assert!(cmp["value_template"].as_str().unwrap().contains("value_json."), "{key}");
                }
                "binary_sensor" => assert_eq!(cmp["state_topic"], t.availability),
                "text" | "button" => {
                    assert_eq!(cmp["command_topic"], format!("hearth/Kitchen-1/command/{key}"));
                    assert_eq!(cmp["availability"][0]["topic"], t.availability, "{key}");
                }
                other => panic!("{other}"),
            }
        }
        assert!(cmps.contains_key("temperature") && cmps.contains_key("online"));
        assert!(cmps.contains_key("announce") && cmps.contains_key("reload_config"));
        let quiet = config(&t, false, &[]);
        let quiet = quiet["cmps"].as_object().unwrap();
        assert!(!quiet.contains_key("temperature"));
        assert!(
            !quiet.contains_key("announce") && !quiet.contains_key("reload_config"),
            "only allowed commands"
        );
    }
}
