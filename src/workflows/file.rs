//! A workflow file, read and checked: YAML with the line of every value (serde-saphyr's
//! `Spanned`), so that every error names the file, the line and the field.

use super::schedule::Schedule;
use super::template;
use crate::notices::Target;
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Most steps one workflow may have.
pub const MAX_STEPS: usize = 32;
/// Largest workflow file read, in bytes.
const MAX_FILE_BYTES: u64 = 256 * 1024;

/// A checked workflow.
#[derive(Debug, Clone)]
pub struct Workflow {
    pub name: String,
    pub description: String,
    /// As the file says; the owner's choice in the API overrides it (`Workflows::enabled`).
    pub enabled: bool,
    /// The Hearth user it runs as.
    pub owner: String,
    pub trigger: Trigger,
    pub steps: Vec<Step>,
    pub file: PathBuf,
}

#[derive(Debug, Clone)]
pub enum Trigger {
    Schedule(Schedule),
    /// An inbound webhook, `[[hooks]]` by name.
    Webhook(String),
    /// Words that start it when a user says or types them in chat.
    Phrase(String),
}

impl Workflow {
    /// The keys of the input its steps read (`{{ input.text }}`: `text`): what a run started
    /// by hand should be given. Empty when no step reads the input.
    pub fn inputs(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .steps
            .iter()
            .flat_map(|step| match &step.action {
                Action::Skill { args, .. } => template::strings(args),
                Action::Prompt(text) | Action::Notify { text, .. } | Action::Reply(text) => {
                    vec![text.clone()]
                }
            })
            .flat_map(|text| template::input_keys(&text))
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }
}

impl Trigger {
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Schedule(_) => "schedule",
            Trigger::Webhook(_) => "webhook",
            Trigger::Phrase(_) => "phrase",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Step {
    /// `steps.<id>.output` in later templates; `step1`, `step2`… when not given.
    pub id: String,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Calls a skill; string values in `args` are templates.
    Skill { name: String, args: serde_json::Value },
    /// Asks the model; the template is the prompt.
    Prompt(String),
    /// Tells the owner on the channels `to` names (the web UI's events, their Telegram
    /// chat, the voice satellites); the run's summary keeps it in their history.
    Notify { text: String, to: Vec<Target> },
    /// Sets the run's result: what a webhook's response or callback carries (otherwise the
    /// last step's output).
    Reply(String),
}

impl Action {
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Skill { .. } => "skill",
            Action::Prompt(_) => "prompt",
            Action::Notify { .. } => "notify",
            Action::Reply(_) => "reply",
        }
    }
}

/// Why a file was refused: the file, the line (when known), the field and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadError {
    pub file: PathBuf,
    pub line: Option<u64>,
    pub field: String,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for LoadError {}

