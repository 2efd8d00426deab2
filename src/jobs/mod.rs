//! The background job runner: one worker thread that claims persistent jobs from
//! SQLite (see `store::jobs`) and runs them, a heartbeat thread that keeps its claims
//! alive, and a wake-up call for new work. Jobs survive restarts: a job whose runner
//! died is claimed again by the next one (in this process or another).

use crate::knowledge::Knowledge;
use crate::store::Job;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// A running job whose heartbeat is older than this is considered abandoned.
pub const STALE_SECS: i64 = 30;
const HEARTBEAT: Duration = Duration::from_secs(5);
/// How often an idle runner looks for jobs queued by other processes.
const POLL: Duration = Duration::from_secs(2);

/// A handle to the runner; clone it freely.
#[derive(Clone)]
pub struct JobRunner {
    wake: Arc<(Mutex<bool>, Condvar)>,
    owner: Arc<str>,
}

impl JobRunner {
    /// Starts the worker and heartbeat threads.
    pub fn start(knowledge: Knowledge) -> JobRunner {
        let owner: Arc<str> = format!("{}:{}", std::process::id(), uuid::Uuid::new_v4().simple()).into();
        let runner = JobRunner { wake: Arc::new((Mutex::new(false), Condvar::new())), owner };
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
        let (flag, condvar) = &*self.wake;
        *flag.lock().unwrap_or_else(|p| p.into_inner()) = true;
        condvar.notify_one();
    }

    fn wait(&self) {
        let (flag, condvar) = &*self.wake;
        let guard = flag.lock().unwrap_or_else(|p| p.into_inner());
        let (mut woken, _) =
            condvar.wait_timeout_while(guard, POLL, |w| !*w).unwrap_or_else(|p| p.into_inner());
        *woken = false;
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
