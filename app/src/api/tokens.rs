//! The signed-in user's tokens: balance and ledger (reads, so `GET`, shared with curl).

use billing::domain::{Balance, LedgerEntryId, LedgerPage, Source};
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceView {
    pub balance: Balance,
}

/// Entries a ledger page holds when the caller does not say.
pub const DEFAULT_PAGE_SIZE: u32 = 20;

#[server(prefix = "/api", endpoint = "tokens/balance", input = GetUrl)]
pub async fn token_balance() -> Result<BalanceView, AppError> {
    use crate::api::guard::{answer, internal};
    answer(|call| async move {
        let user = call.require_user().await?;
        let balance = call
            .state()
            .store
            .balance(user.id)
            .await
            .map_err(internal("reading a balance failed"))?;
        Ok(BalanceView { balance })
    })
    .await
}

/// One page of the ledger, newest first: `before` a page's `next_cursor` for the older page,
/// or `after` its `prev_cursor` for the newer one.
#[server(prefix = "/api", endpoint = "tokens/ledger", input = GetUrl)]
pub async fn token_ledger(
    #[server(default)] before: Option<LedgerEntryId>,
    #[server(default)] after: Option<LedgerEntryId>,
    #[server(default)] source: Option<Source>,
    #[server(default)] limit: Option<u32>,
) -> Result<LedgerPage, AppError> {
    use crate::api::guard::{answer, internal};
    use billing::store::LedgerQuery;
    answer(|call| async move {
        let user = call.require_user().await?;
        let query = LedgerQuery {
            before,
            after,
            source,
            ..LedgerQuery::first(limit.unwrap_or(DEFAULT_PAGE_SIZE))
        };
        call.state()
            .store
            .ledger_page(user.id, &query)
            .await
            .map_err(internal("reading a ledger page failed"))
    })
    .await
}
