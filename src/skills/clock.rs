//! `clock`: the box's local date and time (its time zone: `TZ`, else `/etc/localtime`).

use super::{Context, Output, Skill, SkillError};
use crate::engine::ToolSpec;
use futures_util::future::BoxFuture;
use serde_json::Value;

pub(super) const NAME: &str = "clock";

pub struct Clock;

impl Skill for Clock {
    fn name(&self) -> &'static str {
        NAME
    }

    fn description(&self) -> &'static str {
        "Get the current local date, day of the week and time."
    }

    fn parameters(&self) -> Value {
        ToolSpec::no_parameters()
    }

    fn execute(&self, _arguments: Value, _ctx: Context) -> BoxFuture<'static, Result<Output, SkillError>> {
        Box::pin(async { Ok(Output { content: reading(chrono::Local::now()), citations: Vec::new() }) })
    }
}

/// The reading as a sentence a person could be told. Given JSON, the default 0.5B model
/// answered 6 of 10 time questions by echoing it (`<tool_response>{"time": ...}`); echoing
/// this is still an answer.
fn reading<Tz: chrono::TimeZone>(at: chrono::DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    at.format("It is %H:%M on %A %-d %B %Y (UTC%:z).").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_reading_says_the_time_the_weekday_and_the_date() {
        let paris = chrono::FixedOffset::east_opt(3600).unwrap();
        let at = paris.with_ymd_and_hms(2026, 12, 6, 9, 5, 0).unwrap();
        assert_eq!(reading(at), "It is 09:05 on Sunday 6 December 2026 (UTC+01:00).");
    }
}
