//! Persistent background jobs: queued → running (with progress) → done or failed.
//!
//! A runner claims a job by writing its owner id (`pid:random`) and keeps a heartbeat.
//! A `running` job whose owner process is gone, or whose heartbeat went stale, is
//! claimed again, so a job interrupted by a crash or restart resumes. A job that was
//! claimed [`MAX_ATTEMPTS`] times fails instead of crashing the box forever.

use super::{now, Result, Store, StoreError};
use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;

pub const MAX_ATTEMPTS: i64 = 3;

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Job {
    pub id: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document_id: Option<i64>,
    /// `queued`, `running`, `done` or `failed`.
    pub state: String,
    /// 0 to 100.
    pub progress: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub attempts: i64,
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(skip)]
    pub user_id: i64,
    /// Not before this time (Unix seconds); `None`: at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reminder_id: Option<i64>,
}

const JOB_COLUMNS: &str = "id, kind, document_id, state, progress, error, attempts, created_at, updated_at, \
                           user_id, run_at, reminder_id";

/// The kinds of job that wait for a time (`run_at`), run by their own worker so that a
/// long ingest cannot hold a timer back: reminders and scheduled workflows.
pub const TIMED_KINDS: &str = "('reminder', 'workflow')";

fn job_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Job> {
    Ok(Job {
        id: row.get(0)?,
        kind: row.get(1)?,
        document_id: row.get(2)?,
        state: row.get(3)?,
        progress: row.get(4)?,
        error: row.get(5)?,
        attempts: row.get(6)?,
        created_at: row.get(7)?,
        updated_at: row.get(8)?,
        user_id: row.get(9)?,
        run_at: row.get(10)?,
        reminder_id: row.get(11)?,
    })
}

pub(super) fn insert_job(
    tx: &Transaction<'_>,
    user_id: i64,
    kind: &str,
    document_id: Option<i64>,
) -> Result<String> {
    let id = uuid::Uuid::new_v4().to_string();
    let t = now();
    tx.execute(
        "INSERT INTO jobs (id, user_id, kind, document_id, state, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, 'queued', ?5, ?5)",
        params![id, user_id, kind, document_id, t],
    )?;
    Ok(id)
}

/// A job that waits until `run_at` (Unix seconds), for a reminder.
pub(super) fn insert_timed_job(
    tx: &Transaction<'_>,
    user_id: i64,
    kind: &str,
    reminder_id: i64,
    run_at: i64,
) -> Result<String> {
    let id = uuid::Uuid::new_v4().to_string();
    tx.execute(
        "INSERT INTO jobs (id, user_id, kind, reminder_id, run_at, state, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6, ?6)",
        params![id, user_id, kind, reminder_id, run_at, now()],
    )?;
    Ok(id)
}

