//! `/app/billing`: the user's balance, purchases and ledger.

use leptos::prelude::*;

use crate::components::billing::{
    AutoTopUp, BillingLive, BillingQuery, BuyTokens, CheckoutBanner, ConnectionNotice,
    CurrentBalance, LedgerTable, LowBalanceNotice, ManageBilling,
};
use crate::components::form_error::recall_plain_post_error;
use crate::components::layout::mark_hydrated;
use crate::components::require_user::LoginGate;

#[component]
pub fn BillingPage() -> impl IntoView {
    view! {
        <main class="page" data-hydrated="false">
            <header class="page-header">
                <h1>"Billing"</h1>
            </header>
            <LoginGate />
            <BillingParts />
        </main>
    }
}

/// The page's parts, taken over by the browser (an island). Each creates its data loads as it is
/// built, in one order on the server and in the browser (loads created after an await can be
/// numbered differently on each side, which breaks hydration).
#[island]
fn BillingParts() -> impl IntoView {
    mark_hydrated();
    recall_plain_post_error();
    BillingLive::provide(BillingQuery::from_address());

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
