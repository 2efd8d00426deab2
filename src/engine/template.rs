//! A model's own chat template (the GGUF's `tokenizer.chat_template`, Hugging Face Jinja),
//! rendered with minijinja for chats that involve tools.
//!
//! llama.cpp's built-in renderer knows the common formats by name but cannot show tools or
//! tool results; the template itself can. It is rendered the way Hugging Face transformers
//! renders it (`trim_blocks`, `lstrip_blocks`, Python's string methods, a `tojson` that
//! writes like `json.dumps` and escapes no HTML), so the model reads what it was trained on.
//! Plain chats keep llama.cpp's renderer (`scheduler.rs`): for the models Hearth ships the
//! two give the same text, and it is the faster.
//!
//! A template is compiled once per loaded model. Rendering runs on the engine thread, and
//! the template is fuelled: a hostile one cannot loop forever.

use super::tools::{NoTools, ToolFormat, ToolSpec};
use super::{ChatMessage, EngineError};
use minijinja::value::{Kwargs, Serde, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind};
use serde_json::json;

const NAME: &str = "chat_template";

/// Instructions (and about 64 bytes each of data) one rendering may spend: far more than
/// any real template needs for a full context window.
const FUEL: u64 = 2_000_000;

pub struct ChatTemplate {
    env: Environment<'static>,
    bos: String,
    eos: String,
    tools: Result<ToolFormat, NoTools>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").field("tools", &self.tools).finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Compiles a template; `bos` and `eos` are the model's special tokens as text, which
    /// templates may refer to. Fails on a syntax error.
    pub fn new(source: &str, bos: &str, eos: &str) -> Result<ChatTemplate, String> {
        let mut env = Environment::new();
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| e.to_string())?;
        env.set_syntax(syntax);
        env.set_fuel(Some(FUEL));
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_filter("tojson", tojson);
        env.add_function("raise_exception", |message: String| -> Result<Value, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, message))
        });
        env.add_template_owned(NAME, source.to_string()).map_err(|e| format!("chat template: {e}"))?;
        Ok(ChatTemplate { env, bos: bos.into(), eos: eos.into(), tools: ToolFormat::detect(source) })
    }

    /// The tool-call format the template speaks, or why it cannot take tools.
    pub fn tool_format(&self) -> Result<ToolFormat, NoTools> {
        self.tools.clone()
    }

    /// The prompt for `messages`, showing `tools` when given, ending with the assistant's
    /// turn opened when `add_generation_prompt`.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        tools: Option<&[ToolSpec]>,
        add_generation_prompt: bool,
    ) -> Result<String, EngineError> {
        let messages: Vec<serde_json::Value> = messages.iter().map(message_json).collect();
        let mut ctx = json!({
            "messages": messages,
            "add_generation_prompt": add_generation_prompt,
            "bos_token": self.bos,
            "eos_token": self.eos,
        });
        if let Some(tools) = tools {
            ctx["tools"] = tools.iter().map(ToolSpec::to_template_json).collect();
        }
        let template = self.env.get_template(NAME).map_err(|e| EngineError::Failed(e.to_string()))?;
        template.render(Value::from(Serde(ctx))).map_err(|e| match e.kind() {
            // `raise_exception` in the template: it refuses these messages.
            ErrorKind::InvalidOperation => {
                EngineError::InvalidRequest(format!("the model's chat template refused the messages: {e}"))
            }
            _ => EngineError::Failed(format!("chat template: {e:#}")),
        })
    }
}

/// A message as Hugging Face templates read it (OpenAI's shape, arguments as objects).
fn message_json(m: &ChatMessage) -> serde_json::Value {
    let mut out = json!({ "role": m.role, "content": m.content });
    if !m.tool_calls.is_empty() {
        if m.content.is_empty() {
            out["content"] = serde_json::Value::Null;
        }
        out["tool_calls"] = m
            .tool_calls
            .iter()
            .map(|c| {
                json!({
                    "id": c.id, "type": "function",
                    "function": { "name": c.name, "arguments": c.arguments },
                })
            })
            .collect();
    }
    if let Some(id) = &m.tool_call_id {
        out["tool_call_id"] = id.as_str().into();
    }
    if let Some(name) = &m.name {
        out["name"] = name.as_str().into();
    }
    out
}

