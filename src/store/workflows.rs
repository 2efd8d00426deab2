//! Workflows' records: their runs (each step's record kept as JSON), the timed job that
//! waits for a scheduled workflow's next run, and the signatures inbound webhooks have
//! already used within their replay window.

use super::{now, Result, Store, StoreError};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

/// One run of a workflow.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WorkflowRun {
    pub id: i64,
    pub workflow: String,
    #[serde(skip)]
    pub user_id: i64,
    /// `schedule`, `webhook`, `phrase` or `manual`.
    pub trigger: String,
    /// `running`, `done`, `failed`, or `interrupted` (the process stopped during it).
    pub state: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// Each step's record (`workflows::StepRecord`), in order.
    pub steps: serde_json::Value,
    pub output: Option<String>,
    pub error: Option<String>,
    /// Where the run's summary was written in the owner's history.
    pub conversation_id: Option<String>,
}

const RUN_COLUMNS: &str =
    "id, workflow, user_id, trigger, state, started_at, finished_at, steps, output, error, conversation_id";

fn run_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<WorkflowRun> {
    let steps: String = row.get(7)?;
    Ok(WorkflowRun {
        id: row.get(0)?,
        workflow: row.get(1)?,
        user_id: row.get(2)?,
        trigger: row.get(3)?,
        state: row.get(4)?,
        started_at: row.get(5)?,
        finished_at: row.get(6)?,
        steps: serde_json::from_str(&steps).unwrap_or_default(),
        output: row.get(8)?,
        error: row.get(9)?,
        conversation_id: row.get(10)?,
    })
}

/// Which runs to list.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub workflow: Option<String>,
    pub limit: u32,
}

impl Store {
    /// Records a run as started.
    pub fn start_workflow_run(&self, workflow: &str, user_id: i64, trigger: &str) -> Result<i64> {
        let conn = self.writer();
        conn.execute(
            "INSERT INTO workflow_runs (workflow, user_id, trigger, state, started_at)
             VALUES (?1, ?2, ?3, 'running', ?4)",
            params![workflow, user_id, trigger, now()],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// Records the steps done so far of a running run.
    pub fn workflow_run_steps(&self, id: i64, steps: &serde_json::Value) -> Result<()> {
        self.writer()
            .execute("UPDATE workflow_runs SET steps = ?2 WHERE id = ?1", params![id, steps.to_string()])?;
        Ok(())
    }

    /// Ends a run: `done` with its output, or `failed` with the error.
    pub fn finish_workflow_run(
        &self,
        id: i64,
        steps: &serde_json::Value,
        outcome: std::result::Result<&str, &str>,
        conversation_id: Option<&str>,
    ) -> Result<()> {
        let (state, output, error) = match outcome {
            Ok(output) => ("done", Some(output), None),
            Err(error) => ("failed", None, Some(error)),
        };
        self.writer().execute(
            "UPDATE workflow_runs SET state = ?2, finished_at = ?3, steps = ?4, output = ?5, error = ?6,
               conversation_id = ?7
             WHERE id = ?1",
            params![id, state, now(), steps.to_string(), output, error, conversation_id],
        )?;
        Ok(())
    }

    /// Marks the runs a stopped process left `running` as `interrupted` (at start).
    pub fn interrupt_workflow_runs(&self) -> Result<usize> {
        Ok(self.writer().execute(
            "UPDATE workflow_runs SET state = 'interrupted', finished_at = ?1,
               error = 'the service stopped during the run'
             WHERE state = 'running'",
            [now()],
        )?)
    }

    pub fn workflow_run(&self, id: i64) -> Result<WorkflowRun> {
        self.reader()
            .query_row(&format!("SELECT {RUN_COLUMNS} FROM workflow_runs WHERE id = ?1"), [id], run_from_row)
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("workflow run {id}")))
    }

