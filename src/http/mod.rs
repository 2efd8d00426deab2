//! The HTTP API: routes, authentication, request limits, SSE. No domain logic lives
//! here; handlers translate between HTTP and the assistant (a turn of conversation),
//! the engine and the store.

mod account;
mod admin;
mod admin_models;
mod admin_skills;
mod audio;
mod audit;
mod auth;
mod backups;
mod chat;
mod conversations;
mod documents;
mod errors;
mod health;
mod limits;
pub(crate) mod locked;
mod notes;
mod ollama;
mod openai;
mod openapi;
mod paging;
mod peer;
mod pieces;
mod reminders;
mod search;
mod speech;
pub(crate) mod spool;
mod sse;
mod transport;
mod ui;
mod voice_turn;
mod voice_ws;
mod workflows;

pub use auth::{Admin, Caller, Credential};

use crate::config::Settings;
use crate::engine::Registry;
use crate::error::{ApiError, ErrorCode};
use crate::jobs::JobRunner;
use crate::knowledge::Knowledge;
use crate::store::Store;
use crate::telemetry::{Metrics, Sampler};
use crate::tls::{SharedNames, Tls};
use crate::voice::Voice;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::{web, App, HttpResponse, HttpServer, ResponseError};
use std::sync::Arc;
use std::time::Instant;

/// Everything a handler may use.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub models: Registry,
    pub metrics: Metrics,
    /// The machine's figures (CPU, memory, disk, temperatures), sampled on a thread of its own.
    pub sampler: Sampler,
    pub started: Instant,
    pub knowledge: Knowledge,
    /// Turns of conversation, for every chat channel.
    pub assistant: crate::assistant::Assistant,
    pub jobs: JobRunner,
    /// Timers and reminders, and the notices that tell them.
    pub reminders: crate::reminders::Reminders,
    /// The users' notes.
    pub notes: crate::notes::Notes,
    pub voice: Voice,
    /// TLS as served (`None`: plain HTTP, `tls.mode = "off"`).
    pub tls: Option<Tls>,
    /// The box's names and addresses, for the `Host` check.
    pub names: SharedNames,
    /// Revoked credentials, for the connections that outlive their request.
    pub revocations: crate::auth::revocation::Revocations,
    /// Model downloads started from the admin page or at first start.
    pub pulls: crate::models::Pulls,
    /// The workflow files read at start, their schedules and runs.
    pub workflows: crate::workflows::Workflows,
    /// Inbound webhooks (`[[hooks]]`), checked by signature.
    pub hooks: crate::channels::hooks::Hooks,
    /// Backups made by the service (the admin API, the schedule).
    pub backups: crate::backup::Backups,
}

