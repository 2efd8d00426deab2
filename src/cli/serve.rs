//! `hearth serve`: open the store, start the engine, serve HTTP until a signal.

use crate::config::Loaded;
use crate::engine::Registry;
use crate::http::{self, AppState};
use crate::jobs::JobRunner;
use crate::knowledge::Knowledge;
use crate::search::SearchIndex;
use crate::store::Store;
use crate::telemetry::Metrics;
use crate::voice::Voice;
use anyhow::Context;
use std::sync::Arc;
use std::time::Instant;

pub fn run(loaded: Loaded) -> anyhow::Result<()> {
    let settings = Arc::new(loaded.settings);
    let data_dir = &settings.storage.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let store = Store::open(&settings.database_path())?;
    super::onboard::announce_if_needed(&store, &settings)?;
    let metrics = Metrics::new();
    let model = crate::models::resolve_model_path(&settings.model.path, data_dir);
    if let Err(e) = &model {
        tracing::error!(error = %e, "no model to load; the API answers 503 model_not_ready until one is configured");
    }
    let models = Registry::start(settings.clone(), model, metrics.clone());
    let index = SearchIndex::open(&settings.index_dir())
        .with_context(|| format!("cannot open the search index in {}", settings.index_dir().display()))?;
    index.follow(store.clone(), std::time::Duration::from_secs(3));
    let knowledge = Knowledge {
        store: store.clone(),
        index: Some(index),
        models: models.clone(),
        settings: settings.clone(),
    };
    let jobs = JobRunner::start(knowledge.clone());
    let voice = Voice::start(&settings, &metrics);
    tracing::info!(
        config = ?loaded.file, data_dir = %data_dir.display(), version = env!("CARGO_PKG_VERSION"),
        "starting hearth"
    );
    let state =
        AppState { settings, store, models, metrics, started: Instant::now(), knowledge, jobs, voice };
    actix_web::rt::System::new().block_on(http::serve(state)).context("HTTP server failed")?;
    tracing::info!("stopped");
    Ok(())
}
