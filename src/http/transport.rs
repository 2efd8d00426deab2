//! What every request passes before routing: the `Host` check (DNS rebinding), the
//! plain-HTTP listener's redirect to HTTPS, and HSTS. Also the few routes the plain
//! listener serves itself: the local CA's certificate and ACME HTTP-01 answers.
//!
//! DNS rebinding: a web page from elsewhere can point its own name at the box's LAN
//! address and then talk to the box as "same origin". Its requests carry that foreign
//! name in `Host`, so only the box's own names and addresses (and `server.allowed_hosts`)
//! are served. A request without `Host` (HTTP/1.0) cannot come from a browser and passes.

use super::AppState;
use crate::error::{ApiError, ErrorCode};
use crate::tls::names::strip_port;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse, ResponseError};

/// Paths the plain-HTTP listener serves instead of redirecting. Health is among them: a
/// box without a certificate yet (an ACME CA it cannot reach) must still say why.
fn plain_allowed(path: &str) -> bool {
    matches!(path, "/ca.crt" | "/ca.der" | "/api/health") || path.starts_with("/.well-known/acme-challenge/")
}

/// One year, without subdomains: the box does not speak for names under its own.
const HSTS: &str = "max-age=31536000";

pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned().expect("AppState is registered");
    let host = req.headers().get(header::HOST).map(|h| h.to_str().unwrap_or("\u{0}").to_string());
    if let Some(host) = &host {
        if !state.names.allows_host(host) {
            let shown: String = host.chars().filter(|c| !c.is_control()).take(100).collect();
            tracing::debug!(host = %shown, "refused a request for another host name");
            let error = ApiError::new(
                ErrorCode::UnknownHost,
                "this box does not answer to that host name; add it to server.allowed_hosts if it is yours",
            );
            return Ok(req.into_response(error.error_response()));
        }
    }
    let Some(tls) = &state.tls else { return Ok(next.call(req).await?.map_into_boxed_body()) };
    let secure = req.app_config().secure();
    if !secure && !plain_allowed(req.path()) {
        let https_port = state.settings.listen_addr().port();
        let host = host.as_deref().map(strip_port).unwrap_or("localhost").to_string();
        let port = if https_port == 443 { String::new() } else { format!(":{https_port}") };
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let location = format!("https://{host}{port}{path}");
        // 307 keeps the method and body, and unlike 301/308 browsers do not remember it
        // for ever, should the owner turn TLS off again.
        let response = HttpResponse::TemporaryRedirect()
            .insert_header((header::LOCATION, location))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish();
        return Ok(req.into_response(response));
    }
    let hsts = secure && tls.hsts();
    let mut res = next.call(req).await?.map_into_boxed_body();
    if hsts {
        res.headers_mut().insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
    }
    Ok(res)
}

/// `GET /ca.crt` (PEM) and `/ca.der` (DER): the local CA's certificate, without login, for
/// installing on phones and computers. 404 unless `tls.mode` is `local`.
#[utoipa::path(get, path = "/ca.crt", tag = "meta", description = "The local certificate authority's certificate (PEM), public; `X-Hearth-CA-Fingerprint` is its SHA-256 fingerprint.",
    responses(
        (status = 200, description = "The certificate", content_type = "application/x-x509-ca-cert", body = String,
            headers(("X-Hearth-CA-Fingerprint" = String, description = "SHA-256 fingerprint"))),
        (status = 404, description = "`not_found`: the box uses no local CA (`tls.mode`)")))]
pub async fn ca_certificate(req: actix_web::HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let Some(ca) = state.tls.as_ref().and_then(|t| t.ca.as_ref()) else {
        return ApiError::new(ErrorCode::NotFound, "this box uses no local certificate authority (tls.mode)")
            .error_response();
    };
    let (body, name) = if req.path().ends_with(".der") {
        (ca.der.clone(), "hearth-ca.der")
    } else {
        (ca.pem.clone().into_bytes(), "hearth-ca.crt")
    };
    HttpResponse::Ok()
        // The type phones open as "install a certificate".
        .content_type("application/x-x509-ca-cert")
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")))
        .insert_header(("X-Hearth-CA-Fingerprint", ca.fingerprint.clone()))
        .body(body)
}

/// `GET /ca.der`: the same certificate in DER form.
#[utoipa::path(get, path = "/ca.der", tag = "meta", description = "The local certificate authority's certificate (DER), public.",
    responses(
        (status = 200, description = "The certificate", content_type = "application/x-x509-ca-cert", body = String,
            headers(("X-Hearth-CA-Fingerprint" = String, description = "SHA-256 fingerprint"))),
        (status = 404, description = "`not_found`: the box uses no local CA (`tls.mode`)")))]
pub async fn ca_certificate_der(req: actix_web::HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    ca_certificate(req, state).await
}

/// `GET /.well-known/acme-challenge/{token}`: the ACME HTTP-01 answer while an order waits.
#[utoipa::path(get, path = "/.well-known/acme-challenge/{token}", tag = "meta", description = "ACME HTTP-01 challenge answers, public.",
    params(("token" = String, Path, description = "The challenge's token")),
    responses(
        (status = 200, description = "The key authorization", content_type = "application/octet-stream", body = String),
        (status = 404, description = "`not_found`: no such challenge")))]
pub async fn acme_challenge(state: web::Data<AppState>, token: web::Path<String>) -> HttpResponse {
    match state.tls.as_ref().and_then(|t| t.http01_answer(&token)) {
        Some(answer) => HttpResponse::Ok().content_type("application/octet-stream").body(answer),
        None => ApiError::new(ErrorCode::NotFound, "no such challenge").error_response(),
    }
}