/// What a file is checked against: the skills there are, the hooks configured, and the
/// channels notices can reach.
#[derive(Debug, Clone, Default)]
pub struct Known {
    pub skills: Vec<String>,
    pub hooks: Vec<String>,
    /// The users with a chat in `telegram.chats` (when `[telegram]` is on).
    pub telegram_users: Vec<String>,
    /// `voice.wyoming_user`, when satellites announce (`[home_assistant] announce_entity`).
    pub satellite_user: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkflow {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    #[serde(default = "yes")]
    enabled: bool,
    owner: Spanned<String>,
    trigger: Spanned<RawTrigger>,
    steps: Spanned<Vec<Spanned<RawStep>>>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrigger {
    schedule: Option<Spanned<String>>,
    every: Option<Spanned<String>>,
    at: Option<Spanned<String>>,
    webhook: Option<Spanned<String>>,
    phrase: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    id: Option<Spanned<String>>,
    skill: Option<Spanned<String>>,
    args: Option<Spanned<BTreeMap<String, serde_json::Value>>>,
    prompt: Option<Spanned<String>>,
    notify: Option<Spanned<RawNotify>>,
    reply: Option<Spanned<String>>,
}

/// `notify: text` (every channel the owner has), or `notify: {text: ..., to: telegram}`
/// (`to`: one of web, telegram, satellite, or a list).
#[derive(Deserialize)]
#[serde(untagged)]
enum RawNotify {
    Text(String),
    To(NotifyTo),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NotifyTo {
    text: String,
    to: OneOrMany,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// Reads and checks one file.
pub fn load(path: &Path, known: &Known) -> Result<Workflow, LoadError> {
    let error = |message: String| LoadError { file: path.into(), line: None, field: String::new(), message };
    let size = std::fs::metadata(path).map_err(|e| error(format!("cannot read: {e}")))?.len();
    if size > MAX_FILE_BYTES {
        return Err(error(format!("larger than {MAX_FILE_BYTES} bytes")));
    }
    let text = std::fs::read_to_string(path).map_err(|e| error(format!("cannot read: {e}")))?;
    parse(path, &text, known)
}

/// Checks a workflow's text; `path` names it in errors.
pub fn parse(path: &Path, text: &str, known: &Known) -> Result<Workflow, LoadError> {
    let raw: RawWorkflow = serde_saphyr::from_str(text).map_err(|e| {
        let inner = e.without_snippet();
        let message = inner.to_string();
        LoadError {
            file: path.into(),
            line: inner.location().map(|l| l.line()).filter(|l| *l > 0),
            field: String::new(),
            // The line is said once, in front.
            message: message.rfind(" at line ").map_or(message.clone(), |i| message[..i].to_string()),
        }
    })?;
    Checker { path, known }.check(raw)
}

struct Checker<'a> {
    path: &'a Path,
    known: &'a Known,
}

impl Checker<'_> {
    fn at<T>(&self, spanned: &Spanned<T>, field: &str, message: impl Into<String>) -> LoadError {
        let line = spanned.referenced.line();
        LoadError {
            file: self.path.into(),
            line: (line > 0).then_some(line),
            field: field.into(),
            message: message.into(),
        }
    }

    fn check(&self, raw: RawWorkflow) -> Result<Workflow, LoadError> {
        if !valid_name(&raw.name.value) {
            return Err(self.at(&raw.name, "name", "must be 1 to 64 letters, digits, '_' or '-'"));
        }
        if !crate::store::valid_user_name(&raw.owner.value) {
            return Err(self.at(&raw.owner, "owner", format!("'{}' is not a user name", raw.owner.value)));
        }
        let trigger = self.trigger(&raw.trigger)?;
        let steps = self.steps(&raw.steps, &trigger, &raw.owner.value)?;
        Ok(Workflow {
            name: raw.name.value,
            description: raw.description,
            enabled: raw.enabled,
            owner: raw.owner.value,
            trigger,
            steps,
            file: self.path.into(),
        })
    }

    fn trigger(&self, raw: &Spanned<RawTrigger>) -> Result<Trigger, LoadError> {
        let t = &raw.value;
        let given: Vec<(&str, &Spanned<String>)> = [
            ("schedule", &t.schedule),
            ("every", &t.every),
            ("at", &t.at),
            ("webhook", &t.webhook),
            ("phrase", &t.phrase),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
        .collect();
        let [(kind, value)] = given.as_slice() else {
            return Err(self.at(raw, "trigger", "give exactly one of schedule, every, at, webhook, phrase"));
        };
        let field = format!("trigger.{kind}");
        let text = value.value.trim();
        let bad = |why: String| self.at(value, &field, why);
        Ok(match *kind {
            "schedule" => Trigger::Schedule(Schedule::cron(text).map_err(bad)?),
            "every" => Trigger::Schedule(Schedule::every(text).map_err(bad)?),
            "at" => Trigger::Schedule(Schedule::daily(text).map_err(bad)?),
            "webhook" if !self.known.hooks.iter().any(|h| h == text) => {
                return Err(bad(format!("no hook named '{text}' in [[hooks]] of the configuration")))
            }
            "webhook" => Trigger::Webhook(text.to_string()),
            _ if text.is_empty() => return Err(bad("must not be empty".into())),
            _ => Trigger::Phrase(text.to_lowercase()),
        })
    }

    /// A notify step: its text checked, and the channels it names, each one the owner has.
    fn notify(
        &self,
        raw: &Spanned<RawNotify>,
        field: &str,
        owner: &str,
        check: impl Fn(&Spanned<String>) -> Result<String, LoadError>,
    ) -> Result<Action, LoadError> {
        // Untagged, so the text and the channels have the step's line.
        let spanned = |text: &str| Spanned {
            value: text.to_string(),
            referenced: raw.referenced,
            defined: raw.defined,
        };
        let (text, to) = match &raw.value {
            RawNotify::Text(text) => {
                return Ok(Action::Notify { text: check(&spanned(text))?, to: Target::ALL.to_vec() });
            }
            RawNotify::To(NotifyTo { text, to }) => (check(&spanned(text))?, to),
        };
        let names = match to {
            OneOrMany::One(name) => vec![name.clone()],
            OneOrMany::Many(names) => names.clone(),
        };
        let at = |why: String| self.at(raw, &format!("{field}.to"), why);
        if names.is_empty() {
            return Err(at("name at least one of web, telegram, satellite".into()));
        }
        let mut targets = Vec::new();
        for name in &names {
            let target = Target::parse(name.trim()).ok_or_else(|| {
                at(format!("'{name}' is not a channel (there are: web, telegram, satellite)"))
            })?;
            match target {
                Target::Telegram if !self.known.telegram_users.iter().any(|u| u == owner) => {
                    return Err(at(format!(
                        "{owner} has no Telegram chat ([telegram] enabled, and a chat of {owner} in telegram.chats)"
                    )))
                }
                Target::Satellite if self.known.satellite_user.as_deref() != Some(owner) => {
                    return Err(at(format!(
                        "satellites announce to voice.wyoming_user, which is not {owner} (and need \
                         [home_assistant] url, a token and announce_entity)"
                    )))
                }
                _ => {}
            }
            if !targets.contains(&target) {
                targets.push(target);
            }
        }
        Ok(Action::Notify { text, to: targets })
    }

    fn steps(
        &self,
        raw: &Spanned<Vec<Spanned<RawStep>>>,
        trigger: &Trigger,
        raw_owner: &str,
    ) -> Result<Vec<Step>, LoadError> {
        if raw.value.is_empty() {
            return Err(self.at(raw, "steps", "a workflow needs at least one step"));
        }
        if raw.value.len() > MAX_STEPS {
            return Err(self.at(raw, "steps", format!("at most {MAX_STEPS} steps")));
        }
        let mut steps: Vec<Step> = Vec::new();
        for (i, spanned) in raw.value.iter().enumerate() {
            let field = |key: &str| format!("steps[{i}].{key}");
            let s = &spanned.value;
            let id = match &s.id {
                Some(id) if !valid_id(&id.value) => {
                    return Err(self.at(
                        id,
                        &field("id"),
                        "must be letters, digits and '_', not starting with a digit",
                    ))
                }
                Some(id) if steps.iter().any(|p| p.id == id.value) => {
                    return Err(self.at(
                        id,
                        &field("id"),
                        format!("'{}' is used by an earlier step", id.value),
                    ))
                }
                Some(id) => id.value.clone(),
                None => format!("step{}", i + 1),
            };
            let kinds = [s.skill.is_some(), s.prompt.is_some(), s.notify.is_some(), s.reply.is_some()];
            if kinds.iter().filter(|k| **k).count() != 1 {
                return Err(self.at(
                    spanned,
                    &format!("steps[{i}]"),
                    "give exactly one of skill, prompt, notify, reply",
                ));
            }
            let earlier: Vec<&str> = steps.iter().map(|p| p.id.as_str()).collect();
            let check = |text: &Spanned<String>, key: &str| -> Result<String, LoadError> {
                template::check(&text.value, &earlier, trigger.kind())
                    .map_err(|why| self.at(text, &field(key), why))?;
                Ok(text.value.clone())
            };
            if let (Some(args), None) = (&s.args, &s.skill) {
                return Err(self.at(args, &field("args"), "only a skill step takes args"));
            }
            let action = if let Some(skill) = &s.skill {
                if !self.known.skills.contains(&skill.value) {
                    let there = self.known.skills.join(", ");
                    return Err(self.at(
                        skill,
                        &field("skill"),
                        format!("no skill is named '{}' (there are: {there})", skill.value),
                    ));
                }
                let args = match &s.args {
                    None => serde_json::Value::Object(Default::default()),
                    Some(args) => {
                        for text in template::strings(&serde_json::to_value(&args.value).unwrap_or_default())
                        {
                            template::check(&text, &earlier, trigger.kind())
                                .map_err(|why| self.at(args, &field("args"), why))?;
                        }
                        serde_json::to_value(&args.value).unwrap_or_default()
                    }
                };
                Action::Skill { name: skill.value.clone(), args }
            } else if let Some(prompt) = &s.prompt {
                Action::Prompt(check(prompt, "prompt")?)
            } else if let Some(notify) = &s.notify {
                self.notify(notify, &field("notify"), &raw_owner, |t| check(t, "notify"))?
            } else if let Some(reply) = &s.reply {
                Action::Reply(check(reply, "reply")?)
            } else {
                unreachable!("exactly one kind was checked above")
            };
            steps.push(Step { id, action });
        }
        Ok(steps)
    }
}

pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn valid_id(id: &str) -> bool {
    id.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && id.len() <= 64
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Known {
        Known {
            skills: vec!["clock".into(), "weather".into()],
            hooks: vec!["deploy".into()],
            telegram_users: vec!["alice".into()],
            satellite_user: Some("alice".into()),
        }
    }

    fn parse_text(text: &str) -> Result<Workflow, LoadError> {
        parse(Path::new("/etc/hearth/workflows/morning.yaml"), text, &known())
    }

    const GOOD: &str = "\
name: morning
description: Good morning
owner: alice
trigger:
  schedule: \"30 7 * * *\"
steps:
  - id: time
    skill: clock
  - id: summary
    prompt: \"Greet me. {{ steps.time.output }}\"
  - notify: \"{{ steps.summary.output }}\"
";

    #[test]
    fn a_good_file_is_read() {
        let w = parse_text(GOOD).unwrap();
        assert_eq!((w.name.as_str(), w.owner.as_str(), w.enabled), ("morning", "alice", true));
        assert!(matches!(w.trigger, Trigger::Schedule(_)));
        let ids: Vec<&str> = w.steps.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["time", "summary", "step3"]);
        assert_eq!(w.steps[0].action, Action::Skill { name: "clock".into(), args: serde_json::json!({}) });
        assert_eq!(
            w.steps[2].action,
            Action::Notify { text: "{{ steps.summary.output }}".into(), to: Target::ALL.to_vec() },
            "a bare text: every channel the owner has"
        );
    }

    #[test]
    fn errors_name_the_file_the_line_and_the_field() {
        let file = "/etc/hearth/workflows/morning.yaml";
        for (text, expected) in [
            (GOOD.replace("skill: clock", "skill: clok"), ":8: steps[0].skill: no skill is named 'clok'"),
            (GOOD.replace("30 7 * * *", "61 7 * * *"), ":5: trigger.schedule: "),
            (
                GOOD.replace("steps.time.output", "steps.tim.output"),
                ":10: steps[1].prompt: 'steps.tim' is no earlier step",
            ),
            (
                GOOD.replace("steps.summary.output", "input.body"),
                ":11: steps[2].notify: 'input' is not given by a schedule trigger",
            ),
            (GOOD.replace("  - notify:", "  - shout:"), ":11"),
            (GOOD.replace("    prompt:", "    notify: x\n    prompt:"), ":9: steps[1]: give exactly one of"),
            (
                GOOD.replace("schedule: \"30 7 * * *\"", "webhook: nope"),
                ":5: trigger.webhook: no hook named 'nope'",
            ),
            (GOOD.replace("owner: alice", "owner: \"a b\""), ":3: owner:"),
            (GOOD.replace("{{ steps.time.output }}", "{{ steps.time.output"), ":10: steps[1].prompt:"),
        ] {
            let e = parse_text(&text).unwrap_err().to_string();
            assert!(e.starts_with(file) && e.contains(expected), "{e}\nexpected: {expected}");
        }
        let e = parse_text(&GOOD.replace("  - notify:", "  - shout:")).unwrap_err().to_string();
        assert!(e.contains("shout"), "an unknown step kind is named: {e}");
    }

    #[test]
    fn notify_names_the_channels_it_reaches_and_each_is_checked() {
        let with = |notify: &str| parse_text(&GOOD.replace("\"{{ steps.summary.output }}\"", notify));
        let to = |notify: &str| match &with(notify).unwrap().steps[2].action {
            Action::Notify { to, .. } => to.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(to("{ text: hi, to: telegram }"), [Target::Telegram]);
        assert_eq!(to("{ text: hi, to: [satellite, web, satellite] }"), [Target::Satellite, Target::Web]);
        let file = "/etc/hearth/workflows/morning.yaml";
        for (notify, expected) in [
            ("{ text: hi, to: pigeon }", ":11: steps[2].notify.to: 'pigeon' is not a channel"),
            (
                "{ text: hi, to: [] }",
                ":11: steps[2].notify.to: name at least one of web, telegram, satellite",
            ),
            (
                "{ text: \"{{ steps.nope.output }}\", to: web }",
                ":11: steps[2].notify: 'steps.nope' is no earlier step",
            ),
            ("{ text: hi, to: web, loud: true }", ":11"),
        ] {
            let e = with(notify).unwrap_err().to_string();
            assert!(e.starts_with(file) && e.contains(expected), "{e}\nexpected: {expected}");
        }
        // Bob has no chat and is not the satellites' user.
        let bobs = |notify: &str| {
            parse_text(
                &GOOD.replace("owner: alice", "owner: bob").replace("\"{{ steps.summary.output }}\"", notify),
            )
        };
        let e = bobs("{ text: hi, to: telegram }").unwrap_err().to_string();
        assert!(e.contains(":11: steps[2].notify.to: bob has no Telegram chat"), "{e}");
        let e = bobs("{ text: hi, to: satellite }").unwrap_err().to_string();
        assert!(e.contains(":11: steps[2].notify.to: satellites announce to voice.wyoming_user"), "{e}");
        assert!(bobs("hi").is_ok(), "every channel: those bob has");
    }

    #[test]
    fn webhooks_give_input_and_intervals_and_times_of_day_are_schedules() {
        let hook = "name: deploy\nowner: bob\ntrigger: { webhook: deploy }\nsteps:\n  - reply: \"got {{ input.body }}\"\n";
        let w = parse_text(hook).unwrap();
        assert!(matches!(w.trigger, Trigger::Webhook(ref h) if h == "deploy"));
        assert_eq!(w.inputs(), ["body"], "a run by hand asks for what the steps read");
        assert!(parse_text(GOOD).unwrap().inputs().is_empty());
        for trigger in ["every: 5s", "every: 2h", "at: \"07:30\""] {
            let text = format!("name: x\nowner: bob\ntrigger:\n  {trigger}\nsteps:\n  - notify: hi\n");
            assert!(matches!(parse_text(&text).unwrap().trigger, Trigger::Schedule(_)), "{trigger}");
        }
        let text = "name: x\nowner: bob\ntrigger:\n  every: soon\nsteps:\n  - notify: hi\n";
        assert!(parse_text(text).unwrap_err().to_string().contains(":4: trigger.every:"));
    }
}
