//! `POST /api/tokens/consume`: the product's backend spends a user's tokens.
//!
//! Authenticated by a service API key (`Authorization: Bearer pbk_...`), made at most once per
//! `Idempotency-Key`: a retry with the same key and body answers with the original body, byte
//! for byte, and `Idempotent-Replayed: true`; the same key with a different body is refused
//! with 409.

use app::error::ErrorCode;
use app::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use billing::api_key::{KeyDigest, SCOPE_CONSUME, looks_like_key};
use billing::domain::{IdempotencyKey, LedgerEntryId, Reason, Tokens, UserId};
use billing::ledger::{LedgerError, Posting};
use billing::store::{ApiKey, StoreError};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// A consume request is a few fields: anything bigger is refused before parsing.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Room left in the ledger's 255-character key after the per-API-key namespace.
const MAX_CLIENT_KEY_LEN: usize = 200;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsumeRequest {
    user: UserId,
    tokens: Tokens,
    reason: Reason,
}

#[derive(Debug, Serialize)]
struct ConsumeResponse {
    entry_id: LedgerEntryId,
    user: UserId,
    tokens: Tokens,
    /// The balance right after this debit (a replay answers the same).
    balance: i64,
}

pub fn router() -> Router<AppState> {
    Router::new().route("/api/tokens/consume", post(consume))
}

pub async fn consume(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let api_key = authenticate(&state, &headers).await?;
    let key = idempotency_key(&headers, &api_key)?;
    let request = parse_body(&headers, body).await?;

    let posting = Posting::debit(request.user, request.tokens, request.reason, key);
    match state.store.post(posting).await {
        Ok(posted) => {
            let mut response = Json(ConsumeResponse {
                entry_id: posted.entry.id,
                user: posted.entry.user_id,
                tokens: posted.entry.delta.magnitude(),
                balance: posted.entry.balance_after.get(),
            })
            .into_response();
            if posted.replayed {
                response
                    .headers_mut()
                    .insert("idempotent-replayed", HeaderValue::from_static("true"));
            }
            Ok(response)
        }
        Err(StoreError::Ledger(LedgerError::InsufficientTokens { balance, requested })) => {
            Err(ApiError::new(
                ErrorCode::InsufficientTokens,
                format!(
                    "The user has {} tokens; {} were requested. Nothing was consumed.",
                    balance.grouped(),
                    requested.get()
                ),
            )
            .with("balance", balance.get())
            .with("requested", requested.get()))
        }
        Err(StoreError::Ledger(LedgerError::IdempotencyConflict { .. })) => Err(ApiError::new(
            ErrorCode::IdempotencyConflict,
            "This Idempotency-Key was already used for a different request. \
             Use a new key for a new request.",
        )),
        Err(StoreError::Ledger(LedgerError::UnknownUser(user))) => Err(ApiError::new(
            ErrorCode::UnknownUser,
            format!("There is no user {user}."),
        )),
        Err(e) => Err(ApiError::unavailable(
            "consume: posting the debit failed",
            &e,
        )),
    }
}

async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<ApiKey, ApiError> {
    let secret = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| {
            ApiError::unauthorized("Send a service API key as `Authorization: Bearer pbk_...`.")
        })?;
    if !looks_like_key(secret) {
        return Err(ApiError::unauthorized("The API key is not valid."));
    }
    let key = state
        .store
        .active_api_key(&KeyDigest::of(secret))
        .await
        .map_err(|e| ApiError::unavailable("consume: looking up the API key failed", &e))?
        .ok_or_else(|| ApiError::unauthorized("The API key is not valid or was revoked."))?;
    if !key.allows(SCOPE_CONSUME) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "This API key may not consume tokens.",
        ));
    }
    Ok(key)
}

/// The client's key, namespaced by API key so that two services can never collide.
fn idempotency_key(headers: &HeaderMap, api_key: &ApiKey) -> Result<IdempotencyKey, ApiError> {
    let raw = headers
        .get("idempotency-key")
        .ok_or_else(|| {
            ApiError::bad_request(
                "An Idempotency-Key header is required, so that a retried request is applied once.",
            )
        })?
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_CLIENT_KEY_LEN)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "The Idempotency-Key must be 1 to {MAX_CLIENT_KEY_LEN} printable ASCII characters."
            ))
        })?;
    IdempotencyKey::scoped(&format!("consume:{}", api_key.id), raw).map_err(|_| {
        ApiError::bad_request(format!(
            "The Idempotency-Key must be 1 to {MAX_CLIENT_KEY_LEN} printable ASCII characters."
        ))
    })
}

async fn parse_body(headers: &HeaderMap, body: Body) -> Result<ConsumeRequest, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "Send the request as JSON (Content-Type: application/json).",
        ));
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("The request body is larger than {MAX_BODY_BYTES} bytes."),
            )
        })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        if e.is_data() {
            ApiError::invalid(format!(
                "The request needs `user` (an id), `tokens` (1 to {}) and `reason` (text): {e}",
                Tokens::MAX
            ))
        } else {
            ApiError::bad_request(format!("The body is not valid JSON: {e}"))
        }
    })
}
