//! Tool calling and structured output: the tools a request offers the model, the calls it
//! makes, which tool-call format a chat template speaks, and reading calls out of the
//! generated text as it streams.
//!
//! The model is shown the tools by its own chat template (`template.rs`), its output is
//! held to the format by a grammar (`grammar.rs`), and [`CallReader`] turns the text into
//! [`ToolCall`]s. Only the Hermes format is read today (Qwen2.5 and Qwen3, Hermes 2 Pro and 3:
//! `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`); a
//! template that speaks another format, or knows no tools, gets
//! [`EngineError::ToolsUnsupported`](super::EngineError::ToolsUnsupported).

use serde::Serialize;
use serde_json::{json, Value};

/// A function the model may call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: Option<String>,
    /// A JSON schema of the arguments, an object ([`ToolSpec::no_parameters`] for none).
    pub parameters: Value,
}

impl ToolSpec {
    /// The tool as chat templates expect it: OpenAI's `{"type": "function", "function": {...}}`
    /// (what Hugging Face's `apply_chat_template(tools=...)` is given).
    pub fn to_template_json(&self) -> Value {
        let mut function = serde_json::Map::new();
        function.insert("name".into(), self.name.clone().into());
        if let Some(description) = &self.description {
            function.insert("description".into(), description.clone().into());
        }
        function.insert("parameters".into(), self.parameters.clone());
        json!({ "type": "function", "function": function })
    }

    /// The schema of a tool that takes no arguments: an empty object.
    pub fn no_parameters() -> Value {
        json!({ "type": "object", "properties": {} })
    }
}

/// A call the model made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolCall {
    /// `call_` and 24 random letters and digits, as OpenAI's ids look.
    pub id: String,
    pub name: String,
    /// What the model wrote as the arguments: a JSON object when it followed the schema.
    pub arguments: Value,
}

impl ToolCall {
    pub fn new(name: impl Into<String>, arguments: Value) -> Self {
        let id = format!("call_{}", &uuid::Uuid::new_v4().simple().to_string()[..24]);
        ToolCall { id, name: name.into(), arguments }
    }
}

/// Whether and which tools the model must call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ToolChoice {
    /// The model decides: plain text, or calls once it writes the format's opener.
    #[default]
    Auto,
    /// No call: the tools are left out of the prompt and the model is kept from writing a
    /// call as text (see [`CallGuard`]).
    None,
    /// At least one call, from the first token on.
    Required,
    /// A call of this function, from the first token on.
    Function(String),
}

/// Tools offered for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolUse {
    pub tools: Vec<ToolSpec>,
    pub choice: ToolChoice,
    /// Several calls in one reply (else at most one).
    pub parallel: bool,
}

impl ToolUse {
    /// Whether the model may call the tools (and its calls are read).
    pub fn callable(&self) -> bool {
        self.choice != ToolChoice::None && !self.tools.is_empty()
    }
}

/// What the reply may be. Everything but `None` is enforced by a grammar while sampling.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Constraint {
    /// Free text.
    #[default]
    None,
    /// Tools shown to the model; text or calls of them, per [`ToolChoice`].
    Tools(ToolUse),
    /// One JSON object, any keys.
    JsonObject,
    /// One JSON value matching this schema.
    JsonSchema(Value),
}

impl Constraint {
    /// The tools the model is shown and may call, if any.
    pub fn callable_tools(&self) -> Option<&ToolUse> {
        match self {
            Constraint::Tools(tools) if tools.callable() => Some(tools),
            _ => None,
        }
    }
}

/// A tool-call format: how a model family writes its calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ToolFormat {
    /// `<tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>`, one block per call
    /// (Qwen2.5 and Qwen3, Hermes 2 Pro and 3).
    Hermes,
}

/// Why a chat template cannot take tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoTools {
    /// The template never looks at `tools`.
    NotInTemplate,
    /// It shows tools, but its calls are in a format Hearth does not read.
    UnknownFormat,
}

