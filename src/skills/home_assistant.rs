//! Home Assistant control through its REST API with a long-lived token
//! (`[home_assistant]`): three small skills, since small models call simple tools with
//! few arguments best:
//! - `ha_call_service` (`entity_id`, `service`, optional `data`): `POST
//!   /api/services/<domain>/<service>`, only services on `[home_assistant] services`;
//! - `ha_get_state` (`entity_id`): `GET /api/states/<entity_id>`;
//! - `ha_area_entities` (`area`): `POST /api/template` rendering `area_entities(area)` with
//!   the area as a template variable, never pasted into the template (needs an
//!   administrator's token, as Home Assistant's template endpoint does).
//!
//! The same connection announces on voice satellites ([`HomeAssistant::announce`], for
//! `channels/satellite.rs`).
//!
//! Home Assistant usually lives on the LAN or on this box: its URL's host and port alone
//! are let through the outbound guard, with no redirects. Results are short sentences.

use super::{string_arg, Context, Output, Skill, SkillError};
use crate::config::{HomeAssistantSettings, OutboundSettings};
use crate::outbound::{Guard, Policy, Request, Response};
use futures_util::future::BoxFuture;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

pub const CALL_SERVICE: &str = "ha_call_service";
pub const GET_STATE: &str = "ha_get_state";
pub const AREA_ENTITIES: &str = "ha_area_entities";
/// The skills' names, which webhooks may not take.
pub const NAMES: &[&str] = &[CALL_SERVICE, GET_STATE, AREA_ENTITIES];

/// Each entity of the area on a line: `light.kitchen (Kitchen light): on`.
const AREA_TEMPLATE: &str =
    "{% for e in area_entities(area) %}{{ e }} ({{ state_attr(e, 'friendly_name') or e }}): {{ states(e) }}\n{% endfor %}";

/// The connection the three skills share.
pub struct HomeAssistant {
    base: String,
    token: String,
    services: Vec<String>,
    guard: Guard,
}

impl HomeAssistant {
    /// From the settings, with the token read; `None` when `[home_assistant] url` is empty.
    pub fn new(
        settings: &HomeAssistantSettings,
        outbound: &OutboundSettings,
    ) -> Result<Option<HomeAssistant>, String> {
        if !settings.enabled() {
            return Ok(None);
        }
        let url = url::Url::parse(&settings.url).map_err(|e| format!("home_assistant.url: {e}"))?;
        let host = url.host().map(|h| crate::outbound::host_key(&h)).unwrap_or_default();
        let mut policy = Policy {
            allowed_hosts: vec![host],
            timeout: Duration::from_secs(outbound.timeout_secs),
            max_response_bytes: outbound.max_response_bytes,
            max_redirects: 0,
            ..Policy::default()
        };
        policy.allow_local(&url);
        Ok(Some(HomeAssistant {
            base: settings.url.trim_end_matches('/').to_string(),
            token: settings.read_token()?,
            services: settings.services.clone(),
            guard: Guard::new(policy),
        }))
    }

    /// Has the satellites `entities` say `message` (`assist_satellite.announce`, one call
    /// for them all). The error says why in one line, without the token.
    pub async fn announce(&self, entities: &[String], message: &str) -> Result<(), String> {
        let entity_id = match entities {
            [one] => json!(one),
            many => json!(many),
        };
        let body = json!({"entity_id": entity_id, "message": message});
        let url = format!("{}/api/services/assist_satellite/announce", self.base);
        match self.send(Request::post_json(url, &body)).await {
            Ok(_) => Ok(()),
            Err(SkillError::Failed(why) | SkillError::InvalidArguments(why)) => Err(why),
        }
    }

    /// The three skills.
    pub fn skills(self) -> Vec<Arc<dyn Skill>> {
        let ha = Arc::new(self);
        vec![Arc::new(CallService(ha.clone())), Arc::new(GetState(ha.clone())), Arc::new(AreaEntities(ha))]
    }

    fn allows(&self, domain: &str, service: &str) -> bool {
        self.services.iter().any(|s| {
            s == "*" || s.split_once('.').is_some_and(|(d, v)| d == domain && (v == "*" || v == service))
        })
    }

