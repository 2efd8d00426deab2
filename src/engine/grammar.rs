//! Grammars (llama.cpp's GBNF) that hold sampling to a format: tool calls in the model's
//! own format, one JSON value matching a schema, or any JSON object.
//!
//! JSON schemas become grammars through llama.cpp's own converter (`json_schema_to_grammar`,
//! the one llama-server uses); the tool-call grammar wraps the converted schema of "one of
//! these calls" in the format's tags. Tool calls under `tool_choice: auto` use a lazy grammar:
//! the model writes freely until it writes the format's opener, and from there on the
//! grammar holds it to a valid call.

use super::tools::{Constraint, ToolChoice, ToolFormat, ToolUse};
use super::EngineError;
use serde_json::{json, Value};

/// A GBNF grammar whose start rule is `root`, and the patterns whose match switches it on
/// (none: it holds from the first token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grammar {
    pub gbnf: String,
    pub triggers: Vec<String>,
}

/// The grammar a constraint needs, if any. `format` is the model's tool-call format.
pub fn for_constraint(
    constraint: &Constraint,
    format: Option<ToolFormat>,
) -> Result<Option<Grammar>, EngineError> {
    match constraint {
        Constraint::None => Ok(None),
        Constraint::Tools(tools) if !tools.callable() => Ok(None),
        Constraint::Tools(tools) => {
            let format = format.ok_or_else(|| EngineError::ToolsUnsupported(String::new()))?;
            tool_calls(format, tools).map(Some)
        }
        Constraint::JsonObject => {
            Ok(Some(Grammar { gbnf: from_schema(&json!({ "type": "object" }))?, triggers: Vec::new() }))
        }
        Constraint::JsonSchema(schema) => {
            Ok(Some(Grammar { gbnf: from_schema(schema)?, triggers: Vec::new() }))
        }
    }
}

/// Calls of the offered tools (or of the one named) in `format`: one, or with `parallel`
/// one or more; or one bare call (see `CallReader`). Lazy (from the opener, or a bare
/// call's `{"name": "<tool>"`, on) when the model may also answer in text.
fn tool_calls(format: ToolFormat, tools: &ToolUse) -> Result<Grammar, EngineError> {
    let chosen: Vec<_> = match &tools.choice {
        ToolChoice::Function(name) => tools.tools.iter().filter(|t| &t.name == name).collect(),
        _ => tools.tools.iter().collect(),
    };
    if chosen.is_empty() {
        return Err(EngineError::InvalidRequest("tool_choice names a function that is not in tools".into()));
    }
    let calls: Vec<Value> = chosen
        .iter()
        .map(|t| {
            json!({
                "type": "object",
                "properties": { "name": { "const": t.name }, "arguments": t.parameters },
                "required": ["name", "arguments"],
            })
        })
        .collect();
    let schema = if calls.len() == 1 { calls[0].clone() } else { json!({ "oneOf": calls }) };
    let body = rename_rule(&from_schema(&schema)?, "root", "hearth-call");
    let (opener, closer) = (gbnf_literal(format.opener()), gbnf_literal(format.closer()));
    let root = if tools.parallel {
        "root ::= hearth-block (hearth-gap hearth-block)* | hearth-call"
    } else {
        "root ::= hearth-block | hearth-call"
    };
    let gbnf = format!(
        "{root}\nhearth-block ::= {opener} hearth-gap hearth-call hearth-gap {closer}\n\
         hearth-gap ::= [ \\t\\n]{{0,3}}\n{body}"
    );
    let triggers = match tools.choice {
        ToolChoice::Auto => format.triggers(&chosen.iter().map(|t| t.name.as_str()).collect::<Vec<_>>()),
        _ => Vec::new(),
    };
    Ok(Grammar { gbnf, triggers })
}

/// llama.cpp's grammar for a JSON schema.
#[cfg(feature = "llm")]
fn from_schema(schema: &Value) -> Result<String, EngineError> {
    llama_cpp_2::json_schema_to_grammar(&schema.to_string()).map_err(|e| {
        EngineError::InvalidRequest(format!(
            "the JSON schema could not be turned into a grammar ({e}); Hearth supports what \
             llama.cpp's converter does: types, properties, required, enum, const, items, \
             anyOf/oneOf/allOf, $ref to $defs, lengths and numeric bounds"
        ))
    })
}

#[cfg(not(feature = "llm"))]
fn from_schema(_schema: &Value) -> Result<String, EngineError> {
    Err(EngineError::NotReady("this hearth was built without the `llm` feature".into()))
}

