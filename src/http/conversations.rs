//! `GET /api/conversations` and `GET /api/conversations/{id}`: the caller's own history.

use super::{json, AppState, Caller};
use crate::error::{ApiError, ErrorCode};
use crate::store::{Conversation, Message, StoreError};
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    #[serde(default = "default_limit")]
    limit: u32,
    #[serde(default)]
    offset: u32,
}

fn default_limit() -> u32 {
    50
}

pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    page: web::Query<Page>,
) -> Result<HttpResponse, ApiError> {
    if !(1..=500).contains(&page.limit) {
        return Err(ApiError::invalid("limit must be between 1 and 500"));
    }
    let (user_id, limit, offset) = (caller.user.id, page.limit, page.offset);
    let conversations =
        state.store.run(move |store| store.list_conversations(user_id, limit, offset)).await?;
    Ok(json(&serde_json::json!({ "conversations": conversations })))
}

#[derive(Debug, Serialize)]
struct ConversationWithMessages {
    #[serde(flatten)]
    conversation: Conversation,
    messages: Vec<Message>,
}

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
