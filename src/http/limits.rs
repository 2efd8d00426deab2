//! Extractor configuration: body limits and the mapping of extractor failures
//! (malformed JSON, wrong types, oversized bodies, bad paths and queries) into the
//! error table.

use crate::error::{ApiError, ErrorCode};
use actix_web::error::{JsonPayloadError, PathError, PayloadError, QueryPayloadError};
use actix_web::web;

pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default().limit(limit).error_handler(move |err, _req| json_error(err, limit).into())
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        let message = match err {
            QueryPayloadError::Deserialize(e) => format!("invalid query string: {e}"),
            other => format!("invalid query string: {other}"),
        };
        ApiError::invalid(message).into()
    })
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, _req| {
        let PathError::Deserialize(e) = err else {
            return ApiError::invalid("invalid path").into();
        };
        ApiError::invalid(format!("invalid path: {e}")).into()
    })
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("the request body is larger than the {limit}-byte limit"),
    )
}

pub(super) fn json_error(err: JsonPayloadError, limit: usize) -> ApiError {
    match err {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => too_large(limit),
        JsonPayloadError::Payload(PayloadError::Overflow) => too_large(limit),
        JsonPayloadError::ContentType => ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "the request body must be JSON, sent with 'Content-Type: application/json'",
        ),
        JsonPayloadError::Deserialize(e) if e.is_syntax() || e.is_eof() => {
            ApiError::new(ErrorCode::InvalidJson, format!("the request body is not valid JSON: {e}"))
        }
        JsonPayloadError::Deserialize(e) => ApiError::invalid(format!("invalid request: {e}")),
        other => ApiError::new(ErrorCode::InvalidJson, format!("could not read the request body: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extractor_errors_map_to_stable_codes() {
        let syntax = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        assert_eq!(json_error(JsonPayloadError::Deserialize(syntax), 10).code, ErrorCode::InvalidJson);
        let types = serde_json::from_str::<u32>("\"x\"").unwrap_err();
        assert_eq!(json_error(JsonPayloadError::Deserialize(types), 10).code, ErrorCode::InvalidRequest);
        let big = JsonPayloadError::OverflowKnownLength { length: 20, limit: 10 };
        assert_eq!(json_error(big, 10).code, ErrorCode::PayloadTooLarge);
        assert_eq!(json_error(JsonPayloadError::ContentType, 10).code, ErrorCode::UnsupportedMediaType);
    }
}
