//! `POST /api/tokens/consume/batch`: up to 1,000 consumes in one request, in one transaction
//! of the store's (`Store::post_batch`), answered item by item in order.
//!
//! Each item has its own idempotency key, namespaced per API key exactly as
//! [`super::consume`]'s header is: a batch item and a single consume with the same client key
//! are the same posting. One refused item (too few tokens, an unknown user, a key used for
//! something else, a malformed item) refuses only itself; a database failure refuses the whole
//! batch (503, nothing written), and the batch can be sent again as it was.

use std::fmt;

use app::error::ErrorCode;
use app::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use billing::domain::{LedgerEntryId, Reason, Tokens, UserId};
use billing::ledger::{Debit, LedgerError};
use billing::store::BatchItem;
use serde::de::{IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::{consume, service};
use crate::error::ApiError;

pub const PATH: &str = "/api/tokens/consume/batch";

/// The most items in one batch.
pub const MAX_ITEMS: usize = 1_000;

/// Room for [`MAX_ITEMS`] of the largest items: a 500-character reason of 4-byte characters,
/// a 200-character key, the numbers and the field names (about 2,300 bytes), with room to
/// spare for whitespace.
pub const MAX_BODY_BYTES: usize = MAX_ITEMS * 3 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    items: Items,
}

/// The items as sent, each to be read on its own; beyond [`MAX_ITEMS`] only counted.
#[derive(Debug)]
struct Items {
    kept: Vec<Value>,
    total: usize,
}

impl<'de> Deserialize<'de> for Items {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemsVisitor;
        impl<'de> Visitor<'de> for ItemsVisitor {
            type Value = Items;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of items")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Items, A::Error> {
                let mut kept = Vec::new();
                while kept.len() < MAX_ITEMS {
                    match seq.next_element::<Value>()? {
                        Some(item) => kept.push(item),
                        None => break,
                    }
                }
                let mut total = kept.len();
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    total += 1;
                }
                Ok(Items { kept, total })
            }
        }
        deserializer.deserialize_seq(ItemsVisitor)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemRequest {
    user: UserId,
    tokens: Tokens,
    reason: Reason,
    idempotency_key: String,
}

#[derive(Debug, Serialize)]
struct BatchResponse {
    items: Vec<ItemResponse>,
}

#[derive(Debug, Serialize)]
struct ItemResponse {
    /// The item's key as sent, when it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    idempotency_key: Option<String>,
    #[serde(flatten)]
    answer: ItemAnswer,
}

#[derive(Debug, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
enum ItemAnswer {
    Applied(Spent),
    /// The key was used before for this very consume: nothing changed now.
    Replayed(Spent),
    Insufficient {
        available: i64,
        requested: i64,
    },
    Conflict {
        message: String,
    },
    UnknownUser {
        user: UserId,
    },
    Invalid {
        message: String,
    },
}

#[derive(Debug, Serialize)]
struct Spent {
    entry_id: LedgerEntryId,
    user: UserId,
    tokens: Tokens,
    /// The balance right after this item's debit.
    balance: i64,
}

pub fn router() -> Router<AppState> {
    Router::new().route(PATH, post(consume_batch))
}

async fn consume_batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let api_key = service::authenticate(&state, &headers).await?;
    let request: BatchRequest = service::read_json(
        &headers,
        body,
        MAX_BODY_BYTES,
        &format!("`items`, an array of 1 to {MAX_ITEMS} items"),
    )
    .await?;
    let Items { kept, total } = request.items;
    if total > MAX_ITEMS {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "A batch holds at most {MAX_ITEMS} items; this one has {total}. \
                 Send it as several batches. Nothing was consumed."
            ),
        )
        .with("max_items", MAX_ITEMS)
        .with("items", total));
    }
    if kept.is_empty() {
        return Err(ApiError::invalid(format!(
            "A batch needs 1 to {MAX_ITEMS} items; `items` is empty."
        )));
    }

    // Each item read on its own: a malformed one is answered `invalid` in its place.
    let mut answers: Vec<Option<ItemAnswer>> = Vec::with_capacity(kept.len());
    let mut keys = Vec::with_capacity(kept.len());
    let mut debits = Vec::with_capacity(kept.len());
    for item in &kept {
        keys.push(
            item.get("idempotency_key")
                .and_then(Value::as_str)
                .map(str::to_owned),
        );
        match debit_of(item, &api_key) {
            Ok(debit) => {
                debits.push(debit);
                answers.push(None);
            }
            Err(message) => answers.push(Some(ItemAnswer::Invalid { message })),
        }
    }
    let results = if debits.is_empty() {
        Vec::new()
    } else {
        state
            .store
            .post_batch(&debits)
            .await
            .map_err(|e| ApiError::unavailable("consume batch: posting the batch failed", &e))?
    };
    if results.len() != debits.len() {
        return Err(ApiError::internal(
            "consume batch: the store answered another number of items",
            format!("{} answers for {} debits", results.len(), debits.len()),
        ));
    }
    let mut results = results.into_iter().map(answer_of);

    let items = answers
        .into_iter()
        .zip(keys)
        .map(|(answer, idempotency_key)| {
            let answer = answer
                .or_else(|| results.next())
                .expect("one answer per debit, checked above");
            ItemResponse {
                idempotency_key,
                answer,
            }
        })
        .collect();
    Ok(Json(BatchResponse { items }).into_response())
}

/// The debit an item asks for, or why it is malformed.
fn debit_of(item: &Value, api_key: &billing::store::ApiKey) -> Result<Debit, String> {
    let request = ItemRequest::deserialize(item).map_err(|e| {
        format!(
            "An item needs `user` (an id), `tokens` (1 to {}), `reason` (text) and \
             `idempotency_key`: {e}",
            Tokens::MAX
        )
    })?;
    let key = service::scoped_key(consume::KEY_KIND, api_key, &request.idempotency_key)
        .map_err(|rule| format!("The `idempotency_key` {rule}"))?;
    Ok(Debit::new(
        request.user,
        request.tokens,
        request.reason,
        key,
    ))
}

fn answer_of(result: BatchItem) -> ItemAnswer {
    match result {
        Ok(posted) => {
            let spent = Spent {
                entry_id: posted.entry.id,
                user: posted.entry.user_id,
                tokens: posted.entry.delta.magnitude(),
                balance: posted.entry.balance_after.get(),
            };
            if posted.replayed {
                ItemAnswer::Replayed(spent)
            } else {
                ItemAnswer::Applied(spent)
            }
        }
        Err(LedgerError::InsufficientTokens { balance, requested }) => ItemAnswer::Insufficient {
            available: balance.get(),
            requested: requested.get(),
        },
        Err(LedgerError::IdempotencyConflict { .. }) => ItemAnswer::Conflict {
            message: "This idempotency key was already used for a different consume. \
                      Use a new key for a new consume."
                .to_owned(),
        },
        Err(LedgerError::UnknownUser(user)) => ItemAnswer::UnknownUser { user },
        Err(LedgerError::BalanceLimit) => ItemAnswer::Invalid {
            message: "The balance would leave its allowed range.".to_owned(),
        },
    }
}
