//! The knowledge base over HTTP: `POST /api/documents` (multipart upload, one or more
//! `file` fields), `GET /api/documents`, `GET|DELETE /api/documents/{id}`, and the jobs
//! that ingest them, `GET /api/jobs` and `GET /api/jobs/{id}`. Each caller sees only
//! their own documents and jobs. Uploads stream to disk (`spool.rs`), bounded per file
//! by `knowledge.max_upload_bytes` and per user by `knowledge.user_quota_bytes`.

use super::paging::Page;
use super::spool::{Spooled, Spooler};
use super::{json, AppState, Caller};
use crate::error::{ApiError, ErrorCode};
use crate::knowledge::{extract, ExtractError};
use crate::store::{Enqueued, NewDocument, StoreError};
use actix_multipart::Multipart;
use actix_web::{web, HttpResponse};
use futures_util::StreamExt;

/// Most files in one upload request.
const MAX_FILES: usize = 20;
const MAX_NAME_CHARS: usize = 200;

fn not_found(code: ErrorCode, what: &str) -> impl Fn(StoreError) -> ApiError + '_ {
    move |e| match e {
        StoreError::NotFound(_) => ApiError::new(code, format!("no such {what}")),
        other => other.into(),
    }
}

fn multipart_error(e: actix_multipart::MultipartError) -> ApiError {
    use actix_multipart::MultipartError as M;
    match e {
        M::ContentTypeMissing | M::ContentTypeParse | M::ContentTypeIncompatible | M::BoundaryMissing => {
            ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "send the document as multipart/form-data with a 'file' field",
            )
        }
        other => ApiError::invalid(format!("could not read the upload: {other}")),
    }
}

/// The file name as the client gave it, without any directories, or a placeholder.
fn clean_name(raw: Option<&str>) -> String {
    let base = raw.unwrap_or("").rsplit(['/', '\\']).next().unwrap_or("").trim();
    let name: String = base.chars().filter(|c| !c.is_control()).take(MAX_NAME_CHARS).collect();
    if name.is_empty() {
        "untitled".into()
    } else {
        name
    }
}

/// An upload on disk, checked against the size limit and the quota as it streams.
struct Upload {
    name: String,
    content_type: Option<String>,
    file: Spooled,
}

/// What bounds one upload request.
struct Bounds {
    /// knowledge.max_upload_bytes, per file.
    per_file: usize,
    /// The user's storage use and quota (0: none) when the request began.
    used: u64,
    quota: u64,
    dir: std::path::PathBuf,
    /// Encryption at rest: uploads are sealed on disk with this key.
    key: Option<std::sync::Arc<crate::crypt::FileKey>>,
}

