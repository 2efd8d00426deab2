//! When a reminder is due, from what a person (or the model) says, and how that time is
//! said back. Times of day are the box's local time (`TZ`, else `/etc/localtime`).

use chrono::{DateTime, Duration, Local, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};

/// The longest a timer or reminder may wait.
pub const MAX_WAIT: Duration = Duration::days(366);

/// A time of day ("18:30", "6:30 pm", "7am") today, or tomorrow once it has passed today;
/// or a date and time ("2026-12-24 18:00", "2026-12-24T18:00").
pub fn parse_at(text: &str, now: DateTime<Local>) -> Result<DateTime<Local>, String> {
    let text = text.trim();
    let naive = if let Some(time) = time_of_day(text) {
        let today = now.date_naive().and_time(time);
        match local(today)? > now {
            true => today,
            false => (now.date_naive() + Duration::days(1)).and_time(time),
        }
    } else {
        ["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
            .ok_or_else(|| {
                format!("'{text}' is not a time: give a time of day like 18:30 or a date and time like 2026-12-24 18:00")
            })?
    };
    let at = local(naive)?;
    if at <= now {
        return Err(format!("{} has already passed", at.format("%Y-%m-%d %H:%M")));
    }
    within_limit(at, now)
}

/// When something is due, from one phrase: a wait ("in 10 minutes", "90 seconds", "an
/// hour"), a time of day ("18:30", "6:30 pm", "tomorrow at 9:00"), or a date and time.
pub fn parse_when(text: &str, now: DateTime<Local>) -> Result<DateTime<Local>, String> {
    let lower = text.trim().to_lowercase();
    let lower = lower.strip_prefix("at ").unwrap_or(&lower);
    if let Some(seconds) = parse_wait(lower.strip_prefix("in ").unwrap_or(lower)) {
        return after(seconds, now);
    }
    if let Some(rest) = lower.strip_prefix("tomorrow").or_else(|| lower.strip_suffix("tomorrow")) {
        let rest = rest.trim().trim_start_matches("at ").trim_end_matches(" at").trim();
        let time =
            time_of_day(rest).ok_or_else(|| format!("'{text}' is not a time: give a time like 18:30"))?;
        let at = local((now.date_naive() + Duration::days(1)).and_time(time))?;
        return within_limit(at, now);
    }
    parse_at(lower, now)
}

/// A wait in seconds: "10 seconds", "5 min", "1 hour 30 minutes", "an hour", "half an
/// hour", "90s"; a bare number is minutes. `None` when it is not a wait.
pub fn parse_wait(text: &str) -> Option<f64> {
    let text = text.trim().to_lowercase().replace("half an hour", "30 minutes").replace('-', " ");
    let mut total = 0.0;
    let mut pending: Option<f64> = None;
    let mut any_unit = false;
    for word in text.split(|c: char| c.is_whitespace() || c == ',').filter(|w| !w.is_empty()) {
        // "90s", "5min", "1h": the number and the unit in one word.
        let split = word.find(|c: char| c.is_ascii_alphabetic()).filter(|&i| i > 0);
        let (number, unit) = match split {
            Some(i) => (Some(&word[..i]), &word[i..]),
            None => (None, word),
        };
        if let Some(n) = number.and_then(|n| n.parse::<f64>().ok()) {
            pending = Some(n);
        }
        let value = match unit {
            "a" | "an" | "one" => Some(1.0),
            "two" => Some(2.0),
            "three" => Some(3.0),
            "five" => Some(5.0),
            "ten" => Some(10.0),
            "fifteen" => Some(15.0),
            "twenty" => Some(20.0),
            "thirty" => Some(30.0),
            "half" => Some(0.5),
            n => n.parse::<f64>().ok(),
        };
        if let Some(v) = value {
            pending = Some(v);
            continue;
        }
        let scale = match unit {
            "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
            "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3600.0,
            "and" => continue,
            _ => return None,
        };
        total += pending.take()? * scale;
        any_unit = true;
    }
    match (any_unit, pending) {
        (true, None) => Some(total),
        (false, Some(minutes)) if !text.contains(':') => Some(minutes * 60.0),
        _ => None,
    }
}

/// `now` plus a wait in seconds, which must be positive and at most [`MAX_WAIT`].
pub fn after(seconds: f64, now: DateTime<Local>) -> Result<DateTime<Local>, String> {
    if !seconds.is_finite() || seconds < 1.0 {
        return Err("the wait must be at least one second".into());
    }
    if seconds > MAX_WAIT.num_seconds() as f64 {
        return Err("the wait must be at most a year".into());
    }
    Ok(now + Duration::milliseconds((seconds * 1000.0).round() as i64))
}

fn within_limit(at: DateTime<Local>, now: DateTime<Local>) -> Result<DateTime<Local>, String> {
    match at - now > MAX_WAIT {
        true => Err("reminders can be set at most a year ahead".into()),
        false => Ok(at),
    }
}

fn local(naive: NaiveDateTime) -> Result<DateTime<Local>, String> {
    // A time skipped by a clock change does not exist; a repeated one is taken the first time.
    Local
        .from_local_datetime(&naive)
        .earliest()
        .ok_or_else(|| format!("{} does not exist here (the clocks change)", naive.format("%Y-%m-%d %H:%M")))
}

fn time_of_day(text: &str) -> Option<NaiveTime> {
    let lower = text.to_ascii_lowercase().replace('.', "");
    let compact = lower.replace(' ', "");
    let (body, pm) = match (compact.strip_suffix("pm"), compact.strip_suffix("am")) {
        (Some(b), _) => (b.to_string(), Some(true)),
        (_, Some(b)) => (b.to_string(), Some(false)),
        _ => (compact.clone(), None),
    };
    let (h, m) = match body.split_once(':') {
        Some((h, m)) => (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?),
        None if pm.is_some() => (body.parse::<u32>().ok()?, 0),
        None => return None,
    };
    let h = match pm {
        Some(_) if !(1..=12).contains(&h) => return None,
        Some(true) => h % 12 + 12,
        Some(false) => h % 12,
        None => h,
    };
    NaiveTime::from_hms_opt(h, m, 0)
}

/// "16:45" today, "16:45 tomorrow", else "16:45 on Thursday 24 December".
pub fn say_at(at: DateTime<Local>, now: DateTime<Local>) -> String {
    let time = at.format("%H:%M");
    let day: NaiveDate = at.date_naive();
    if day == now.date_naive() {
        format!("{time} today")
    } else if day == now.date_naive() + Duration::days(1) {
        format!("{time} tomorrow")
    } else {
        format!("{time} on {}", at.format("%A %-d %B"))
    }
}

/// "90 seconds", "5 minutes", "1 hour 30 minutes".
pub fn say_duration(seconds: i64) -> String {
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    if seconds < 120 && seconds % 60 != 0 {
        return plural(seconds, "second");
    }
    let (h, m) = (seconds / 3600, (seconds % 3600 + 30) / 60);
    match (h, m) {
        (0, m) => plural(m, "minute"),
        (h, 0) => plural(h, "hour"),
        (h, m) => format!("{} {}", plural(h, "hour"), plural(m, "minute")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Local> {
        local(NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()).unwrap()
    }

    #[test]
    fn a_time_of_day_is_today_or_tomorrow_once_passed() {
        let now = at("2026-12-06 15:00");
        assert_eq!(parse_at("18:30", now).unwrap(), at("2026-12-06 18:30"));
        assert_eq!(parse_at("6:30 pm", now).unwrap(), at("2026-12-06 18:30"));
        assert_eq!(parse_at("7am", now).unwrap(), at("2026-12-07 07:00"));
        assert_eq!(parse_at("12 a.m.", now).unwrap(), at("2026-12-07 00:00"));
        assert_eq!(parse_at("09:00", now).unwrap(), at("2026-12-07 09:00"));
        assert_eq!(parse_at("2026-12-24 18:00", now).unwrap(), at("2026-12-24 18:00"));
        assert_eq!(parse_at("2026-12-24T18:00", now).unwrap(), at("2026-12-24 18:00"));
    }

    #[test]
    fn waits_are_read_as_people_say_them() {
        assert_eq!(parse_wait("10 seconds"), Some(10.0));
        assert_eq!(parse_wait("5 min"), Some(300.0));
        assert_eq!(parse_wait("1 hour 30 minutes"), Some(5400.0));
        assert_eq!(parse_wait("an hour"), Some(3600.0));
        assert_eq!(parse_wait("half an hour"), Some(1800.0));
        assert_eq!(parse_wait("90s"), Some(90.0));
        assert_eq!(parse_wait("2 minutes and 10 seconds"), Some(130.0));
        assert_eq!(parse_wait("ten minutes"), Some(600.0));
        assert_eq!(parse_wait("5"), Some(300.0), "a bare number is minutes");
        assert_eq!(parse_wait("18:30"), None);
        assert_eq!(parse_wait("6:30 pm"), None);
        assert_eq!(parse_wait("teatime"), None);
        assert_eq!(parse_wait("minutes"), None);
    }

    #[test]
    fn when_is_a_wait_a_time_of_day_or_tomorrow() {
        let now = at("2026-12-06 15:00");
        assert_eq!(parse_when("in 2 minutes", now).unwrap(), now + Duration::minutes(2));
        assert_eq!(parse_when("10 seconds", now).unwrap(), now + Duration::seconds(10));
        assert_eq!(parse_when("18:30", now).unwrap(), at("2026-12-06 18:30"));
        assert_eq!(parse_when("at 6:30 pm", now).unwrap(), at("2026-12-06 18:30"));
        assert_eq!(parse_when("tomorrow at 9:00", now).unwrap(), at("2026-12-07 09:00"));
        assert_eq!(parse_when("9am tomorrow", now).unwrap(), at("2026-12-07 09:00"));
        assert!(parse_when("whenever", now).is_err());
    }

    #[test]
    fn bad_or_past_or_far_times_are_refused_with_a_reason() {
        let now = at("2026-12-06 15:00");
        assert!(parse_at("teatime", now).unwrap_err().contains("not a time"));
        assert!(parse_at("25:00", now).unwrap_err().contains("not a time"));
        assert!(parse_at("13pm", now).unwrap_err().contains("not a time"));
        assert!(parse_at("2026-12-01 10:00", now).unwrap_err().contains("passed"));
        assert!(parse_at("2028-01-01 10:00", now).unwrap_err().contains("a year"));
        assert!(after(0.0, now).is_err() && after(f64::NAN, now).is_err() && after(4e7, now).is_err());
        assert_eq!(after(90.0, now).unwrap(), now + Duration::seconds(90));
    }

    #[test]
    fn times_and_waits_are_said_as_people_say_them() {
        let now = at("2026-12-06 15:00");
        assert_eq!(say_at(at("2026-12-06 16:45"), now), "16:45 today");
        assert_eq!(say_at(at("2026-12-07 07:00"), now), "07:00 tomorrow");
        assert_eq!(say_at(at("2026-12-24 18:00"), now), "18:00 on Thursday 24 December");
        assert_eq!(say_duration(90), "90 seconds");
        assert_eq!(say_duration(1), "1 second");
        assert_eq!(say_duration(300), "5 minutes");
        assert_eq!(say_duration(3600), "1 hour");
        assert_eq!(say_duration(5400), "1 hour 30 minutes");
    }
}
