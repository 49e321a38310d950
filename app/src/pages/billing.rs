//! `/app/billing`: the user's balance, purchases and ledger.

use leptos::prelude::*;

use crate::components::billing::{
    AutoTopUp, BillingLive, BillingQuery, BuyTokens, CheckoutBanner, ConnectionNotice,
    CurrentBalance, LedgerTable, LowBalanceNotice, ManageBilling,
};
use crate::components::layout::mark_hydrated;
use crate::components::require_user::LoginGate;

#[component]
pub fn BillingPage() -> impl IntoView {
    // Every component here creates its data loads as the page is built, in one order on the
    // server and in the browser (loads created after an await can be numbered differently on
    // each side, which breaks hydration).
    let query = leptos_router::hooks::use_query_map();
    let query = query.with_untracked(|q| BillingQuery {
        session_id: q.get("session_id"),
        canceled: q.get("canceled"),
        card_setup: q.get("card_setup"),
        source: q.get("source"),
        before: q.get("before"),
        after: q.get("after"),
    });
    view! {
        <main class="page" data-hydrated="false">
            <header class="page-header">
                <h1>"Billing"</h1>
            </header>
            <LoginGate />
            <BillingParts query />
        </main>
    }
}

#[island]
fn BillingParts(query: BillingQuery) -> impl IntoView {
    mark_hydrated();
    BillingLive::provide(query);

    view! {
            <CheckoutBanner />
            <ConnectionNotice />
            <div class="grid">
                <CurrentBalance />
                <ManageBilling />
            </div>
            <BuyTokens />
            <AutoTopUp />
            <LowBalanceNotice />
            <LedgerTable />
    }
}
