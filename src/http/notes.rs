//! `/api/notes`: the caller's notes. `GET` lists them, the most recently changed first
//! (`?limit=&offset=`), or with `?q=words` those that mention the words, best first (the
//! search index's `note` kind, which `/api/search` also finds); `POST {"text", "title"?}`
//! creates one (no title: the start of the text). `GET`, `PATCH {"title"?, "text"?}` and
//! `DELETE /api/notes/{id}`; another user's note is `404 note_not_found`.

use super::{json, AppState, Caller};
use crate::error::ApiError;
use crate::notes::NoteChange;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

const MAX_QUERY_CHARS: usize = 1000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default = "default_limit")]
    limit: u32,
    #[serde(default)]
    offset: u32,
    #[serde(default)]
    q: Option<String>,
}

fn default_limit() -> u32 {
    50
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct NoteList {
    /// With `q`, each also has a `snippet` (`Found`).
    notes: Vec<crate::store::Note>,
}

#[utoipa::path(get, path = "/api/notes", tag = "notes", params(ListQuery),
    responses((status = 200, description = "The caller's notes (with `q`: those that match, each with a `snippet`)", body = inline(NoteList)),
        (status = 400, description = "`invalid_request`: a limit outside 1-500, an empty or long `q`, `offset` with `q`")))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    if !(1..=500).contains(&query.limit) {
        return Err(ApiError::invalid("limit must be between 1 and 500"));
    }
    let user_id = caller.user.id;
    match query.q.as_deref().map(str::trim) {
        None => {
            let notes = state.notes.list(user_id, query.limit, query.offset).await?;
            Ok(json(&serde_json::json!({ "notes": notes })))
        }
        Some("") => Err(ApiError::invalid("q must not be empty")),
        Some(q) if q.chars().count() > MAX_QUERY_CHARS => {
            Err(ApiError::invalid(format!("q is longer than {MAX_QUERY_CHARS} characters")))
        }
        Some(_) if query.offset > 0 => Err(ApiError::invalid("offset does not apply to a search (q)")),
        Some(q) => {
            let found = state.notes.search(user_id, q, query.limit.min(100) as usize).await?;
            Ok(json(&serde_json::json!({ "notes": found })))
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNote {
    text: String,
    #[serde(default)]
    title: Option<String>,
}

#[utoipa::path(post, path = "/api/notes", tag = "notes", request_body = NewNote,
    responses((status = 201, description = "The note", body = crate::store::Note),
        (status = 400, description = "`invalid_request`: empty or too long")))]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<NewNote>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let note = state.notes.create(caller.user.id, body.title.as_deref(), &body.text).await?;
    Ok(HttpResponse::Created().json(note))
}

#[utoipa::path(get, path = "/api/notes/{id}", tag = "notes", params(("id" = i64, Path)),
    responses((status = 200, description = "The note", body = crate::store::Note),
        (status = 404, description = "`note_not_found`")))]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    Ok(json(&state.notes.get(caller.user.id, id.into_inner()).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Change {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    text: Option<String>,
}

#[utoipa::path(patch, path = "/api/notes/{id}", tag = "notes", params(("id" = i64, Path)), request_body = Change,
    responses((status = 200, description = "The note", body = crate::store::Note),
        (status = 400, description = "`invalid_request`: empty or too long"),
        (status = 404, description = "`note_not_found`")))]
pub async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
    body: web::Json<Change>,
) -> Result<HttpResponse, ApiError> {
    let Change { title, text } = body.into_inner();
    let note = state.notes.update(caller.user.id, id.into_inner(), NoteChange { title, text }).await?;
    Ok(json(&note))
}

#[utoipa::path(delete, path = "/api/notes/{id}", tag = "notes", params(("id" = i64, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, description = "`note_not_found`")))]
pub async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    state.notes.delete(caller.user.id, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}
