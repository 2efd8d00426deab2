//! First start of an appliance: the default model is not installed, so the server runs
//! and pulls it in the background. A failed pull is retried with growing pauses (at boot
//! the network may come up later); a model that arrives meanwhile (`hearth models add`,
//! `hearth models pull`, the admin page) ends the wait.

use super::{manifest, models_dir, resolve_model_path, PullError, Pulls};
use std::path::PathBuf;
use std::time::Duration;

const FIRST_PAUSE: Duration = Duration::from_secs(30);
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
    let run = move || {
        let dest = models_dir(&data_dir);
        let mut pause = FIRST_PAUSE;
        loop {
            if let Ok(path) = resolve_model_path("", &data_dir) {
                return adopt(path);
            }
            match pulls.run(&entry, &dest) {
                Ok(path) => return adopt(path),
                // Someone started it from the admin page: see how that one ends.
                Err(PullError::InProgress(_)) => std::thread::sleep(Duration::from_secs(5)),
                Err(e) => {
                    tracing::warn!(model = %entry.name, error = %e, retry_in_secs = pause.as_secs(),
                        "the default model could not be downloaded; trying again later");
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(LONGEST_PAUSE);
                }
            }
        }
    };
    if let Err(e) = std::thread::Builder::new().name("hearth-first-pull".into()).spawn(run) {
        tracing::error!(error = %e, "cannot start the default model's download");
    }
}
