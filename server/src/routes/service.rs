//! What the service API's routes (consume, batches, holds) share: the API key, the
//! `Idempotency-Key` namespaced per API key, the JSON body, the replay header, and the
//! answers to the ledger's refusals.

use app::error::ErrorCode;
use app::state::AppState;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use billing::api_key::{KeyDigest, SCOPE_CONSUME, looks_like_key};
use billing::domain::{Balance, IdempotencyKey, Tokens, UserId};
use billing::store::ApiKey;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Room left in the ledger's 255-character key after the per-API-key namespace.
pub const MAX_CLIENT_KEY_LEN: usize = 200;

/// The service key of `Authorization: Bearer pbk_...`, active and allowed to spend tokens.
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<ApiKey, ApiError> {
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
        .map_err(|e| ApiError::unavailable("service API: looking up the API key failed", &e))?
        .ok_or_else(|| ApiError::unauthorized("The API key is not valid or was revoked."))?;
    if !key.allows(SCOPE_CONSUME) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "This API key may not consume tokens.",
        ));
    }
    Ok(key)
}

/// The `Idempotency-Key` header, namespaced by `kind` and the API key (see [`scoped_key`]).
pub fn idempotency_key(
    headers: &HeaderMap,
    kind: &str,
    api_key: &ApiKey,
) -> Result<IdempotencyKey, ApiError> {
    let raw = headers.get("idempotency-key").ok_or_else(|| {
        ApiError::bad_request(
            "An Idempotency-Key header is required, so that a retried request is applied once.",
        )
    })?;
    let raw = raw
        .to_str()
        .map_err(|_| ApiError::bad_request(bad_key_message("The Idempotency-Key")))?;
    scoped_key(kind, api_key, raw)
        .map_err(|message| ApiError::bad_request(format!("The Idempotency-Key {message}")))
}

/// A client's key as the ledger keeps it, `{kind}:{api key id}:{key}`: two services can never
/// collide, and a consume and a batch item with the same client key are the same posting.
/// `Err` says what is wrong with the key (to follow "The key ...").
pub fn scoped_key(kind: &str, api_key: &ApiKey, raw: &str) -> Result<IdempotencyKey, String> {
    if raw.is_empty() || raw.len() > MAX_CLIENT_KEY_LEN {
        return Err(key_rule());
    }
    IdempotencyKey::scoped(&format!("{kind}:{}", api_key.id), raw).map_err(|_| key_rule())
}

fn key_rule() -> String {
    format!("must be 1 to {MAX_CLIENT_KEY_LEN} printable ASCII characters.")
}

fn bad_key_message(what: &str) -> String {
    format!("{what} {}", key_rule())
}

/// The JSON body, at most `limit` bytes; `needs` says which fields a valid one has.
pub async fn read_json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    needs: &str,
) -> Result<T, ApiError> {
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
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("The request body is larger than {limit} bytes."),
        )
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        if e.is_data() {
            ApiError::invalid(format!("The request needs {needs}: {e}"))
        } else {
            ApiError::bad_request(format!("The body is not valid JSON: {e}"))
        }
    })
}

/// Marks `response` as the answer of an earlier request with the same key.
pub fn mark_replayed(response: &mut Response, replayed: bool) {
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
}

/// 402: what is available (the balance less open holds) is short of what was asked.
pub fn insufficient(available: Balance, requested: Tokens, nothing: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InsufficientTokens,
        format!(
            "The user has {} tokens available; {} were requested. {nothing}",
            available.grouped(),
            requested.get()
        ),
    )
    .with("available", available.get())
    .with("requested", requested.get())
}

pub fn unknown_user(user: UserId) -> ApiError {
    ApiError::new(ErrorCode::UnknownUser, format!("There is no user {user}."))
}

pub fn key_reused() -> ApiError {
    ApiError::new(
        ErrorCode::IdempotencyConflict,
        "This Idempotency-Key was already used for a different request. \
         Use a new key for a new request.",
    )
}
