//! What operators see: request ids on every request and its log lines, Prometheus metrics at
//! `/metrics`, and `/healthz` / `/readyz` (in `routes::health`).
//!
//! Metrics recorded here: `http_requests_total` and `http_request_duration_seconds` by method,
//! route and status. Every label has a bounded set of values, whatever clients send: methods
//! outside HTTP's own are `other`, paths no route matches are `unmatched`. With `METRICS_TOKEN`
//! set (required in production), `/metrics` answers only `Authorization: Bearer <token>`. Billing records its own (webhooks by type and outcome, ledger postings
//! and tokens by source, rate-limit refusals) through the same `metrics` facade.

use std::sync::OnceLock;
use std::time::Instant;

use app::state::AppState;
use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use billing::config::Secret;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Latency buckets, in seconds: a consume call takes milliseconds, a page tens of them.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The process's metrics recorder (installed once; tests start many apps in one process).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("http_request_duration_seconds".into()),
                LATENCY_BUCKETS,
            )
            .expect("valid buckets")
            .install_recorder()
            .expect("no other metrics recorder is installed")
    })
}

/// `/metrics`, for the bearer of `token` when there is one.
pub fn router(token: Option<Secret>) -> Router<AppState> {
    Router::new().route(
        "/metrics",
        get(move |headers: HeaderMap| metrics(token.clone(), headers)),
    )
}

/// `GET /metrics`: the Prometheus text format, for the bearer of the token when one is set.
async fn metrics(token: Option<Secret>, headers: HeaderMap) -> Response {
    if let Some(token) = &token
        && !bears(&headers, token.expose())
    {
        tracing::info!("refused a metrics scrape without the token");
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "/metrics needs the bearer token (METRICS_TOKEN).\n",
        )
            .into_response();
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        prometheus().render(),
    )
        .into_response()
}

/// Whether the request carries `Authorization: Bearer <token>` (compared in constant time).
fn bears(headers: &HeaderMap, token: &str) -> bool {
    use subtle::ConstantTimeEq;
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|offered| bool::from(offered.as_bytes().ct_eq(token.as_bytes())))
}

/// A method as a label: HTTP's own, or `other` (a client can make up any number of them).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Counts and times every request by its route pattern (not its path: ids stay out of labels).
pub async fn track_requests(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method.to_owned();
    let response = next.run(request).await;
    let labels = [
        ("method", method),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Gives each request an `x-request-id` (or keeps the caller's), logs it with the request's
/// span, and sends it back in the response.
pub fn request_ids<S>(router: axum::Router<S>) -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                let id = request
                    .headers()
                    .get(&REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                tracing::info_span!(
                    "request",
                    request_id = %id,
                    method = %request.method(),
                    path = %request.uri().path(),
                )
            }),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}
