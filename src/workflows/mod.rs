//! Workflows: YAML files in `workflows.dir` (default `<data_dir>/workflows`), each a
//! trigger (a schedule, an inbound webhook, a phrase) and steps (a skill, a model prompt,
//! a notice to the owner, the reply), run as their owner. Files are checked when read
//! (`file.rs`: errors name the file, line and field); a file with errors is left out and
//! reported (`hearth workflows check`, the log, `GET /api/workflows` for admins).
//!
//! A scheduled workflow waits as a timed job (`store::workflows`), fired by the job
//! runner's timer worker like a reminder: the next job is queued from the time it fires,
//! so a schedule that was due while the box was off runs once when it starts. The owner
//! (or an admin) turns a workflow on or off from the API: a preference in SQLite, since
//! the files are the owner's. Runs and each step's record are kept (`workflow_runs`); each
//! run's summary is written into a conversation of the owner, so it is in their history
//! and searchable.

mod file;
mod run;
pub mod schedule;
pub mod template;

pub use file::{load, parse, Action, Known, LoadError, Step, Trigger, Workflow};
pub use run::{Origin, Services, StepRecord};

use crate::config::Settings;
use crate::jobs::Wake;
use crate::store::{RunFilter, Store, StoreError, WorkflowRun};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use tokio::sync::mpsc;

/// Scheduled runs waiting for the dispatcher; more are refused (the job fails, logged).
const FIRE_QUEUE: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error("no workflow is named '{0}'")]
    NotFound(String),
    #[error("workflows cannot run here: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A workflow as read, with its owner's id.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub workflow: Arc<Workflow>,
    pub owner_id: i64,
}

/// What the API lists.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub name: String,
    pub description: String,
    pub owner: String,
    pub enabled: bool,
    pub trigger: &'static str,
    /// The schedule, hook or phrase as written.
    pub trigger_detail: String,
    /// Unix seconds; scheduled and enabled ones only.
    pub next_run: Option<i64>,
    pub file: String,
    /// The keys of the input its steps read (`{{ input.text }}`: `text`); a run started by
    /// hand is asked for them.
    pub inputs: Vec<String>,
    /// The latest run, if it ever ran.
    pub last_run: Option<LastRun>,
}

/// The latest run of a workflow, as the list shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LastRun {
    pub id: i64,
    /// `running`, `done`, `failed` or `interrupted`.
    pub state: String,
    pub trigger: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub error: Option<String>,
}

impl From<WorkflowRun> for LastRun {
    fn from(r: WorkflowRun) -> Self {
        LastRun {
            id: r.id,
            state: r.state,
            trigger: r.trigger,
            started_at: r.started_at,
            finished_at: r.finished_at,
            error: r.error,
        }
    }
}

/// The workflows read from the folder (at start, and again on [`Workflows::reload`]).
/// Clone it freely.
#[derive(Clone)]
pub struct Workflows {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    /// The folder and what its files are checked against, for reloading.
    dir: std::path::PathBuf,
    known: Known,
    /// What was read last; replaced whole by a reload.
    current: RwLock<Arc<Snapshot>>,
    services: OnceLock<Services>,
    fire: mpsc::Sender<String>,
    fired: Mutex<Option<mpsc::Receiver<String>>>,
    timers: Wake,
}

/// The workflows one reading of the folder gave, and the files' errors.
#[derive(Default)]
struct Snapshot {
    by_name: BTreeMap<String, Loaded>,
    errors: Vec<String>,
}

/// What a reload read.
#[derive(Debug, Clone, Serialize)]
pub struct Reloaded {
    /// How many workflows there are now.
    pub workflows: usize,
    /// Each file's error (`file:line: field: message`); a file with errors that held a
    /// workflow before keeps that version.
    pub errors: Vec<String>,
    /// The workflows that kept their previous version.
    pub kept: Vec<String>,
}