async fn read_uploads(mut multipart: Multipart, bounds: &Bounds) -> Result<Vec<Upload>, ApiError> {
    let mut uploads = Vec::new();
    let mut total = 0u64;
    while let Some(field) = multipart.next().await {
        let mut field = field.map_err(multipart_error)?;
        let disposition = field.content_disposition().cloned();
        let is_file =
            field.name() == Some("file") || disposition.as_ref().and_then(|d| d.get_filename()).is_some();
        if !is_file {
            // Drain and ignore other fields.
            while let Some(chunk) = field.next().await {
                chunk.map_err(multipart_error)?;
            }
            continue;
        }
        if uploads.len() == MAX_FILES {
            return Err(ApiError::invalid(format!("at most {MAX_FILES} files per upload")));
        }
        let name = clean_name(disposition.as_ref().and_then(|d| d.get_filename()));
        let content_type = field.content_type().map(|m| m.essence_str().to_string());
        let mut spooler = Spooler::create(bounds.dir.clone(), bounds.key.clone()).await?;
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(multipart_error)?;
            let limit = bounds.per_file;
            if spooler.size() as usize + chunk.len() > limit {
                return Err(ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    format!(
                        "'{name}' is larger than the {limit}-byte upload limit (knowledge.max_upload_bytes)"
                    ),
                ));
            }
            total += chunk.len() as u64;
            // Refused as soon as it cannot fit, rather than after writing it all to
            // disk; storing checks again in its transaction (content the user already
            // has is free there, so this can only be stricter for such re-uploads).
            if bounds.quota > 0 && bounds.used + total > bounds.quota {
                let (used, quota) = (bounds.used, bounds.quota);
                return Err(StoreError::QuotaExceeded { used, needed: total, quota }.into());
            }
            spooler.write(&chunk).await?;
        }
        uploads.push(Upload { name, content_type, file: spooler.finish().await? });
    }
    if uploads.is_empty() {
        return Err(ApiError::invalid("the upload has no 'file' field"));
    }
    Ok(uploads)
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct UploadForm {
    /// One or more files.
    #[schema(value_type = Vec<String>, format = Binary)]
    file: Vec<Vec<u8>>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct Uploaded {
    documents: Vec<crate::store::Enqueued>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct Storage {
    used_bytes: i64,
    /// `null`: no quota.
    quota_bytes: Option<u64>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct DocumentList {
    documents: Vec<crate::store::Document>,
    storage: Storage,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct JobList {
    jobs: Vec<crate::store::Job>,
}

#[utoipa::path(post, path = "/api/documents", tag = "documents",
    description = "Uploads documents (multipart `file` fields, at most 20) for ingestion into the knowledge base; each gets an ingest job.",
    request_body(content = inline(UploadForm), content_type = "multipart/form-data"),
    responses((status = 202, description = "Stored; ingestion runs as jobs", body = inline(Uploaded)),
        (status = 400, description = "`invalid_request`: no `file` field, an empty file, more than 20 files, a broken upload"),
        (status = 413, description = "`payload_too_large` (a file over `knowledge.max_upload_bytes`) or `quota_exceeded` (the user's quota)"),
        (status = 415, description = "`unsupported_media_type`: not multipart, or a kind of file that cannot be read"),
        (status = 429, description = "`rate_limited`: `limits.uploads_per_day`")))]
pub async fn upload(
    state: web::Data<AppState>,
    caller: Caller,
    multipart: Multipart,
) -> Result<HttpResponse, ApiError> {
    let user_id = caller.user.id;
    let recent = uploads_today(&state, user_id, 0).await?;
    let knowledge = &state.settings.knowledge;
    let quota = knowledge.user_quota_bytes;
    let used = if quota > 0 { state.store.run(move |store| store.storage_used(user_id)).await? } else { 0 };
    let bounds = Bounds {
        per_file: knowledge.max_upload_bytes,
        used,
        quota,
        dir: state.settings.uploads_dir(),
        key: state.settings.storage.unlocked.file_key(),
    };
    let uploads = read_uploads(multipart, &bounds).await?;
    if let Some(recent) = recent {
        let more = u32::try_from(uploads.len()).unwrap_or(u32::MAX);
        check_uploads(&state, recent, more)?;
    }
    let mut files = Vec::with_capacity(uploads.len());
    for upload in &uploads {
        if upload.file.size == 0 {
            return Err(ApiError::invalid(format!("'{}' is empty", upload.name)));
        }
        let kind = extract::detect_streamed(
            &upload.name,
            upload.content_type.as_deref(),
            &upload.file.head,
            upload.file.is_text,
        )
        .map_err(|e| detect_error(&upload.name, e))?;
        files.push(NewDocument {
            name: upload.name.clone(),
            kind: kind.as_str().into(),
            sha256: upload.file.sha256.clone(),
            size: upload.file.size,
            path: upload.file.path.clone(),
            key: bounds.key.clone(),
        });
    }
    let stored: Vec<Enqueued> = state
        .store
        .run(move |store| {
            let stored = store.add_documents(user_id, &files, quota);
            drop(uploads); // removes the temporary files here, off the async runtime
            stored
        })
        .await?;
    state.jobs.wake();
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "documents": stored })))
}

/// The user's uploads in the last 24 hours and the oldest one's age, when
/// `limits.uploads_per_day` is set; refused already when `more` would pass it.
async fn uploads_today(state: &AppState, user_id: i64, more: u32) -> Result<Option<(u32, u64)>, ApiError> {
    if state.settings.limits.uploads_per_day == 0 {
        return Ok(None);
    }
    let now = crate::store::now();
    let (count, oldest) = state.store.run(move |store| store.uploads_since(user_id, now - 86_400)).await?;
    let recent = (count, u64::try_from(now - oldest).unwrap_or(0));
    check_uploads(state, recent, more.max(1))?;
    Ok(Some(recent))
}

fn check_uploads(state: &AppState, (count, oldest_age): (u32, u64), more: u32) -> Result<(), ApiError> {
    state.models.limiter().uploads(count, oldest_age, more).map_err(|refusal| {
        state.metrics.rate_limited.with_label_values(&[refusal.kind()]).inc();
        ApiError::limited(refusal)
    })
}

