//! The templates in workflow steps: minijinja in a sandbox (no files, no includes, fuel
//! bounded, an unknown variable is an error), over what earlier steps gave
//! (`{{ steps.fetch.output }}`), the trigger's input (`{{ input.body }}`, `{{ input.json.x }}`,
//! `{{ input.text }}`), the workflow (`{{ workflow.name }}`) and the time (`{{ now }}`).

use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;

/// Bounds the work one template may do (loops over large inputs).
const FUEL: u64 = 50_000;
/// Longest text a template may produce.
const MAX_OUTPUT_CHARS: usize = 64 * 1024;

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env
}

/// Checks a template when the file is read: it compiles, and every variable it reads is
/// one there will be (an earlier step's id, the input a trigger gives).
pub fn check(text: &str, earlier: &[&str], trigger: &str) -> Result<(), String> {
    let env = environment();
    let template = env
        .template_from_str(text)
        .map_err(|e| format!("bad template: {}", e.detail().unwrap_or(&e.to_string())))?;
    let mut names: Vec<String> = template.undeclared_variables(true).into_iter().collect();
    names.sort();
    for name in names {
        let mut parts = name.split('.');
        match (parts.next(), parts.next()) {
            (Some("steps"), Some(id)) if earlier.contains(&id) => {}
            (Some("steps"), Some(id)) => {
                return Err(format!("'steps.{id}' is no earlier step (earlier: {})", list(earlier)))
            }
            (Some("steps"), None) => return Err("name a step: steps.<id>.output".into()),
            (Some("input"), _) if trigger == "schedule" => {
                return Err("'input' is not given by a schedule trigger".into())
            }
            (Some("input" | "workflow" | "now"), _) => {}
            (Some(other), _) => {
                return Err(format!("'{other}' is not a variable (there are: steps, input, workflow, now)"))
            }
            (None, _) => {}
        }
    }
    Ok(())
}

/// The keys of the trigger's input a template reads (`{{ input.text }}`: `text`), sorted.
/// A template that does not compile reads none (it was refused when the file was read).
pub fn input_keys(text: &str) -> Vec<String> {
    let env = environment();
    let Ok(template) = env.template_from_str(text) else { return Vec::new() };
    let mut keys: Vec<String> = template
        .undeclared_variables(true)
        .into_iter()
        .filter_map(|name| {
            name.strip_prefix("input.").map(|rest| rest.split('.').next().unwrap_or("").to_string())
        })
        .filter(|key| !key.is_empty())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

fn list(ids: &[&str]) -> String {
    match ids.is_empty() {
        true => "none".into(),
        false => ids.join(", "),
    }
}

/// Renders a template over `context` (a JSON object).
pub fn render(text: &str, context: &Value) -> Result<String, String> {
    let env = environment();
    let out = env
        .render_str(text, minijinja::Value::from(minijinja::value::Serde(context)))
        .map_err(|e| format!("template: {}", e.detail().map_or_else(|| e.to_string(), str::to_string)))?;
    match out.chars().count() > MAX_OUTPUT_CHARS {
        true => Err(format!("template: the text is longer than {MAX_OUTPUT_CHARS} characters")),
        false => Ok(out),
    }
}

/// Renders every string in a JSON value (a skill's arguments).
pub fn render_value(value: &Value, context: &Value) -> Result<Value, String> {
    Ok(match value {
        Value::String(s) => Value::String(render(s, context)?),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| render_value(v, context)).collect::<Result<_, _>>()?)
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_value(v, context)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// Every string in a JSON value.
pub fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().flat_map(strings).collect(),
        Value::Object(map) => map.values().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_read_earlier_steps_and_the_input() {
        let context = json!({"steps": {"fetch": {"output": "42"}}, "input": {"body": "hi"}});
        assert_eq!(render("{{ steps.fetch.output }} / {{ input.body }}", &context).unwrap(), "42 / hi");
        assert!(render("{{ steps.nope.output }}", &context).is_err(), "strict: unknown is an error");
        assert_eq!(render("<b>{{ input.body }}</b>", &context).unwrap(), "<b>hi</b>", "no HTML escaping");
        let args = render_value(&json!({"q": "{{ input.body }}", "n": 3}), &context).unwrap();
        assert_eq!(args, json!({"q": "hi", "n": 3}));
    }

    #[test]
    fn the_sandbox_has_no_files_and_bounded_work() {
        assert!(render("{% include 'x' %}", &json!({})).is_err());
        assert!(render(
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            &json!({})
        )
        .is_err());
    }

    #[test]
    fn checks_find_unknown_variables() {
        assert!(check("{{ steps.a.output }}", &["a"], "schedule").is_ok());
        assert!(check("{{ steps.b.output }}", &["a"], "schedule").unwrap_err().contains("no earlier step"));
        assert!(check("{{ input.body }}", &[], "schedule").is_err());
        assert!(check("{{ input.body }}", &[], "webhook").is_ok());
        assert!(check("{{ secret }}", &[], "webhook").unwrap_err().contains("'secret' is not a variable"));
        assert!(check("{{ now }} {{ workflow.name }}", &[], "schedule").is_ok());
    }

    #[test]
    fn the_input_keys_a_template_reads_are_named() {
        let text = "{{ input.text }} {{ input.json.city }} {{ input.text | upper }} {{ steps.a.output }}";
        assert_eq!(input_keys(text), ["json", "text"]);
        assert!(input_keys("{{ now }}").is_empty());
        assert!(input_keys("{{ unclosed").is_empty());
    }
}