/// What files are checked against: the skills the box has (whether the owner may use one
/// is decided when it runs, as for the model's calls), the hooks and the channels owners have.
pub fn known(settings: &Settings) -> Known {
    let skills = crate::skills::known_in(settings).into_iter().map(|k| k.name).collect();
    let telegram_users = match settings.telegram.enabled {
        true => settings.telegram.allowed_chats().into_values().collect(),
        false => Vec::new(),
    };
    let satellite_user = (!settings.voice.wyoming_user.is_empty() && settings.home_assistant.announces())
        .then(|| settings.voice.wyoming_user.clone());
    Known {
        skills,
        hooks: settings.hooks.iter().map(|h| h.name.clone()).collect(),
        telegram_users,
        satellite_user,
    }
}

/// Reads and checks every `*.yaml`/`*.yml` file of the folder (none: no workflows). Two
/// files with one name: the second is an error.
pub fn read_dir(settings: &Settings) -> (Vec<Workflow>, Vec<LoadError>) {
    read_folder(&settings.workflows_dir(), &known(settings))
}

fn read_folder(dir: &std::path::Path, known: &Known) -> (Vec<Workflow>, Vec<LoadError>) {
    let mut paths: Vec<std::path::PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            let message = format!("cannot read the workflows folder: {e}");
            return (
                Vec::new(),
                vec![LoadError { file: dir.into(), line: None, field: String::new(), message }],
            );
        }
    };
    paths.sort();
    let (mut good, mut bad): (Vec<Workflow>, Vec<LoadError>) = (Vec::new(), Vec::new());
    for path in paths {
        match file::load(&path, known) {
            Ok(w) if good.iter().any(|g| g.name == w.name) => bad.push(LoadError {
                file: path,
                line: None,
                field: "name".into(),
                message: format!("'{}' is the name of another workflow file", w.name),
            }),
            Ok(w) => good.push(w),
            Err(e) => bad.push(e),
        }
    }
    (good, bad)
}

/// Reads the folder and resolves owners (blocking: files and the store). A file with
/// errors that held a workflow in `previous` keeps that version (named in `kept`).
fn read_snapshot(
    dir: &std::path::Path,
    known: &Known,
    store: &Store,
    previous: &Snapshot,
) -> (Snapshot, Vec<String>) {
    let (read, bad) = read_folder(dir, known);
    let mut errors: Vec<String> = bad.iter().map(ToString::to_string).collect();
    let mut broken: Vec<std::path::PathBuf> = bad.into_iter().map(|e| e.file).collect();
    let mut by_name = BTreeMap::new();
    for workflow in read {
        match store.find_user(&workflow.owner) {
            Ok(user) => {
                by_name.insert(
                    workflow.name.clone(),
                    Loaded { owner_id: user.id, workflow: Arc::new(workflow) },
                );
            }
            _ => {
                errors.push(format!(
                    "{}: owner: there is no user named '{}'",
                    workflow.file.display(),
                    workflow.owner
                ));
                broken.push(workflow.file.clone());
            }
        }
    }
    let mut kept = Vec::new();
    for old in previous.by_name.values() {
        if broken.contains(&old.workflow.file) && !by_name.contains_key(&old.workflow.name) {
            kept.push(old.workflow.name.clone());
            by_name.insert(old.workflow.name.clone(), old.clone());
        }
    }
    (Snapshot { by_name, errors }, kept)
}

fn enabled_key(name: &str) -> String {
    format!("workflow.{name}.enabled")
}

impl Workflows {
    /// Reads the folder and resolves owners; what cannot be used is logged and left out.
    /// `timers` wakes the timer worker when a run is scheduled.
    pub fn load(settings: &Settings, store: Store, timers: Wake) -> Workflows {
        let (dir, known) = (settings.workflows_dir(), known(settings));
        let (snapshot, _) = read_snapshot(&dir, &known, &store, &Snapshot::default());
        for e in &snapshot.errors {
            tracing::error!(error = %e, "workflow file left out");
        }
        tracing::info!(workflows = snapshot.by_name.len(), dir = %dir.display(), "workflows read");
        let (fire, fired) = mpsc::channel(FIRE_QUEUE);
        Workflows {
            inner: Arc::new(Inner {
                store,
                dir,
                known,
                current: RwLock::new(Arc::new(snapshot)),
                services: OnceLock::new(),
                fire,
                fired: Mutex::new(Some(fired)),
                timers,
            }),
        }
    }

