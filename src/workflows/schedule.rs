//! When a scheduled workflow runs next, in the box's local time: a cron expression
//! (`30 7 * * 1-5`; five fields, or six with seconds first), an interval (`every: 10m`)
//! or a time of day (`at: "07:30"`).

use chrono::{DateTime, Local, NaiveTime, TimeZone};
use std::str::FromStr;

#[derive(Debug, Clone)]
pub enum Schedule {
    Cron(Box<croner::Cron>),
    /// Seconds between runs, counted from the last one (or from the start).
    Every(i64),
    /// Every day at this local time.
    Daily(NaiveTime),
}

/// Shortest interval accepted.
const MIN_EVERY_SECS: i64 = 1;

impl Schedule {
    pub fn cron(text: &str) -> Result<Schedule, String> {
        let fields = text.split_whitespace().count();
        if !(5..=6).contains(&fields) {
            return Err(format!(
                "'{text}' is not a cron expression: five fields (minute hour day month weekday), or six with seconds first"
            ));
        }
        croner::Cron::from_str(text)
            .map(|c| Schedule::Cron(Box::new(c)))
            .map_err(|e| format!("'{text}' is not a cron expression: {e}"))
    }

    /// `30s`, `10m`, `2h`, `1d`.
    pub fn every(text: &str) -> Result<Schedule, String> {
        let bad = || format!("'{text}' is not an interval like 30s, 10m, 2h or 1d");
        let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (n, unit) = text.split_at(split);
        let n: i64 = n.parse().map_err(|_| bad())?;
        let secs = match unit.trim() {
            "s" | "sec" | "secs" | "seconds" => n,
            "m" | "min" | "mins" | "minutes" => n * 60,
            "h" | "hour" | "hours" => n * 3600,
            "d" | "day" | "days" => n * 86_400,
            _ => return Err(bad()),
        };
        match (MIN_EVERY_SECS..=366 * 86_400).contains(&secs) {
            true => Ok(Schedule::Every(secs)),
            false => Err(format!("'{text}' must be between 1 second and a year")),
        }
    }

    /// `07:30` or `7:30:15`.
    pub fn daily(text: &str) -> Result<Schedule, String> {
        NaiveTime::parse_from_str(text, "%H:%M")
            .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M:%S"))
            .map(Schedule::Daily)
            .map_err(|_| format!("'{text}' is not a time of day like 07:30"))
    }

    /// As written: `cron 30 7 * * *`, `every 600 s`, `at 07:30`.
    pub fn describe(&self) -> String {
        match self {
            Schedule::Cron(cron) => format!("cron {}", cron.as_str()),
            Schedule::Every(secs) => format!("every {secs} s"),
            Schedule::Daily(time) => format!("at {}", time.format("%H:%M")),
        }
    }

    /// The first run strictly after `after` (Unix seconds), in local time.
    pub fn next_after(&self, after: i64) -> Option<i64> {
        let now: DateTime<Local> = Local.timestamp_opt(after, 0).single()?;
        match self {
            Schedule::Every(secs) => Some(after + secs),
            Schedule::Cron(cron) => cron.find_next_occurrence(&now, false).ok().map(|t| t.timestamp()),
            Schedule::Daily(time) => {
                let today = now.date_naive().and_time(*time);
                // A time a DST change skips is taken an hour later.
                let at = |naive: chrono::NaiveDateTime| {
                    Local.from_local_datetime(&naive).earliest().or_else(|| {
                        Local.from_local_datetime(&(naive + chrono::Duration::hours(1))).earliest()
                    })
                };
                match at(today).filter(|t| t.timestamp() > after) {
                    Some(t) => Some(t.timestamp()),
                    None => at(today + chrono::Duration::days(1)).map(|t| t.timestamp()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_run_follows_the_schedule() {
        let now = Local::now().timestamp();
        assert_eq!(Schedule::every("10m").unwrap().next_after(now), Some(now + 600));
        let cron = Schedule::cron("*/5 * * * * *").unwrap();
        let next = cron.next_after(now).unwrap();
        assert!(next > now && next <= now + 5 && next % 5 == 0, "{now} → {next}");
        let hourly = Schedule::cron("0 * * * *").unwrap().next_after(now).unwrap();
        assert!(hourly > now && hourly <= now + 3600 && hourly % 60 == 0);
        let daily = Schedule::daily("07:30").unwrap().next_after(now).unwrap();
        assert!(daily > now && daily <= now + 25 * 3600);
        let local = Local.timestamp_opt(daily, 0).unwrap();
        assert_eq!(local.format("%H:%M").to_string(), "07:30");
    }

    #[test]
    fn bad_schedules_say_what_is_expected() {
        assert!(Schedule::cron("61 * * * *").is_err());
        assert!(Schedule::cron("* * *").unwrap_err().contains("five fields"));
        assert!(Schedule::every("0s").is_err());
        assert!(Schedule::every("5 parsecs").is_err());
        assert!(Schedule::daily("25:00").is_err());
    }
}
