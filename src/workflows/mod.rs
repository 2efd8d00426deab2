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
pub use run::{Services, StepRecord};

use crate::config::Settings;
use crate::jobs::Wake;
use crate::store::{RunFilter, Store, StoreError, WorkflowRun};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
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

/// The workflows read at start. Clone it freely.
#[derive(Clone)]
pub struct Workflows {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    /// The folder the files were read from.
    dir: std::path::PathBuf,
    by_name: BTreeMap<String, Loaded>,
    errors: Vec<String>,
    services: OnceLock<Services>,
    fire: mpsc::Sender<String>,
    fired: Mutex<Option<mpsc::Receiver<String>>>,
    timers: Wake,
}

/// What files are checked against: the skills the settings enable and the hooks.
pub fn known(settings: &Settings) -> Known {
    let mut skills = settings.skills.enabled.clone();
    skills.extend(settings.skills.webhooks.iter().map(|w| w.name.clone()));
    if settings.home_assistant.enabled() {
        skills.extend(crate::skills::home_assistant::NAMES.iter().map(|s| s.to_string()));
    }
    Known { skills, hooks: settings.hooks.iter().map(|h| h.name.clone()).collect() }
}

/// Reads and checks every `*.yaml`/`*.yml` file of the folder (none: no workflows). Two
/// files with one name: the second is an error.
pub fn read_dir(settings: &Settings) -> (Vec<Workflow>, Vec<LoadError>) {
    let dir = settings.workflows_dir();
    let known = known(settings);
    let mut paths: Vec<std::path::PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            let message = format!("cannot read the workflows folder: {e}");
            return (Vec::new(), vec![LoadError { file: dir, line: None, field: String::new(), message }]);
        }
    };
    paths.sort();
    let (mut good, mut bad): (Vec<Workflow>, Vec<LoadError>) = (Vec::new(), Vec::new());
    for path in paths {
        match file::load(&path, &known) {
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

fn enabled_key(name: &str) -> String {
    format!("workflow.{name}.enabled")
}

impl Workflows {
    /// Reads the folder and resolves owners; what cannot be used is logged and left out.
    /// `timers` wakes the timer worker when a run is scheduled.
    pub fn load(settings: &Settings, store: Store, timers: Wake) -> Workflows {
        let (read, errors) = read_dir(settings);
        let mut errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let mut by_name = BTreeMap::new();
        for workflow in read {
            match store.find_user(&workflow.owner) {
                Ok(user) => {
                    by_name.insert(
                        workflow.name.clone(),
                        Loaded { owner_id: user.id, workflow: Arc::new(workflow) },
                    );
                }
                _ => errors.push(format!(
                    "{}: owner: there is no user named '{}'",
                    workflow.file.display(),
                    workflow.owner
                )),
            }
        }
        for e in &errors {
            tracing::error!(error = %e, "workflow file left out");
        }
        tracing::info!(workflows = by_name.len(), dir = %settings.workflows_dir().display(), "workflows read");
        let (fire, fired) = mpsc::channel(FIRE_QUEUE);
        Workflows {
            inner: Arc::new(Inner {
                store,
                dir: settings.workflows_dir(),
                by_name,
                errors,
                services: OnceLock::new(),
                fire,
                fired: Mutex::new(Some(fired)),
                timers,
            }),
        }
    }

    /// The folder the files are read from (at start).
    pub fn dir(&self) -> &std::path::Path {
        &self.inner.dir
    }

    pub fn errors(&self) -> &[String] {
        &self.inner.errors
    }

    pub fn get(&self, name: &str) -> Option<&Loaded> {
        self.inner.by_name.get(name)
    }

    pub fn all(&self) -> impl Iterator<Item = &Loaded> {
        self.inner.by_name.values()
    }

    /// The workflow a hook starts, if any.
    pub fn for_hook(&self, hook: &str) -> Option<&Loaded> {
        self.all().find(|l| matches!(&l.workflow.trigger, Trigger::Webhook(h) if h == hook))
    }

    /// The enabled workflow of this user whose phrase the message contains.
    pub fn for_phrase(&self, user_id: i64, message: &str) -> Option<&Loaded> {
        let message = message.to_lowercase();
        self.all().filter(|l| l.owner_id == user_id).find(|l| {
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
                self.schedule(loaded, true)?;
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
        self.schedule(loaded, false).map_err(|e| e.to_string())?;
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
        let loaded = self.get(name).cloned().ok_or_else(|| WorkflowError::NotFound(name.into()))?;
        let services = self
            .inner
            .services
            .get()
            .cloned()
            .ok_or_else(|| WorkflowError::Unavailable("not started".into()))?;
        let store = self.inner.store.clone();
        let (wf, owner) = (loaded.workflow.name.clone(), loaded.owner_id);
        let id = store.run(move |s| s.start_workflow_run(&wf, owner, trigger)).await?;
        let task = tokio::spawn(run::execute(services, store, loaded, id, trigger, input));
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
        assert_eq!(workflows.all().count(), 1);
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
    fn the_listing_tells_the_last_run_and_the_input_steps_read() {
        let (_d, store) = temp_store();
        let alice = store.create_user("alice", Role::User).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let text = "name: echo\nowner: alice\ntrigger: { phrase: echo }\nsteps:\n  - reply: \"{{ input.text }}\"\n";
        std::fs::write(dir.path().join("echo.yaml"), text).unwrap();
        let workflows = Workflows::load(&settings(dir.path()), store.clone(), Wake::default());
        assert_eq!(workflows.dir(), dir.path());
        let loaded = workflows.get("echo").unwrap();
        let listed = workflows.listed(loaded).unwrap();
        assert_eq!((listed.inputs.as_slice(), listed.last_run), (&["text".to_string()][..], None));

        let first = store.start_workflow_run("echo", alice.id, "manual").unwrap();
        store.finish_workflow_run(first, &serde_json::json!([]), Ok("hi"), None).unwrap();
        let second = store.start_workflow_run("echo", alice.id, "phrase").unwrap();
        store.finish_workflow_run(second, &serde_json::json!([]), Err("step 'step1' failed: no"), None).unwrap();
        let last = workflows.listed(loaded).unwrap().last_run.expect("it ran");
        assert_eq!((last.id, last.state.as_str(), last.trigger.as_str()), (second, "failed", "phrase"));
        assert_eq!(last.error.as_deref(), Some("step 'step1' failed: no"));
        assert!(last.finished_at.is_some());
    }
}
