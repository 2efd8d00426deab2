//! Serves the embedded web UI: `/` (index.html, always revalidated) and
//! `/assets/<version>/<file>` (immutable for the current version). Every answer has an
//! ETag (304 on a match) and is gzipped for clients that accept it.

use crate::error::{ApiError, ErrorCode};
use crate::web::{bundle, Asset};
use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};

/// What the UI may load: only its own files and its own API.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; \
                   frame-ancestors 'none'";

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// `GET /`
#[utoipa::path(get, path = "/", tag = "web", description = "The web UI's page, public (the locked server's unlock page while locked).",
    responses((status = 200, description = "The page", content_type = "text/html", body = String), (status = 304, description = "Not modified (`If-None-Match`)")))]
pub async fn index(req: HttpRequest) -> HttpResponse {
    let mut response = serve(&req, &bundle().index, "no-cache");
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// `GET /assets/{version}/{file}`. An old version's URL (a page loaded before an
/// upgrade) gets today's file, revalidated rather than cached forever.
#[utoipa::path(get, path = "/assets/{version}/{file}", tag = "web", description = "The web UI's files, public; cached for good when `version` is the running one.",
    params(("version" = String, Path, description = "The bundle's version"), ("file" = String, Path, description = "The file's name")),
    responses(
        (status = 200, description = "The file", content(("text/javascript"), ("text/css"), ("image/svg+xml"))),
        (status = 304, description = "Not modified (`If-None-Match`)"),
        (status = 404, description = "`not_found`: no such file")))]
pub async fn asset(req: HttpRequest, path: web::Path<(String, String)>) -> HttpResponse {
    let (version, name) = path.into_inner();
    let bundle = bundle();
    match bundle.asset(&name) {
        Some(asset) => serve(&req, asset, if version == bundle.version { IMMUTABLE } else { "no-cache" }),
        None => ApiError::new(ErrorCode::NotFound, "no such file").error_response(),
    }
}

fn serve(req: &HttpRequest, asset: &Asset, cache: &'static str) -> HttpResponse {
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == asset.etag || tag.trim() == "*"));
    let mut response = if matches { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    response
        .insert_header((header::ETAG, asset.etag.as_str()))
        .insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::VARY, "Accept-Encoding"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    if matches {
        return response.finish();
    }
    response.insert_header((header::CONTENT_TYPE, asset.content_type));
    let accepts_gzip = req
        .headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().split(';').next() == Some("gzip")));
    match (&asset.gzip, accepts_gzip) {
        (Some(gzip), true) => response.insert_header((header::CONTENT_ENCODING, "gzip")).body(gzip.clone()),
        _ => response.body(asset.body.clone()),
    }
}
