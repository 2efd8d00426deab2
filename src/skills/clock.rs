//! `clock`: the box's local date and time (its time zone: `TZ`, else `/etc/localtime`).

use super::{Context, Output, Skill, SkillError};
use crate::engine::ToolSpec;
use futures_util::future::BoxFuture;
use serde_json::{json, Value};

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
        Box::pin(async { Ok(Output::json(&now(chrono::Local::now()))) })
    }
}

/// The reading a model can repeat: the time as people say it, the date written out.
fn now<Tz: chrono::TimeZone>(at: chrono::DateTime<Tz>) -> Value
where
    Tz::Offset: std::fmt::Display,
{
    json!({
        "time": at.format("%H:%M").to_string(),
        "date": at.format("%Y-%m-%d").to_string(),
        "weekday": at.format("%A").to_string(),
        "written": at.format("%A %-d %B %Y, %H:%M").to_string(),
        "utc_offset": at.format("%:z").to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_reading_says_the_time_the_date_and_the_weekday() {
        let paris = chrono::FixedOffset::east_opt(3600).unwrap();
        let at = paris.with_ymd_and_hms(2026, 12, 6, 9, 5, 0).unwrap();
        let reading = now(at);
        assert_eq!(reading["time"], "09:05");
        assert_eq!(reading["date"], "2026-12-06");
        assert_eq!(reading["weekday"], "Sunday");
        assert_eq!(reading["written"], "Sunday 6 December 2026, 09:05");
        assert_eq!(reading["utc_offset"], "+01:00");
    }
}
