//! `hearth serve`: open the store, start the engine, serve HTTP until a signal.

use crate::assistant::Assistant;
use crate::config::Loaded;
use crate::crypt::Unlocked;
use crate::engine::Registry;
use crate::governor::Governor;
use crate::http::{self, AppState};
use crate::jobs::JobRunner;
use crate::knowledge::Knowledge;
use crate::notices::Notices;
use crate::reminders::Reminders;
use crate::search::SearchIndex;
use crate::store::Store;
use crate::telemetry::{HostReadings, Metrics, Sampler, SamplerOptions};
use crate::tls::{BoxNames, SharedNames, Tls};
use crate::voice::satellites::Satellites;
use crate::voice::wyoming::{self, ServerOptions};
use crate::voice::Voice;
use anyhow::Context;
use std::sync::Arc;
use std::time::Instant;

pub fn run(mut loaded: Loaded) -> anyhow::Result<()> {
    let data_dir = loaded.settings.storage.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let metrics = Metrics::new();
    let names = SharedNames::new(BoxNames::discover(&loaded.settings));
    let tls = Tls::prepare(Arc::new(loaded.settings.clone()), names.clone(), metrics.clone()).with_context(
        || format!("cannot set up TLS (tls.mode = \"{}\")", loaded.settings.tls.mode.as_str()),
    )?;
    // Held until `run` returns: `encryption rekey` refuses while it is.
    let _held = match super::unlock::at_start(&loaded.settings, tls.clone())? {
        super::unlock::AtStart::Plain => None,
        super::unlock::AtStart::Unlocked(keys, held) => {
            loaded.settings.storage.unlocked = Unlocked(Some(keys));
            Some(held)
        }
        super::unlock::AtStart::Stopped => return Ok(()),
    };
    let settings = Arc::new(loaded.settings);
    let data_dir = &settings.storage.data_dir;
    let encrypted = settings.storage.unlocked.0.is_some();
    let store = Store::open_keyed(&settings.database_path(), settings.storage.unlocked.db_key())?;
    let g = &settings.governor;
    let readings = HostReadings::with_paths(data_dir, &g.thermal_dir, &g.meminfo_path);
    let every = std::time::Duration::from_millis(g.sample_interval_ms);
    let sampler = Sampler::start(
        Box::new(readings),
        SamplerOptions { every, ..SamplerOptions::default() },
        metrics.clone(),
    );
    let governor = Governor::new(&settings, metrics.clone());
    governor.watch(&sampler);
    super::onboard::announce_tls(&settings, tls.as_ref());
    super::onboard::announce_if_needed(&store, &settings)?;
    let satellite_user = satellite_user(&settings, &store)?;
    // Uploads a crash or kill interrupted are never resumed: their files are garbage.
    crate::http::spool::remove_leftovers(&settings.uploads_dir());
    let model = crate::models::resolve_model_path(&settings.model.path, data_dir);
    // First start of a box: the default model is downloaded while the server runs.
    let auto_pull = model.is_err() && settings.model.path.is_empty() && settings.model.auto_pull;
    if let (Err(e), false) = (&model, auto_pull) {
        tracing::error!(error = %e, "no model to load; the API answers 503 model_not_ready until one is configured");
    }
    let models = Registry::governed(settings.clone(), model, metrics.clone(), governor);
    let pulls = crate::models::Pulls::default();
    if auto_pull {
        let registry = models.clone();
        crate::models::pull_default(pulls.clone(), data_dir.clone(), move |path| {
            registry.adopt_default(path);
        });
    }
    // Encrypted: the index lives in RAM and is rebuilt from the database (docs/encryption.md).
    let index = match encrypted {
        true => SearchIndex::in_ram().context("cannot create the search index in RAM")?,
        false => SearchIndex::open(&settings.index_dir())
            .with_context(|| format!("cannot open the search index in {}", settings.index_dir().display()))?,
    };
    index.follow(store.clone(), std::time::Duration::from_secs(3));
    let knowledge = Knowledge {
        store: store.clone(),
        index: Some(index),
        models: models.clone(),
        settings: settings.clone(),
    };
    let timers = crate::jobs::Wake::default();
    let reminders = Reminders::new(store.clone(), Notices::default(), timers.clone());
    let workflows = crate::workflows::Workflows::load(&settings, store.clone(), timers.clone());
    workflows.reconcile().context("cannot schedule the workflows")?;
    let jobs =
        JobRunner::start(knowledge.clone(), Some((reminders.clone(), timers)), Some(workflows.clone()));
    let voice = Voice::start(&settings, &metrics);
    let notes = crate::notes::Notes::new(store.clone(), knowledge.index.clone());
    let skills = crate::skills::Skills::built_in(
        &settings.skills.enabled,
        std::time::Duration::from_secs(settings.skills.timeout_secs),
        Some(knowledge.clone()),
        Some(reminders.clone()),
    )
    .with_notes(&settings.skills.enabled, &notes)
    .with_configured(&settings)
    .map_err(anyhow::Error::msg)?
    .with_store(store.clone());
    let assistant = Assistant::new(settings.clone(), models.clone())
        .with_store(store.clone())
        .with_knowledge(knowledge.clone())
        .with_skills(skills.clone())
        .with_workflows(workflows.clone());
    workflows.set_services(crate::workflows::Services {
        assistant: assistant.clone(),
        skills,
        notices: reminders.notices().clone(),
        timeout: std::time::Duration::from_secs(settings.workflows.run_timeout_secs),
    });
    let hooks =
        crate::channels::hooks::Hooks::new(&settings, workflows.clone(), assistant.clone(), store.clone())
            .map_err(anyhow::Error::msg)?;
    if let Some(chosen) = store.preference(crate::store::VOICE_LANGUAGE)? {
        voice.choose_language(Some(chosen).filter(|l| l != "auto"));
    }
    tracing::info!(
        config = ?loaded.file, data_dir = %data_dir.display(), version = env!("CARGO_PKG_VERSION"),
        "starting hearth"
    );
    // Satellites hear announcements (MQTT's `announce`) even without a satellite user.
    let announcer =
        crate::channels::satellite::Announcer::new(&settings, satellite_user).map_err(anyhow::Error::msg)?;
    if satellite_user.is_some() && announcer.is_none() {
        tracing::warn!(
            "reminders set from voice satellites are not announced on them: set [home_assistant] url, \
             a token and announce_entity (they show in the web UI)"
        );
    }
    let wyoming = match settings.voice.wyoming_addr() {
        None => None,
        Some(addr) => {
            let listener = std::net::TcpListener::bind(addr)
                .with_context(|| format!("cannot listen for Wyoming on {addr} (voice.wyoming_listen)"))?;
            listener.set_nonblocking(true)?;
            let satellites = Satellites::new(voice.clone(), assistant.clone(), store.clone(), satellite_user);
            let options = ServerOptions {
                allow: Some(settings.voice.wyoming_allowed()),
                max_utterance_seconds: f64::from(settings.voice.max_audio_seconds.min(120)),
                ..ServerOptions::default()
            };
            tracing::info!(%addr, allow = ?settings.voice.wyoming_allow, "Wyoming server for voice satellites");
            Some((listener, Arc::new(satellites), options))
        }
    };
    // The handle (`telegram.sender()`) can send to the allowlisted chats from elsewhere.
    let telegram =
        crate::channels::telegram::Telegram::new(&settings, assistant.clone(), voice.clone(), store.clone())
            .map_err(anyhow::Error::msg)?;
    let started = Instant::now();
    // What MQTT commands act on; a config reload applies what it can through `live`.
    let source = crate::control::ConfigSource { file: loaded.file.clone(), flags: loaded.flags.clone() };
    let control = crate::control::Control {
        notices: reminders.notices().clone(),
        models: models.clone(),
        store: store.clone(),
        workflows: workflows.clone(),
        settings: crate::control::LiveSettings::new(settings.clone(), source),
    };
    let mqtt = crate::mqtt::Mqtt::start(
        &settings.mqtt,
        &settings.tls_dir(),
        crate::mqtt::Sources {
            metrics: metrics.clone(),
            sampler: sampler.clone(),
            models: models.clone(),
            started,
        },
        Some(control),
    )
    .map_err(anyhow::Error::msg)?;
    let backups = crate::backup::Backups::new(&settings, loaded.file.as_deref());
    let every = match settings.backup.every.as_str() {
        "" => None,
        every => Some(crate::backup::parse_every(every).map_err(anyhow::Error::msg)?),
    };
    let registry = models.clone();
    crate::backup::Maintenance::start(
        store.clone(),
        backups.clone(),
        every,
        settings.retention.clone(),
        Box::new(move || match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime.block_on(registry.forget_cached()),
            Err(e) => tracing::warn!(error = %e, "cannot drop the KV caches after retention"),
        }),
    );
    let (reminders_told, store_told) = (reminders.clone(), store.clone());
    let engines = models.clone();
    let advertisement = crate::tls::mdns::advertise(&settings);
    let state = AppState {
        settings,
        store,
        models,
        metrics,
        sampler,
        started,
        knowledge,
        assistant,
        jobs,
        reminders,
        notes,
        voice,
        tls,
        names,
        revocations: Default::default(),
        pulls,
        workflows: workflows.clone(),
        hooks,
        backups,
    };
    actix_web::rt::System::new()
        .block_on(async move {
            workflows.spawn_dispatcher();
            if let Some((listener, satellites, options)) = wyoming {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                tokio::spawn(wyoming::serve(listener, satellites, options, std::future::pending()));
            }
            if let Some(announcer) = announcer {
                actix_web::rt::spawn(announcer.run(reminders_told.clone()));
            }
            if let Some(telegram) = telegram {
                let notices =
                    crate::channels::telegram::tell_notices(telegram.sender(), reminders_told, store_told);
                actix_web::rt::spawn(notices);
                actix_web::rt::spawn(telegram.run());
            }
            http::serve(state).await
        })
        .context("HTTP server failed")?;
    drop(advertisement);
    if let Some(mqtt) = mqtt {
        mqtt.stop(std::time::Duration::from_secs(3));
    }
    engines.stop(std::time::Duration::from_secs(20));
    tracing::info!("stopped");
    Ok(())
}

/// `voice.wyoming_user`'s id; an error when no user has that name.
fn satellite_user(settings: &crate::config::Settings, store: &Store) -> anyhow::Result<Option<i64>> {
    let name = &settings.voice.wyoming_user;
    if name.is_empty() {
        return Ok(None);
    }
    match store.find_user(name) {
        Ok(user) => Ok(Some(user.id)),
        Err(crate::store::StoreError::NotFound(_)) => anyhow::bail!(
            "invalid value for voice.wyoming_user: there is no user named '{name}' (hearth users add {name})"
        ),
        Err(e) => Err(e.into()),
    }
}
