//! `POST /api/tokens/consume`: the product's backend spends a user's tokens.
//!
//! Authenticated by a service API key (`Authorization: Bearer pbk_...`), made at most once per
//! `Idempotency-Key`: a retry with the same key and body answers with the original body, byte
//! for byte, and `Idempotent-Replayed: true`; the same key with a different body is refused
//! with 409. Batches of consumes are [`super::consume_batch`]; what the service routes share
//! is [`super::service`].

use app::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use billing::domain::{LedgerEntryId, Reason, Tokens, UserId};
use billing::ledger::{Debit, LedgerError};
use billing::store::StoreError;
use serde::{Deserialize, Serialize};

use super::service;
use crate::error::ApiError;

/// A consume request is a few fields: anything bigger is refused before parsing.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The namespace of consume's idempotency keys (with the API key's id), shared by batch items.
pub const KEY_KIND: &str = "consume";

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
    let api_key = service::authenticate(&state, &headers).await?;
    let key = service::idempotency_key(&headers, KEY_KIND, &api_key)?;
    let request: ConsumeRequest = service::read_json(
        &headers,
        body,
        MAX_BODY_BYTES,
        &format!(
            "`user` (an id), `tokens` (1 to {}) and `reason` (text)",
            Tokens::MAX
        ),
    )
    .await?;

    let debit = Debit::new(request.user, request.tokens, request.reason, key);
    match state.store.spend(debit).await {
        Ok(posted) => {
            let mut response = Json(ConsumeResponse {
                entry_id: posted.entry.id,
                user: posted.entry.user_id,
                tokens: posted.entry.delta.magnitude(),
                balance: posted.entry.balance_after.get(),
            })
            .into_response();
            service::mark_replayed(&mut response, posted.replayed);
            Ok(response)
        }
        // `balance` is kept for clients from before holds: it is what is available too.
        Err(StoreError::Ledger(LedgerError::InsufficientTokens { balance, requested })) => Err(
            service::insufficient(balance, requested, "Nothing was consumed.")
                .with("balance", balance.get()),
        ),
        Err(StoreError::Ledger(LedgerError::IdempotencyConflict { .. })) => {
            Err(service::key_reused())
        }
        Err(StoreError::Ledger(LedgerError::UnknownUser(user))) => Err(service::unknown_user(user)),
        Err(e) => Err(ApiError::unavailable(
            "consume: posting the debit failed",
            &e,
        )),
    }
}
