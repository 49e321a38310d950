//! Admin tools: look up a user, credit or debit their tokens by hand with a reason.
//! Every function here answers 401 without a session and 403 for anyone but an admin.

use billing::domain::{Balance, LedgerEntry, LedgerPage};
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use serde::{Deserialize, Serialize};

use crate::api::auth::SessionUser;
use crate::api::codec::{FormOrJson, form_or_json};
use crate::api::wire::WireJson;
use crate::error::AppError;

/// The most one manual adjustment may move: a typo of a few zeros stops here.
pub const MAX_ADJUSTMENT: i64 = 1_000_000;

/// A user as an admin sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserAccount {
    pub user: SessionUser,
    pub balance: Balance,
    pub ledger: LedgerPage,
    /// A fresh id for the next adjustment form: a double submission applies once.
    pub adjustment_id: String,
}

/// What an adjustment did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adjusted {
    pub entry: LedgerEntry,
    /// True when this request id had been applied before and nothing changed now.
    pub replayed: bool,
    /// A fresh id for the adjustment after this one, known as soon as this one is answered.
    pub next_request_id: String,
}

/// Finds a user by email or id, with their balance and newest ledger entries.
#[server(prefix = "/api", endpoint = "admin/users/find", input = GetUrl, output = WireJson)]
pub async fn find_user(query: String) -> Result<UserAccount, AppError> {
    crate::api::guard::answer(|call| async move {
        call.require_admin().await?;
        ssr::account(&call, &ssr::find(&call, &query).await?).await
    })
    .await
}

/// Credits a user's tokens (the seed's `POST /api/admin/tokens/credit`). `user` is an email
/// or an id; `request_id` makes a retried submission apply once.
#[server(prefix = "/api", endpoint = "admin/tokens/credit", input = FormOrJson, output = WireJson)]
pub async fn admin_credit(
    user: String,
    tokens: i64,
    reason: String,
    #[server(default)] request_id: Option<String>,
) -> Result<Adjusted, AppError> {
    crate::api::guard::answer(|call| {
        ssr::adjust(call, user, tokens, reason, request_id, ssr::Way::Credit)
    })
    .await
}

/// Debits a user's tokens by hand; never below zero.
#[server(prefix = "/api", endpoint = "admin/tokens/debit", input = FormOrJson, output = WireJson)]
pub async fn admin_debit(
    user: String,
    tokens: i64,
    reason: String,
    #[server(default)] request_id: Option<String>,
) -> Result<Adjusted, AppError> {
    crate::api::guard::answer(|call| {
        ssr::adjust(call, user, tokens, reason, request_id, ssr::Way::Debit)
    })
    .await
}

form_or_json!(
    AdminCredit => ["user", "tokens", "reason", "request_id"],
    AdminDebit => ["user", "tokens", "reason", "request_id"],
);

#[cfg(feature = "ssr")]
mod ssr {
    use billing::domain::{Email, IdempotencyKey, Reason, TokenDelta, Tokens, User, UserId};
    use billing::ledger::{LedgerError, Posting};
    use billing::store::{LedgerQuery, StoreError};
    use rand::RngCore;

    use super::{Adjusted, MAX_ADJUSTMENT, UserAccount};
    use crate::api::auth::SessionUser;
    use crate::api::guard::{Call, internal};
    use crate::error::AppError;

    fn random_id() -> String {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        hex::encode(bytes)
    }

    pub enum Way {
        Credit,
        Debit,
    }

    pub async fn find(call: &Call, query: &str) -> Result<User, AppError> {
        let query = query.trim();
        let store = &call.state().store;
        let found = if let Ok(id) = query.parse::<UserId>() {
            store.user_by_id(id).await
        } else if let Ok(email) = Email::parse(query) {
            store.user_by_email(&email).await
        } else {
            return Err(AppError::invalid(
                "Enter a user's email address or numeric id.",
            ));
        };
        found
            .map_err(internal("looking up a user failed"))?
            .ok_or_else(|| AppError::not_found(format!("There is no user {query}.")))
    }

    pub async fn account(call: &Call, user: &User) -> Result<UserAccount, AppError> {
        let store = &call.state().store;
        let balance = store
            .balance(user.id)
            .await
            .map_err(internal("reading a balance failed"))?;
        let ledger = store
            .ledger_page(user.id, &LedgerQuery::first(20))
            .await
            .map_err(internal("reading a ledger failed"))?;
        Ok(UserAccount {
            user: SessionUser {
                id: user.id,
                email: user.email.to_string(),
                role: user.role,
            },
            balance,
            ledger,
            adjustment_id: random_id(),
        })
    }

    pub async fn adjust(
        call: Call,
        user: String,
        tokens: i64,
        reason: String,
        request_id: Option<String>,
        way: Way,
    ) -> Result<Adjusted, AppError> {
        let admin = call.require_admin().await?;
        let tokens = Tokens::new(tokens)
            .ok()
            .filter(|t| t.get() <= MAX_ADJUSTMENT)
            .ok_or_else(|| {
                AppError::invalid(format!(
                    "Tokens must be a whole number from 1 to {MAX_ADJUSTMENT}."
                ))
            })?;
        let reason = Reason::parse(&reason).map_err(|_| {
            AppError::invalid(format!(
                "A reason is required (at most {} characters): it is shown in the ledger.",
                Reason::MAX_CHARS
            ))
        })?;
        let request_id = request_id
            .filter(|id| !id.trim().is_empty())
            .unwrap_or_else(random_id);
        let key =
            IdempotencyKey::scoped(&format!("admin:{}", admin.id), &request_id).map_err(|_| {
                AppError::invalid("The request id must be up to 200 printable characters.")
            })?;
        let target = find(&call, &user).await?;
        // Counted once the request is known to be valid: a typo does not cost a write.
        call.limit_billing_write(&admin).await?;
        let delta = match way {
            Way::Credit => TokenDelta::increase(tokens),
            Way::Debit => TokenDelta::decrease(tokens),
        };

        let posted = call
            .state()
            .store
            .post(Posting::adjustment(target.id, delta, reason, key, admin.id))
            .await
            .map_err(|e| match e {
                StoreError::Ledger(LedgerError::InsufficientTokens { balance, requested }) => {
                    AppError::InsufficientTokens {
                        balance: balance.get(),
                        requested: requested.get(),
                    }
                }
                StoreError::Ledger(LedgerError::IdempotencyConflict { .. }) => AppError::conflict(
                    "This request id was already used for a different adjustment.",
                ),
                StoreError::Ledger(LedgerError::BalanceLimit) => {
                    AppError::invalid("That would take the balance out of its allowed range.")
                }
                other => internal("posting an admin adjustment failed")(other),
            })?;
        tracing::info!(
            admin = %admin.id,
            user = %target.id,
            delta = posted.entry.delta.get(),
            replayed = posted.replayed,
            "admin adjustment"
        );
        Ok(Adjusted {
            entry: posted.entry,
            replayed: posted.replayed,
            next_request_id: random_id(),
        })
    }
}