impl NoTools {
    pub fn explain(&self) -> &'static str {
        match self {
            NoTools::NotInTemplate => {
                "this model's chat template has no tool support; use a model that can call tools \
                 (such as qwen2.5-coder-0.5b-instruct)"
            }
            NoTools::UnknownFormat => {
                "this model's chat template writes tool calls in a format Hearth does not read \
                 (Hearth reads the Hermes format: <tool_call>{\"name\": ..., \"arguments\": ...}</tool_call>)"
            }
        }
    }
}

impl ToolFormat {
    /// The format a chat template (its Jinja source) speaks.
    pub fn detect(template: &str) -> Result<ToolFormat, NoTools> {
        if !template.contains("tools") {
            return Err(NoTools::NotInTemplate);
        }
        if template.contains("<tool_call>") {
            return Ok(ToolFormat::Hermes);
        }
        Err(NoTools::UnknownFormat)
    }

    pub fn name(self) -> &'static str {
        match self {
            ToolFormat::Hermes => "hermes",
        }
    }

    /// The text that opens a call: the lazy grammar starts there.
    pub fn opener(self) -> &'static str {
        match self {
            ToolFormat::Hermes => "<tool_call>",
        }
    }

    pub fn closer(self) -> &'static str {
        match self {
            ToolFormat::Hermes => "</tool_call>",
        }
    }

    /// Regular expressions (ECMAScript, as llama.cpp's lazy grammars read them) that switch
    /// the grammar on for calls of `names`: the opener anywhere, or a bare call at the start
    /// of the reply (see [`CallReader`]). The grammar reads from the first group on.
    pub fn triggers(self, names: &[&str]) -> Vec<String> {
        let names: Vec<String> = names.iter().map(|n| regex_escape(n)).collect();
        match self {
            ToolFormat::Hermes => vec![
                regex_escape(self.opener()),
                r#"^\s*(?:```(?:json|xml)?\s*)?\{?\s*(\{\s*"name"\s*:\s*"(?:NAMES)")[\s\S]*$"#
                    .replace("NAMES", &names.join("|")),
            ],
        }
    }
}

/// Reads calls out of generated text as it streams: text before a call is content, sent
/// on at once except for what might begin the opener (and trailing whitespace, which a
/// call would make superfluous); each call is returned when its block closes.
///
/// Small models do not always write the opener: Qwen2.5-Coder-1.5B answers with
/// ```` ```json {"name": ..., "arguments": ...} ``` ```` or a bare object. A reply that
/// *starts* that way (code fence and a doubled brace allowed, as llama-server allows them)
/// is read as one call too, when it names an offered tool; the grammar's second trigger
/// ([`ToolFormat::triggers`]) holds it to the schema from `{"name": "<tool>"` on.
#[derive(Debug)]
pub struct CallReader {
    format: ToolFormat,
    names: Vec<String>,
    /// Text not yet released: content held back, or the body of an open call.
    pending: String,
    mode: Mode,
    calls: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Nothing but whitespace yet, or the beginning of a bare call.
    Start,
    Text,
    /// Inside an opener ... closer block.
    Block,
    /// The reply is a bare call, read at the end.
    Bare,
}

/// What [`CallReader`] has decided so far.
#[derive(Debug, Default, PartialEq)]
pub struct Read {
    pub content: String,
    pub calls: Vec<ToolCall>,
}

impl CallReader {
    /// A reader for `format` that accepts calls of the functions `names`.
    pub fn new(format: ToolFormat, names: Vec<String>) -> Self {
        CallReader { format, names, pending: String::new(), mode: Mode::Start, calls: 0 }
    }

