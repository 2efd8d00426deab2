//! The knowledge base over HTTP: `POST /api/documents` (multipart upload, one or more
//! `file` fields), `GET /api/documents`, `GET|DELETE /api/documents/{id}`, and the jobs
//! that ingest them, `GET /api/jobs` and `GET /api/jobs/{id}`. Each caller sees only
//! their own documents and jobs.

use super::paging::Page;
use super::{json, AppState, Caller};
use crate::error::{ApiError, ErrorCode};
use crate::knowledge::{extract, ExtractError};
use crate::store::{Enqueued, StoreError};
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

/// An upload read into memory, checked against the size limit as it streams.
struct Upload {
    name: String,
    content_type: Option<String>,
    data: Vec<u8>,
}

async fn read_uploads(mut multipart: Multipart, limit: usize) -> Result<Vec<Upload>, ApiError> {
    let mut uploads = Vec::new();
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
        let mut data = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(multipart_error)?;
            if data.len() + chunk.len() > limit {
                return Err(ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    format!(
                        "'{name}' is larger than the {limit}-byte upload limit (knowledge.max_upload_bytes)"
                    ),
                ));
            }
            data.extend_from_slice(&chunk);
        }
        uploads.push(Upload { name, content_type, data });
    }
    if uploads.is_empty() {
        return Err(ApiError::invalid("the upload has no 'file' field"));
    }
    Ok(uploads)
}

pub async fn upload(
    state: web::Data<AppState>,
    caller: Caller,
    multipart: Multipart,
) -> Result<HttpResponse, ApiError> {
    let uploads = read_uploads(multipart, state.settings.knowledge.max_upload_bytes).await?;
    let mut checked = Vec::with_capacity(uploads.len());
    for upload in uploads {
        if upload.data.is_empty() {
            return Err(ApiError::invalid(format!("'{}' is empty", upload.name)));
        }
        let kind = extract::detect(&upload.name, upload.content_type.as_deref(), &upload.data)
            .map_err(|e| detect_error(&upload.name, e))?;
        checked.push((upload, kind));
    }
    let user_id = caller.user.id;
    let stored: Vec<Enqueued> = state
        .store
        .run(move |store| {
            checked
                .iter()
                .map(|(u, kind)| store.add_document(user_id, &u.name, kind.as_str(), &u.data))
                .collect()
        })
        .await?;
    state.jobs.wake();
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "documents": stored })))
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

pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    page: web::Query<Page>,
) -> Result<HttpResponse, ApiError> {
    let ((limit, offset), user_id) = (page.checked()?, caller.user.id);
    let documents = state.store.run(move |store| store.documents(user_id, limit, offset)).await?;
    Ok(json(&serde_json::json!({ "documents": documents })))
}

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

pub async fn jobs(
    state: web::Data<AppState>,
    caller: Caller,
    page: web::Query<Page>,
) -> Result<HttpResponse, ApiError> {
    let ((limit, offset), user_id) = (page.checked()?, caller.user.id);
    let jobs = state.store.run(move |store| store.jobs(user_id, limit, offset)).await?;
    Ok(json(&serde_json::json!({ "jobs": jobs })))
}

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
