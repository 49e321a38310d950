//! Bodies of server function calls, read whole here before the framework sees them.
//!
//! The framework turns any failure to read a body into a 500 logged as an error: a chunked body
//! past the size limit (a `Content-Length` over it is refused earlier) or a form that is not
//! UTF-8 would let anyone raise alerts at will. Read here, they get their own answers (413,
//! 400) and an info line, and the framework gets bytes it can read.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use app::error::ErrorCode;

use crate::error::ApiError;

/// Reads the body of `request` (at most `limit` bytes) before passing it on.
pub async fn read_whole(State(limit): State<usize>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = match to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(error) if exceeds_limit(&error) => {
            tracing::info!(limit, "refused a request body over the limit");
            return ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("The request is larger than {limit} bytes."),
            )
            .into_response();
        }
        Err(error) => {
            // The client went away or sent a broken body: nothing for an operator to fix.
            tracing::info!(%error, "could not read a request body");
            return ApiError::bad_request("The request body could not be read.").into_response();
        }
    };
    if is_form(&parts.headers) && std::str::from_utf8(&bytes).is_err() {
        tracing::info!("refused a form that is not UTF-8");
        return ApiError::bad_request("The form is not UTF-8 text.").into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn exceeds_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = source {
        if error.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = error.source();
    }
    false
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
}

/// The server-wide limit on request bodies, checked before any route reads one: `default`
/// bytes, or more on the few paths that need it (a batch of consumes).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub default: usize,
    pub larger: &'static [(&'static str, usize)],
}

impl BodyLimits {
    pub fn of(&self, path: &str) -> usize {
        self.larger
            .iter()
            .find(|(p, _)| *p == path)
            .map_or(self.default, |(_, limit)| *limit)
    }
}

/// Refuses (413) a body whose announced length is over the limit of its path before it is
/// read, and cuts off one without a length (chunked) once it passes the limit: whoever reads
/// it then gets a length-limit error (413 from the routes and [`read_whole`]).
pub async fn limit(State(limits): State<BodyLimits>, request: Request, next: Next) -> Response {
    let limit = limits.of(request.uri().path());
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|length| length > limit as u64) {
        tracing::info!(limit, "refused a request body over the limit");
        return ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("The request is larger than {limit} bytes."),
        )
        .into_response();
    }
    let (parts, body) = request.into_parts();
    next.run(Request::from_parts(
        parts,
        Body::new(http_body_util::Limited::new(body, limit)),
    ))
    .await
}