    /// The folder the files are read from.
    pub fn dir(&self) -> &std::path::Path {
        &self.inner.dir
    }

    fn current(&self) -> Arc<Snapshot> {
        self.inner.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Reads the folder again (blocking: run it off the async runtime). Good files replace
    /// what they held, removed ones are gone, and a file with errors keeps its previous
    /// version; schedules follow (a changed schedule is queued anew, an unchanged one keeps
    /// its next run). Runs under way finish as they started.
    pub fn reload(&self) -> Result<Reloaded, StoreError> {
        let previous = self.current();
        let (snapshot, kept) =
            read_snapshot(&self.inner.dir, &self.inner.known, &self.inner.store, &previous);
        for e in &snapshot.errors {
            tracing::warn!(error = %e, "workflow file not reloaded");
        }
        let snapshot = Arc::new(snapshot);
        *self.inner.current.write().unwrap_or_else(|p| p.into_inner()) = snapshot.clone();
        // Scheduled jobs follow the new files.
        let store = &self.inner.store;
        for name in store.scheduled_workflows()? {
            let keep = snapshot.by_name.get(&name).is_some_and(|l| {
                matches!(l.workflow.trigger, Trigger::Schedule(_))
                    && self.enabled(&l.workflow).unwrap_or(false)
            });
            if !keep {
                store.unschedule_workflow(&name)?;
            }
        }
        for loaded in snapshot.by_name.values() {
            let Trigger::Schedule(now) = &loaded.workflow.trigger else { continue };
            let unchanged = previous.by_name.get(&loaded.workflow.name).is_some_and(|old| {
                matches!(&old.workflow.trigger, Trigger::Schedule(was) if was.describe() == now.describe())
                    && old.owner_id == loaded.owner_id
            });
            if self.enabled(&loaded.workflow)? {
                // Unchanged and queued: the job waiting keeps its time.
                match unchanged && store.workflow_next_run(&loaded.workflow.name)?.is_some() {
                    true => {}
                    false => self.schedule(loaded, false)?,
                }
            }
        }
        let reloaded = Reloaded { workflows: snapshot.by_name.len(), errors: snapshot.errors.clone(), kept };
        tracing::info!(workflows = reloaded.workflows, errors = reloaded.errors.len(), kept = ?reloaded.kept, "workflows reloaded");
        Ok(reloaded)
    }

    /// The files' errors, as `file:line: field: message`.
    pub fn errors(&self) -> Vec<String> {
        self.current().errors.clone()
    }

    pub fn get(&self, name: &str) -> Option<Loaded> {
        self.current().by_name.get(name).cloned()
    }

    pub fn all(&self) -> Vec<Loaded> {
        self.current().by_name.values().cloned().collect()
    }

    /// The workflow a hook starts, if any.
    pub fn for_hook(&self, hook: &str) -> Option<Loaded> {
        self.all().into_iter().find(|l| matches!(&l.workflow.trigger, Trigger::Webhook(h) if h == hook))
    }

    /// The enabled workflow of this user whose phrase the message contains (blocking: reads
    /// the on/off preference).
    pub fn for_phrase(&self, user_id: i64, message: &str) -> Option<Loaded> {
        let message = message.to_lowercase();
        self.all().into_iter().filter(|l| l.owner_id == user_id).find(|l| {
            matches!(&l.workflow.trigger, Trigger::Phrase(p) if message.contains(p.as_str()))
                && self.enabled(&l.workflow).unwrap_or(false)
        })
    }

    /// Whether it is on: the owner's choice, else the file's.
    pub fn enabled(&self, workflow: &Workflow) -> Result<bool, StoreError> {
        Ok(match self.inner.store.preference(&enabled_key(&workflow.name))?.as_deref() {
            Some("true") => true,
            Some("false") => false,
            _ => workflow.enabled,
        })
    }

    /// Turns it on or off (kept across restarts) and schedules or unschedules it.
    pub fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), WorkflowError> {
        let loaded = self.get(name).ok_or_else(|| WorkflowError::NotFound(name.into()))?;
        let loaded = &loaded;
        self.inner.store.set_preference(&enabled_key(name), if enabled { "true" } else { "false" })?;
        match enabled {
            true => self.schedule(loaded, false)?,
            false => self.inner.store.unschedule_workflow(name)?,
        }
        tracing::info!(workflow = name, enabled, "workflow turned {}", if enabled { "on" } else { "off" });
        Ok(())
    }

