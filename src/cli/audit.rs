//! `hearth audit verify` and `hearth audit list`: the audit log read straight from the
//! database, with or without a running service.

use crate::audit::{Action, Outcome};
use crate::config::Settings;
use crate::store::{AuditFilter, Store};
use anyhow::Context;
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the whole hash chain. Exits 0 when every row is intact and prints the head
    /// (the newest row's id and hash: note it somewhere else, since removing the newest
    /// rows leaves a shorter chain that still verifies); exits 1 naming the first row
    /// that was edited, removed or reordered.
    Verify,
    /// Print entries, newest first.
    #[command(
        after_help = "Examples:\n  hearth audit list --action login_failed --since 24h\n  hearth audit list --actor alice --limit 100 --json"
    )]
    List {
        /// Only this actor: a user's name, cli, system or anonymous.
        #[arg(long, value_name = "NAME")]
        actor: Option<String>,
        /// Only this action, e.g. login, login_failed, user_deleted, token_created.
        #[arg(long, value_name = "ACTION", value_parser = parse_action)]
        action: Option<Action>,
        /// Only this outcome: success, failure or refused.
        #[arg(long, value_name = "OUTCOME", value_parser = parse_outcome)]
        outcome: Option<Outcome>,
        /// Only entries this recent: seconds (Unix time), or an age such as 90m, 24h, 7d.
        #[arg(long, value_name = "WHEN", value_parser = parse_when)]
        since: Option<i64>,
        /// Only entries older than this: Unix seconds or an age such as 1h.
        #[arg(long, value_name = "WHEN", value_parser = parse_when)]
        until: Option<i64>,
        /// Only entries with an id below this (the next page).
        #[arg(long, value_name = "ID")]
        before: Option<i64>,
        /// At most this many (1-500).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=500))]
        limit: u32,
        /// One JSON object a line instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn parse_action(s: &str) -> Result<Action, String> {
    Action::parse(s).ok_or_else(|| {
        let known: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
        format!("unknown action; use one of {}", known.join(", "))
    })
}

fn parse_outcome(s: &str) -> Result<Outcome, String> {
    Outcome::parse(s).ok_or_else(|| "use success, failure or refused".into())
}

/// Unix seconds, or an age (`90s`, `30m`, `24h`, `7d`) before now.
fn parse_when(s: &str) -> Result<i64, String> {
    if let Ok(t) = s.parse::<i64>() {
        return Ok(t);
    }
    let unit = match s.chars().last() {
        Some('s') => 1,
        Some('m') => 60,
        Some('h') => 3600,
        Some('d') => 86_400,
        _ => return Err("use Unix seconds or an age such as 90m, 24h or 7d".into()),
    };
    let n: i64 = s[..s.len() - 1].parse().map_err(|_| "use Unix seconds or an age such as 90m, 24h or 7d")?;
    Ok(crate::store::now() - n * unit)
}

fn open(settings: &Settings) -> anyhow::Result<Store> {
    let path = settings.database_path();
    if !path.exists() {
        anyhow::bail!("no database at {} (is --data-dir right?)", path.display());
    }
    Store::open(&path).with_context(|| format!("cannot open {}", path.display()))
}

pub fn run(cmd: AuditCommand, settings: &Settings) -> anyhow::Result<ExitCode> {
    let store = open(settings)?;
    match cmd {
        AuditCommand::Verify => {
            let report = store.audit_verify()?;
            if let Some(broken) = report.broken {
                eprintln!("audit log BROKEN at row {}: {broken}", broken.row());
                eprintln!("{} rows before it verify.", report.rows);
                return Ok(ExitCode::FAILURE);
            }
            match report.head {
                Some((id, hash)) => println!("audit log OK: {} rows; head row {id} hash {hash}", report.rows),
                None => println!("audit log OK: empty"),
            }
        }
        AuditCommand::List { actor, action, outcome, since, until, before, limit, json } => {
            let filter = AuditFilter { before, limit, actor, action, outcome, since, until };
            let rows = store.audit_rows(&filter)?;
            for row in &rows {
                if json {
                    println!("{}", crate::audit::entry(row));
                    continue;
                }
                let at = chrono::DateTime::from_timestamp(row.at, 0)
                    .map_or_else(|| row.at.to_string(), |t| t.format("%Y-%m-%d %H:%M:%SZ").to_string());
                println!(
                    "{:>6} {at} {:<14} {:<16} {:<22} {:<8} {} {}",
                    row.id,
                    row.actor,
                    row.address.as_deref().unwrap_or("-"),
                    row.action,
                    row.outcome,
                    if row.target.is_empty() { "-" } else { &row.target },
                    row.detail,
                );
            }
            if rows.is_empty() {
                eprintln!("No entries.");
            } else if rows.len() == limit as usize {
                eprintln!("More: --before {}", rows.last().map_or(0, |r| r.id));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_times_parse() {
        assert_eq!(parse_when("1700000000"), Ok(1_700_000_000));
        let now = crate::store::now();
        assert!((parse_when("2h").unwrap() - (now - 7200)).abs() <= 2);
        assert!(parse_when("2w").is_err());
        assert!(parse_action("login_failed").is_ok());
        assert!(parse_action("nope").unwrap_err().contains("login_failed"));
    }
}
