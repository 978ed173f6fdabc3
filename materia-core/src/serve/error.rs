//! The API's errors: a status and a JSON body naming what was wrong and,
//! for a request's fault, the parameter.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A JSON error: `{"error": "...", "parameter": "..."}`; a `503` also says
/// when to try again (`Retry-After`).
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub parameter: Option<String>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        message: impl Into<String>,
        parameter: Option<&str>,
    ) -> ApiError {
        let mut message = message.into();
        // DuckDB's INTERNAL errors carry a stack trace with the process's
        // addresses: never sent.
        if let Some(at) = message.find("Stack Trace") {
            message.truncate(at);
            message.truncate(message.trim_end().len());
        }
        ApiError {
            status,
            message,
            parameter: parameter.map(str::to_owned),
        }
    }

    /// A `400` naming the request's `parameter`.
    pub fn bad(parameter: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message, Some(parameter))
    }

    /// A `503`: the server is busy, try again.
    pub fn busy(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message, None)
    }

    /// A `500` with the underlying error's text.
    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if let Some(p) = self.parameter {
            body["parameter"] = p.into();
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::ApiError;

    #[test]
    fn a_stack_trace_is_never_sent() {
        let e = ApiError::bad(
            "sql",
            "INTERNAL Error: Attempted to access index 0\n\nStack Trace:\n/usr/bin/x(+0x24c8f27) [0x555f]",
        );
        assert_eq!(e.message, "INTERNAL Error: Attempted to access index 0");
    }
}