fn detect_error(name: &str, e: ExtractError) -> ApiError {
    match e {
        ExtractError::Unsupported => ApiError::new(ErrorCode::UnsupportedMediaType, format!("'{name}': {e}")),
        ExtractError::NotText => ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("'{name}': {e}; supported: {}", crate::knowledge::SUPPORTED.join(", ")),
        ),
        other => ApiError::invalid(format!("'{name}': {other}")),
    }
}

#[utoipa::path(get, path = "/api/documents", tag = "documents", params(Page),
    responses((status = 200, description = "The caller's documents and storage", body = inline(DocumentList)),
        (status = 400, description = "`invalid_request`: a limit outside 1-500")))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    page: web::Query<Page>,
) -> Result<HttpResponse, ApiError> {
    let ((limit, offset), user_id) = (page.checked()?, caller.user.id);
    let (documents, used) = state
        .store
        .run(move |store| Ok((store.documents(user_id, limit, offset)?, store.storage_used(user_id)?)))
        .await?;
    let quota = Some(state.settings.knowledge.user_quota_bytes).filter(|q| *q > 0);
    Ok(json(&serde_json::json!({
        "documents": documents,
        // The quota is null when there is none.
        "storage": { "used_bytes": used, "quota_bytes": quota },
    })))
}

#[utoipa::path(get, path = "/api/documents/{id}", tag = "documents", params(("id" = i64, Path)),
    responses((status = 200, description = "The document", body = crate::store::Document),
        (status = 404, description = "`document_not_found`")))]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let (user_id, id) = (caller.user.id, id.into_inner());
    let document = state
        .store
        .run(move |store| store.document(user_id, id))
        .await
        .map_err(not_found(ErrorCode::DocumentNotFound, "document"))?;
    Ok(json(&document))
}

/// Deletes the document and its chunks; the index follows before this returns, so the
/// document is gone from search and answers at once.
#[utoipa::path(delete, path = "/api/documents/{id}", tag = "documents", params(("id" = i64, Path)),
    responses((status = 204, description = "Deleted with its chunks"), (status = 404, description = "`document_not_found`")))]
pub async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let (user_id, id) = (caller.user.id, id.into_inner());
    state
        .store
        .run(move |store| store.delete_document(user_id, id))
        .await
        .map_err(not_found(ErrorCode::DocumentNotFound, "document"))?;
    if let Some(index) = state.knowledge.index.clone() {
        let store = state.store.clone();
        match tokio::task::spawn_blocking(move || index.sync(&store)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "index update after delete failed; it is retried"),
            Err(e) => tracing::warn!(error = %e, "index update after delete failed; it is retried"),
        }
    }
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/api/jobs", tag = "documents", params(Page),
    responses((status = 200, description = "The caller's jobs", body = inline(JobList)),
        (status = 400, description = "`invalid_request`: a limit outside 1-500")))]
pub async fn jobs(
    state: web::Data<AppState>,
    caller: Caller,
    page: web::Query<Page>,
) -> Result<HttpResponse, ApiError> {
    let ((limit, offset), user_id) = (page.checked()?, caller.user.id);
    let jobs = state.store.run(move |store| store.jobs(user_id, limit, offset)).await?;
    Ok(json(&serde_json::json!({ "jobs": jobs })))
}

#[utoipa::path(get, path = "/api/jobs/{id}", tag = "documents", params(("id" = String, Path)),
    responses((status = 200, description = "The job", body = crate::store::Job), (status = 404, description = "`job_not_found`")))]
pub async fn job(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (user_id, id) = (caller.user.id, id.into_inner());
    let job = state
        .store
        .run(move |store| store.job(Some(user_id), &id))
        .await
        .map_err(not_found(ErrorCode::JobNotFound, "job"))?;
    Ok(json(&job))
}

#[cfg(test)]
mod tests {
    use super::clean_name;

    #[test]
    fn upload_names_lose_directories_and_control_characters() {
        assert_eq!(clean_name(Some("../../etc/passwd")), "passwd");
        assert_eq!(clean_name(Some("C:\\Users\\me\\notes.md")), "notes.md");
        assert_eq!(clean_name(Some("a\u{7}b.txt")), "ab.txt");
        assert_eq!(clean_name(None), "untitled");
    }
}
