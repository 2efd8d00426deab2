//! `/api/reminders`: the caller's timers and reminders (list, set, cancel), and
//! `GET /api/events`: the notices that reach the caller while connected (a reminder that
//! rang), as server-sent events.
//!
//! `POST /api/reminders` takes `{"text": "call mum", "at": "18:30"}` or
//! `{"in_seconds": 300, "kind": "timer", "text": "eggs"}` (`kind` is `reminder` unless
//! said); `at` is a time of day (today, or tomorrow once passed) or a date and time, in the
//! box's time zone. `GET /api/reminders` lists the pending ones, soonest first
//! (`?all=true`: every one, newest first). `DELETE /api/reminders/{id}` cancels one.
//!
//! `GET /api/events` first sends the notices the caller missed while no channel was
//! connected, then each one as it happens: `event: reminder`, data `{"text": "Reminder:
//! call mum.", "reminder": {...}}`, and what workflows tell the web (`event: workflow`,
//! `{"text", "workflow", "run_id"}`); a comment every 20 s keeps proxies from closing it.

use super::sse::{sse_event, sse_response};
use super::{json, AppState, Caller, Credential};
use crate::error::ApiError;
use crate::notices::{Channel, Notice, Target};
use crate::reminders::{when, Kind, Origin};
use actix_web::{web, HttpResponse};
use bytes::Bytes;
use chrono::Local;
use serde::Deserialize;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

const KEEP_ALIVE: Duration = Duration::from_secs(20);

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    all: bool,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct ReminderList {
    reminders: Vec<crate::store::Reminder>,
}

#[utoipa::path(get, path = "/api/reminders", tag = "reminders", params(ListQuery),
    responses((status = 200, description = "Pending reminders, soonest first (`all`: every one, newest first)", body = inline(ReminderList))))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let reminders = state.reminders.list(caller.user.id, !query.all).await?;
    Ok(json(&serde_json::json!({ "reminders": reminders })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReminder {
    #[serde(default)]
    text: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    at: Option<String>,
    #[serde(default)]
    in_seconds: Option<f64>,
    /// The conversation it is written into when it rings.
    #[serde(default)]
    conversation_id: Option<String>,
}

#[utoipa::path(post, path = "/api/reminders", tag = "reminders", request_body = NewReminder,
    responses((status = 201, description = "The reminder", body = crate::store::Reminder),
        (status = 400, description = "`invalid_request`: neither or both of `at` and `in_seconds`, a time that does not parse, a wrong `kind`"),
        (status = 404, description = "`conversation_not_found`: `conversation_id` is not the caller's")))]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<NewReminder>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let now = Local::now();
    let due = match (body.at.as_deref(), body.in_seconds) {
        (Some(at), None) => when::parse_at(at, now),
        (None, Some(seconds)) => when::after(seconds, now),
        _ => return Err(ApiError::invalid("give one of 'at' (like \"18:30\") or 'in_seconds'")),
    }
    .map_err(ApiError::invalid)?;
    let kind = match body.kind.as_deref() {
        None | Some("reminder") => Kind::Reminder { text: body.text },
        Some("timer") => Kind::Timer { label: body.text },
        Some(other) => {
            return Err(ApiError::invalid(format!("kind must be 'timer' or 'reminder', not '{other}'")))
        }
    };
    let user_id = caller.user.id;
    if let Some(id) = body.conversation_id.clone() {
        state.store.run(move |store| store.conversation(user_id, &id)).await?;
    }
    let origin = Origin { user_id, channel: Channel::Chat, conversation_id: body.conversation_id };
    let reminder = state.reminders.set(origin, kind, due).await?;
    Ok(HttpResponse::Created().json(reminder))
}

#[utoipa::path(delete, path = "/api/reminders/{id}", tag = "reminders", params(("id" = i64, Path)),
    responses((status = 200, description = "The cancelled reminder", body = crate::store::Reminder),
        (status = 404, description = "`not_found`: no such pending reminder of the caller's")))]
pub async fn cancel(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let reminder = state.reminders.cancel(caller.user.id, id.into_inner()).await?;
    Ok(json(&reminder))
}

fn frame(notice: &Notice) -> Bytes {
    let (name, data) = notice.event();
    sse_event(Some(name), &data.to_string())
}

#[utoipa::path(get, path = "/api/events", tag = "reminders",
    description = "Server-sent events, endless: the notices the caller missed, then each as it happens (`event: reminder`, `event: workflow`); a comment every 20 s.",
    responses((status = 200, description = "The event stream", content_type = "text/event-stream", body = crate::http::openapi::SseEvent)))]
pub async fn events(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let user_id = caller.user.id;
    // Subscribed before the missed ones are read: a notice in between comes twice at
    // worst (the client keys them by reminder id), never not at all.
    // What workflows tell (`notify` steps) comes as `event: workflow`; not kept for later.
    let mut live = state.reminders.notices().subscribe();
    let mut revoked = state.revocations.subscribe();
    let (token, login) = match caller.credential {
        Credential::Token(id) => (Some(id), None),
        Credential::Session(id) => (None, Some(id)),
    };
    let reminders = state.reminders.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    // The task ends when the client goes (a send fails), the credential is revoked, or
    // the server stops.
    actix_web::rt::spawn(async move {
        let tell = |notices: Vec<Notice>| {
            let (tx, reminders) = (tx.clone(), reminders.clone());
            async move {
                for notice in notices {
                    if tx.send(frame(&notice)).await.is_err() {
                        return false;
                    }
                    if let Some(reminder) = notice.rung() {
                        reminders.delivered(reminder.id).await;
                    }
                }
                true
            }
        };
        if !tell(reminders.missed(user_id).await).await
            || tx.send(Bytes::from_static(b": connected\n\n")).await.is_err()
        {
            return;
        }
        loop {
            let going = tokio::select! {
                notice = live.recv() => match notice {
                    Ok(notice) if notice.concerns(user_id) && notice.is_for(Target::Web) => {
                        tell(vec![(*notice).clone()]).await
                    }
                    Ok(_) => true,
                    // Fell behind: what was missed is read from the store.
                    Err(RecvError::Lagged(_)) => tell(reminders.missed(user_id).await).await,
                    Err(RecvError::Closed) => false,
                },
                revocation = revoked.recv() => !revocation.map_or(true, |r| r.ends(token, login, user_id)),
                _ = tokio::time::sleep(KEEP_ALIVE) => tx.send(Bytes::from_static(b": keep-alive\n\n")).await.is_ok(),
            };
            if !going {
                break;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|bytes| (Ok::<_, actix_web::Error>(bytes), rx))
    });
    Ok(sse_response(stream))
}