    /// Adds generated text.
    pub fn push(&mut self, text: &str) -> Read {
        self.pending.push_str(text);
        let mut read = Read::default();
        loop {
            match self.mode {
                Mode::Start => match bare_start(&self.pending) {
                    None => break,
                    Some(true) => self.mode = Mode::Bare,
                    Some(false) => self.mode = Mode::Text,
                },
                Mode::Bare => break,
                Mode::Block => {
                    let Some(end) = self.pending.find(self.format.closer()) else { break };
                    let body: String = self.pending[..end].to_string();
                    self.pending.drain(..end + self.format.closer().len());
                    self.mode = Mode::Text;
                    match self.parse_call(&body) {
                        Some(call) => {
                            self.calls += 1;
                            read.calls.push(call);
                        }
                        // Not a call after all: the client sees what the model wrote.
                        None => read.content.push_str(&self.block(&body, true)),
                    }
                }
                Mode::Text => match self.pending.find(self.format.opener()) {
                    Some(at) => {
                        let before = &self.pending[..at];
                        // Whitespace between content and a call, or between calls, is layout.
                        if !before.trim().is_empty() {
                            read.content.push_str(before.trim_end());
                        }
                        self.pending.drain(..at + self.format.opener().len());
                        self.mode = Mode::Block;
                    }
                    None => {
                        let hold = self.held_back();
                        let cut = self.pending.len() - hold;
                        read.content.push_str(&self.pending[..cut]);
                        self.pending.drain(..cut);
                        break;
                    }
                },
            }
        }
        read
    }

    /// Ends the text. An open call whose JSON is complete counts (the model may end its turn
    /// without the closing tag); anything else left is content.
    pub fn finish(&mut self) -> Read {
        let rest = std::mem::take(&mut self.pending);
        let mut read = Read::default();
        let call = match self.mode {
            Mode::Block => self.parse_call(&rest),
            Mode::Bare => self.parse_bare(&rest),
            Mode::Start | Mode::Text => None,
        };
        match call {
            Some(call) => {
                self.calls += 1;
                read.calls.push(call);
            }
            None if self.mode == Mode::Block => read.content = self.block(&rest, false),
            None if self.calls == 0 || !rest.trim().is_empty() => read.content = rest,
            None => {}
        }
        self.mode = Mode::Text;
        read
    }

    /// A call block as the model wrote it.
    fn block(&self, body: &str, closed: bool) -> String {
        let closer = if closed { self.format.closer() } else { "" };
        format!("{}{body}{closer}", self.format.opener())
    }

    /// Bytes at the end of `pending` to keep: whitespace, and a part that may begin the opener.
    fn held_back(&self) -> usize {
        let opener = self.format.opener();
        let partial = (1..opener.len()).rev().find(|&n| self.pending.ends_with(&opener[..n])).unwrap_or(0);
        let before = &self.pending[..self.pending.len() - partial];
        partial + (before.len() - before.trim_end().len())
    }

    /// `{"name": "...", "arguments": {...}}` naming an offered tool; arguments written as a
    /// JSON string are unpacked.
    fn parse_call(&self, body: &str) -> Option<ToolCall> {
        let value = serde_json::from_str::<Value>(body.trim()).ok()?;
        self.call_from(value)
    }

    /// A bare call: an optional code fence, an optional doubled brace, the call's object,
    /// then nothing but closing braces, backticks and whitespace.
    fn parse_bare(&self, text: &str) -> Option<ToolCall> {
        let mut rest = text.trim_start();
        if let Some(after) = rest.strip_prefix("```") {
            rest = after
                .strip_prefix("json")
                .or_else(|| after.strip_prefix("xml"))
                .unwrap_or(after)
                .trim_start();
        }
        if rest.starts_with("{{") {
            rest = &rest[1..];
        }
        let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
        let value = values.next()?.ok()?;
        let tail = &rest[values.byte_offset()..];
        if !tail.chars().all(|c| c.is_whitespace() || c == '}' || c == '`') {
            return None;
        }
        self.call_from(value)
    }

    fn call_from(&self, value: Value) -> Option<ToolCall> {
        let Value::Object(mut call) = value else { return None };
        let Some(Value::String(name)) = call.remove("name") else { return None };
        if !self.names.contains(&name) {
            return None;
        }
        let arguments = match call.remove("arguments").or_else(|| call.remove("parameters")) {
            None => json!({}),
            Some(Value::String(s)) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
            Some(v) => v,
        };
        Some(ToolCall::new(name, arguments))
    }
}

