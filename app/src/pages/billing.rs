//! `/app/billing`: the user's balance, purchases and ledger.

use leptos::prelude::*;

use crate::components::billing::{
    AutoTopUp, BillingLive, BuyTokens, CheckoutBanner, ConnectionNotice, CurrentBalance,
    LedgerTable, LowBalanceNotice, ManageBilling,
};
use crate::components::layout::hydrated_mark;
use crate::components::require_user::LoginGate;

#[component]
pub fn BillingPage() -> impl IntoView {
    // Every component here creates its data loads as the page is built, in one order on the
    // server and in the browser (loads created after an await can be numbered differently on
    // each side, which breaks hydration).
    BillingLive::provide();

    view! {
        <main class="page" data-hydrated=hydrated_mark()>
            <header class="page-header">
                <h1>"Billing"</h1>
            </header>
            <LoginGate />
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
        </main>
    }
}