/// Registers every route, extractor limit and error handler on an app.
pub fn configure(cfg: &mut web::ServiceConfig, state: AppState) {
    let limit = state.settings.server.max_body_bytes;
    cfg.app_data(web::Data::new(state))
        .app_data(limits::json_config(limit))
        .app_data(web::PayloadConfig::new(limit))
        .app_data(limits::query_config())
        .app_data(limits::path_config())
        .service(resource("/api/health").route(web::get().to(health::health)))
        .service(resource("/ca.crt").route(web::get().to(transport::ca_certificate)))
        .service(resource("/ca.der").route(web::get().to(transport::ca_certificate_der)))
        .service(
            resource("/.well-known/acme-challenge/{token}").route(web::get().to(transport::acme_challenge)),
        )
        .service(resource("/metrics").route(web::get().to(health::metrics)))
        .service(resource("/api/openapi.json").route(web::get().to(openapi::document)))
        // Hearth's chat and Ollama's (`messages`): `ollama::api_chat` tells them apart.
        .service(resource("/api/chat").route(web::post().to(ollama::api_chat)))
        .service(resource("/api/conversations").route(web::get().to(conversations::list)))
        .service(resource("/api/conversations/export").route(web::get().to(backups::export)))
        .service(resource("/api/conversations/import").route(web::post().to(backups::import)))
        .service(
            resource("/api/reminders")
                .route(web::get().to(reminders::list))
                .route(web::post().to(reminders::create)),
        )
        .service(resource("/api/reminders/{id}").route(web::delete().to(reminders::cancel)))
        .service(resource("/api/events").route(web::get().to(reminders::events)))
        .service(resource("/api/workflows").route(web::get().to(workflows::list)))
        // Before `{name}`, which would take it.
        .service(resource("/api/workflows/reload").route(web::post().to(workflows::reload)))
        .service(resource("/api/workflows/{name}").route(web::patch().to(workflows::change)))
        .service(resource("/api/workflows/{name}/run").route(web::post().to(workflows::run)))
        .service(resource("/api/workflows/{name}/runs").route(web::get().to(workflows::runs)))
        .service(resource("/api/workflow-runs/{id}").route(web::get().to(workflows::run_record)))
        // No token: authenticated by its signature (`channels/hooks.rs`).
        .service(resource("/api/hooks/{name}").route(web::post().to(workflows::hook)))
        .service(
            resource("/api/notes").route(web::get().to(notes::list)).route(web::post().to(notes::create)),
        )
        .service(
            resource("/api/notes/{id}")
                .route(web::get().to(notes::get))
                .route(web::patch().to(notes::update))
                .route(web::delete().to(notes::delete)),
        )
        .service(
            resource("/api/documents")
                .route(web::get().to(documents::list))
                .route(web::post().to(documents::upload)),
        )
        .service(
            resource("/api/documents/{id}")
                .route(web::get().to(documents::get))
                .route(web::delete().to(documents::delete)),
        )
        .service(resource("/api/jobs").route(web::get().to(documents::jobs)))
        .service(resource("/api/jobs/{id}").route(web::get().to(documents::job)))
        .service(resource("/api/search").route(web::get().to(search::search)))
        .service(
            resource("/api/conversations/{id}")
                .route(web::get().to(conversations::get))
                .route(web::patch().to(conversations::rename))
                .route(web::delete().to(conversations::delete)),
        )
        .service(
            resource("/api/conversations/{id}/last-turn")
                .route(web::delete().to(conversations::delete_last_turn)),
        )
        .service(resource("/").route(web::get().to(ui::index)))
        .service(resource("/assets/{version}/{file}").route(web::get().to(ui::asset)))
        .service(
            resource("/api/onboard")
                .route(web::get().to(account::status))
                .route(web::post().to(account::onboard)),
        )
        .service(resource("/api/login").route(web::post().to(account::login)))
        .service(resource("/api/logout").route(web::post().to(account::logout)))
        .service(resource("/api/me").route(web::get().to(account::me)))
        .service(resource("/api/me/password").route(web::put().to(account::change_password)))
        .service(
            resource("/api/users")
                .route(web::get().to(admin::list_users))
                .route(web::post().to(admin::create_user)),
        )
        .service(resource("/api/users/{id}").route(web::delete().to(admin::delete_user)))
        .service(resource("/api/users/{id}/password").route(web::put().to(admin::set_password)))
        .service(resource("/api/users/{id}/disable").route(web::post().to(admin::disable)))
        .service(resource("/api/users/{id}/enable").route(web::post().to(admin::enable)))
        .service(
            resource("/api/tokens")
                .route(web::get().to(admin::list_tokens))
                .route(web::post().to(admin::create_token)),
        )
        .service(resource("/api/tokens/{id}").route(web::delete().to(admin::revoke_token)))
        .service(resource("/api/system").route(web::get().to(admin::system)))
        .service(resource("/api/audit").route(web::get().to(audit::list)))
        .service(resource("/api/admin/models").route(web::get().to(admin_models::list)))
        .service(
            resource("/api/admin/users/{id}/skills")
                .route(web::get().to(admin_skills::of_user))
                .route(web::put().to(admin_skills::set_for_user)),
        )
        .service(resource("/api/skills").route(web::get().to(admin_skills::own)))
        .service(resource("/api/admin/models/pull").route(web::post().to(admin_models::pull)))
        .service(
            resource("/api/admin/backups")
                .route(web::get().to(backups::list))
                .route(web::post().to(backups::start)),
        )
        .service(resource("/api/admin/retention").route(web::post().to(backups::run_retention)))
        .service(
            resource("/api/admin/users/{id}/retention")
                .route(web::get().to(backups::retention_of))
                .route(web::put().to(backups::set_retention)),
        )
        .service(resource("/v1/models").route(web::get().to(openai::models)))
        .service(resource("/v1/chat/completions").route(web::post().to(openai::chat_completions)))
        .service(resource("/v1/completions").route(web::post().to(openai::completions)))
        .service(resource("/v1/embeddings").route(web::post().to(openai::embeddings)))
        .service(resource("/v1/audio/transcriptions").route(web::post().to(audio::transcriptions)))
        .service(resource("/v1/audio/speech").route(web::post().to(speech::speech)))
        .service(resource("/v1/audio/voices").route(web::get().to(speech::voices)))
        .service(resource("/api/ws").route(web::get().to(voice_ws::ws)))
        .service(ollama_routes(limit));
}