    async fn send(&self, request: Request) -> Result<Response, SkillError> {
        let request = request.header("Authorization", &format!("Bearer {}", self.token), true);
        let response =
            self.guard.send(request).await.map_err(|e| SkillError::Failed(format!("Home Assistant: {e}")))?;
        match response.status {
            200..=299 => Ok(response),
            401 | 403 => Err(SkillError::Failed("Home Assistant refused the token (401/403)".into())),
            status => {
                let text = response.text();
                let text: String = text.trim().chars().take(200).collect();
                Err(SkillError::Failed(format!("Home Assistant answered HTTP {status}: {text}")))
            }
        }
    }
}

/// A Home Assistant identifier part: lowercase letters, digits and `_`.
fn slug(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// `light.kitchen`, checked, as (domain, object id).
fn entity(arguments: &Value) -> Result<(String, String), SkillError> {
    let id = string_arg(arguments, "entity_id")?.to_ascii_lowercase();
    match id.split_once('.') {
        Some((domain, object)) if slug(domain) && slug(object) => Ok((domain.into(), object.into())),
        _ => Err(SkillError::InvalidArguments(format!("'{id}' is not an entity id such as light.kitchen"))),
    }
}

fn entity_parameter() -> Value {
    json!({"type": "string", "description": "The entity id, such as light.kitchen or sensor.outdoor_temperature."})
}

pub struct CallService(Arc<HomeAssistant>);

impl Skill for CallService {
    fn name(&self) -> &'static str {
        CALL_SERVICE
    }

    fn description(&self) -> &'static str {
        "Control a smart home device through Home Assistant, e.g. turn a light on or off."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "entity_id": entity_parameter(),
                "service": {"type": "string", "description": "What to do: turn_on, turn_off or toggle (or domain.service)."},
                "data": {"type": "object", "description": "Extra service data, e.g. {\"brightness_pct\": 50}."}
            },
            "required": ["entity_id", "service"]
        })
    }

    fn execute(&self, arguments: Value, _ctx: Context) -> BoxFuture<'static, Result<Output, SkillError>> {
        let ha = self.0.clone();
        Box::pin(async move {
            let (entity_domain, object) = entity(&arguments)?;
            let entity_id = format!("{entity_domain}.{object}");
            let service = string_arg(&arguments, "service")?.to_ascii_lowercase();
            let (domain, service) = match service.split_once('.') {
                Some((d, s)) => (d.to_string(), s.to_string()),
                None => (entity_domain, service),
            };
            if !slug(&domain) || !slug(&service) {
                return Err(SkillError::InvalidArguments(format!(
                    "'{domain}.{service}' is not a service name"
                )));
            }
            if !ha.allows(&domain, &service) {
                return Err(SkillError::Failed(format!(
                    "{domain}.{service} is not a service the assistant may call"
                )));
            }
            let mut body = match arguments.get("data") {
                Some(Value::Object(data)) => data.clone(),
                None | Some(Value::Null) => Default::default(),
                Some(_) => return Err(SkillError::InvalidArguments("'data' must be an object".into())),
            };
            body.insert("entity_id".into(), Value::String(entity_id.clone()));
            let url = format!("{}/api/services/{domain}/{service}", ha.base);
            let response = ha.send(Request::post_json(url, &Value::Object(body))).await?;
            // Home Assistant answers with the states the call changed.
            let changed: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
            let now = changed.as_array().into_iter().flatten().find(|s| s["entity_id"] == entity_id.as_str());
            let content = match now.and_then(|s| s["state"].as_str()) {
                Some(state) => format!("Called {domain}.{service} for {entity_id}; it is now {state}."),
                None => format!("Called {domain}.{service} for {entity_id}."),
            };
            Ok(Output { content, citations: Vec::new() })
        })
    }
}

pub struct GetState(Arc<HomeAssistant>);

impl Skill for GetState {
    fn name(&self) -> &'static str {
        GET_STATE
    }

    fn description(&self) -> &'static str {
        "Read the current state of a smart home device or sensor from Home Assistant."
    }

    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {"entity_id": entity_parameter()}, "required": ["entity_id"]})
    }

    fn execute(&self, arguments: Value, _ctx: Context) -> BoxFuture<'static, Result<Output, SkillError>> {
        let ha = self.0.clone();
        Box::pin(async move {
            let (domain, object) = entity(&arguments)?;
            let id = format!("{domain}.{object}");
            let result = ha.send(Request::get(format!("{}/api/states/{id}", ha.base))).await;
            let response = match result {
                Err(SkillError::Failed(m)) if m.contains("HTTP 404") => {
                    return Err(SkillError::Failed(format!("Home Assistant has no entity {id}")));
                }
                other => other?,
            };
            let state: Value = serde_json::from_slice(&response.body)
                .map_err(|_| SkillError::Failed("Home Assistant's answer was not JSON".into()))?;
            Ok(Output { content: describe(&id, &state), citations: Vec::new() })
        })
    }
}

