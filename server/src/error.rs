//! Errors of the server's own routes (consume, the webhook, the ledger export, the stream, and
//! the layers in front of everything). They speak the vocabulary of `app::error`, where the
//! codes and their statuses are written down once: a route answers the same code a server
//! function would for the same failure.
//!
//! An internal failure keeps its cause with the response (never in its body), and
//! [`log_causes`], a layer over every route, logs it once, on the request's span.

use std::fmt;
use std::sync::Arc;

use app::error::{AppError, ErrorCode};
use axum::Json;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use billing::store::StoreError;
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
    /// More fields for the body, e.g. the balance of an insufficient-tokens answer.
    details: serde_json::Map<String, serde_json::Value>,
    /// What went wrong inside, for the log only.
    cause: Option<Cause>,
}

/// An internal failure behind an answer: what was being done, and the error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    pub context: &'static str,
    pub error: String,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context, self.error)
    }
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: serde_json::Map::new(),
            cause: None,
        }
    }

    pub fn with(mut self, field: &str, value: impl Into<serde_json::Value>) -> Self {
        self.details.insert(field.to_owned(), value.into());
        self
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Invalid, message)
    }

    /// A failure on our side: 500 without details; `error` is logged with `context`.
    pub fn internal(context: &'static str, error: impl fmt::Display) -> Self {
        Self::from(AppError::Internal).caused_by(context, error)
    }

    /// The store could not be reached or failed: 503, so callers retry later.
    pub fn unavailable(context: &'static str, error: &StoreError) -> Self {
        Self::internal_unavailable(context, error)
    }

    /// A failure a retry may get past: 503 without details; `error` is logged with `context`.
    pub fn internal_unavailable(context: &'static str, error: &dyn fmt::Display) -> Self {
        Self::new(
            ErrorCode::Unavailable,
            "The service is temporarily unavailable. Please try again.",
        )
        .caused_by(context, error)
    }

    fn caused_by(mut self, context: &'static str, error: impl fmt::Display) -> Self {
        self.cause = Some(Cause {
            context,
            error: error.to_string(),
        });
        self
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// What will be logged for this answer, if anything.
    pub fn cause(&self) -> Option<&Cause> {
        self.cause.as_ref()
    }
}

/// A server function's error answered by a route: the same code, sentence and fields.
impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        let message = error.to_string();
        let mut fields = match serde_json::to_value(&error) {
            Ok(serde_json::Value::Object(fields)) => fields,
            _ => serde_json::Map::new(),
        };
        fields.remove("error");
        Self {
            code: error.code(),
            message,
            details: fields,
            cause: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = self.details;
        body.insert("error".into(), json!(self.code.as_str()));
        body.insert("message".into(), json!(self.message));
        let status =
            StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(body)).into_response();
        if let Some(cause) = self.cause {
            response.extensions_mut().insert(Arc::new(cause));
        }
        response
    }
}

/// Logs the cause of every answer that carries one, once, where the request's span is.
pub async fn log_causes(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if let Some(cause) = response.extensions().get::<Arc<Cause>>() {
        tracing::error!(error = %cause.error, status = response.status().as_u16(), "{}", cause.context);
    }
    response
}

/// Every error answer under `/api/` is JSON of this vocabulary, whoever made it (axum's 404 and
/// 405, the session layer's empty 500 when it cannot save a session): the browser reads an error
/// answer that is not (a proxy's page while the server is down) as "the server could not be
/// reached", so ours must never look like one. The status and headers stay.
pub async fn api_errors_as_json(request: Request, next: Next) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let response = next.run(request).await;
    let json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let status = response.status();
    if !api || json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (code, message) = match status.as_u16() {
        401 => (ErrorCode::Unauthorized, "Please log in to continue."),
        403 => (
            ErrorCode::Forbidden,
            "You do not have permission to do that.",
        ),
        404 => (ErrorCode::NotFound, "There is no such API path."),
        413 => (ErrorCode::PayloadTooLarge, "The request body is too large."),
        415 => (
            ErrorCode::UnsupportedMediaType,
            "The request body must be JSON.",
        ),
        500..=599 => (
            ErrorCode::Internal,
            "Something went wrong on our side. Please try again.",
        ),
        _ => (ErrorCode::BadRequest, "The request cannot be read."),
    };
    tracing::warn!(
        status = status.as_u16(),
        "an API error answer without JSON, answered as `{code}`"
    );
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    let body = Json(json!({ "error": code.as_str(), "message": message }));
    let mut answer = (parts, body).into_response();
    *answer.status_mut() = status;
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn api_errors_without_json_are_answered_in_json_with_their_status() {
        use axum::routing::get;
        use tower::ServiceExt;

        let router = axum::Router::new()
            .route(
                "/api/empty",
                get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
            )
            .route("/api/ours", get(|| async { ApiError::invalid("no") }))
            .route("/page", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
            .layer(axum::middleware::from_fn(api_errors_as_json));
        let answer = |path: &'static str, method: &'static str| {
            let router = router.clone();
            async move {
                let request = Request::builder()
                    .uri(path)
                    .method(method)
                    .body(axum::body::Body::empty())
                    .unwrap();
                let response = router.oneshot(request).await.unwrap();
                let status = response.status().as_u16();
                let allow = response
                    .headers()
                    .get("allow")
                    .map(|v| v.to_str().unwrap().to_owned());
                let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
                    .await
                    .unwrap();
                (
                    status,
                    serde_json::from_slice::<serde_json::Value>(&bytes).ok(),
                    allow,
                )
            }
        };
        let (status, body, _) = answer("/api/empty", "GET").await;
        assert_eq!(
            (status, body.unwrap()["error"].clone()),
            (500, json!("internal"))
        );
        let (status, body, _) = answer("/api/nowhere", "GET").await;
        assert_eq!(
            (status, body.unwrap()["error"].clone()),
            (404, json!("not_found"))
        );
        let (status, body, allow) = answer("/api/empty", "POST").await;
        assert_eq!(
            (status, body.unwrap()["error"].clone()),
            (405, json!("bad_request"))
        );
        assert_eq!(allow.as_deref(), Some("GET,HEAD"));
        // Ours stay as they are; pages are not the API's.
        let (status, body, _) = answer("/api/ours", "GET").await;
        assert_eq!(
            (status, body.unwrap()["message"].clone()),
            (422, json!("no"))
        );
        let (status, body, _) = answer("/page", "GET").await;
        assert_eq!((status, body), (500, None));
    }

    #[test]
    fn statuses_come_with_the_code() {
        for (error, status) in [
            (ApiError::bad_request("x"), 400),
            (ApiError::unauthorized("x"), 401),
            (ApiError::invalid("x"), 422),
            (ApiError::internal("doing", "boom"), 500),
            (ApiError::unavailable("doing", &StoreError::Contended), 503),
        ] {
            assert_eq!(error.into_response().status().as_u16(), status);
        }
    }

    #[test]
    fn a_server_function_error_is_answered_with_its_own_code_and_fields() {
        let error = ApiError::from(AppError::RateLimited {
            retry_after_secs: 7,
        });
        assert_eq!(error.code(), ErrorCode::RateLimited);
        assert_eq!(error.details["retry_after_secs"], 7);
        assert!(!error.details.contains_key("error"));
        assert_eq!(
            error.into_response().status(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }

    #[test]
    fn internal_causes_stay_out_of_the_body_and_go_with_the_response() {
        let response =
            ApiError::internal("reading the ledger", "connection refused").into_response();
        let cause = response.extensions().get::<Arc<Cause>>().unwrap();
        assert_eq!(cause.to_string(), "reading the ledger: connection refused");
    }
}