    /// Runs, newest first.
    pub fn workflow_runs(&self, filter: &RunFilter) -> Result<Vec<WorkflowRun>> {
        let conn = self.reader();
        let mut stmt = conn.prepare(&format!(
            "SELECT {RUN_COLUMNS} FROM workflow_runs WHERE ?1 IS NULL OR workflow = ?1
             ORDER BY id DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![filter.workflow, filter.limit.max(1)], run_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Replaces the workflow's waiting job by one due at `run_at` (a job claimed and
    /// running is left alone: it is the run now firing).
    pub fn schedule_workflow(&self, workflow: &str, user_id: i64, run_at: i64) -> Result<()> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        tx.execute(
            "DELETE FROM jobs WHERE kind = 'workflow' AND workflow = ?1 AND state = 'queued'",
            [workflow],
        )?;
        tx.execute(
            "INSERT INTO jobs (id, user_id, kind, workflow, run_at, state, created_at, updated_at)
             VALUES (?1, ?2, 'workflow', ?3, ?4, 'queued', ?5, ?5)",
            params![uuid::Uuid::new_v4().to_string(), user_id, workflow, run_at, now()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Removes the workflow's waiting job, if any.
    pub fn unschedule_workflow(&self, workflow: &str) -> Result<()> {
        self.writer().execute(
            "DELETE FROM jobs WHERE kind = 'workflow' AND workflow = ?1 AND state = 'queued'",
            [workflow],
        )?;
        Ok(())
    }

    /// When the workflow's waiting job is due.
    pub fn workflow_next_run(&self, workflow: &str) -> Result<Option<i64>> {
        Ok(self.reader().query_row(
            "SELECT min(run_at) FROM jobs WHERE kind = 'workflow' AND workflow = ?1 AND state = 'queued'",
            [workflow],
            |r| r.get(0),
        )?)
    }

    /// Every workflow with a waiting job (to drop those no longer scheduled).
    pub fn scheduled_workflows(&self) -> Result<Vec<String>> {
        let conn = self.reader();
        let mut stmt =
            conn.prepare("SELECT DISTINCT workflow FROM jobs WHERE kind = 'workflow' AND state = 'queued'")?;
        let rows = stmt.query_map([], |r| r.get::<_, Option<String>>(0))?;
        Ok(rows.filter_map(|r| r.transpose()).collect::<rusqlite::Result<_>>()?)
    }

    /// The workflow a timed job runs.
    pub fn job_workflow(&self, job_id: &str) -> Result<Option<String>> {
        Ok(self
            .reader()
            .query_row("SELECT workflow FROM jobs WHERE id = ?1", [job_id], |r| r.get(0))
            .optional()?
            .flatten())
    }

    /// Writes a run's summary into the owner's conversation for this workflow (the one
    /// earlier runs wrote in, or a new one titled after it), so it is in their history and
    /// search. Returns the conversation's id.
    pub fn write_workflow_summary(&self, workflow: &str, user_id: i64, text: &str) -> Result<String> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        let t = now();
        let existing: Option<String> = tx
            .query_row(
                "SELECT r.conversation_id FROM workflow_runs r
                 JOIN conversations c ON c.id = r.conversation_id AND c.user_id = r.user_id
                 WHERE r.workflow = ?1 AND r.user_id = ?2 ORDER BY r.id DESC LIMIT 1",
                params![workflow, user_id],
                |r| r.get(0),
            )
            .optional()?;
        let id = match existing {
            Some(id) => {
                tx.execute("UPDATE conversations SET updated_at = ?2 WHERE id = ?1", params![id, t])?;
                id
            }
            None => {
                let id = uuid::Uuid::new_v4().to_string();
                tx.execute(
                    "INSERT INTO conversations (id, user_id, title, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
                    params![id, user_id, format!("Workflow: {workflow}"), t],
                )?;
                id
            }
        };
        tx.execute(
            "INSERT INTO messages (conversation_id, role, content, created_at) VALUES (?1, 'assistant', ?2, ?3)",
            params![id, text, t],
        )?;
        tx.commit()?;
        Ok(id)
    }

    /// Records a signature as used; `false` when it was seen already (a replay). Those
    /// older than `window_secs` are forgotten first.
    pub fn use_hook_signature(&self, hook: &str, signature: &str, window_secs: i64) -> Result<bool> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        let t = now();
        tx.execute("DELETE FROM hook_signatures WHERE seen_at < ?1", [t - window_secs.max(1) * 2])?;
        let added = tx.execute(
            "INSERT OR IGNORE INTO hook_signatures (hook, signature, seen_at) VALUES (?1, ?2, ?3)",
            params![hook, signature, t],
        )?;
        tx.commit()?;
        Ok(added == 1)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{temp_store, Role};

    #[test]
    fn runs_are_recorded_listed_and_interrupted() {
        let (_dir, store) = temp_store();
        let alice = store.create_user("alice", Role::User).unwrap();
        let id = store.start_workflow_run("morning", alice.id, "manual").unwrap();
        let steps = serde_json::json!([{"id": "time", "output": "It is 7"}]);
        let conversation =
            store.write_workflow_summary("morning", alice.id, "Workflow 'morning' done").unwrap();
        store.finish_workflow_run(id, &steps, Ok("It is 7"), Some(&conversation)).unwrap();
        let again = store.write_workflow_summary("morning", alice.id, "again").unwrap();
        assert_eq!(again, conversation, "one conversation per workflow");
        assert_eq!(store.messages(alice.id, &conversation).unwrap().len(), 2);
        let second = store.start_workflow_run("morning", alice.id, "schedule").unwrap();
        let filter = super::RunFilter { workflow: Some("morning".into()), limit: 10 };
        let runs = store.workflow_runs(&filter).unwrap();
        assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), [second, id], "newest first");
        assert_eq!(runs[1].steps, steps);
        assert_eq!((runs[1].state.as_str(), runs[1].output.as_deref()), ("done", Some("It is 7")));
        assert_eq!(store.interrupt_workflow_runs().unwrap(), 1);
        assert_eq!(store.workflow_run(second).unwrap().state, "interrupted");
    }

    #[test]
    fn one_job_waits_per_workflow_and_signatures_are_used_once() {
        let (_dir, store) = temp_store();
        let alice = store.create_user("alice", Role::User).unwrap();
        store.schedule_workflow("morning", alice.id, 2_000_000_000).unwrap();
        store.schedule_workflow("morning", alice.id, 1_900_000_000).unwrap();
        assert_eq!(store.workflow_next_run("morning").unwrap(), Some(1_900_000_000));
        assert_eq!(store.scheduled_workflows().unwrap(), ["morning"]);
        let job = store.claim_timed_job("999999999:x", 1_950_000_000).unwrap().expect("due");
        assert_eq!(store.job_workflow(&job.id).unwrap().as_deref(), Some("morning"));
        store.unschedule_workflow("morning").unwrap();
        assert_eq!(store.workflow_next_run("morning").unwrap(), None);

        assert!(store.use_hook_signature("deploy", "abc", 300).unwrap());
        assert!(!store.use_hook_signature("deploy", "abc", 300).unwrap(), "a replay");
        assert!(store.use_hook_signature("other", "abc", 300).unwrap(), "per hook");
    }
}