/// Whether a reply that begins with `text` is a bare call (`{"name"`, after an optional code
/// fence and a doubled brace); `None` while it cannot tell yet.
fn bare_start(text: &str) -> Option<bool> {
    let mut s = text.trim_start();
    if s.starts_with('`') {
        if s.len() < 3 {
            return if "```".starts_with(s) { None } else { Some(false) };
        }
        let Some(after) = s.strip_prefix("```") else { return Some(false) };
        s = after;
        for language in ["json", "xml"] {
            if s.len() < language.len() && language.starts_with(s) && !s.is_empty() {
                return None;
            }
            if let Some(after) = s.strip_prefix(language) {
                s = after;
                break;
            }
        }
        s = s.trim_start();
    }
    let Some(after) = s.strip_prefix('{') else { return if s.is_empty() { None } else { Some(false) } };
    s = after.trim_start();
    if let Some(after) = s.strip_prefix('{') {
        s = after.trim_start();
    }
    const KEY: &str = "\"name\"";
    if s.len() < KEY.len() {
        return if KEY.starts_with(s) { None } else { Some(false) };
    }
    Some(s.starts_with(KEY))
}

/// Keeps a reply from being a tool call where none may be made: `tool_choice: none`, or a
/// chat with calls in its history that offers no tools. Small models otherwise answer a
/// tool's result by writing the call again as text (Qwen2.5-Coder-0.5B does, every time,
/// bare or in a code fence); kept from it, they answer in words. A token is refused when the
/// reply would then contain the format's opener, or begin with `{`, `[` or a code fence
/// (later in the reply these are free).
///
/// Leaving the tools out of the prompt matters as much: shown the tools and kept from
/// calling, the same model answered "Mark the city as Paris and set the temperature to 23
/// degrees Celsius"; without them, "The weather in Paris is sunny with a temperature of 23
/// degrees Celsius". The price is the cache: the tools sit in the system prompt, so the
/// conversation is read again.
#[derive(Debug)]
pub struct CallGuard {
    opener: &'static str,
    /// The reply's start, until it is long enough to have settled how it begins.
    head: String,
    settled: bool,
    /// The reply's last bytes, enough to see an opener arrive.
    tail: String,
}

impl CallGuard {
    pub fn new(format: ToolFormat) -> Self {
        CallGuard { opener: format.opener(), head: String::new(), settled: false, tail: String::new() }
    }

    /// Whether the reply may not go on with `piece`.
    pub fn refuses(&self, piece: &str) -> bool {
        if piece.is_empty() {
            return false;
        }
        let recent = format!("{}{piece}", self.tail);
        recent.contains(self.opener)
            || (!self.settled && starts_like_a_call(&format!("{}{piece}", self.head)))
    }

    /// Records text the reply went on with.
    pub fn push(&mut self, piece: &str) {
        if !self.settled {
            self.head.push_str(piece);
            self.settled = self.head.trim_start().len() >= 16;
        }
        self.tail.push_str(piece);
        let keep = self.opener.len();
        if self.tail.len() > keep {
            let mut cut = self.tail.len() - keep;
            while !self.tail.is_char_boundary(cut) {
                cut -= 1;
            }
            self.tail.drain(..cut);
        }
    }
}

/// Whether a reply beginning with `text` may be starting a call written as text.
fn starts_like_a_call(text: &str) -> bool {
    text.trim_start().starts_with(['{', '[', '`'])
}