/// The Ollama API but its `/api/chat` (shared with Hearth's, above): its bodies' errors in
/// Ollama's shape.
fn ollama_routes(limit: usize) -> actix_web::Scope {
    web::scope("/api")
        .app_data(ollama::json_config(limit))
        .service(resource("/version").route(web::get().to(ollama::version)))
        .service(resource("/tags").route(web::get().to(ollama::tags)))
        .service(resource("/ps").route(web::get().to(ollama::ps)))
        .service(resource("/show").route(web::post().to(ollama::show)))
        .service(resource("/pull").route(web::post().to(ollama::pull)))
        .service(resource("/generate").route(web::post().to(ollama::generate)))
        .service(resource("/embed").route(web::post().to(ollama::embed)))
        .service(resource("/embeddings").route(web::post().to(ollama::embeddings)))
}

/// A resource whose unmatched methods answer a JSON 405.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(|| async {
        ApiError::new(ErrorCode::MethodNotAllowed, "this method is not allowed on this path").error_response()
    }))
}

async fn not_found() -> HttpResponse {
    ApiError::new(ErrorCode::NotFound, "no such route").error_response()
}

/// Runs the HTTP server until SIGINT/SIGTERM: HTTPS on `server.listen` and a plain
/// listener on `server.http_listen` that redirects to it, or plain HTTP with TLS off.
pub async fn serve(state: AppState) -> std::io::Result<()> {
    let settings = state.settings.clone();
    let models = state.models.clone();
    let tls = state.tls.clone();
    let state_names = state.names.clone();
    let addr = settings.listen_addr();
    let workers = match settings.server.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()).min(4),
        n => n,
    };
    let server = HttpServer::new(move || {
        let state = state.clone();
        let metrics = state.metrics.clone();
        App::new()
            .configure(|cfg| configure(cfg, state))
            .default_service(web::to(not_found))
            .wrap(actix_web::middleware::from_fn(auth::require_auth))
            .wrap(actix_web::middleware::from_fn(transport::guard))
            .wrap_fn(move |req, srv| {
                let started = Instant::now();
                let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
                let method = crate::telemetry::method_label(req.method().as_str()).to_string();
                let metrics = metrics.clone();
                let fut = srv.call(req);
                async move {
                    let res: ServiceResponse = fut.await?;
                    let status = res.status().as_u16().to_string();
                    metrics.http_requests.with_label_values(&[&route, &method, &status]).inc();
                    metrics
                        .http_latency
                        .with_label_values(&[&route])
                        .observe(started.elapsed().as_secs_f64());
                    Ok(res)
                }
            })
    })
    .on_connect(peer::on_connect)
    // Without TCP_NODELAY a TLS handshake's last flight waits for the client's delayed
    // ACK: a new HTTPS connection's p99 was 49 ms against 5 ms in plain HTTP
    // (benches/tls.py), and every streamed token is a small write too.
    .tcp_nodelay(true)
    .workers(workers);
    state_names.spawn_follow(settings.clone(), crate::tls::NAMES_CHECK_EVERY);
    let server = match &tls {
        None => {
            tracing::warn!(%addr, "TLS is off (tls.mode = \"off\"): passwords and tokens cross the network readable");
            server.bind(addr)?
        }
        Some(tls) => {
            let server = server.bind_rustls_0_23(addr, tls.server_config())?;
            tracing::info!(%addr, mode = tls.mode.as_str(), "HTTPS");
            tls.spawn_keeper();
            match settings.http_listen_addr() {
                Some(plain) => {
                    tracing::info!(addr = %plain, "plain HTTP: redirects to HTTPS");
                    server.bind(plain)?
                }
                None => server,
            }
        }
    };
    tracing::info!(%addr, workers, "listening");
    let idle = std::time::Duration::from_secs(settings.model.idle_unload_secs);
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(idle.min(std::time::Duration::from_secs(30)));
        loop {
            tick.tick().await;
            models.unload_idle(idle);
        }
    });
    server.run().await
}

/// A JSON response with status 200.
pub(crate) fn json<T: serde::Serialize>(value: &T) -> HttpResponse {
    HttpResponse::Ok().json(value)
}
