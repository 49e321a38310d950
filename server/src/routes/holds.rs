//! Holds over HTTP: the product's backend reserves a user's tokens before work runs, then
//! captures what the work used (the rest goes back) or releases them.
//!
//! - `POST /api/tokens/holds` (`Idempotency-Key`, namespaced per API key): `{user, tokens,
//!   ttl_secs, reason}` → `{hold_id, user, tokens, expires_at, available}`, 402 when what is
//!   available is short. The same key and body answer with the same hold (`available` as it
//!   is now) and `Idempotent-Replayed: true`.
//! - `POST /api/tokens/holds/{id}/capture`: `{tokens, allow_exceed?}` → the ledger entry;
//!   the same capture again answers the same, byte for byte.
//! - `POST /api/tokens/holds/{id}/release` → the hold, released (or as it was, when it was
//!   released or expired before).
//!
//! Only the API key that opened a hold may capture or release it: another key's hold is 404.

use app::error::ErrorCode;
use app::state::AppState;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use billing::domain::{HoldId, HoldState, LedgerEntryId, Reason, Tokens, UserId};
use billing::ledger::LedgerError;
use billing::store::{HoldCapture, HoldError, NewHold, StoreError};
use serde::{Deserialize, Serialize};

use super::service;
use crate::error::ApiError;

/// A hold's request is a few fields, like consume's.
pub const MAX_BODY_BYTES: usize = super::consume::MAX_BODY_BYTES;

/// The namespace of the holds' idempotency keys (with the API key's id).
const KEY_KIND: &str = "hold";

/// The longest a hold may last, in seconds: a day.
const MAX_TTL_SECS: i64 = NewHold::MAX_TTL_MS / 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenRequest {
    user: UserId,
    tokens: Tokens,
    ttl_secs: i64,
    reason: Reason,
}