/// A GBNF string literal.
fn gbnf_literal(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Renames a rule wherever it is defined or used, leaving literals and character classes
/// alone. Rule names are runs of letters, digits, `-` and `_` (so `root-name` is another rule).
fn rename_rule(gbnf: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(gbnf.len() + 64);
    let mut chars = gbnf.chars().peekable();
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    while let Some(c) = chars.next() {
        match c {
            '"' | '[' => {
                let close = if c == '"' { '"' } else { ']' };
                out.push(c);
                while let Some(d) = chars.next() {
                    out.push(d);
                    if d == '\\' {
                        if let Some(escaped) = chars.next() {
                            out.push(escaped);
                        }
                    } else if d == close {
                        break;
                    }
                }
            }
            '#' => {
                // A comment, to the end of the line.
                out.push(c);
                for d in chars.by_ref() {
                    out.push(d);
                    if d == '\n' {
                        break;
                    }
                }
            }
            c if is_name(c) => {
                let mut name = String::from(c);
                while let Some(&d) = chars.peek() {
                    if !is_name(d) {
                        break;
                    }
                    name.push(d);
                    chars.next();
                }
                out.push_str(if name == from { to } else { &name });
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ToolSpec;

    fn weather() -> ToolSpec {
        ToolSpec {
            name: "get_weather".into(),
            description: None,
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
        }
    }

    fn timer() -> ToolSpec {
        ToolSpec {
            name: "set_timer".into(),
            description: None,
            parameters: json!({"type": "object", "properties": {"minutes": {"type": "integer"}}, "required": ["minutes"]}),
        }
    }

    #[test]
    fn rules_are_renamed_outside_literals_and_classes() {
        let gbnf = "root ::= \"{\" root-name \"root\" [root] root # root\nroot-name ::= \"\\\"root\" root\n";
        assert_eq!(
            rename_rule(gbnf, "root", "x"),
            "x ::= \"{\" root-name \"root\" [root] x # root\nroot-name ::= \"\\\"root\" x\n"
        );
    }

    #[test]
    fn literals_are_escaped() {
        assert_eq!(gbnf_literal("<tool_call>"), "\"<tool_call>\"");
        assert_eq!(gbnf_literal("a\"b\\\n"), "\"a\\\"b\\\\\\n\"");
    }

    #[cfg(feature = "llm")]
    fn grammar(choice: ToolChoice, parallel: bool) -> Grammar {
        let tools = ToolUse { tools: vec![weather(), timer()], choice, parallel };
        for_constraint(&Constraint::Tools(tools), Some(ToolFormat::Hermes)).unwrap().unwrap()
    }

    #[cfg(feature = "llm")]
    #[test]
    fn tool_call_grammars_wrap_each_function_in_the_format_tags() {
        let auto = grammar(ToolChoice::Auto, true);
        assert_eq!(auto.triggers[0], "<tool_call>");
        assert!(auto.triggers[1].contains("(?:get_weather|set_timer)"), "{:?}", auto.triggers);
        assert!(
            auto.gbnf.starts_with("root ::= hearth-block (hearth-gap hearth-block)* | hearth-call\n"),
            "{}",
            auto.gbnf
        );
        assert!(auto
            .gbnf
            .contains("hearth-block ::= \"<tool_call>\" hearth-gap hearth-call hearth-gap \"</tool_call>\""));
        assert!(auto.gbnf.contains("hearth-call ::= "), "{}", auto.gbnf);
        assert!(auto.gbnf.contains("get_weather") && auto.gbnf.contains("set_timer"), "{}", auto.gbnf);
        assert_eq!(auto.gbnf.matches("root ::=").count(), 1, "{}", auto.gbnf);

        let required = grammar(ToolChoice::Required, false);
        assert!(required.triggers.is_empty());
        assert!(required.gbnf.starts_with("root ::= hearth-block | hearth-call\n"));

        let named = grammar(ToolChoice::Function("set_timer".into()), true);
        assert!(named.triggers.is_empty());
        assert!(named.gbnf.contains("set_timer") && !named.gbnf.contains("get_weather"), "{}", named.gbnf);

        let tools =
            ToolUse { tools: vec![weather()], choice: ToolChoice::Function("nope".into()), parallel: true };
        assert!(matches!(
            for_constraint(&Constraint::Tools(tools), Some(ToolFormat::Hermes)),
            Err(EngineError::InvalidRequest(_))
        ));
        let none = ToolUse { tools: vec![weather()], choice: ToolChoice::None, parallel: true };
        assert_eq!(for_constraint(&Constraint::Tools(none), None), Ok(None));
        let auto = ToolUse { tools: vec![weather()], choice: ToolChoice::Auto, parallel: true };
        assert!(matches!(
            for_constraint(&Constraint::Tools(auto), None),
            Err(EngineError::ToolsUnsupported(_))
        ));
    }

    #[cfg(feature = "llm")]
    #[test]
    fn json_grammars_come_from_the_schema() {
        let object = for_constraint(&Constraint::JsonObject, None).unwrap().unwrap();
        assert!(object.triggers.is_empty());
        assert!(object.gbnf.contains("root ::= "), "{}", object.gbnf);
        let schema =
            json!({"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]});
        let g = for_constraint(&Constraint::JsonSchema(schema), None).unwrap().unwrap();
        assert!(g.gbnf.contains("\\\"age\\\""), "{}", g.gbnf);
        let bad = json!({"type": "object", "properties": {"a": {"$ref": "https://example.com/x.json"}}});
        assert!(matches!(
            for_constraint(&Constraint::JsonSchema(bad), None),
            Err(EngineError::InvalidRequest(_))
        ));
    }
}