/// Whether the runner that wrote `owner` (`pid:random`) is still alive on this machine.
/// An owner with our own pid but another id is an earlier process that had our pid
/// (common in containers, where the service is often pid 1).
fn owner_alive(owner: &str, me: &str) -> bool {
    let Some(pid) = owner.split(':').next().and_then(|p| p.parse::<u32>().ok()) else {
        return false;
    };
    if pid == std::process::id() {
        return owner == me;
    }
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

impl Store {
    /// A job, when it belongs to `user_id` (any job for `None`).
    pub fn job(&self, user_id: Option<i64>, id: &str) -> Result<Job> {
        let job = self
            .reader()
            .query_row(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"), [id], job_from_row)
            .optional()?;
        job.filter(|j| user_id.is_none_or(|u| u == j.user_id))
            .ok_or_else(|| StoreError::NotFound(format!("job '{id}'")))
    }

    /// This user's jobs, newest first.
    pub fn jobs(&self, user_id: i64, limit: u32, offset: u32) -> Result<Vec<Job>> {
        let conn = self.reader();
        let mut stmt = conn.prepare(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE user_id = ?1
             ORDER BY created_at DESC, rowid DESC LIMIT ?2 OFFSET ?3"
        ))?;
        let rows = stmt.query_map(params![user_id, limit, offset], job_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Claims the oldest runnable job for `owner`: a queued one, or a running one whose
    /// owner died or stopped beating for `stale_secs`. A job out of attempts fails.
    pub fn claim_job(&self, owner: &str, stale_secs: i64) -> Result<Option<Job>> {
        self.claim(
            owner,
            stale_secs,
            &format!("kind NOT IN {TIMED_KINDS} AND coalesce(run_at, 0) <= ?1"),
            now(),
        )
    }

    /// Claims the timed job (a reminder's) due soonest by `at`, for `owner`. A timed job
    /// whose runner died is claimed again at once (its owner is gone), like any job.
    pub fn claim_timed_job(&self, owner: &str, at: i64) -> Result<Option<Job>> {
        self.claim(owner, crate::jobs::STALE_SECS, &format!("kind IN {TIMED_KINDS} AND run_at <= ?1"), at)
    }

    /// When the next timed job is due, if any is waiting.
    pub fn next_timed_job_at(&self) -> Result<Option<i64>> {
        Ok(self.reader().query_row(
            &format!(
                "SELECT min(run_at) FROM jobs WHERE state IN ('queued', 'running') AND kind IN {TIMED_KINDS}"
            ),
            [],
            |r| r.get(0),
        )?)
    }

    fn claim(&self, owner: &str, stale_secs: i64, which: &str, at: i64) -> Result<Option<Job>> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        let t = now();
        // (id, state, owner, heartbeat_at, attempts)
        type Candidate = (String, String, Option<String>, Option<i64>, i64);
        let candidates: Vec<Candidate> = {
            let mut stmt = tx.prepare(&format!(
                "SELECT id, state, owner, heartbeat_at, attempts FROM jobs
                 WHERE state IN ('queued', 'running') AND {which} ORDER BY run_at, created_at, rowid"
            ))?;
            let rows =
                stmt.query_map([at], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut claimed = None;
        for (id, state, job_owner, heartbeat, attempts) in candidates {
            let runnable = state == "queued"
                || !job_owner.as_deref().is_some_and(|o| owner_alive(o, owner))
                || heartbeat.is_none_or(|h| t - h > stale_secs);
            if !runnable {
                continue;
            }
            if attempts >= MAX_ATTEMPTS {
                tx.execute(
                    "UPDATE jobs SET state = 'failed', updated_at = ?2,
                       error = 'gave up after the job was interrupted ' || attempts || ' times'
                     WHERE id = ?1",
                    params![id, t],
                )?;
                tx.execute(
                    "UPDATE documents SET status = 'failed', error = 'ingestion was interrupted too often'
                     WHERE id = (SELECT document_id FROM jobs WHERE id = ?1)",
                    [&id],
                )?;
                continue;
            }
            tx.execute(
                "UPDATE jobs SET state = 'running', owner = ?2, heartbeat_at = ?3, updated_at = ?3,
                   attempts = attempts + 1, progress = 0 WHERE id = ?1",
                params![id, owner, t],
            )?;
            claimed = Some(tx.query_row(
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"),
                [&id],
                job_from_row,
            )?);
            break;
        }
        tx.commit()?;
        Ok(claimed)
    }

    /// Records progress (0-100) of a job this owner runs. `false` when the job is no
    /// longer this owner's (deleted, or failed by someone else): stop working on it.
    pub fn job_progress(&self, id: &str, owner: &str, progress: f64) -> Result<bool> {
        let n = self.writer().execute(
            "UPDATE jobs SET progress = ?3, heartbeat_at = ?4, updated_at = ?4
             WHERE id = ?1 AND owner = ?2 AND state = 'running'",
            params![id, owner, progress.clamp(0.0, 100.0), now()],
        )?;
        Ok(n == 1)
    }

    /// Keeps every running job of this owner alive.
    pub fn job_heartbeat(&self, owner: &str) -> Result<()> {
        self.writer().execute(
            "UPDATE jobs SET heartbeat_at = ?2 WHERE owner = ?1 AND state = 'running'",
            params![owner, now()],
        )?;
        Ok(())
    }

    /// Ends a job this owner runs: done, or failed with the reason.
    pub fn finish_job(&self, id: &str, owner: &str, outcome: Result<(), String>) -> Result<()> {
        let (state, progress, error) = match outcome {
            Ok(()) => ("done", 100.0, None),
            Err(e) => ("failed", 0.0, Some(e)),
        };
        self.writer().execute(
            "UPDATE jobs SET state = ?3, progress = CASE WHEN ?3 = 'done' THEN ?4 ELSE progress END,
               error = ?5, updated_at = ?6
             WHERE id = ?1 AND owner = ?2 AND state = 'running'",
            params![id, owner, state, progress, error, now()],
        )?;
        Ok(())
    }

    /// Whether any job is waiting or running (for progress displays and tests).
    pub fn pending_jobs(&self) -> Result<i64> {
        Ok(self.reader().query_row(
            "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')",
            [],
            |r| r.get(0),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{temp_store, Role};

    #[test]
    fn jobs_are_claimed_once_and_resumed_after_their_owner_dies() {
        let (_dir, store) = temp_store();
        let alice = store.create_user("alice", Role::User).unwrap();
        let queued = store.add_document(alice.id, "a.txt", "text", b"hello").unwrap();
        let job_id = queued.job_id.clone().unwrap();

        let me = format!("{}:a", std::process::id());
        let job = store.claim_job(&me, 30).unwrap().expect("a queued job");
        assert_eq!((job.id.as_str(), job.state.as_str(), job.attempts), (job_id.as_str(), "running", 1));
        assert!(store.claim_job(&me, 30).unwrap().is_none(), "a live owner keeps its job");

        // Pretend the owner was a process that no longer exists.
        store.writer().execute("UPDATE jobs SET owner = '999999999:x'", []).unwrap();
        let again = store.claim_job(&me, 30).unwrap().expect("a dead owner's job is claimed again");
        assert_eq!(again.attempts, 2);
        assert!(store.job_progress(&job_id, &me, 50.0).unwrap());
        assert!(!store.job_progress(&job_id, "other:1", 60.0).unwrap(), "only the owner reports");
        let earlier_me = format!("{}:old", std::process::id());
        assert!(!super::owner_alive(&earlier_me, &me), "an earlier process with our pid is gone");
        store.finish_job(&job_id, &me, Ok(())).unwrap();
        let done = store.job(Some(alice.id), &job_id).unwrap();
        assert_eq!((done.state.as_str(), done.progress), ("done", 100.0));
        assert!(store.job(Some(alice.id + 1), &job_id).is_err(), "other users cannot see it");
    }

    #[test]
    fn a_job_interrupted_too_often_fails() {
        let (_dir, store) = temp_store();
        let alice = store.create_user("alice", Role::User).unwrap();
        let queued = store.add_document(alice.id, "a.txt", "text", b"hello").unwrap();
        for _ in 0..super::MAX_ATTEMPTS {
            store.claim_job("999999999:x", 30).unwrap().unwrap();
        }
        assert!(store.claim_job("999999999:x", 30).unwrap().is_none());
        let job = store.job(None, queued.job_id.as_deref().unwrap()).unwrap();
        assert_eq!(job.state, "failed");
        assert_eq!(store.document(alice.id, queued.document.id).unwrap().status, "failed");
    }
}
