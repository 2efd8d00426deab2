//! Skills per user: the owner's settings for one user (`GET` and
//! `PUT /api/admin/users/{id}/skills`) and a user's own (`GET /api/skills`). What a
//! setting means, and which skills exist, is `skills/per_user.rs`'s.

use super::auth::Admin;
use super::{json, AppState, Caller};
use crate::error::ApiError;
use actix_web::{web, HttpResponse};
use serde_json::json;
use std::collections::BTreeMap;

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct UserSkills {
    user_id: i64,
    skills: Vec<crate::skills::Standing>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct OwnSkills {
    skills: Vec<crate::skills::Standing>,
}

/// `GET /api/admin/users/{id}/skills`: each skill the box has, its default, this user's
/// setting and whether they have it.
#[utoipa::path(get, path = "/api/admin/users/{id}/skills", tag = "admin", extensions(("x-hearth-role" = json!("admin"))), params(("id" = i64, Path)),
    responses((status = 200, description = "Each skill and whether the user may use it", body = inline(UserSkills)),
        (status = 404, description = "`not_found`: no such user")))]
pub async fn of_user(
    state: web::Data<AppState>,
    _admin: Admin,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let skills = state.assistant.skills().standings_of(id).await?;
    Ok(json(&json!({ "user_id": id, "skills": skills })))
}

/// `PUT /api/admin/users/{id}/skills` `{"clock": false, "calculate": true, "weather": null}`:
/// on, off, or back to the box's default (`null`). All or nothing: an unknown name is a 400
/// `unknown_skill` and nothing changes. Answers as the `GET`.
#[utoipa::path(put, path = "/api/admin/users/{id}/skills", tag = "admin", extensions(("x-hearth-role" = json!("admin"))), params(("id" = i64, Path)),
    request_body(content = inline(std::collections::BTreeMap<String, Option<bool>>), description = "Skill name to allowed (`true`/`false`) or the default (`null`)"),
    responses((status = 200, description = "The user's skills now", body = inline(UserSkills)),
        (status = 400, description = "`unknown_skill`"),
        (status = 404, description = "`not_found`: no such user")))]
pub async fn set_for_user(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<i64>,
    body: web::Json<BTreeMap<String, Option<bool>>>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let changes: Vec<(String, Option<bool>)> = body.into_inner().into_iter().collect();
    let said = format!("{changes:?}");
    let skills = state.assistant.skills().set_for(id, changes, admin.0.actor()).await?;
    tracing::info!(by = %admin.0.user.name, user_id = id, changes = %said, "skills set for a user");
    Ok(json(&json!({ "user_id": id, "skills": skills })))
}

/// `GET /api/skills`: the skills the box has and whether the caller has each.
#[utoipa::path(get, path = "/api/skills", tag = "skills",
    responses((status = 200, description = "The skills the caller may use", body = inline(OwnSkills))))]
pub async fn own(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let skills = state.assistant.skills().standings_of(caller.user.id).await?;
    Ok(json(&json!({ "skills": skills })))
}
