//! `POST /api/webhooks/stripe`: Stripe's events, verified on the raw body, applied once and kept
//! in the inbox (see `billing::fulfilment`).
//!
//! Answers: 200 once the event is kept (applied, a duplicate, held back, or kept for an
//! operator; an applied event is kept in the transaction that applies it), 400 for a forged, stale or malformed delivery (nothing is kept), 413 for an
//! oversized body, 503 when the database or Stripe failed (Stripe retries).

use app::error::ErrorCode;
use app::state::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::post;
use axum::{Json, Router};
use billing::fulfilment::{FulfilmentError, Outcome};
use billing::stripe::signature;
use serde_json::json;

use crate::error::ApiError;

/// Stripe's events are a few kilobytes; an invoice with many lines, a few dozen.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Where Stripe delivers.
pub const PATH: &str = "/api/webhooks/stripe";

pub fn router() -> Router<AppState> {
    Router::new().route(PATH, post(receive))
}

pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("The event is larger than {MAX_BODY_BYTES} bytes."),
            )
        })?;
    let header = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let now = state.clock.now().as_millis() / 1000;
    if let Err(refusal) = signature::verify(&body, header, state.webhook_secret.expose(), now) {
        tracing::warn!(%refusal, "refused a webhook delivery");
        refused("signature");
        return Err(ApiError::bad_request(format!(
            "Signature refused: {refusal}."
        )));
    }
    let payload = std::str::from_utf8(&body).map_err(|_| {
        refused("malformed");
        ApiError::bad_request("The event is not UTF-8 text.")
    })?;

    match state.fulfilment.receive(payload).await {
        Ok(outcome) => {
            tracing::info!(outcome = outcome.label(), "webhook handled");
            let detail = match &outcome {
                Outcome::Credited(entry) | Outcome::Reversed(entry) => {
                    Some(entry.delta.get().to_string())
                }
                Outcome::Deferred(awaiting) => Some(awaiting.to_string()),
                Outcome::Failed(why) => Some(why.clone()),
                Outcome::Recorded(what) | Outcome::Ignored(what) => Some((*what).to_owned()),
                Outcome::AlreadyApplied | Outcome::Covered => None,
            };
            Ok(Json(
                json!({ "received": true, "outcome": outcome.label(), "detail": detail }),
            ))
        }
        Err(FulfilmentError::Malformed(e)) => {
            refused("malformed");
            Err(ApiError::bad_request(format!(
                "The event is not a Stripe event: {e}"
            )))
        }
        Err(e) => {
            refused("unavailable");
            Err(ApiError::internal_unavailable(
                "applying a webhook failed",
                &e,
            ))
        }
    }
}

/// Counts an oversized delivery, whichever refused it: this route reading a body without a
/// length, or the server-wide body limit, which answers before any route for a body whose
/// length is announced. Layered outside that limit.
pub async fn count_oversized(request: Request, next: Next) -> Response {
    let delivery = request.uri().path() == PATH;
    let response = next.run(request).await;
    if delivery && response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        refused("too_large");
    }
    response
}

/// Counts a delivery that was not handled (handled ones are counted by type and outcome).
fn refused(reason: &'static str) {
    metrics::counter!("billing_webhook_refusals_total", "reason" => reason).increment(1);
}
