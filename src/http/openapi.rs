//! The OpenAPI 3.1 document, served at `GET /api/openapi.json` to any signed-in user.
//!
//! Each handler carries its own `#[utoipa::path]` annotation (method, path, parameters,
//! body, its own responses); this module collects them and completes every operation
//! from the same rules the server applies, so the two cannot drift apart:
//! - security from `auth::is_public` (none, or the bearer token or the session cookie);
//!   the role an operation needs (`x-hearth-role`, `admin` where the handler takes
//!   [`super::Admin`]) also appears as the role list of its security requirements, as
//!   OpenAPI 3.1 allows for schemes other than OAuth; the token scope it needs
//!   (`x-hearth-scope`) from [`Scope::required_for`];
//! - the errors the middleware and extractors give (401, 403, 429, 400, 413, 415, 421),
//!   with the error body in the shape the path answers in: Hearth's
//!   `{"error": {"code", "message", "type"}}`, whose `code` lists every stable code of
//!   `error.rs`, or Ollama's `{"error", "code"}` on the Ollama API's own paths.
//!
//! The tests compare the document with the routes `http/mod.rs` and `locked.rs`
//! register, method by method, so a route cannot be added without its annotation, and
//! each handler's [`super::Admin`] argument with its annotation's `x-hearth-role`.

use super::Caller;
use crate::auth::scopes::Scope;
use crate::error::ErrorCode;
use actix_web::HttpResponse;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::header::Header;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{Content, RefOr, Response};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

/// The document (`GET /api/openapi.json`), built once.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "meta",
    responses((status = 200, description = "This document (OpenAPI 3.1)", body = Object))
)]
pub async fn document(_caller: Caller) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(text())
}

/// The document as JSON text.
pub fn text() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| serde_json::to_string(&ApiDoc::openapi()).unwrap_or_else(|_| "{}".into()))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Hearth",
        description = "The API of a Hearth box: Hearth's own (`/api/...`), the OpenAI-compatible \
                       API (`/v1/...`) and the Ollama API. Every route but the public ones needs \
                       `Authorization: Bearer <token>` or the web UI's session cookie (which also \
                       needs `X-Hearth-CSRF: 1` on anything but GET). `x-hearth-role` says which \
                       role an operation needs, `x-hearth-scope` which scope a token needs."
    ),
    paths(
        document,
        super::health::health,
        super::health::metrics,
        super::transport::ca_certificate,
        super::transport::ca_certificate_der,
        super::transport::acme_challenge,
        super::ui::index,
        super::ui::asset,
        super::locked::unlock_json,
        super::locked::unlock_form,
        super::ollama::api_chat,
        super::ollama::models::version,
        super::ollama::models::tags,
        super::ollama::models::ps,
        super::ollama::models::show,
        super::ollama::models::pull,
        super::ollama::generate::generate,
        super::ollama::embed::embed,
        super::ollama::embed::embeddings,
        super::conversations::list,
        super::conversations::get,
        super::conversations::rename,
        super::conversations::delete,
        super::conversations::delete_last_turn,
        super::backups::export,
        super::backups::import,
        super::backups::list,
        super::backups::start,
        super::backups::run_retention,
        super::backups::retention_of,
        super::backups::set_retention,
        super::reminders::list,
        super::reminders::create,
        super::reminders::cancel,
        super::reminders::events,
        super::workflows::list,
        super::workflows::reload,
        super::workflows::change,
        super::workflows::run,
        super::workflows::runs,
        super::workflows::run_record,
        super::workflows::hook,
        super::notes::list,
        super::notes::create,
        super::notes::get,
        super::notes::update,
        super::notes::delete,
        super::documents::list,
        super::documents::upload,
        super::documents::get,
        super::documents::delete,
        super::documents::jobs,
        super::documents::job,
        super::search::search,
        super::account::status,
        super::account::onboard,
        super::account::login,
        super::account::logout,
        super::account::me,
        super::account::change_password,
        super::admin::list_users,
        super::admin::create_user,
        super::admin::delete_user,
        super::admin::set_password,
        super::admin::disable,
        super::admin::enable,
        super::admin::list_tokens,
        super::admin::create_token,
        super::admin::revoke_token,
        super::admin::system,
        super::audit::list,
        super::admin_models::list,
        super::admin_models::pull,
        super::admin_skills::of_user,
        super::admin_skills::set_for_user,
        super::admin_skills::own,
        super::openai::models,
        super::openai::chat::chat_completions,
        super::openai::completions::completions,
        super::openai::embeddings::embeddings,
        super::audio::transcriptions,
        super::speech::speech,
        super::speech::voices,
        super::voice_ws::ws,
    ),
    components(schemas(ApiErrorBody, OllamaErrorBody, EitherErrorBody, crate::notes::Found)),
    modifiers(&Complete)
)]
struct ApiDoc;

