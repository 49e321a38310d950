//! The signed-in user's tokens: balance and ledger (reads, so `GET`, shared with curl).

use billing::domain::{Balance, Grant, LedgerEntryId, LedgerPage, Month, Source, Statement};
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use serde::{Deserialize, Serialize};

use crate::api::wire::WireJson;
use crate::error::AppError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceView {
    pub balance: Balance,
    /// Reserved by jobs still running (open holds).
    pub held: i64,
    /// What is left of each grant, in the order tokens are spent.
    pub grants: Vec<Grant>,
    /// The newest ledger entry, read first: the balance stream's first event, told apart from
    /// this, says whether anything changed since (the page does not load again for nothing).
    pub latest_entry: Option<LedgerEntryId>,
}

/// Entries a ledger page holds when the caller does not say.
pub const DEFAULT_PAGE_SIZE: u32 = 20;

#[server(prefix = "/api", endpoint = "tokens/balance", input = GetUrl, output = WireJson)]
pub async fn token_balance() -> Result<BalanceView, AppError> {
    use crate::api::guard::{answer, internal};
    answer(|call| async move {
        let user = call.require_user().await?;
        let store = &call.state().store;
        // Before the balance: a change between the two reads then shows as a change.
        let newest = store
            .ledger_page(user.id, &billing::store::LedgerQuery::first(1))
            .await
            .map_err(internal("reading a ledger failed"))?;
        let available = store
            .available(user.id)
            .await
            .map_err(internal("reading a balance failed"))?;
        let grants = store
            .grants(user.id)
            .await
            .map_err(internal("reading a user's grants failed"))?;
        Ok(BalanceView {
            balance: available.balance,
            held: available.held,
            grants,
            latest_entry: newest.entries.first().map(|entry| entry.id),
        })
    })
    .await
}

/// One page of the ledger, newest first: `before` a page's `next_cursor` for the older page,
/// or `after` its `prev_cursor` for the newer one.
#[server(prefix = "/api", endpoint = "tokens/ledger", input = GetUrl, output = WireJson)]
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

/// The statement of `month` (`2026-11`; the month under way when not given).
#[server(prefix = "/api", endpoint = "tokens/statement", input = GetUrl, output = WireJson)]
pub async fn token_statement(
    #[server(default)] month: Option<Month>,
) -> Result<Statement, AppError> {
    use crate::api::guard::{answer, internal};
    answer(|call| async move {
        let user = call.require_user().await?;
        let month = month.unwrap_or_else(|| Month::of(billing::domain::Timestamp::now()));
        call.state()
            .store
            .statement(user.id, month)
            .await
            .map_err(internal("reading a statement failed"))
    })
    .await
}
