//! `GET /api/conversations` and `GET /api/conversations/{id}`: the caller's own history.

use super::paging::Page;
use super::{json, AppState, Caller};
use crate::error::{ApiError, ErrorCode};
use crate::store::{Conversation, Message, StoreError};
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct ConversationList {
    conversations: Vec<Conversation>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct Renamed {
    ok: bool,
    title: String,
}

#[utoipa::path(get, path = "/api/conversations", tag = "conversations", params(Page),
    responses((status = 200, description = "The caller's conversations, newest first", body = inline(ConversationList)),
        (status = 400, description = "`invalid_request`: a limit outside 1-500")))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    page: web::Query<Page>,
) -> Result<HttpResponse, ApiError> {
    let ((limit, offset), user_id) = (page.checked()?, caller.user.id);
    let conversations =
        state.store.run(move |store| store.list_conversations(user_id, limit, offset)).await?;
    Ok(json(&serde_json::json!({ "conversations": conversations })))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct ConversationWithMessages {
    #[serde(flatten)]
    conversation: Conversation,
    messages: Vec<Message>,
}

#[utoipa::path(get, path = "/api/conversations/{id}", tag = "conversations", params(("id" = String, Path)),
    responses((status = 200, description = "The conversation and its messages", body = inline(ConversationWithMessages)),
        (status = 404, description = "`conversation_not_found`")))]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user_id = caller.user.id;
    let id = id.into_inner();
    let found = state
        .store
        .run(move |store| {
            let conversation = store.conversation(user_id, &id)?;
            let messages = store.messages(user_id, &id)?;
            Ok(ConversationWithMessages { conversation, messages })
        })
        .await;
    match found {
        Ok(c) => Ok(json(&c)),
        Err(StoreError::NotFound(_)) => {
            Err(ApiError::new(ErrorCode::ConversationNotFound, "no such conversation"))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rename {
    title: String,
}

fn not_found_as_conversation(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound(_) => ApiError::new(ErrorCode::ConversationNotFound, "no such conversation"),
        other => other.into(),
    }
}

/// `PATCH /api/conversations/{id}` with `{"title"}`.
#[utoipa::path(patch, path = "/api/conversations/{id}", tag = "conversations", params(("id" = String, Path)), request_body = Rename,
    responses((status = 200, description = "Renamed", body = inline(Renamed)),
        (status = 400, description = "`invalid_request`: the title must have 1-200 characters"),
        (status = 404, description = "`conversation_not_found`")))]
pub async fn rename(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: web::Json<Rename>,
) -> Result<HttpResponse, ApiError> {
    let title = body.into_inner().title.trim().to_string();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(ApiError::invalid("title must have 1-200 characters"));
    }
    let (user_id, id) = (caller.user.id, id.into_inner());
    let stored = title.clone();
    state
        .store
        .run(move |store| store.rename_conversation(user_id, &id, &stored))
        .await
        .map_err(not_found_as_conversation)?;
    Ok(json(&serde_json::json!({ "ok": true, "title": title })))
}

/// `DELETE /api/conversations/{id}`: the conversation and its messages.
#[utoipa::path(delete, path = "/api/conversations/{id}", tag = "conversations", params(("id" = String, Path)),
    responses((status = 200, description = "Deleted", body = crate::http::openapi::Done),
        (status = 404, description = "`conversation_not_found`")))]
pub async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (user_id, id) = (caller.user.id, id.into_inner());
    state
        .store
        .run(move |store| store.delete_conversation(user_id, &id))
        .await
        .map_err(not_found_as_conversation)?;
    // Its keys and values may still sit in the engine's caches (a file on disk among them),
    // and which ones are its is not recorded: all idle ones go.
    state.models.forget_cached().await;
    Ok(json(&serde_json::json!({ "ok": true })))
}

/// `DELETE /api/conversations/{id}/last-turn`: removes the newest question and its
/// reply, so the web UI can regenerate an answer without duplicating history.
#[utoipa::path(delete, path = "/api/conversations/{id}/last-turn", tag = "conversations", params(("id" = String, Path)),
    responses((status = 200, description = "The newest question and its reply are gone", body = crate::http::openapi::Done),
        (status = 404, description = "`conversation_not_found`")))]
pub async fn delete_last_turn(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (user_id, id) = (caller.user.id, id.into_inner());
    state
        .store
        .run(move |store| store.delete_last_turn(user_id, &id))
        .await
        .map_err(not_found_as_conversation)?;
    Ok(json(&serde_json::json!({ "ok": true })))
}