/// Hearth's error body; its `code` is one of the stable codes of `error.rs`.
pub struct ApiErrorBody;

impl PartialSchema for ApiErrorBody {
    fn schema() -> RefOr<Schema> {
        let codes = ErrorCode::ALL.iter().map(|c| c.code());
        let mut kinds: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.kind()).collect();
        kinds.sort_unstable();
        kinds.dedup();
        let detail = ObjectBuilder::new()
            .property(
                "code",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(codes))
                    .description(Some("A stable code: clients may match on it")),
            )
            .required("code")
            .property("message", ObjectBuilder::new().schema_type(Type::String))
            .required("message")
            .property(
                "type",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(kinds))
                    .description(Some("OpenAI's error type")),
            )
            .required("type");
        ObjectBuilder::new().property("error", detail).required("error").into()
    }
}

impl ToSchema for ApiErrorBody {
    fn name() -> std::borrow::Cow<'static, str> {
        "Error".into()
    }
}

/// An error on the Ollama API's own paths: the message as text (what Ollama's clients
/// read) and Hearth's stable code beside it.
pub struct OllamaErrorBody;

impl PartialSchema for OllamaErrorBody {
    fn schema() -> RefOr<Schema> {
        let codes = ErrorCode::ALL.iter().map(|c| c.code());
        ObjectBuilder::new()
            .property("error", ObjectBuilder::new().schema_type(Type::String))
            .required("error")
            .property("code", ObjectBuilder::new().schema_type(Type::String).enum_values(Some(codes)))
            .required("code")
            .into()
    }
}

impl ToSchema for OllamaErrorBody {
    fn name() -> std::borrow::Cow<'static, str> {
        "OllamaError".into()
    }
}

/// `/api/chat`'s errors: Hearth's shape, or Ollama's for a body with `messages`.
pub struct EitherErrorBody;

impl PartialSchema for EitherErrorBody {
    fn schema() -> RefOr<Schema> {
        utoipa::openapi::schema::OneOfBuilder::new()
            .item(utoipa::openapi::Ref::from_schema_name("Error"))
            .item(utoipa::openapi::Ref::from_schema_name("OllamaError"))
            .into()
    }
}

impl ToSchema for EitherErrorBody {
    fn name() -> std::borrow::Cow<'static, str> {
        "ChatError".into()
    }
}

/// Any JSON object (a body whose fields are described in words, or depend on the model).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Object {}

/// One server-sent event of a `text/event-stream` answer, as a client reads it: its
/// `data` is JSON text (OpenAI's chunks and `[DONE]`, Hearth's events).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SseEvent {
    /// The event's name (`token`, `done`, `reminder`...); absent: `message`.
    pub event: Option<String>,
    pub data: String,
    pub id: Option<String>,
    pub retry: Option<u64>,
}

/// `{"ok": true}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Done {
    pub ok: bool,
}

/// Completes every operation from the server's own rules (see the module's docs).
struct Complete;

impl Modify for Complete {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token (`hearth tokens create`, or the admin page)"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::auth::session::SESSION_COOKIE,
                "The web UI's session (`POST /api/login`); requests other than GET/HEAD also need \
                 the header `X-Hearth-CSRF: 1`",
            ))),
        );
        for (path, item) in doc.paths.paths.iter_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
                &mut item.options,
                &mut item.trace,
            ];
            let methods = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];
            for (method, operation) in methods.into_iter().zip(operations) {
                if let Some(operation) = operation {
                    operation.operation_id = Some(operation_id(method, path));
                    complete(path, operation);
                }
            }
        }
    }
}

/// A unique operation id from the method and path: `post_api_notes`,
/// `get_api_notes_id` (handlers' names repeat from module to module).
fn operation_id(method: &str, path: &str) -> String {
    let words = path.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty());
    std::iter::once(method).chain(words).collect::<Vec<_>>().join("_")
}

/// An operation's role, as its annotation says (`x-hearth-role`): `user` when it says none.
fn role(operation: &Operation) -> String {
    operation
        .extensions
        .as_ref()
        .and_then(|e| e.get("x-hearth-role"))
        .and_then(|v| v.as_str())
        .unwrap_or("user")
        .to_string()
}

