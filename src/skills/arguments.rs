//! The model's arguments checked against a skill's JSON schema (the part of JSON schema
//! that tool definitions use: an object's `properties` with a `type` and an optional
//! `enum`, and `required`), and such schemas checked when the configuration is loaded.

use super::SkillError;
use serde_json::{Map, Value};

const TYPES: &[&str] = &["string", "integer", "number", "boolean", "array", "object"];

/// Whether `schema` is an object schema this module can check; the error says what is wrong.
pub fn check_schema(schema: &Value) -> Result<(), String> {
    if schema.get("type").and_then(Value::as_str) != Some("object") {
        return Err("type must be \"object\"".into());
    }
    let properties = properties(schema);
    for (name, property) in properties.into_iter().flatten() {
        match property.get("type").and_then(Value::as_str) {
            Some(t) if TYPES.contains(&t) => {}
            _ => return Err(format!("properties.{name}.type must be one of {}", TYPES.join(", "))),
        }
        if property.get("enum").is_some_and(|e| !e.is_array()) {
            return Err(format!("properties.{name}.enum must be a list"));
        }
    }
    match schema.get("required") {
        None => Ok(()),
        Some(Value::Array(names)) => match names.iter().find(|n| !n.as_str().is_some_and(|n| has(schema, n)))
        {
            Some(n) => Err(format!("required names {n}, which is not in properties")),
            None => Ok(()),
        },
        Some(_) => Err("required must be a list of property names".into()),
    }
}

/// Whether the schema has a property of that name.
pub fn has(schema: &Value, name: &str) -> bool {
    properties(schema).is_some_and(|p| p.contains_key(name))
}

fn properties(schema: &Value) -> Option<&Map<String, Value>> {
    schema.get("properties").and_then(Value::as_object)
}

/// The arguments, checked: required ones present, each of its type (a number or a
/// boolean written as a string, as small models do, is read as one), each in its `enum`.
/// Arguments the schema does not name are dropped.
pub fn check(schema: &Value, arguments: &Value) -> Result<Value, SkillError> {
    let bad = |why: String| Err(SkillError::InvalidArguments(why));
    let given = arguments.as_object().cloned().unwrap_or_default();
    let mut checked = Map::new();
    for (name, property) in properties(schema).into_iter().flatten() {
        let Some(value) = given.get(name).filter(|v| !v.is_null()) else { continue };
        let kind = property.get("type").and_then(Value::as_str).unwrap_or("string");
        let Some(value) = of_type(value, kind) else {
            return bad(format!("'{name}' must be {}", article(kind)));
        };
        if let Some(options) = property.get("enum").and_then(Value::as_array) {
            if !options.contains(&value) {
                let list: Vec<String> = options.iter().map(Value::to_string).collect();
                return bad(format!("'{name}' must be one of {}", list.join(", ")));
            }
        }
        checked.insert(name.clone(), value);
    }
    for name in
        schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str)
    {
        match checked.get(name) {
            Some(Value::String(s)) if s.trim().is_empty() => {
                return bad(format!("'{name}' must not be empty"))
            }
            Some(_) => {}
            None => return bad(format!("'{name}' is required")),
        }
    }
    Ok(Value::Object(checked))
}

fn of_type(value: &Value, kind: &str) -> Option<Value> {
    let text = value.as_str().map(str::trim);
    match kind {
        "string" => match value {
            Value::String(_) => Some(value.clone()),
            Value::Number(n) => Some(Value::String(n.to_string())),
            _ => None,
        },
        "integer" => match value {
            Value::Number(n) if n.is_i64() || n.is_u64() => Some(value.clone()),
            _ => text.and_then(|t| t.parse::<i64>().ok()).map(Value::from),
        },
        "number" => match value {
            Value::Number(_) => Some(value.clone()),
            _ => text.and_then(|t| t.parse::<f64>().ok()).filter(|n| n.is_finite()).map(Value::from),
        },
        "boolean" => match (value, text) {
            (Value::Bool(_), _) => Some(value.clone()),
            (_, Some("true")) => Some(Value::Bool(true)),
            (_, Some("false")) => Some(Value::Bool(false)),
            _ => None,
        },
        "array" => value.is_array().then(|| value.clone()),
        "object" => value.is_object().then(|| value.clone()),
        _ => None,
    }
}

fn article(kind: &str) -> String {
    match kind {
        "integer" | "array" | "object" => format!("an {kind}"),
        _ => format!("a {kind}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "units": {"type": "string", "enum": ["metric", "imperial"]},
                "hourly": {"type": "boolean"}
            },
            "required": ["city"]
        })
    }

    fn invalid(arguments: Value) -> String {
        match check(&schema(), &arguments) {
            Err(SkillError::InvalidArguments(why)) => why,
            other => panic!("expected invalid arguments, got {other:?}"),
        }
    }

    #[test]
    fn arguments_are_checked_and_numbers_in_strings_read() {
        let checked =
            check(&schema(), &json!({"city": "Oslo", "days": "3", "hourly": "true", "extra": 1})).unwrap();
        assert_eq!(checked, json!({"city": "Oslo", "days": 3, "hourly": true}));
        assert_eq!(invalid(json!({"days": 3})), "'city' is required");
        assert_eq!(invalid(json!({"city": " "})), "'city' must not be empty");
        assert_eq!(invalid(json!({"city": "Oslo", "days": "three"})), "'days' must be an integer");
        assert_eq!(invalid(json!({"city": "Oslo", "days": 2.5})), "'days' must be an integer");
        assert_eq!(invalid(json!({"city": ["Oslo"]})), "'city' must be a string");
        assert_eq!(
            invalid(json!({"city": "Oslo", "units": "kelvin"})),
            "'units' must be one of \"metric\", \"imperial\""
        );
    }

    #[test]
    fn schemas_are_checked_when_loaded() {
        assert!(check_schema(&schema()).is_ok());
        assert_eq!(check_schema(&json!({"type": "array"})).unwrap_err(), "type must be \"object\"");
        let e = check_schema(&json!({"type": "object", "properties": {"a": {"type": "text"}}})).unwrap_err();
        assert!(e.starts_with("properties.a.type must be one of"), "{e}");
        let e = check_schema(&json!({"type": "object", "properties": {}, "required": ["a"]})).unwrap_err();
        assert_eq!(e, "required names \"a\", which is not in properties");
    }
}