    /// Queues the next run of a scheduled workflow. `keep_due`: a job already due (the box
    /// was off at its time) is kept, so that it runs once now.
    fn schedule(&self, loaded: &Loaded, keep_due: bool) -> Result<(), StoreError> {
        let Trigger::Schedule(schedule) = &loaded.workflow.trigger else { return Ok(()) };
        let store = &self.inner.store;
        let now = crate::store::now();
        if keep_due && store.workflow_next_run(&loaded.workflow.name)?.is_some_and(|at| at <= now) {
            return Ok(());
        }
        if let Some(at) = schedule.next_after(now) {
            store.schedule_workflow(&loaded.workflow.name, loaded.owner_id, at)?;
            self.inner.timers.notify();
        }
        Ok(())
    }

    /// At start: runs left running are marked interrupted, each enabled scheduled
    /// workflow gets its next job (one missed while off runs once), the others lose theirs.
    pub fn reconcile(&self) -> Result<(), StoreError> {
        let store = &self.inner.store;
        let interrupted = store.interrupt_workflow_runs()?;
        if interrupted > 0 {
            tracing::warn!(runs = interrupted, "workflow runs interrupted by the last stop");
        }
        for name in store.scheduled_workflows()? {
            let keep = self.get(&name).is_some_and(|l| {
                matches!(l.workflow.trigger, Trigger::Schedule(_))
                    && self.enabled(&l.workflow).unwrap_or(false)
            });
            if !keep {
                store.unschedule_workflow(&name)?;
            }
        }
        for loaded in self.all() {
            if self.enabled(&loaded.workflow)? {
                self.schedule(&loaded, true)?;
            }
        }
        Ok(())
    }

    /// The listing of one workflow.
    pub fn listed(&self, loaded: &Loaded) -> Result<Listed, StoreError> {
        let w = &loaded.workflow;
        let enabled = self.enabled(w)?;
        let (trigger_detail, next_run) = match &w.trigger {
            Trigger::Schedule(s) => {
                let next = match enabled {
                    true => self.inner.store.workflow_next_run(&w.name)?,
                    false => None,
                };
                (s.describe(), next)
            }
            Trigger::Webhook(hook) => (hook.clone(), None),
            Trigger::Phrase(phrase) => (phrase.clone(), None),
        };
        let latest = RunFilter { workflow: Some(w.name.clone()), limit: 1 };
        let last_run = self.inner.store.workflow_runs(&latest)?.into_iter().next().map(LastRun::from);
        Ok(Listed {
            name: w.name.clone(),
            description: w.description.clone(),
            owner: w.owner.clone(),
            enabled,
            trigger: w.trigger.kind(),
            trigger_detail,
            next_run,
            file: w.file.display().to_string(),
            inputs: w.inputs(),
            last_run,
        })
    }

    /// Gives the runs what they use (the assistant, skills, notices); before this, runs
    /// fail as unavailable.
    pub fn set_services(&self, services: Services) {
        let _ = self.inner.services.set(services);
    }

    /// Fires a scheduled workflow's job (from the timer worker's thread): queues its next
    /// run and hands this one to the dispatcher. A workflow gone or off does nothing.
    pub fn fire_job(&self, job_id: &str) -> Result<(), String> {
        let store = &self.inner.store;
        let name = store
            .job_workflow(job_id)
            .map_err(|e| e.to_string())?
            .ok_or("a workflow job without its workflow")?;
        let Some(loaded) = self.get(&name) else {
            tracing::info!(workflow = %name, "a scheduled workflow is no longer there; not run");
            return Ok(());
        };
        if !self.enabled(&loaded.workflow).map_err(|e| e.to_string())? {
            return Ok(());
        }
        self.schedule(&loaded, false).map_err(|e| e.to_string())?;
        self.inner.fire.try_send(name).map_err(|e| format!("too many workflow runs waiting: {e}"))
    }

