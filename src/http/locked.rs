//! The service while it is locked: an encrypted box whose secret must be typed.
//!
//! Only three things answer: `GET /api/health` (`"status": "locked"`), `POST /api/unlock`
//! (`{"passphrase": "…"}`, JSON) and the unlock page (`GET /`, its form posts to
//! `/unlock`). Everything else is 503 `locked`. A wrong passphrase is 401 `wrong_key`
//! after a pause, and one attempt runs at a time (429 `too_many_attempts` otherwise), so
//! guessing costs Argon2id plus a second per try. The right one stops this server and
//! hands the keys to `serve`, which starts the real one on the same address.

use crate::config::Settings;
use crate::crypt::{CryptError, Header, Keys, Secret};
use crate::error::{ApiError, ErrorCode};
use crate::tls::Tls;
use actix_web::http::header;
use actix_web::{web, App, HttpResponse, HttpServer};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The pause after a wrong passphrase.
const WRONG_PAUSE: Duration = Duration::from_secs(1);

pub(super) struct Gate {
    header: Header,
    keys: Mutex<Option<tokio::sync::oneshot::Sender<Keys>>>,
    attempt: tokio::sync::Mutex<()>,
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
pub(super) struct UnlockBody {
    passphrase: String,
}

/// Serves the locked API on `server.listen` until the right passphrase arrives (the keys)
/// or the process is told to stop (`None`).
pub async fn serve(
    settings: Arc<Settings>,
    tls: Option<Tls>,
    header: Header,
) -> std::io::Result<Option<Keys>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let gate = web::Data::new(Gate { header, keys: Mutex::new(Some(tx)), attempt: Default::default() });
    let addr = settings.listen_addr();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(gate.clone())
            .app_data(web::JsonConfig::default().limit(4096))
            .app_data(web::FormConfig::default().limit(4096))
            .route("/api/health", web::get().to(health))
            .route("/api/unlock", web::post().to(unlock_json))
            .route("/unlock", web::post().to(unlock_form))
            .route("/", web::get().to(page))
            .default_service(web::to(locked))
    })
    .workers(1)
    .disable_signals();
    let server = match &tls {
        Some(tls) => server.bind_rustls_0_23(addr, tls.server_config())?,
        None => server.bind(addr)?,
    }
    .run();
    let handle = server.handle();
    let running = actix_web::rt::spawn(server);
    tracing::warn!(%addr, "the data is encrypted and no key file or credential was given: LOCKED until a passphrase is entered (hearth unlock, or the web page)");
    let stop = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok::<_, std::io::Error>(())
    };
    let keys = tokio::select! {
        keys = rx => keys.ok(),
        stopped = stop => { stopped?; None }
    };
    handle.stop(true).await;
    let _ = running.await;
    Ok(keys)
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct Unlocked {
    unlocked: bool,
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "status": "locked",
        "locked": true,
        "ready": false,
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

async fn locked() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        ErrorCode::Locked,
        "the box is locked: its data is encrypted; unlock it with `hearth unlock` or on its web page",
    ))
}

/// Tries a passphrase; the keys go to `serve` when it is right.
async fn try_unlock(gate: &web::Data<Gate>, passphrase: String) -> Result<(), ApiError> {
    let Ok(_one) = gate.attempt.try_lock() else {
        return Err(ApiError::new(
            ErrorCode::TooManyAttempts,
            "another unlock attempt is running; try again",
        ));
    };
    let secret = Secret::passphrase(&passphrase)?;
    drop(passphrase);
    let checking = gate.clone();
    let result = web::block(move || checking.header.unlock(&secret))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    match result {
        Ok(keys) => {
            let sender = gate.keys.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(sender) = sender {
                let _ = sender.send(keys);
            }
            tracing::info!("unlocked");
            Ok(())
        }
        Err(CryptError::WrongKey) => {
            tracing::warn!("unlock refused: wrong passphrase");
            actix_web::rt::time::sleep(WRONG_PAUSE).await;
            Err(CryptError::WrongKey.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /api/unlock`, served only while the box is locked.
#[utoipa::path(post, path = "/api/unlock", tag = "meta", description = "Served only while the box is locked (encrypted data, no key file): the passphrase starts the real server. Any other route answers 503 `locked` meanwhile.",
    request_body = UnlockBody,
    responses(
        (status = 200, description = "Unlocked; the service starts", body = inline(Unlocked)),
        (status = 401, description = "`wrong_key`: wrong passphrase (after a pause)"),
        (status = 429, description = "`too_many_attempts`: another attempt is running"),
        (status = 503, description = "`locked`: the box is locked (every other route)")))]
pub(super) async fn unlock_json(
    gate: web::Data<Gate>,
    body: web::Json<UnlockBody>,
) -> Result<HttpResponse, ApiError> {
    try_unlock(&gate, body.into_inner().passphrase).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "unlocked": true })))
}

/// `POST /unlock`, the unlock page's form, served only while the box is locked.
#[utoipa::path(post, path = "/unlock", tag = "meta", description = "The unlock page's form; served only while the box is locked.",
    request_body(content = UnlockBody, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The page, saying whether it worked", content_type = "text/html", body = String)))]
pub(super) async fn unlock_form(gate: web::Data<Gate>, body: web::Form<UnlockBody>) -> HttpResponse {
    match try_unlock(&gate, body.into_inner().passphrase).await {
        Ok(()) => {
            page_with("Unlocked. Hearth is starting; <a href=\"/\">continue</a> in a few seconds.", false)
        }
        Err(e) => page_with(&escape(&e.message), true),
    }
}

async fn page() -> HttpResponse {
    page_with("", true)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The unlock page: a form, no script.
fn page_with(message: &str, form: bool) -> HttpResponse {
    let form = if form {
        "<form method=\"post\" action=\"/unlock\">\
         <label>Passphrase <input type=\"password\" name=\"passphrase\" autocomplete=\"current-password\" autofocus required minlength=\"8\"></label> \
         <button type=\"submit\">Unlock</button></form>"
    } else {
        ""
    };
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Hearth is locked</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}}\
         input{{font-size:1rem;padding:.3rem}}p.note{{color:#555}}</style></head><body>\
         <h1>Hearth is locked</h1><p class=\"note\">This box keeps its data encrypted. Enter its passphrase to start it.</p>\
         <p role=\"status\">{message}</p>{form}</body></html>"
    );
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
        ))
        .body(body)
}
