//! Several models on one box: which are installed, which are loaded, loading on demand
//! within the memory the machine has, and unloading models nobody used for a while.
//!
//! The configured model is loaded at start and stays; when it was missing at start (a
//! first start that downloads it), it is adopted once installed. Any other installed model (a
//! manifest entry found in the model folders, or a `.gguf` in `<data_dir>/models`)
//! loads when a request names it. Before loading, its memory (file plus KV cache) is
//! checked against the available RAM; idle models are unloaded, least recently used
//! first, to make room. Embedding models go through the same check: any installed GGUF
//! may be named for embeddings. An unloaded engine stops once its last request finishes.

use super::{Embedder, Engine, EngineError, ModelState};
use crate::config::Settings;
use crate::governor::Governor;
use crate::models::{manifest, model_id, search_dirs};
use crate::telemetry::Metrics;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Names that always mean the configured model.
pub const ALIASES: &[&str] = &["default", "hearth"];

/// Memory kept free for the system, the HTTP server and SQLite.
const RESERVE_BYTES: u64 = 256 << 20;

/// A model file that can be served.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Installed {
    pub id: String,
    pub path: PathBuf,
    pub bytes: u64,
    /// From the manifest ("chat", "test", "embedding", ...), or "unlisted".
    pub role: String,
    pub default: bool,
    pub loaded: bool,
}

#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Arc<Settings>,
    metrics: Metrics,
    /// Each user's share, across every model's engine.
    limiter: crate::rate::Limiter,
    governor: Governor,
    default: RwLock<DefaultModel>,
    others: Mutex<HashMap<String, Loaded>>,
    embedders: Mutex<HashMap<String, (Embedder, Instant)>>,
}

/// The configured model: its name, its file (`None`: none was found at start) and engine.
struct DefaultModel {
    id: String,
    path: Option<PathBuf>,
    engine: Engine,
}

struct Loaded {
    engine: Engine,
    last_used: Instant,
    estimate: u64,
}

impl Registry {
    /// Starts loading the configured model, with no governor (tools that run no sampler).
    pub fn start(settings: Arc<Settings>, model: Result<PathBuf, String>, metrics: Metrics) -> Registry {
        Registry::governed(settings, model, metrics, Governor::default())
    }