#[derive(Debug, Serialize)]
struct OpenResponse {
    hold_id: HoldId,
    user: UserId,
    tokens: Tokens,
    /// RFC 3339, UTC.
    expires_at: String,
    /// What the user may still spend or hold: the balance less every open hold.
    available: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaptureRequest {
    tokens: Tokens,
    #[serde(default)]
    allow_exceed: bool,
}

#[derive(Debug, Serialize)]
struct CaptureResponse {
    hold_id: HoldId,
    entry_id: LedgerEntryId,
    user: UserId,
    /// Spent: the ledger entry's tokens.
    tokens: Tokens,
    /// What the hold reserved, and what of it went back.
    held: Tokens,
    released: i64,
    /// The balance right after the capture (a repeat answers the same).
    balance: i64,
}

#[derive(Debug, Serialize)]
struct ReleaseResponse {
    hold_id: HoldId,
    user: UserId,
    tokens: Tokens,
    /// `released`, or `expired` when its time ran out first.
    state: HoldState,
    available: i64,
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/tokens/holds", post(open))
        .route("/api/tokens/holds/{id}/capture", post(capture))
        .route("/api/tokens/holds/{id}/release", post(release))
}

async fn open(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let api_key = service::authenticate(&state, &headers).await?;
    let key = service::idempotency_key(&headers, KEY_KIND, &api_key)?;
    let request: OpenRequest = service::read_json(
        &headers,
        body,
        MAX_BODY_BYTES,
        &format!(
            "`user` (an id), `tokens` (1 to {}), `ttl_secs` (1 to {MAX_TTL_SECS}) and \
             `reason` (text)",
            Tokens::MAX
        ),
    )
    .await?;
    if !(1..=MAX_TTL_SECS).contains(&request.ttl_secs) {
        return Err(ApiError::invalid(format!(
            "`ttl_secs` must be 1 to {MAX_TTL_SECS} (a day); it was {}.",
            request.ttl_secs
        ))
        .with("max_ttl_secs", MAX_TTL_SECS));
    }
    let hold = NewHold {
        user: request.user,
        tokens: request.tokens,
        reason: request.reason,
        ttl_ms: request.ttl_secs * 1000,
        key,
        api_key: Some(api_key.id),
    };
    match state.store.open_hold(&hold).await {
        Ok(opened) => {
            let mut response = Json(OpenResponse {
                hold_id: opened.hold.id,
                user: opened.hold.user_id,
                tokens: opened.hold.tokens,
                expires_at: opened.hold.expires_at.rfc3339(),
                available: opened.available.spendable(),
            })
            .into_response();
            service::mark_replayed(&mut response, opened.replayed);
            Ok(response)
        }
        Err(e) => Err(refusal(
            e,
            "Nothing was held.",
            "holds: opening a hold failed",
        )),
    }
}

async fn capture(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let api_key = service::authenticate(&state, &headers).await?;
    let id = hold_id(path)?;
    let request: CaptureRequest = service::read_json(
        &headers,
        body,
        MAX_BODY_BYTES,
        &format!(
            "`tokens` (1 to {}) and, to capture more than the hold, `allow_exceed` (true)",
            Tokens::MAX
        ),
    )
    .await?;
    let capture = HoldCapture {
        hold: id,
        tokens: request.tokens,
        may_exceed: request.allow_exceed,
        api_key: Some(api_key.id),
    };
    let posted = state.store.capture_hold(&capture).await.map_err(|e| {
        refusal(
            e,
            "Nothing was captured; the hold is still open.",
            "holds: capturing a hold failed",
        )
    })?;
    // The hold is captured now: what it reserved never changes again.
    let hold = state
        .store
        .hold(id)
        .await
        .map_err(|e| ApiError::unavailable("holds: reading a captured hold failed", &e))?
        .ok_or_else(|| ApiError::internal("holds: a captured hold is gone", id))?;
    let tokens = posted.entry.delta.magnitude();
    let mut response = Json(CaptureResponse {
        hold_id: id,
        entry_id: posted.entry.id,
        user: posted.entry.user_id,
        tokens,
        held: hold.tokens,
        released: (hold.tokens.get() - tokens.get()).max(0),
        balance: posted.entry.balance_after.get(),
    })
    .into_response();
    service::mark_replayed(&mut response, posted.replayed);
    Ok(response)
}

async fn release(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let api_key = service::authenticate(&state, &headers).await?;
    let id = hold_id(path)?;
    let released = state
        .store
        .release_hold(id, Some(api_key.id))
        .await
        .map_err(|e| refusal(e, "Nothing changed.", "holds: releasing a hold failed"))?;
    let mut response = Json(ReleaseResponse {
        hold_id: released.hold.id,
        user: released.hold.user_id,
        tokens: released.hold.tokens,
        state: released.hold.state,
        available: released.available.spendable(),
    })
    .into_response();
    service::mark_replayed(&mut response, released.replayed);
    Ok(response)
}

/// The hold of the path: anything but a positive integer names no hold (404).
fn hold_id(path: Result<Path<String>, PathRejection>) -> Result<HoldId, ApiError> {
    let raw = path.map(|Path(raw)| raw).unwrap_or_default();
    raw.parse::<i64>()
        .ok()
        .and_then(|id| HoldId::new(id).ok())
        .ok_or_else(|| no_such_hold(&raw))
}

fn no_such_hold(id: &str) -> ApiError {
    let shown: String = id.chars().take(40).collect();
    ApiError::new(ErrorCode::NotFound, format!("There is no hold {shown:?}."))
}

/// The answer to a store's refusal of a hold's step; `nothing` says nothing changed.
fn refusal(error: StoreError, nothing: &str, context: &'static str) -> ApiError {
    let ledger = match error {
        StoreError::Ledger(e) | StoreError::Hold(HoldError::Ledger(e)) => e,
        StoreError::Hold(hold) => return hold_refusal(hold),
        e => return ApiError::unavailable(context, &e),
    };
    match ledger {
        LedgerError::InsufficientTokens { balance, requested } => {
            service::insufficient(balance, requested, nothing)
        }
        LedgerError::UnknownUser(user) => service::unknown_user(user),
        LedgerError::IdempotencyConflict { .. } => service::key_reused(),
        LedgerError::BalanceLimit => {
            ApiError::invalid("The balance would leave its allowed range. Nothing changed.")
        }
    }
}

fn hold_refusal(error: HoldError) -> ApiError {
    let conflict = |message: String| ApiError::new(ErrorCode::Conflict, message);
    match error {
        HoldError::NotFound => ApiError::new(ErrorCode::NotFound, "There is no such hold."),
        HoldError::Settled(HoldState::Captured) => {
            conflict("The hold was captured: it cannot be released.".to_owned())
                .with("state", HoldState::Captured.as_str())
        }
        HoldError::Settled(state) => conflict(format!(
            "The hold is {}: nothing is reserved any more, so it cannot be captured. \
             Open a new hold.",
            state.as_str()
        ))
        .with("state", state.as_str()),
        HoldError::ExceedsHold { held } => conflict(format!(
            "The hold reserved {} tokens. Capture at most that, or send \
             `\"allow_exceed\": true` to take the rest from what is available.",
            held.get()
        ))
        .with("held", held.get()),
        HoldError::CapturedDifferently { captured } => conflict(format!(
            "The hold was already captured for {} tokens.",
            captured.get()
        ))
        .with("captured", captured.get()),
        HoldError::KeyReused => service::key_reused(),
        HoldError::Ledger(e) => refusal(StoreError::Ledger(e), "Nothing changed.", "holds"),
    }
}