/// `tojson` as transformers defines it: `json.dumps(x, ensure_ascii=False, indent=indent,
/// separators=separators, sort_keys=sort_keys)`, no HTML escaping (minijinja's own escapes
/// `<>&'`, which would show the model `\u003c` where it was trained on `<`).
fn tojson(value: &Value, indent: Option<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let indent = match indent.or(kwargs.get::<Option<Value>>("indent")?) {
        Some(v) if v.is_none() => None,
        Some(v) => Some(match v.as_str() {
            Some(s) => s.to_string(),
            None => " ".repeat(usize::try_from(v)?),
        }),
        None => None,
    };
    let separators: Option<Vec<String>> = kwargs.get("separators")?;
    let (item, key) = match separators.as_deref() {
        Some([item, key]) => (item.clone(), key.clone()),
        Some(_) => return Err(Error::new(ErrorKind::InvalidOperation, "separators takes two strings")),
        None if indent.is_some() => (",".into(), ": ".into()),
        None => (", ".into(), ": ".into()),
    };
    let style = JsonStyle {
        indent,
        item,
        key,
        ascii: kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(false),
        sort: kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false),
    };
    kwargs.assert_all_used()?;
    let mut out = String::new();
    style.write(&mut out, value, 0)?;
    Ok(Value::from_safe_string(out))
}

struct JsonStyle {
    indent: Option<String>,
    item: String,
    key: String,
    ascii: bool,
    sort: bool,
}

impl JsonStyle {
    fn write(&self, out: &mut String, value: &Value, depth: usize) -> Result<(), Error> {
        if depth > 128 {
            return Err(Error::new(ErrorKind::InvalidOperation, "tojson: too deeply nested"));
        }
        match value.kind() {
            ValueKind::Undefined | ValueKind::None => out.push_str("null"),
            ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
            ValueKind::Number => out.push_str(&number(value)),
            ValueKind::String => self.string(out, value.as_str().unwrap_or_default()),
            ValueKind::Map => {
                let mut keys: Vec<Value> = value.try_iter()?.collect();
                if self.sort {
                    keys.sort();
                }
                let items = keys.iter().map(|k| Ok((k.clone(), value.get_item(k)?)));
                self.container(out, depth, '{', '}', items, |out, (k, v): (Value, Value)| {
                    match k.as_str() {
                        Some(s) => self.string(out, s),
                        None => self.string(out, &k.to_string()),
                    }
                    out.push_str(&self.key);
                    self.write(out, &v, depth + 1)
                })?;
            }
            ValueKind::Seq | ValueKind::Iterable => {
                let items = value.try_iter()?.map(Ok);
                self.container(out, depth, '[', ']', items, |out, v: Value| self.write(out, &v, depth + 1))?;
            }
            _ => self.string(out, &value.to_string()),
        }
        Ok(())
    }

    fn container<T>(
        &self,
        out: &mut String,
        depth: usize,
        open: char,
        close: char,
        items: impl Iterator<Item = Result<T, Error>>,
        mut each: impl FnMut(&mut String, T) -> Result<(), Error>,
    ) -> Result<(), Error> {
        out.push(open);
        let mut any = false;
        for (i, item) in items.enumerate() {
            if i > 0 {
                out.push_str(&self.item);
            }
            self.newline(out, depth + 1);
            each(out, item?)?;
            any = true;
        }
        if any {
            self.newline(out, depth);
        }
        out.push(close);
        Ok(())
    }

    fn newline(&self, out: &mut String, depth: usize) {
        if let Some(indent) = &self.indent {
            out.push('\n');
            for _ in 0..depth {
                out.push_str(indent);
            }
        }
    }

    fn string(&self, out: &mut String, s: &str) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 || (self.ascii && !c.is_ascii()) => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
}

