//! The background job runner: one worker thread that claims persistent jobs from
//! SQLite (see `store::jobs`) and runs them, a timer worker for the jobs that wait for a
//! time (reminders), a heartbeat thread that keeps their claims alive, and wake-up calls
//! for new work. Jobs survive restarts: a job whose runner died is claimed again by the
//! next one (in this process or another), and a reminder due while the box was off fires
//! when it starts.

use crate::knowledge::Knowledge;
use crate::reminders::Reminders;
use crate::store::Job;
use crate::workflows::Workflows;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// A running job whose heartbeat is older than this is considered abandoned.
pub const STALE_SECS: i64 = 30;
const HEARTBEAT: Duration = Duration::from_secs(5);
/// How often an idle runner looks for jobs queued by other processes.
const POLL: Duration = Duration::from_secs(2);

/// The longest the timer worker sleeps without looking (a reminder added by another
/// process, or a clock that jumped).
const TIMER_POLL: Duration = Duration::from_secs(30);

/// A wake-up call for a worker thread. Clone it freely.
#[derive(Clone, Default)]
pub struct Wake(Arc<(Mutex<bool>, Condvar)>);

impl Wake {
    pub fn notify(&self) {
        let (flag, condvar) = &*self.0;
        *flag.lock().unwrap_or_else(|p| p.into_inner()) = true;
        condvar.notify_one();
    }

    /// Waits for a call or `timeout`, whichever comes first.
    fn wait(&self, timeout: Duration) {
        let (flag, condvar) = &*self.0;
        let guard = flag.lock().unwrap_or_else(|p| p.into_inner());
        let (mut woken, _) =
            condvar.wait_timeout_while(guard, timeout, |w| !*w).unwrap_or_else(|p| p.into_inner());
        *woken = false;
    }
}

/// A handle to the runner; clone it freely.
#[derive(Clone)]
pub struct JobRunner {
    wake: Wake,
    owner: Arc<str>,
}

impl JobRunner {
    /// Starts the worker and heartbeat threads, and with `timers` (the service: reminders
    /// and the wake-up call they ring when one is set) the timer worker, which also fires
    /// scheduled `workflows`.
    pub fn start(
        knowledge: Knowledge,
        timers: Option<(Reminders, Wake)>,
        workflows: Option<Workflows>,
    ) -> JobRunner {
        let owner: Arc<str> = format!("{}:{}", std::process::id(), uuid::Uuid::new_v4().simple()).into();
        let runner = JobRunner { wake: Wake::default(), owner };
        if let Some((reminders, wake)) = timers {
            let store = knowledge.store.clone();
            let timer_owner = runner.owner.clone();
            std::thread::Builder::new()
                .name("hearth-timers".into())
                .spawn(move || timer_work(&store, &timer_owner, &reminders, workflows.as_ref(), &wake))
                .expect("spawning the timer thread");
        }
        let worker = runner.clone();
        let worker_knowledge = knowledge.clone();
        std::thread::Builder::new()
            .name("hearth-jobs".into())
            .spawn(move || {
                // Jobs make a few async calls (embeddings) from this thread.
                match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => worker.work(worker_knowledge, runtime.handle()),
                    Err(e) => tracing::error!(error = %e, "cannot start the job runtime; jobs will not run"),
                }
            })
            .expect("spawning the job thread");
        let beat = runner.owner.clone();
        std::thread::Builder::new()
            .name("hearth-jobs-heartbeat".into())
            .spawn(move || loop {
                std::thread::sleep(HEARTBEAT);
                if let Err(e) = knowledge.store.job_heartbeat(&beat) {
                    tracing::warn!(error = %e, "job heartbeat failed");
                }
            })
            .expect("spawning the heartbeat thread");
        runner
    }

    /// Tells the worker there is new work.
    pub fn wake(&self) {
        self.wake.notify();
    }

    fn wait(&self) {
        self.wake.wait(POLL);
    }

    fn work(&self, knowledge: Knowledge, runtime: &tokio::runtime::Handle) {
        loop {
            match knowledge.store.claim_job(&self.owner, STALE_SECS) {
                Ok(Some(job)) => self.run(&knowledge, runtime, job),
                Ok(None) => self.wait(),
                Err(e) => {
                    tracing::error!(error = %e, "cannot claim jobs");
                    self.wait();
                }
            }
        }
    }

    fn run(&self, knowledge: &Knowledge, runtime: &tokio::runtime::Handle, job: Job) {
        let started = std::time::Instant::now();
        tracing::info!(job = %job.id, kind = %job.kind, attempt = job.attempts, "job started");
        let store = &knowledge.store;
        let mut progress = |p: f64| store.job_progress(&job.id, &self.owner, p).unwrap_or(true);
        // Extraction, chunking and embedding need a core: generation gives one up meanwhile.
        let _busy = crate::governor::busy();
        let outcome = match job.kind.as_str() {
            "ingest" => catch_unwind(AssertUnwindSafe(|| knowledge.ingest(&job, runtime, &mut progress)))
                .unwrap_or_else(|_| Err("the job crashed while reading the document".into())),
            other => Err(format!("unknown job kind '{other}'")),
        };
        let result = match &outcome {
            Ok(chunks) => {
                tracing::info!(job = %job.id, chunks, secs = started.elapsed().as_secs_f32(), "job done");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "job failed");
                if let Some(id) = job.document_id {
                    if let Err(err) = store.fail_document(id, e) {
                        tracing::warn!(error = %err, "could not mark the document failed");
                    }
                }
                Err(e.clone())
            }
        };
        if let Err(e) = store.finish_job(&job.id, &self.owner, result) {
            tracing::error!(job = %job.id, error = %e, "could not record the job's end");
        }
        if let Some(index) = &knowledge.index {
            if let Err(e) = index.sync(store) {
                tracing::warn!(error = %e, "search index update failed; it is retried");
            }
        }
    }
}

/// The timer worker: fires each timed job when it is due, then sleeps until the next one
/// (or a wake-up call, or [`TIMER_POLL`]).
fn timer_work(
    store: &crate::store::Store,
    owner: &str,
    reminders: &Reminders,
    workflows: Option<&Workflows>,
    wake: &Wake,
) {
    loop {
        let now = crate::store::now();
        match store.claim_timed_job(owner, now) {
            Ok(Some(job)) => {
                let outcome = match (job.reminder_id, job.kind.as_str(), workflows) {
                    (_, "workflow", Some(workflows)) => {
                        catch_unwind(AssertUnwindSafe(|| workflows.fire_job(&job.id)))
                            .unwrap_or_else(|_| Err("the workflow crashed while firing".into()))
                    }
                    (Some(id), _, _) => catch_unwind(AssertUnwindSafe(|| reminders.fire(id)))
                        .unwrap_or_else(|_| Err("the reminder crashed while firing".into())),
                    _ => Err(format!("a '{}' job without its reminder or workflow", job.kind)),
                };
                if let Err(e) = &outcome {
                    tracing::warn!(job = %job.id, error = %e, "timed job failed");
                }
                if let Err(e) = store.finish_job(&job.id, owner, outcome) {
                    tracing::error!(job = %job.id, error = %e, "could not record the job's end");
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "cannot claim timed jobs"),
        }
        let next = store.next_timed_job_at().ok().flatten();
        let sleep = next.map_or(TIMER_POLL, |at| Duration::from_secs((at - now).clamp(1, 30) as u64));
        wake.wait(sleep.min(TIMER_POLL));
    }
}