/// `text` as a literal in an ECMAScript regular expression.
fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\^$.|?*+()[]{}".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader() -> CallReader {
        CallReader::new(ToolFormat::Hermes, ["get_weather", "f", "a", "b"].map(String::from).to_vec())
    }

    fn read_all(pieces: &[&str]) -> (String, Vec<ToolCall>) {
        let mut reader = reader();
        let (mut content, mut calls) = (String::new(), Vec::new());
        for piece in pieces {
            let read = reader.push(piece);
            content += &read.content;
            calls.extend(read.calls);
        }
        let read = reader.finish();
        content += &read.content;
        calls.extend(read.calls);
        (content, calls)
    }

    /// Every way of cutting `text` in two streams the same content and calls.
    fn read_split_everywhere(text: &str) -> (String, Vec<(String, Value)>) {
        let plain = |(content, calls): (String, Vec<ToolCall>)| {
            (content, calls.into_iter().map(|c| (c.name, c.arguments)).collect::<Vec<_>>())
        };
        let whole = plain(read_all(&[text]));
        for (at, _) in text.char_indices() {
            assert_eq!(plain(read_all(&[&text[..at], &text[at..]])), whole, "split at {at}");
        }
        whole
    }

    #[test]
    fn one_call_is_read_with_its_arguments() {
        let text =
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";
        let (content, calls) = read_split_everywhere(text);
        assert_eq!(content, "");
        assert_eq!(calls, vec![("get_weather".to_string(), json!({"city": "Paris"}))]);
        let (_, calls) = read_all(&[text]);
        assert!(calls[0].id.starts_with("call_") && calls[0].id.len() == 29, "{}", calls[0].id);
    }

    #[test]
    fn parallel_calls_come_in_order_with_distinct_ids() {
        let text = "<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": 1}}\n</tool_call>\n\
                    <tool_call>\n{\"name\": \"b\", \"arguments\": {}}\n</tool_call>\n\
                    <tool_call>{\"name\": \"a\", \"arguments\": {\"x\": [2, 3]}}</tool_call>";
        let (content, calls) = read_split_everywhere(text);
        assert_eq!(content, "");
        let names: Vec<&str> = calls.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b", "a"]);
        assert_eq!(calls[2].1, json!({"x": [2, 3]}));
        let (_, calls) = read_all(&[text]);
        assert!(calls[0].id != calls[1].id && calls[1].id != calls[2].id);
    }

    #[test]
    fn text_before_a_call_is_content() {
        let text =
            "Let me check that for you.\n<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>";
        let (content, calls) = read_split_everywhere(text);
        assert_eq!(content, "Let me check that for you.");
        assert_eq!(calls.len(), 1);
    }

    #[test]
    fn plain_text_passes_through_and_is_not_held_longer_than_needed() {
        let (content, calls) = read_split_everywhere("The answer is 4 < 5, <b>bold</b> and <tool.\n");
        assert_eq!(content, "The answer is 4 < 5, <b>bold</b> and <tool.\n");
        assert!(calls.is_empty());
        let mut reader = reader();
        assert_eq!(reader.push("Hello <").content, "Hello");
        assert_eq!(reader.push("b>").content, " <b>");
        assert_eq!(reader.push(" x  ").content, " x");
        assert_eq!(reader.finish().content, "  ");
    }

    #[test]
    fn malformed_calls_are_returned_as_text() {
        for text in [
            "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": }\n</tool_call>",
            "<tool_call>\n[1, 2]\n</tool_call>",
            "<tool_call>\n{\"arguments\": {}}\n</tool_call>",
            "<tool_call>\n{\"name\": \"not_offered\", \"arguments\": {}}\n</tool_call>",
        ] {
            let (content, calls) = read_split_everywhere(text);
            assert!(calls.is_empty(), "{text}");
            assert_eq!(content, text);
        }
        // Cut off in the middle (max_tokens): the text as written.
        let cut = "Sure. <tool_call>\n{\"name\": \"f\", \"argu";
        let (content, calls) = read_split_everywhere(cut);
        assert!(calls.is_empty());
        assert_eq!(content, "Sure.<tool_call>\n{\"name\": \"f\", \"argu");
    }

    #[test]
    fn a_call_without_its_closing_tag_still_counts_and_string_arguments_are_unpacked() {
        let text = "<tool_call>\n{\"name\": \"f\", \"arguments\": \"{\\\"q\\\": \\\"tea\\\"}\"}\n";
        let (content, calls) = read_split_everywhere(text);
        assert_eq!(content, "");
        assert_eq!(calls, vec![("f".to_string(), json!({"q": "tea"}))]);
    }

    #[test]
    fn a_reply_that_is_a_bare_call_counts_as_one() {
        for text in [
            "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}",
            "\n```json\n{\n  \"name\": \"get_weather\",\n  \"arguments\": {\"city\": \"Paris\"}\n}\n```",
            "{{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}}",
            "```{ \"name\" : \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Paris\\\"}\"}",
        ] {
            let (content, calls) = read_split_everywhere(text);
            assert_eq!(content, "", "{text}");
            assert_eq!(calls, vec![("get_weather".to_string(), json!({"city": "Paris"}))], "{text}");
        }
        // Not calls: other JSON, other fences, an unknown function, text after the object.
        for text in [
            "{\"answer\": 4}",
            "```python\nprint(1)\n```",
            "```js\n{}\n```",
            "{\"name\": \"Ada\", \"age\": 36}",
            "{\"name\": \"f\", \"arguments\": {}} and then some",
            "`code`",
        ] {
            let (content, calls) = read_split_everywhere(text);
            assert!(calls.is_empty(), "{text}");
            assert_eq!(content, text);
        }
        // Text is released as soon as it cannot be a bare call.
        let mut reader = reader();
        assert_eq!(reader.push("``").content, "");
        assert_eq!(reader.push("`py").content, "```py");
    }

    #[test]
    fn triggers_find_the_opener_anywhere_and_bare_calls_at_the_start() {
        let triggers = ToolFormat::Hermes.triggers(&["get_weather", "a.b"]);
        assert_eq!(triggers[0], "<tool_call>");
        assert_eq!(
            triggers[1],
            r#"^\s*(?:```(?:json|xml)?\s*)?\{?\s*(\{\s*"name"\s*:\s*"(?:get_weather|a\.b)")[\s\S]*$"#
        );
    }

    #[test]
    fn the_guard_refuses_what_would_begin_a_call() {
        let mut guard = CallGuard::new(ToolFormat::Hermes);
        for refused in ["{", " {\"", "```json", "```", "\n[", "<tool_call>"] {
            assert!(guard.refuses(refused), "{refused}");
        }
        for allowed in ["The", "\n", "<b>", "", " Here", "**Paris**", "- one"] {
            assert!(!guard.refuses(allowed), "{allowed}");
        }
        guard.push("\n\n");
        assert!(guard.refuses("{") && !guard.refuses("Sure"));
        guard.push("The weather in Paris is ");
        assert!(!guard.refuses("{hot}"), "only the start is checked for braces");
        guard.push("sunny <tool");
        assert!(guard.refuses("_call>") && !guard.refuses("s>"));
    }

    #[test]
    fn templates_are_told_apart() {
        let qwen = "{%- if tools %}...<tool_call>...{% endif %}";
        assert_eq!(ToolFormat::detect(qwen), Ok(ToolFormat::Hermes));
        assert_eq!(
            ToolFormat::detect("{% for m in messages %}{{ m.content }}{% endfor %}"),
            Err(NoTools::NotInTemplate)
        );
        assert_eq!(ToolFormat::detect("{% if tools %}[TOOL_CALLS]{% endif %}"), Err(NoTools::UnknownFormat));
    }

    #[test]
    fn tools_render_as_openai_function_objects_in_the_order_given() {
        let spec = ToolSpec {
            name: "get_weather".into(),
            description: Some("Weather now".into()),
            parameters: json!({"type": "object", "properties": {"z": {}, "a": {}}}),
        };
        assert_eq!(
            spec.to_template_json().to_string(),
            r#"{"type":"function","function":{"name":"get_weather","description":"Weather now","parameters":{"type":"object","properties":{"z":{},"a":{}}}}}"#
        );
        let bare = ToolSpec { name: "now".into(), description: None, parameters: ToolSpec::no_parameters() };
        assert_eq!(
            bare.to_template_json()["function"],
            json!({"name": "now", "parameters": {"type": "object", "properties": {}}})
        );
    }
}