/// "Kitchen light (light.kitchen) is on; brightness: 180."
fn describe(id: &str, state: &Value) -> String {
    let attributes = state["attributes"].as_object().cloned().unwrap_or_default();
    let name = attributes.get("friendly_name").and_then(Value::as_str).unwrap_or(id);
    let unit = attributes.get("unit_of_measurement").and_then(Value::as_str).map(|u| format!(" {u}"));
    let value = state["state"].as_str().unwrap_or("unknown");
    let mut text = format!("{name} ({id}) is {value}{}", unit.unwrap_or_default());
    const SKIP: &[&str] = &[
        "friendly_name",
        "unit_of_measurement",
        "icon",
        "entity_picture",
        "supported_features",
        "attribution",
        "device_class",
        "state_class",
        "supported_color_modes",
    ];
    let details: Vec<String> = attributes
        .iter()
        .filter(|(k, v)| !SKIP.contains(&k.as_str()) && (v.is_number() || v.is_string() || v.is_boolean()))
        .take(6)
        .map(|(k, v)| format!("{k}: {}", v.as_str().map_or_else(|| v.to_string(), str::to_string)))
        .collect();
    if !details.is_empty() {
        text.push_str("; ");
        text.push_str(&details.join(", "));
    }
    text.push('.');
    text
}

pub struct AreaEntities(Arc<HomeAssistant>);

impl Skill for AreaEntities {
    fn name(&self) -> &'static str {
        AREA_ENTITIES
    }

    fn description(&self) -> &'static str {
        "List the smart home devices in a room or area (from Home Assistant) with their states."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {"area": {"type": "string", "description": "The area or room, such as kitchen."}},
            "required": ["area"]
        })
    }

    fn execute(&self, arguments: Value, _ctx: Context) -> BoxFuture<'static, Result<Output, SkillError>> {
        let ha = self.0.clone();
        Box::pin(async move {
            let area = string_arg(&arguments, "area")?.to_string();
            // The area is a variable of the template, never part of its text.
            let body = json!({"template": AREA_TEMPLATE, "variables": {"area": area}});
            let response = ha.send(Request::post_json(format!("{}/api/template", ha.base), &body)).await?;
            let lines: Vec<String> = response
                .text()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect();
            let content = match lines.is_empty() {
                true => format!("Home Assistant has no entities in an area named '{area}'."),
                false => format!("In {area}: {}.", lines.join("; ")),
            };
            Ok(Output { content, citations: Vec::new() })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_reads_as_a_sentence() {
        let state = json!({"entity_id": "sensor.outside", "state": "12.5", "attributes": {
            "friendly_name": "Outside", "unit_of_measurement": "°C", "device_class": "temperature", "battery": 90}});
        assert_eq!(describe("sensor.outside", &state), "Outside (sensor.outside) is 12.5 °C; battery: 90.");
        assert_eq!(describe("light.x", &json!({"state": "off"})), "light.x (light.x) is off.");
    }

    #[test]
    fn entity_ids_and_services_are_checked() {
        assert_eq!(
            entity(&json!({"entity_id": "Light.Kitchen"})).unwrap(),
            ("light".into(), "kitchen".into())
        );
        for bad in ["kitchen", "light.", "light.kitchen/../x", "light.kit chen"] {
            assert!(entity(&json!({"entity_id": bad})).is_err(), "{bad}");
        }
        let settings = HomeAssistantSettings {
            url: "http://127.0.0.1:8123".into(),
            token: crate::config::Secret("t".into()),
            services: vec!["light.*".into(), "lock.lock".into()],
            ..Default::default()
        };
        let ha = HomeAssistant::new(&settings, &OutboundSettings::default()).unwrap().unwrap();
        assert!(ha.allows("light", "turn_on") && ha.allows("lock", "lock"));
        assert!(!ha.allows("lock", "unlock") && !ha.allows("alarm_control_panel", "alarm_disarm"));
    }
}
