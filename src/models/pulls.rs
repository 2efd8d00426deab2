//! The server's pulls: each runs the fetcher on a thread of its own, one pull per model at
//! a time, and its last state stays readable for the admin API, the web UI and
//! `/api/health` (a finished or failed pull until the next one of that model).

use super::pull::{pull, Fetcher, Phase, Progress, PullError};
use super::ManifestModel;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PullState {
    Pulling,
    Done,
    Failed,
}

/// One model's pull as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PullStatus {
    pub model: String,
    pub state: PullState,
    pub phase: Phase,
    /// Bytes downloaded and expected (the packages' sizes; see `fetch.py`'s `Progress`).
    pub done: u64,
    pub total: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Unix seconds.
    pub started_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
}

impl PullStatus {
    fn started(model: &str) -> PullStatus {
        PullStatus {
            model: model.to_string(),
            state: PullState::Pulling,
            phase: Phase::Starting,
            done: 0,
            total: 0,
            error: None,
            path: None,
            started_at: crate::store::now(),
            finished_at: None,
        }
    }

    /// Folds in one progress line: the phase always, the byte counts when it has them
    /// (later phases count none and keep the download's).
    pub fn apply(&mut self, progress: &Progress) {
        if progress.phase != Phase::Error {
            self.phase = progress.phase;
        }
        if progress.total > 0 {
            (self.done, self.total) = (progress.done, progress.total);
        }
    }

    fn finish(&mut self, result: &Result<PathBuf, PullError>) {
        self.finished_at = Some(crate::store::now());
        match result {
            Ok(path) => {
                (self.state, self.phase, self.path) = (PullState::Done, Phase::Done, Some(path.clone()));
                self.done = self.total.max(self.done);
            }
            Err(e) => {
                (self.state, self.phase, self.error) = (PullState::Failed, Phase::Error, Some(e.to_string()))
            }
        }
    }
}

/// The pulls of this process; clone freely.
#[derive(Clone, Default)]
pub struct Pulls {
    inner: Arc<Mutex<HashMap<String, PullStatus>>>,
}

impl Pulls {
    fn map(&self) -> MutexGuard<'_, HashMap<String, PullStatus>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The latest pull of a model (manifest name), running or finished.
    pub fn status(&self, model: &str) -> Option<PullStatus> {
        self.map().get(model).cloned()
    }

    /// Marks `model` as pulling; refused while it is. The claimant then runs
    /// [`Pulls::run_claimed`].
    pub(super) fn claim(&self, model: &str) -> Result<PullStatus, PullError> {
        let mut map = self.map();
        if map.get(model).is_some_and(|s| s.state == PullState::Pulling) {
            return Err(PullError::InProgress(model.to_string()));
        }
        let status = PullStatus::started(model);
        map.insert(model.to_string(), status.clone());
        Ok(status)
    }

    fn update(&self, model: &str, f: impl FnOnce(&mut PullStatus)) {
        if let Some(status) = self.map().get_mut(model) {
            f(status);
        }
    }

    /// Pulls `model` into `dest` on this thread (it blocks for the whole download), keeping
    /// its status current. A missing fetcher is recorded like any other failure.
    pub fn run(&self, model: &ManifestModel, dest: &Path) -> Result<PathBuf, PullError> {
        self.claim(&model.name)?;
        self.run_claimed(model, dest)
    }

    /// [`Pulls::run`] for a model claimed already.
    pub(super) fn run_claimed(&self, model: &ManifestModel, dest: &Path) -> Result<PathBuf, PullError> {
        let result = Fetcher::locate().and_then(|fetcher| self.fetch(&fetcher, model, dest));
        self.finished(&model.name, &result);
        result
    }

    /// Starts pulling `model` into `dest` on a thread of its own and answers at once with
    /// its status; `then` runs on that thread with the result. Refused at once when the
    /// fetcher is missing or the model is being pulled already.
    pub fn start(
        &self,
        model: ManifestModel,
        dest: PathBuf,
        then: impl FnOnce(&Result<PathBuf, PullError>) + Send + 'static,
    ) -> Result<PullStatus, PullError> {
        let fetcher = Fetcher::locate()?;
        let status = self.claim(&model.name)?;
        let pulls = self.clone();
        let name = model.name.clone();
        let spawned = std::thread::Builder::new().name("hearth-pull".into()).spawn(move || {
            let result = pulls.fetch(&fetcher, &model, &dest);
            pulls.finished(&model.name, &result);
            then(&result);
        });
        if let Err(e) = spawned {
            let error = PullError::Failed(format!("cannot start a thread for the pull: {e}"));
            self.finished(&name, &Err(error.clone()));
            return Err(error);
        }
        Ok(status)
    }

    /// The pull itself; a panic in it becomes a failed pull, never a model stuck "pulling".
    fn fetch(&self, fetcher: &Fetcher, model: &ManifestModel, dest: &Path) -> Result<PathBuf, PullError> {
        tracing::info!(model = %model.name, dest = %dest.display(), fetcher = %fetcher.script.display(), "pulling a model");
        let name = &model.name;
        let run = || pull(fetcher, model, dest, &mut |p| self.update(name, |s| s.apply(p)));
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(run))
            .unwrap_or_else(|_| Err(PullError::Failed("the pull stopped on an internal error".into())))
    }

    pub(super) fn finished(&self, model: &str, result: &Result<PathBuf, PullError>) {
        match result {
            Ok(path) => tracing::info!(model, path = %path.display(), "model pulled and verified"),
            Err(e) => tracing::warn!(model, error = %e, "model pull failed"),
        }
        self.update(model, |s| s.finish(result));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(json: &str) -> Progress {
        super::super::parse_progress(json).unwrap()
    }

    #[test]
    fn one_pull_per_model_at_a_time() {
        let pulls = Pulls::default();
        pulls.claim("a").unwrap();
        assert_eq!(pulls.claim("a"), Err(PullError::InProgress("a".into())));
        pulls.claim("b").expect("another model may be pulled meanwhile");
        pulls.finished("a", &Err(PullError::Failed("offline".into())));
        let a = pulls.status("a").unwrap();
        assert_eq!((a.state, a.error.as_deref()), (PullState::Failed, Some("offline")));
        pulls.claim("a").expect("a finished pull may be started again");
    }

    #[test]
    fn progress_moves_the_status_and_later_phases_keep_the_bytes() {
        let mut s = PullStatus::started("m");
        s.apply(&line(r#"{"phase": "download", "done": 10, "total": 100}"#));
        assert_eq!((s.phase, s.done, s.total), (Phase::Download, 10, 100));
        s.apply(&line(r#"{"phase": "convert", "done": 0, "total": 0}"#));
        assert_eq!((s.phase, s.done, s.total), (Phase::Convert, 10, 100));
        s.finish(&Ok(PathBuf::from("/m.gguf")));
        assert_eq!((s.state, s.done, s.total), (PullState::Done, 100, 100));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!((json["state"].as_str(), json["phase"].as_str()), (Some("done"), Some("done")));
    }
}
