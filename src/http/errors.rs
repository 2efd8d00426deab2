//! How an [`ApiError`] is answered over HTTP: its row's status, the JSON error body,
//! and the headers some codes call for. The only place where the error table meets
//! HTTP types.

use crate::error::{ApiError, ErrorCode};
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let Some(secs) = self.retry_after_secs {
            response.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if self.code == ErrorCode::Unauthorized {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.json(self.body())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_valid_status() {
        for code in ErrorCode::ALL {
            let status = ApiError::new(*code, "x").status_code();
            assert_eq!(status.as_u16(), code.status(), "{code:?}");
        }
    }

    #[test]
    fn overloaded_answers_retry_after() {
        let response = ApiError::new(ErrorCode::Overloaded, "busy").error_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "2");
    }

    #[test]
    fn a_rate_limit_says_how_long_to_wait() {
        let refusal = crate::rate::Refusal::Requests { limit: 5, retry_after: 12 };
        let response = ApiError::limited(refusal).error_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "12");
    }

    #[test]
    fn shedding_answers_503_with_the_governors_retry_after() {
        let shed = ApiError::from(crate::engine::EngineError::Shedding { retry_after_secs: 12 });
        let response = shed.error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "12");
        let paused = ApiError::from(crate::engine::EngineError::LoadsPaused).error_response();
        assert_eq!(paused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(paused.headers().get(header::RETRY_AFTER).is_some());
    }
}