fn complete(path: &str, operation: &mut Operation) {
    let mut errors: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
    let mut add = |status: u16, why: &'static str| errors.entry(status).or_default().push(why);
    add(421, "`unknown_host`: the Host header is not one of the box's names");
    // Served only by the locked server (`locked.rs`), which has no users.
    let locked_only = matches!(path, "/api/unlock" | "/unlock");
    if super::auth::is_public(path) || locked_only {
        operation.security = Some(vec![SecurityRequirement::default()]);
    } else {
        let role = role(operation);
        let roles: Vec<String> = if role == "admin" { vec![role.clone()] } else { vec![] };
        operation.security = Some(vec![
            SecurityRequirement::new("bearer", roles.clone()),
            SecurityRequirement::new("session", roles),
        ]);
        let mut extensions = Extensions::default();
        extensions.insert("x-hearth-role".into(), json!(role));
        add(401, "`unauthorized`: no credentials, or an invalid, expired or revoked one");
        add(429, "`rate_limited`: the user's request limit; `Retry-After` says when to retry");
        add(403, "`csrf_rejected`: a session request that changes something without `X-Hearth-CSRF: 1`");
        if let Some(scope) = Scope::required_for(path) {
            extensions.insert("x-hearth-scope".into(), json!(scope.as_str()));
            add(403, "`insufficient_scope`: the token lacks the scope this path needs");
        }
        if role == "admin" {
            add(403, "`forbidden`: the caller is not an administrator");
            add(403, "`admin_address_refused`: not from an address `server.admin_allow` lets in");
        }
        operation.extensions.get_or_insert_with(Default::default).merge(extensions);
    }
    // Handlers that reach the store, the index or a worker thread; the static files and
    // answers that read memory only cannot fail this way.
    let static_answer = matches!(path, "/" | "/api/health" | "/ca.crt" | "/ca.der" | "/api/openapi.json")
        || path.starts_with("/assets/")
        || path.starts_with("/.well-known/");
    if !static_answer {
        add(500, "`storage_error`, `search_error`, `engine_error` or `internal_error`: a failure on the box (logged)");
    }
    let json_body =
        operation.request_body.as_ref().is_some_and(|b| b.content.contains_key("application/json"));
    if json_body {
        add(400, "`invalid_json` or `invalid_request`: the body is not JSON of this shape");
        add(413, "`payload_too_large`: the body is larger than `server.max_body_bytes`");
        add(415, "`unsupported_media_type`: the body is not sent as `application/json`");
    }
    if operation.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
        add(400, "`invalid_request`: a parameter that does not parse");
    }
    let error_schema: RefOr<Schema> = if super::ollama::is_ollama_only(path) {
        RefOr::Ref(utoipa::openapi::Ref::from_schema_name("OllamaError"))
    } else {
        RefOr::Ref(utoipa::openapi::Ref::from_schema_name("Error"))
    };
    let responses = &mut operation.responses.responses;
    for (status, whys) in errors {
        let entry = responses.entry(status.to_string()).or_insert_with(|| RefOr::T(Response::new("")));
        if let RefOr::T(response) = entry {
            for why in whys {
                if !response.description.contains(why) {
                    if !response.description.is_empty() {
                        response.description.push_str("; ");
                    }
                    response.description.push_str(why);
                }
            }
        }
    }
    for (status, response) in responses.iter_mut() {
        let RefOr::T(response) = response else { continue };
        let header = |text: &str, kind: Type| {
            let mut header = Header::new(ObjectBuilder::new().schema_type(kind));
            header.description = Some(text.to_string());
            header
        };
        match status.as_str() {
            "401" => {
                let text = "`Bearer` (with `unauthorized`)";
                response
                    .headers
                    .entry("WWW-Authenticate".into())
                    .or_insert_with(|| header(text, Type::String));
            }
            "429" | "503" => {
                let text = "Seconds to wait before retrying (where the code calls for it)";
                response.headers.entry("Retry-After".into()).or_insert_with(|| header(text, Type::Integer));
            }
            _ => {}
        }
        let is_error = status.starts_with('4') || status.starts_with('5');
        if is_error && response.content.is_empty() {
            response.content.insert("application/json".into(), Content::new(Some(error_schema.clone())));
        }
    }
}

#[cfg(test)]
mod tests;