    /// Starts loading the configured model; `governor` pauses loads, sheds requests and
    /// sets the engines' threads.
    pub fn governed(
        settings: Arc<Settings>,
        model: Result<PathBuf, String>,
        metrics: Metrics,
        governor: Governor,
    ) -> Registry {
        let default_path = model.as_ref().ok().cloned();
        let default_id = default_path.as_deref().map_or_else(|| "default".into(), model_id);
        let limiter = crate::rate::Limiter::new(
            settings.limits.clone(),
            settings.model.queue_size,
            settings.model.parallel,
        );
        let engine = Engine::start(&settings, model, metrics.clone(), limiter.clone(), governor.clone());
        let default = RwLock::new(DefaultModel { id: default_id, path: default_path, engine });
        Registry {
            inner: Arc::new(Inner {
                settings,
                metrics,
                limiter,
                governor,
                default,
                others: Mutex::new(HashMap::new()),
                embedders: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Each user's share of the engines and their rate limits (`[limits]`).
    pub fn limiter(&self) -> &crate::rate::Limiter {
        &self.inner.limiter
    }

    /// The governor the engines follow.
    pub fn governor(&self) -> &Governor {
        &self.inner.governor
    }

    fn default(&self) -> std::sync::RwLockReadGuard<'_, DefaultModel> {
        self.inner.default.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The configured model's name.
    pub fn default_id(&self) -> String {
        self.default().id.clone()
    }

    /// The configured model's engine (ready, loading or failed).
    pub fn default_engine(&self) -> Engine {
        self.default().engine.clone()
    }

    /// Whether the configured model had no file at start (and none was adopted since).
    pub fn default_missing(&self) -> bool {
        self.default().path.is_none()
    }

    /// Starts loading `path` as the configured model when there was none at start (the
    /// default model, downloaded or added since). False when a model is configured already.
    pub fn adopt_default(&self, path: PathBuf) -> bool {
        let mut default = self.inner.default.write().unwrap_or_else(|p| p.into_inner());
        if default.path.is_some() {
            return false;
        }
        tracing::info!(path = %path.display(), "loading the default model, now installed");
        let engine = Engine::start(
            &self.inner.settings,
            Ok(path.clone()),
            self.inner.metrics.clone(),
            self.inner.limiter.clone(),
            self.inner.governor.clone(),
        );
        *default = DefaultModel { id: model_id(&path), path: Some(path), engine };
        true
    }

    fn others(&self) -> std::sync::MutexGuard<'_, HashMap<String, Loaded>> {
        self.inner.others.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every servable model: the configured one first, then installed ones by name.
    pub fn installed(&self) -> Vec<Installed> {
        let loaded: Vec<String> = self.others().keys().cloned().collect();
        let mut found: Vec<Installed> = Vec::new();
        let mut add = |path: PathBuf, default: bool| {
            let id = model_id(&path);
            if found.iter().any(|m| m.id == id) {
                return;
            }
            let file = path.file_name().and_then(|f| f.to_str()).unwrap_or_default();
            let role = manifest().find_by_file(file).map_or_else(|| "unlisted".into(), |m| m.role.clone());
            let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
            let is_loaded = default || loaded.contains(&id);
            found.push(Installed { id, path, bytes, role, default, loaded: is_loaded });
        };
        let default_path = self.default().path.clone();
        if let Some(path) = &default_path {
            add(path.clone(), true);
        }
        for dir in search_dirs(&self.inner.settings.storage.data_dir) {
            // Only GGUF models serve chat and embeddings (not, say, whisper.cpp files).
            for entry in manifest().models.iter().filter(|m| m.file.ends_with(".gguf")) {
                let path = dir.join(&entry.file);
                if path.is_file() {
                    add(path, false);
                }
            }
        }
        let own = self.inner.settings.storage.data_dir.join("models");
        if let Ok(entries) = std::fs::read_dir(own) {
            let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            paths.sort();
            for path in paths.into_iter().filter(|p| p.extension().is_some_and(|e| e == "gguf")) {
                add(path, false);
            }
        }
        found[usize::from(default_path.is_some())..].sort_by(|a, b| a.id.cmp(&b.id));
        found
    }

    /// The engine for a model name (`None` or an alias: the configured model), loading it
    /// if needed. Returns once the model is ready.
    pub async fn engine(&self, name: Option<&str>) -> Result<Engine, EngineError> {
        let name = match name {
            None => return Ok(self.default_engine()),
            Some(n) if ALIASES.contains(&n) || n == self.default().id => return Ok(self.default_engine()),
            Some(n) => n,
        };
        let engine = match self.others().get_mut(name) {
            Some(loaded) => {
                loaded.last_used = Instant::now();
                Some(loaded.engine.clone())
            }
            None => None,
        };
        let engine = match engine {
            Some(engine) => engine,
            None => self.load(name)?,
        };
        settled(engine.wait_loaded().await).inspect_err(|_| {
            self.others().remove(name);
        })?;
        Ok(engine)
    }

    /// Starts loading an installed model, making room for it first.
    fn load(&self, name: &str) -> Result<Engine, EngineError> {
        let installed = self.installed();
        let Some(model) = installed.iter().find(|m| m.id == name) else {
            let names: Vec<&str> = installed.iter().map(|m| m.id.as_str()).collect();
            return Err(EngineError::ModelNotFound(format!(
                "model '{name}' is not installed; available: {}",
                names.join(", ")
            )));
        };
        if model.role == "embedding" {
            return Err(EngineError::InvalidRequest(format!(
                "'{name}' is an embedding model; it cannot generate text"
            )));
        }
        let estimate = estimate_bytes(&model.path, &self.inner.settings);
        let mut others = self.others();
        if let Some(loaded) = others.get(name) {
            return Ok(loaded.engine.clone()); // another request started it meanwhile
        }
        self.inner.governor.admit_load()?;
        make_room(&mut others, estimate, self.available_memory())?;
        tracing::info!(model = name, estimate_mb = estimate >> 20, "loading model on demand");
        let engine = Engine::start(
            &self.inner.settings,
            Ok(model.path.clone()),
            self.inner.metrics.clone(),
            self.inner.limiter.clone(),
            self.inner.governor.clone(),
        );
        let loaded = Loaded { engine: engine.clone(), last_used: Instant::now(), estimate };
        others.insert(name.to_string(), loaded);
        Ok(engine)
    }

    fn embedders(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Embedder, Instant)>> {
        self.inner.embedders.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The embedding model for a name (`None`: the configured `model.embedding_model`),
    /// loading it if needed. Any installed GGUF can embed; embedding models embed best.
    pub async fn embedder(&self, name: Option<&str>) -> Result<Embedder, EngineError> {
        let configured = self.inner.settings.model.embedding_model.as_str();
        let name = match name {
            Some(n) if !ALIASES.contains(&n) => n,
            _ if !configured.is_empty() => configured,
            _ => return Err(EngineError::NoEmbeddingModel),
        };
        let existing = self.embedders().get_mut(name).map(|(e, used)| {
            *used = Instant::now();
            e.clone()
        });
        let embedder = match existing {
            Some(e) => e,
            None => {
                let installed = self.installed();
                let Some(model) = installed.iter().find(|m| m.id == name) else {
                    let names: Vec<&str> = installed.iter().map(|m| m.id.as_str()).collect();
                    return Err(EngineError::ModelNotFound(format!(
                        "model '{name}' is not installed; available: {}",
                        names.join(", ")
                    )));
                };
                let estimate = embedding_estimate_bytes(&model.path);
                let mut embedders = self.embedders();
                match embedders.get(name) {
                    Some((embedder, _)) => embedder.clone(), // another request started it meanwhile
                    None => {
                        self.inner.governor.admit_load()?;
                        make_room(&mut self.others(), estimate, self.available_memory())?;
                        tracing::info!(model = name, estimate_mb = estimate >> 20, "loading embedding model");
                        let embedder = Embedder::start(&self.inner.settings, model.path.clone());
                        embedders.insert(name.to_string(), (embedder.clone(), Instant::now()));
                        embedder
                    }
                }
            }
        };
        settled(embedder.wait_loaded().await).inspect_err(|_| {
            self.embedders().remove(name);
        })?;
        Ok(embedder)
    }

    /// Unloads one model loaded on demand (language or embedding), at once: its engine
    /// stops when its last request finishes. `Ok(false)` when it was not loaded; an error
    /// for the configured model (it stays) and for a name that is not installed.
    pub fn unload(&self, name: &str) -> Result<bool, EngineError> {
        if ALIASES.contains(&name) || name == self.default().id {
            return Err(EngineError::InvalidRequest(format!(
                "'{name}' is the configured model (model.path); it stays loaded"
            )));
        }
        let language = self.others().remove(name).is_some();
        let embedding = self.embedders().remove(name).is_some();
        if language || embedding {
            tracing::info!(model = name, "unloaded model on request");
            return Ok(true);
        }
        if self.installed().iter().any(|m| m.id == name) {
            return Ok(false);
        }
        Err(EngineError::ModelNotFound(format!("model '{name}' is not installed")))
    }

    /// Whether a model is loaded (or loading) now: the configured one, or one loaded on demand.
    pub fn is_loaded(&self, name: &str) -> bool {
        ALIASES.contains(&name)
            || name == self.default().id
            || self.others().contains_key(name)
            || self.embedders().contains_key(name)
    }

    /// Unloads models (never the configured one) unused for `idle`. Returns their names.
    pub fn unload_idle(&self, idle: Duration) -> Vec<String> {
        let mut stale = Vec::new();
        self.others().retain(|name, l| {
            let keep = l.last_used.elapsed() < idle;
            if !keep {
                stale.push(name.clone());
            }
            keep
        });
        self.embedders().retain(|name, (_, used)| {
            let keep = used.elapsed() < idle;
            if !keep {
                stale.push(format!("{name} (embeddings)"));
            }
            keep
        });
        for name in &stale {
            tracing::info!(model = %name, "unloaded idle model");
        }
        stale
    }

    /// Drops the idle conversations' caches of every language model (see
    /// [`Engine::forget_cached`]).
    pub async fn forget_cached(&self) {
        let others: Vec<Engine> = self.others().values().map(|l| l.engine.clone()).collect();
        for engine in std::iter::once(self.default_engine()).chain(others) {
            engine.forget_cached().await;
        }
    }

    /// Stops every language model's engine (see [`Engine::stop`]: idle conversations are
    /// saved to the disk cache), waiting at most `timeout` in all.
    pub fn stop(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let others: Vec<Engine> = self.others().values().map(|l| l.engine.clone()).collect();
        for engine in std::iter::once(self.default_engine()).chain(others) {
            if !engine.stop(deadline) {
                tracing::warn!("a model did not stop in time; its idle conversations were not all saved");
            }
        }
    }

    /// The state of every loaded model, the configured one first.
    pub fn states(&self) -> Vec<(String, ModelState)> {
        let mut states = {
            let default = self.default();
            vec![(default.id.clone(), default.engine.state())]
        };
        let mut others: Vec<(String, ModelState)> =
            self.others().iter().map(|(n, l)| (n.clone(), l.engine.state())).collect();
        others.extend(self.embedders().iter().map(|(n, (e, _))| (format!("{n} (embeddings)"), e.state())));
        others.sort_by(|a, b| a.0.cmp(&b.0));
        states.extend(others);
        states
    }
}

/// A loaded model's state as a result: ready, or why not.
fn settled(state: ModelState) -> Result<(), EngineError> {
    match state {
        ModelState::Ready(_) => Ok(()),
        ModelState::Failed { error, .. } => Err(EngineError::NotReady(error)),
        ModelState::Loading { .. } => Err(EngineError::NotReady("the model is still loading".into())),
    }
}

impl Registry {
    /// Memory a new model may take: `MemAvailable`, bounded by what Hearth's own cgroup
    /// limit leaves (`telemetry::memory`), from `[governor] meminfo_path` when set.
    fn available_memory(&self) -> u64 {
        match crate::telemetry::memory::read(&self.inner.settings.governor.meminfo_path) {
            Some(m) => m.available,
            None => {
                let mut system = sysinfo::System::new();
                system.refresh_memory();
                system.available_memory()
            }
        }
    }
}

/// Memory a model will take: its file (mapped and read) plus its KV cache and the idle
/// conversations parked beside it, estimated from the layer count at 1 KiB per token per
/// layer (f16 K and V for a 256-wide GQA cache; small models are narrower, so this errs on
/// the safe side).
fn estimate_bytes(path: &Path, settings: &Settings) -> u64 {
    let file = std::fs::metadata(path).map_or(0, |m| m.len());
    let layers = super::gguf::validate(path).ok().and_then(|s| s.block_count).unwrap_or(32);
    let m = &settings.model;
    let kv_tokens = match m.kv_cache_tokens {
        0 => u64::from(m.context_size) * u64::from(m.parallel),
        n => u64::from(n),
    };
    let idle_tokens = match m.idle_cache_tokens {
        0 => kv_tokens,
        n => u64::from(n),
    };
    file + (kv_tokens + idle_tokens) * layers * 1024
}

/// Memory an embedding model will take: its file plus a KV cache of the window it reads
/// (its trained context, at most 8192 tokens: see `embed`), at the same 1 KiB per token per
/// layer as [`estimate_bytes`].
fn embedding_estimate_bytes(path: &Path) -> u64 {
    let file = std::fs::metadata(path).map_or(0, |m| m.len());
    let summary = super::gguf::validate(path).ok();
    let layers = summary.as_ref().and_then(|s| s.block_count).unwrap_or(32);
    let window = summary.and_then(|s| s.context_length).unwrap_or(8192).clamp(64, 8192);
    file + window * layers * 1024
}

/// Unloads least recently used models until `needed` fits beside the reserve.
fn make_room(others: &mut HashMap<String, Loaded>, needed: u64, available: u64) -> Result<(), EngineError> {
    let freeable: u64 = others.values().map(|l| l.estimate).sum();
    if needed + RESERVE_BYTES > available + freeable {
        return Err(EngineError::InsufficientMemory { needed, available: available + freeable });
    }
    let mut freed = 0u64;
    while needed + RESERVE_BYTES > available + freed {
        let Some(oldest) = others.iter().min_by_key(|(_, l)| l.last_used).map(|(n, _)| n.clone()) else {
            return Err(EngineError::InsufficientMemory { needed, available: available + freed });
        };
        let loaded = others.remove(&oldest).expect("present");
        freed += loaded.estimate;
        tracing::info!(model = %oldest, "unloaded to make room for another model");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(estimate: u64, age_secs: u64) -> Loaded {
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        let (_, state) =
            tokio::sync::watch::channel(ModelState::Loading { path: PathBuf::new(), progress: 0.0 });
        let engine = Engine::from_parts(tx, state, 1, Metrics::new());
        Loaded { engine, last_used: Instant::now() - Duration::from_secs(age_secs), estimate }
    }

    #[test]
    fn room_is_made_by_unloading_the_least_recently_used() {
        let mut others = HashMap::from([
            ("old".to_string(), loaded(400 << 20, 100)),
            ("recent".to_string(), loaded(400 << 20, 1)),
        ]);
        make_room(&mut others, 500 << 20, 500 << 20).unwrap();
        assert!(others.contains_key("recent") && !others.contains_key("old"));
    }

    #[test]
    fn a_model_too_big_for_the_box_is_refused() {
        let mut others = HashMap::from([("a".to_string(), loaded(100 << 20, 5))]);
        let err = make_room(&mut others, 8 << 30, 1 << 30).unwrap_err();
        assert!(matches!(err, EngineError::InsufficientMemory { .. }), "{err}");
        assert_eq!(others.len(), 1, "nothing is unloaded for a model that cannot fit anyway");
    }

    #[test]
    fn nothing_is_unloaded_when_there_is_room() {
        let mut others = HashMap::from([("a".to_string(), loaded(100 << 20, 5))]);
        make_room(&mut others, 100 << 20, 4 << 30).unwrap();
        assert_eq!(others.len(), 1);
    }

    #[test]
    fn an_embedding_model_is_estimated_at_least_at_its_file_and_window() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.gguf");
        std::fs::File::create(&path).unwrap().set_len(3 << 30).unwrap();
        // Unreadable metadata: 32 layers and the longest window are assumed.
        assert_eq!(embedding_estimate_bytes(&path), (3 << 30) + 8192 * 32 * 1024);
        let mut others = HashMap::new();
        let err = make_room(&mut others, embedding_estimate_bytes(&path), 2 << 30).unwrap_err();
        assert!(matches!(err, EngineError::InsufficientMemory { .. }), "{err}");
    }
}
