//! `GET /api/audit` (administrators, from `server.admin_allow`): the audit log, newest
//! first, a page at a time. Query: `limit` (1-500, default 50), `before` (an id: the
//! previous page's `next_before`), `actor` (a name, `cli`, `system`, `anonymous`),
//! `action` (e.g. `login_failed`), `outcome` (`success`, `failure`, `refused`), `since`
//! and `until` (Unix seconds; `until` excluded). The domain is `audit/`.

use super::auth::Admin;
use super::{json, AppState};
use crate::audit::{Action, Outcome};
use crate::error::ApiError;
use crate::store::AuditFilter;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Query {
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    before: Option<i64>,
    #[serde(default)]
    actor: Option<String>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    outcome: Option<String>,
    #[serde(default)]
    since: Option<i64>,
    #[serde(default)]
    until: Option<i64>,
}

impl Query {
    fn filter(self) -> Result<AuditFilter, ApiError> {
        let limit = self.limit.unwrap_or(50);
        if !(1..=500).contains(&limit) {
            return Err(ApiError::invalid("limit must be between 1 and 500"));
        }
        let action = match self.action.as_deref().filter(|a| !a.is_empty()) {
            None => None,
            Some(a) => Some(Action::parse(a).ok_or_else(|| {
                let known: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
                ApiError::invalid(format!("unknown action '{a}': use one of {}", known.join(", ")))
            })?),
        };
        let outcome = match self.outcome.as_deref().filter(|o| !o.is_empty()) {
            None => None,
            Some(o) => Some(Outcome::parse(o).ok_or_else(|| {
                ApiError::invalid(format!("unknown outcome '{o}': use success, failure or refused"))
            })?),
        };
        Ok(AuditFilter {
            before: self.before,
            limit,
            actor: self.actor.filter(|a| !a.is_empty()),
            action,
            outcome,
            since: self.since,
            until: self.until,
        })
    }
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct AuditPage {
    /// Each with `id`, `at`, `actor`, `action`, `target`, `outcome`, `detail`...
    entries: Vec<serde_json::Map<String, serde_json::Value>>,
    next_before: Option<i64>,
}

/// `GET /api/audit`
#[utoipa::path(get, path = "/api/audit", tag = "admin", extensions(("x-hearth-role" = json!("admin"))), params(Query),
    responses((status = 200, description = "Entries, newest first; `next_before` pages on", body = inline(AuditPage)),
        (status = 400, description = "`invalid_request`: a limit outside 1-500, an unknown action or outcome")))]
pub async fn list(
    state: web::Data<AppState>,
    _admin: Admin,
    query: web::Query<Query>,
) -> Result<HttpResponse, ApiError> {
    let filter = query.into_inner().filter()?;
    let limit = filter.limit as usize;
    let rows = state.store.run(move |s| s.audit_rows(&filter)).await?;
    // A full page may have more behind it; the next page starts below its last id.
    let next_before = (rows.len() == limit).then(|| rows.last().map(|r| r.id)).flatten();
    let entries: Vec<_> = rows.iter().map(crate::audit::entry).collect();
    Ok(json(&json!({ "entries": entries, "next_before": next_before })))
}
