//! `/app/billing`: the user's balance, purchases and ledger.

use leptos::prelude::*;

use crate::components::billing::{
    AutoTopUp, BillingLive, BuyTokens, CheckoutBanner, CurrentBalance, LedgerTable,
    LowBalanceNotice, ManageBilling,
};
use crate::components::require_user::LoginGate;

#[component]
pub fn BillingPage() -> impl IntoView {
    // Every component here creates its data loads as the page is built, in one order on the
    // server and in the browser (loads created after an await can be numbered differently on
    // each side, which breaks hydration).
    BillingLive::provide();
    // "true" once the browser's WASM has taken the page over (effects run only there): the
    // browser tests wait for it before they rely on anything better than plain HTML.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));

    view! {
        <main class="page" data-hydrated=move || hydrated.get().to_string()>
            <header class="page-header">
                <h1>"Billing"</h1>
            </header>
            <LoginGate />
            <CheckoutBanner />
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