/// A number as Python's `json.dumps` writes it: integers as they are, floats in their
/// shortest form with a point or an exponent (`1.0`, `12.5`, `1e-05`, `1e+16`).
fn number(value: &Value) -> String {
    if let Ok(i) = i64::try_from(value.clone()) {
        if value.is_integer() {
            return i.to_string();
        }
    }
    if value.is_integer() {
        return value.to_string();
    }
    let Ok(f) = f64::try_from(value.clone()) else { return value.to_string() };
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    // Rust's `{:?}` switches to an exponent at the same magnitudes as Python's repr.
    let debug = format!("{f:?}");
    match debug.split_once('e') {
        Some((mantissa, exp)) => {
            let (sign, digits) = exp.strip_prefix('-').map_or(("+", exp), |d| ("-", d));
            format!("{mantissa}e{sign}{digits:0>2}")
        }
        None => debug,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ToolCall;

    const QWEN: &str = include_str!("../../tests/data/templates/qwen2.5-instruct.jinja");

    fn qwen() -> ChatTemplate {
        ChatTemplate::new(QWEN, "", "<|im_end|>").unwrap()
    }

    fn call(id: &str, name: &str, arguments: serde_json::Value) -> ToolCall {
        ToolCall { id: id.into(), name: name.into(), arguments }
    }

    /// tests/data/templates/qwen2.5-tools.json rendered by Hugging Face's way (Python jinja2,
    /// `tests/data/templates/render_reference.py`) gave qwen2.5-tools.expected.
    #[test]
    fn qwen_with_tools_renders_as_transformers_does() {
        let case: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/data/templates/qwen2.5-tools.json")).unwrap();
        let tools: Vec<ToolSpec> = case["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| ToolSpec {
                name: t["function"]["name"].as_str().unwrap().into(),
                description: t["function"]["description"].as_str().map(Into::into),
                parameters: t["function"]["parameters"].clone(),
            })
            .collect();
        let messages: Vec<ChatMessage> = case["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let mut out =
                    ChatMessage::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap_or(""));
                for c in m["tool_calls"].as_array().into_iter().flatten() {
                    let f = &c["function"];
                    out.tool_calls.push(call(
                        c["id"].as_str().unwrap(),
                        f["name"].as_str().unwrap(),
                        f["arguments"].clone(),
                    ));
                }
                out.tool_call_id = m["tool_call_id"].as_str().map(Into::into);
                out.name = m["name"].as_str().map(Into::into);
                out
            })
            .collect();
        let rendered = qwen().render(&messages, Some(&tools), true).unwrap();
        assert_eq!(rendered, include_str!("../../tests/data/templates/qwen2.5-tools.expected"));
        assert_eq!(qwen().tool_format(), Ok(ToolFormat::Hermes));
    }

    #[test]
    fn a_plain_chat_renders_as_chatml() {
        let messages = [ChatMessage::new("system", "Be brief."), ChatMessage::new("user", "Hi <b>&'")];
        assert_eq!(
            qwen().render(&messages, None, true).unwrap(),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi <b>&'<|im_end|>\n<|im_start|>assistant\n"
        );
        let without_prompt = qwen().render(&messages[1..], None, false).unwrap();
        assert!(without_prompt.starts_with("<|im_start|>system\nYou are Qwen"), "{without_prompt}");
        assert!(without_prompt.ends_with("<|im_end|>\n"), "{without_prompt}");
    }

    fn json_of(template: &str, value: serde_json::Value) -> String {
        let t = ChatTemplate::new(template, "", "").unwrap();
        let mut m = ChatMessage::new("user", "");
        m.tool_calls.push(call("c", "f", value));
        t.render(&[m], None, false).unwrap()
    }

    #[test]
    fn tojson_writes_like_python_json_dumps() {
        let v = json!({"b": [1, 2.5, 1.0, -0.001, 1e-7, 1e16, 123456789012345678u64], "a": "é\"\\\n\u{1}<>&'", "n": null, "t": true, "e": {}, "l": []});
        let t = "{{ messages[0].tool_calls[0].function.arguments | tojson }}";
        assert_eq!(
            json_of(t, v.clone()),
            r#"{"b": [1, 2.5, 1.0, -0.001, 1e-07, 1e+16, 123456789012345678], "a": "é\"\\\n\u0001<>&'", "n": null, "t": true, "e": {}, "l": []}"#
        );
        let t = "{{ messages[0].tool_calls[0].function.arguments | tojson(indent=2, sort_keys=true) }}";
        assert_eq!(
            json_of(t, json!({"b": [1, {}], "a": {"x": "y"}})),
            "{\n  \"a\": {\n    \"x\": \"y\"\n  },\n  \"b\": [\n    1,\n    {}\n  ]\n}"
        );
        let t = "{{ messages[0].tool_calls[0].function.arguments | tojson(ensure_ascii=true, separators=[',', ':']) }}";
        assert_eq!(json_of(t, json!({"k": "é😀"})), r#"{"k":"\u00e9\ud83d\ude00"}"#);
    }

    #[test]
    fn templates_can_use_python_methods_and_raise_exceptions() {
        let t = ChatTemplate::new(
            "{% for m in messages %}{% if m.role == 'user' and m.content.startswith('/') %}\
             {{ raise_exception('no commands: ' + m.content.split(' ')[0]) }}{% endif %}\
             {{ m.content.strip().upper() }}{% endfor %}",
            "<s>",
            "</s>",
        )
        .unwrap();
        assert_eq!(t.render(&[ChatMessage::new("user", "  hi ")], None, false).unwrap(), "HI");
        let refused = t.render(&[ChatMessage::new("user", "/rm -rf")], None, false).unwrap_err();
        assert!(
            matches!(&refused, EngineError::InvalidRequest(m) if m.contains("no commands: /rm")),
            "{refused:?}"
        );
        assert!(ChatTemplate::new("{% if %}", "", "").is_err());
        assert_eq!(t.tool_format(), Err(NoTools::NotInTemplate));
    }

    #[test]
    fn a_template_that_never_ends_runs_out_of_fuel() {
        let t = ChatTemplate::new(
            "{% for a in range(9999) %}{% for b in range(9999) %}{% for c in range(9999) %}x{% endfor %}{% endfor %}{% endfor %}",
            "",
            "",
        )
        .unwrap();
        assert!(matches!(t.render(&[], None, false), Err(EngineError::Failed(_))));
    }
}
