//! `GET /api/search?q=`: the caller's history, documents and notes, best match first, with
//! snippets split into matched and unmatched parts. Filters: `kind` (`message`,
//! `document` or `note`), `conversation_id`, `from` / `to` (Unix seconds or `YYYY-MM-DD`, UTC,
//! inclusive), paging with `limit` and `offset`. The query is plain text: Tantivy's
//! query syntax has no meaning here and cannot cause an error.

use super::{json, AppState, Caller};
use crate::error::ApiError;
use crate::search::{Hit, HitKind, SearchQuery};
use crate::store::{ChunkRow, MessageRef, Note};
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

const MAX_QUERY_CHARS: usize = 1000;
const SNIPPET_CHARS: usize = 160;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Params {
    q: String,
    /// `message`, `chunk` or `note`.
    #[serde(default)]
    #[param(value_type = Option<String>)]
    kind: Option<HitKind>,
    #[serde(default)]
    conversation_id: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default = "default_limit")]
    limit: usize,
    #[serde(default)]
    offset: usize,
}

fn default_limit() -> usize {
    20
}

#[derive(Debug, Serialize)]
struct Result {
    #[serde(flatten)]
    hit: Hit,
    #[serde(skip_serializing_if = "Option::is_none")]
    conversation_title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    document_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note_title: Option<String>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct SearchBody {
    query: String,
    total: usize,
    limit: usize,
    offset: usize,
    /// Each hit: `kind`, `score`, `snippet`, its ids and times, and the conversation's
    /// title, the message's role, the document's name or the note's title.
    results: Vec<serde_json::Map<String, serde_json::Value>>,
}

#[utoipa::path(get, path = "/api/search", tag = "search", params(Params),
    description = "Searches the caller's messages, documents and notes (`kind`: `message`, `chunk` or `note`).",
    responses((status = 200, description = "Hits, best first", body = inline(SearchBody)),
        (status = 400, description = "`invalid_request`: an empty or long `q`, a bad limit, offset or time"),
        (status = 500, description = "`search_error`: the index is not available")))]
pub async fn search(
    state: web::Data<AppState>,
    caller: Caller,
    params: web::Query<Params>,
) -> std::result::Result<HttpResponse, ApiError> {
    let p = params.into_inner();
    if p.q.trim().is_empty() {
        return Err(ApiError::invalid("q must not be empty"));
    }
    if p.q.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::invalid(format!("q is longer than {MAX_QUERY_CHARS} characters")));
    }
    if !(1..=100).contains(&p.limit) || p.offset > 10_000 {
        return Err(ApiError::invalid("limit must be between 1 and 100, offset at most 10000"));
    }
    let query = SearchQuery {
        user_id: caller.user.id,
        text: p.q.clone(),
        kind: p.kind,
        conversation_id: p.conversation_id,
        from: p.from.as_deref().map(|t| parse_time(t, false)).transpose()?,
        to: p.to.as_deref().map(|t| parse_time(t, true)).transpose()?,
        limit: p.limit,
        offset: p.offset,
        snippet_chars: SNIPPET_CHARS,
    };
    let Some(index) = state.knowledge.index.clone() else {
        return Err(ApiError::new(crate::error::ErrorCode::SearchError, "the search index is not available"));
    };
    let store = state.store.clone();
    let user_id = caller.user.id;
    let (page, messages, chunks, notes) = tokio::task::spawn_blocking(move || {
        // Read-your-writes: whatever is committed is searchable.
        index.sync(&store)?;
        let page = index.search(&query)?;
        let ids = |kind| page.hits.iter().filter(|h| h.kind == kind).map(|h| h.id).collect::<Vec<_>>();
        let messages = store.message_refs(user_id, &ids(HitKind::Message))?;
        let chunks = store.chunks_by_ids(user_id, &ids(HitKind::Document))?;
        let notes = store.notes_by_ids(user_id, &ids(HitKind::Note))?;
        Ok::<_, crate::search::SearchError>((page, messages, chunks, notes))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    let results: Vec<Result> =
        page.hits.into_iter().filter_map(|hit| enrich(hit, &messages, &chunks, &notes)).collect();
    Ok(json(&serde_json::json!({
        "query": p.q,
        "total": page.total,
        "limit": p.limit,
        "offset": p.offset,
        "results": results,
    })))
}

/// Adds titles and names; drops hits whose row is gone (the index may lag a delete).
fn enrich(hit: Hit, messages: &[MessageRef], chunks: &[ChunkRow], notes: &[Note]) -> Option<Result> {
    let plain =
        |hit| Result { hit, conversation_title: None, role: None, document_name: None, note_title: None };
    match hit.kind {
        HitKind::Message => {
            let m = messages.iter().find(|m| m.id == hit.id)?;
            let (title, role) = (m.conversation_title.clone(), m.role.clone());
            Some(Result { conversation_title: Some(title), role: Some(role), ..plain(hit) })
        }
        HitKind::Document => {
            let c = chunks.iter().find(|c| c.id == hit.id)?;
            Some(Result { document_name: Some(c.document_name.clone()), ..plain(hit) })
        }
        HitKind::Note => {
            let n = notes.iter().find(|n| n.id == hit.id)?;
            Some(Result { note_title: Some(n.title.clone()), ..plain(hit) })
        }
    }
}

/// Unix seconds, or a `YYYY-MM-DD` date (its first second, or with `end_of_day` its last).
fn parse_time(text: &str, end_of_day: bool) -> std::result::Result<i64, ApiError> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<i64>() {
        return Ok(seconds);
    }
    let bad = || ApiError::invalid(format!("'{text}' is not a date (YYYY-MM-DD) or Unix seconds"));
    let parts: Vec<&str> = text.split('-').collect();
    let [y, m, d] = parts.as_slice() else { return Err(bad()) };
    let (y, m, d): (i64, i64, i64) =
        (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?, d.parse().map_err(|_| bad())?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || !(1970..=9999).contains(&y) {
        return Err(bad());
    }
    let start = days_from_civil(y, m, d) * 86_400;
    Ok(if end_of_day { start + 86_399 } else { start })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn times_are_seconds_or_dates() {
        assert_eq!(parse_time("1700000000", false).unwrap(), 1_700_000_000);
        assert_eq!(parse_time("1970-01-01", false).unwrap(), 0);
        assert_eq!(parse_time("2026-11-28", false).unwrap(), 1_795_824_000);
        assert_eq!(parse_time("2026-11-28", true).unwrap(), 1_795_824_000 + 86_399);
        assert!(parse_time("2026-13-01", false).is_err());
        assert!(parse_time("yesterday", false).is_err());
    }
}