    /// Starts the task that runs what [`Workflows::fire_job`] hands over (once, on the
    /// runtime that serves).
    pub fn spawn_dispatcher(&self) {
        let Some(mut fired) = self.inner.fired.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return;
        };
        let workflows = self.clone();
        tokio::spawn(async move {
            while let Some(name) = fired.recv().await {
                match workflows.start(&name, "schedule", serde_json::json!({})).await {
                    Ok((id, _)) => tracing::info!(workflow = %name, run = id, "scheduled workflow started"),
                    Err(e) => tracing::warn!(workflow = %name, error = %e, "scheduled workflow not started"),
                }
            }
        });
    }

    /// Starts a run: recorded at once, its steps on a task of their own. Returns the run's
    /// id and the task, which ends with the run as recorded.
    pub async fn start(
        &self,
        name: &str,
        trigger: &'static str,
        input: serde_json::Value,
    ) -> Result<(i64, tokio::task::JoinHandle<WorkflowRun>), WorkflowError> {
        self.start_from(name, trigger, input, Origin::default()).await
    }

    /// [`Workflows::start`] from a channel and conversation (a phrase said in a turn).
    pub async fn start_from(
        &self,
        name: &str,
        trigger: &'static str,
        input: serde_json::Value,
        origin: Origin,
    ) -> Result<(i64, tokio::task::JoinHandle<WorkflowRun>), WorkflowError> {
        let loaded = self.get(name).ok_or_else(|| WorkflowError::NotFound(name.into()))?;
        let services = self
            .inner
            .services
            .get()
            .cloned()
            .ok_or_else(|| WorkflowError::Unavailable("not started".into()))?;
        let store = self.inner.store.clone();
        let (wf, owner) = (loaded.workflow.name.clone(), loaded.owner_id);
        let id = store.run(move |s| s.start_workflow_run(&wf, owner, trigger)).await?;
        let task = tokio::spawn(run::execute(services, store, loaded, id, trigger, input, origin));
        Ok((id, task))
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{temp_store, Role};

    fn settings(dir: &std::path::Path) -> Settings {
        let mut s = Settings::default();
        s.workflows.dir = dir.to_path_buf();
        s
    }

    #[test]
    fn a_missed_schedule_runs_once_and_turning_off_unschedules() {
        let (_d, store) = temp_store();
        store.create_user("alice", Role::User).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let text = "name: tick\nowner: alice\ntrigger: { every: 1h }\nsteps:\n  - skill: clock\n";
        std::fs::write(dir.path().join("tick.yaml"), text).unwrap();
        std::fs::write(
            dir.path().join("bad.yaml"),
            "name: bad\nowner: alice\ntrigger: { every: 1h }\nsteps: []\n",
        )
        .unwrap();
        let workflows = Workflows::load(&settings(dir.path()), store.clone(), Wake::default());
        assert_eq!(workflows.all().len(), 1);
        assert!(workflows.errors()[0].contains("bad.yaml:4: steps"), "{:?}", workflows.errors());
        workflows.reconcile().unwrap();
        let next = store.workflow_next_run("tick").unwrap().unwrap();
        assert!(next > crate::store::now() + 3500);
        // The box was off past its time: the due job stays, to run once at start.
        store.schedule_workflow("tick", 1, crate::store::now() - 7200).unwrap();
        workflows.reconcile().unwrap();
        assert!(store.workflow_next_run("tick").unwrap().unwrap() < crate::store::now());
        workflows.set_enabled("tick", false).unwrap();
        assert_eq!(store.workflow_next_run("tick").unwrap(), None);
        assert!(!workflows.enabled(&workflows.get("tick").unwrap().workflow).unwrap());
        workflows.reconcile().unwrap();
        assert_eq!(store.workflow_next_run("tick").unwrap(), None, "off stays off");
    }

    #[test]
    fn a_reload_takes_changes_and_a_broken_file_keeps_its_last_good_version() {
        let (_d, store) = temp_store();
        store.create_user("alice", Role::User).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let hello = |reply: &str| {
            format!("name: hello\nowner: alice\ntrigger: {{ phrase: hello }}\nsteps:\n  - reply: {reply}\n")
        };
        std::fs::write(dir.path().join("hello.yaml"), hello("one")).unwrap();
        let workflows = Workflows::load(&settings(dir.path()), store.clone(), Wake::default());
        let alice = workflows.get("hello").unwrap().owner_id;
        let reply =
            |w: &Workflows| match &w.for_phrase(alice, "Hello there").unwrap().workflow.steps[0].action {
                Action::Reply(text) => text.clone(),
                other => panic!("{other:?}"),
            };
        assert_eq!(reply(&workflows), "one");

        std::fs::write(dir.path().join("hello.yaml"), hello("two")).unwrap();
        let tick = "name: tick\nowner: alice\ntrigger: { every: 1h }\nsteps:\n  - skill: clock\n";
        std::fs::write(dir.path().join("tick.yaml"), tick).unwrap();
        let reloaded = workflows.reload().unwrap();
        assert_eq!((reloaded.workflows, reloaded.errors.len(), reloaded.kept.len()), (2, 0, 0));
        assert_eq!(reply(&workflows), "two");
        let next = store.workflow_next_run("tick").unwrap().expect("a new schedule is queued");

        // Broken: the last good version stays; an unchanged schedule keeps its time.
        std::fs::write(
            dir.path().join("hello.yaml"),
            "name: hello\nowner: alice\ntrigger: { phrase: hello }\nsteps: []\n",
        )
        .unwrap();
        let reloaded = workflows.reload().unwrap();
        assert_eq!(reloaded.kept, ["hello"]);
        assert!(reloaded.errors[0].contains("hello.yaml:4: steps"), "{reloaded:?}");
        assert_eq!(workflows.errors(), reloaded.errors);
        assert_eq!(reply(&workflows), "two");
        assert_eq!(store.workflow_next_run("tick").unwrap(), Some(next));

        // Changed schedule: queued anew; removed: gone with its job.
        std::fs::write(dir.path().join("tick.yaml"), tick.replace("1h", "2h")).unwrap();
        workflows.reload().unwrap();
        assert!(store.workflow_next_run("tick").unwrap().unwrap() > next + 3000);
        std::fs::remove_file(dir.path().join("tick.yaml")).unwrap();
        assert_eq!(workflows.reload().unwrap().workflows, 1);
        assert!(workflows.get("tick").is_none());
        assert_eq!(store.workflow_next_run("tick").unwrap(), None);
    }

    #[test]
    fn the_listing_tells_the_last_run_and_the_input_steps_read() {
        let (_d, store) = temp_store();
        let alice = store.create_user("alice", Role::User).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let text =
            "name: echo\nowner: alice\ntrigger: { phrase: echo }\nsteps:\n  - reply: \"{{ input.text }}\"\n";
        std::fs::write(dir.path().join("echo.yaml"), text).unwrap();
        let workflows = Workflows::load(&settings(dir.path()), store.clone(), Wake::default());
        assert_eq!(workflows.dir(), dir.path());
        let loaded = workflows.get("echo").unwrap();
        let listed = workflows.listed(&loaded).unwrap();
        assert_eq!((listed.inputs.as_slice(), listed.last_run), (&["text".to_string()][..], None));

        let first = store.start_workflow_run("echo", alice.id, "manual").unwrap();
        store.finish_workflow_run(first, &serde_json::json!([]), Ok("hi"), None).unwrap();
        let second = store.start_workflow_run("echo", alice.id, "phrase").unwrap();
        store
            .finish_workflow_run(second, &serde_json::json!([]), Err("step 'step1' failed: no"), None)
            .unwrap();
        let last = workflows.listed(&loaded).unwrap().last_run.expect("it ran");
        assert_eq!((last.id, last.state.as_str(), last.trigger.as_str()), (second, "failed", "phrase"));
        assert_eq!(last.error.as_deref(), Some("step 'step1' failed: no"));
        assert!(last.finished_at.is_some());
    }
}
