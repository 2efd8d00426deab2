//! First start of an appliance: the default model is not installed, so the server runs
//! and pulls it in the background. A failed pull is retried with growing pauses (at boot
//! the network may come up later); a model that arrives meanwhile (`hearth models add`,
//! `hearth models pull`) is taken within seconds.

use super::{manifest, models_dir, resolve_model_path, PullError, Pulls};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const FIRST_PAUSE: Duration = Duration::from_secs(30);
/// How often a waiting first start looks for a model that arrived by other ways.
const CHECK_EVERY: Duration = Duration::from_secs(2);
const LONGEST_PAUSE: Duration = Duration::from_secs(15 * 60);

/// Pulls the default model into `<data_dir>/models` on a thread of its own until it is
/// installed, then hands its path to `adopt`.
pub fn pull_default(pulls: Pulls, data_dir: PathBuf, adopt: impl Fn(PathBuf) + Send + 'static) {
    let entry = manifest().default_model().clone();
    tracing::warn!(
        model = %entry.name, mb = entry.bytes / 1_000_000,
        "the default model is not installed: downloading it in the background (model.auto_pull; \
         on a box without network copy the file over and run `hearth models add FILE`)"
    );
    // Claimed before the server answers, so that /api/health says "pulling" from the start.
    let mut claimed = pulls.claim(&entry.name).is_ok();
    let (status, name) = (pulls.clone(), entry.name.clone());
    let run = move || {
        let dest = models_dir(&data_dir);
        let mut pause = FIRST_PAUSE;
        loop {
            let result = if std::mem::take(&mut claimed) {
                pulls.run_claimed(&entry, &dest)
            } else if let Ok(path) = resolve_model_path("", &data_dir) {
                return adopt(path);
            } else {
                pulls.run(&entry, &dest)
            };
            let wait = match result {
                Ok(path) => return adopt(path),
                // Someone started it from the admin page: see how that one ends.
                Err(PullError::InProgress(_)) => CHECK_EVERY,
                Err(e) => {
                    tracing::warn!(model = %entry.name, error = %e, retry_in_secs = pause.as_secs(),
                        "the default model could not be downloaded; trying again later");
                    let next = (pause * 2).min(LONGEST_PAUSE);
                    std::mem::replace(&mut pause, next)
                }
            };
            // Meanwhile a model that arrives is taken at once.
            let until = Instant::now() + wait;
            while let Some(left) = until.checked_duration_since(Instant::now()).filter(|l| !l.is_zero()) {
                std::thread::sleep(left.min(CHECK_EVERY));
                if let Ok(path) = resolve_model_path("", &data_dir) {
                    return adopt(path);
                }
            }
        }
    };
    if let Err(e) = std::thread::Builder::new().name("hearth-first-pull".into()).spawn(run) {
        let error = PullError::Failed(format!("cannot start the default model's download: {e}"));
        tracing::error!(%error);
        status.finished(&name, &Err(error));
    }
}
