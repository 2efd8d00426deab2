//! The service's side: backups started from the admin API (one at a time, on a thread of
//! their own), and the maintenance thread that makes scheduled backups (`[backup] every`,
//! keeping `keep`) and runs retention daily. When each last ran is kept in SQLite, so a
//! restart neither repeats nor skips one.

use super::{create, list, prune, ArchiveInfo, BackupError, Sources};
use crate::audit::{Action, Event, Outcome};
use crate::config::{RetentionSettings, Settings};
use crate::store::Store;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Reads `30s`, `15m`, `12h`, `1d` (at least a minute).
pub fn parse_every(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 =
        number.parse().map_err(|_| format!("'{text}' is not a number and a unit, like 1d or 12h"))?;
    let secs = match unit.trim() {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        other => return Err(format!("unknown unit '{other}' in '{text}': use s, m, h or d")),
    };
    if secs < 60 {
        return Err(format!("'{text}' is less than a minute"));
    }
    Ok(Duration::from_secs(secs))
}

/// A backup under way.
#[derive(Debug, Clone, Serialize)]
pub struct Running {
    pub started_at: i64,
    /// `api` or `schedule`.
    pub trigger: &'static str,
}

/// How the last backup the service made ended.
#[derive(Debug, Clone, Serialize)]
pub struct LastRun {
    pub trigger: &'static str,
    pub finished_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Default)]
struct State {
    running: Option<Running>,
    last: Option<LastRun>,
}

/// The service's backups. Clone it freely.
#[derive(Clone)]
pub struct Backups {
    sources: Sources,
    dir: PathBuf,
    keep: usize,
    state: Arc<Mutex<State>>,
}

impl Backups {
    pub fn new(settings: &Settings, config_file: Option<&Path>) -> Backups {
        Backups {
            sources: Sources::from_settings(settings, config_file),
            dir: settings.backup_dir(),
            keep: settings.backup.keep as usize,
            state: Arc::default(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts one on a thread of its own; `Busy` while another runs.
    pub fn start(&self, trigger: &'static str) -> Result<Running, BackupError> {
        let running = self.claim(trigger)?;
        let me = self.clone();
        std::thread::Builder::new()
            .name("hearth-backup".into())
            .spawn(move || me.finish(trigger))
            .map_err(|e| BackupError::Io(format!("starting the backup thread: {e}")))?;
        Ok(running)
    }

    /// Makes one now, on this thread; `Busy` while another runs.
    pub fn run_now(&self, trigger: &'static str) -> Result<ArchiveInfo, BackupError> {
        self.claim(trigger)?;
        self.finish(trigger)
    }

    fn claim(&self, trigger: &'static str) -> Result<Running, BackupError> {
        let mut state = self.state();
        if state.running.is_some() {
            return Err(BackupError::Busy);
        }
        let running = Running { started_at: crate::store::now(), trigger };
        state.running = Some(running.clone());
        Ok(running)
    }

    fn finish(&self, trigger: &'static str) -> Result<ArchiveInfo, BackupError> {
        let result = std::panic::catch_unwind(|| create(&self.sources, &self.dir, &mut |_, _| {}))
            .unwrap_or_else(|_| Err(BackupError::Io("the backup crashed".into())));
        let result = result.and_then(|info| {
            for old in prune(&self.dir, self.keep)? {
                tracing::info!(file = %old, keep = self.keep, "deleted an old backup");
            }
            Ok(info)
        });
        if let Err(e) = &result {
            tracing::error!(error = %e, trigger, "backup failed");
        }
        let mut state = self.state();
        state.running = None;
        state.last = Some(LastRun {
            trigger,
            finished_at: crate::store::now(),
            file: result.as_ref().ok().map(|i| i.file.clone()),
            error: result.as_ref().err().map(ToString::to_string),
        });
        result
    }

    /// The archives in the backup folder (newest first), the one under way and how the
    /// last one ended.
    pub fn status(&self) -> Result<serde_json::Value, BackupError> {
        let archives = list(&self.dir)?;
        let state = self.state();
        Ok(serde_json::json!({
            "dir": self.dir,
            "keep": self.keep,
            "archives": archives,
            "running": state.running,
            "last": state.last,
        }))
    }
}

/// The maintenance thread.
pub struct Maintenance;

/// How often the thread looks whether something is due.
const TICK: Duration = Duration::from_secs(60);
const DAY: i64 = 86_400;

impl Maintenance {
    /// Starts `hearth-maintenance`: scheduled backups every `every` (if set) and retention
    /// once a day. After retention deleted something, the engines' idle KV caches are
    /// dropped (`forget`), so nothing of a deleted conversation lingers there.
    pub fn start(
        store: Store,
        backups: Backups,
        every: Option<Duration>,
        retention: RetentionSettings,
        forget: Box<dyn Fn() + Send>,
    ) {
        let spawned = std::thread::Builder::new().name("hearth-maintenance".into()).spawn(move || {
            // Let the service come up first.
            std::thread::sleep(Duration::from_secs(10));
            loop {
                let now = crate::store::now();
                if let Some(every) = every {
                    if due(&store, "backup", every.as_secs() as i64, now) {
                        mark(&store, "backup", now);
                        let by = crate::audit::Actor::system();
                        let event = match backups.run_now("schedule") {
                            Ok(info) => {
                                tracing::info!(file = %info.file, "scheduled backup done");
                                Some(Event::new(&by, Action::Backup).target(info.file))
                            }
                            Err(BackupError::Busy) => None,
                            Err(e) => {
                                tracing::error!(error = %e, "scheduled backup failed");
                                let detail = serde_json::json!({"error": e.to_string()});
                                Some(Event::new(&by, Action::Backup).outcome(Outcome::Failure).detail(detail))
                            }
                        };
                        if let Err(e) = event.map_or(Ok(0), |event| store.audit(&event)) {
                            tracing::warn!(error = %e, "could not write the audit log");
                        }
                    }
                }
                if due(&store, "retention", DAY, now) {
                    mark(&store, "retention", now);
                    match std::panic::catch_unwind(|| {
                        super::retention::run(&store, &retention, &crate::audit::Actor::system())
                    }) {
                        Ok(Ok(deleted)) if !deleted.is_empty() => forget(),
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => tracing::error!(error = %e, "retention failed"),
                        Err(_) => tracing::error!("retention crashed"),
                    }
                }
                std::thread::sleep(TICK);
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the maintenance thread: no scheduled backups or retention");
        }
    }
}

fn due(store: &Store, task: &str, period: i64, now: i64) -> bool {
    match store.maintenance_last_run(task) {
        Ok(last) => last.is_none_or(|at| now - at >= period || at > now),
        Err(e) => {
            tracing::warn!(error = %e, task, "cannot read when maintenance last ran");
            false
        }
    }
}

fn mark(store: &Store, task: &str, now: i64) {
    if let Err(e) = store.set_maintenance_run(task, now) {
        tracing::warn!(error = %e, task, "cannot record a maintenance run");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_read_with_their_unit() {
        assert_eq!(parse_every("1d").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_every("12h").unwrap(), Duration::from_secs(43_200));
        assert_eq!(parse_every("90m").unwrap(), Duration::from_secs(5_400));
        assert!(parse_every("10s").unwrap_err().contains("less than a minute"));
        assert!(parse_every("1w").unwrap_err().contains("unknown unit"));
        assert!(parse_every("daily").is_err());
    }
}
