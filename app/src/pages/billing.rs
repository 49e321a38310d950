//! `/app/billing`: the user's balance, purchases and ledger.

use billing::domain::BalanceSnapshot;
use leptos::prelude::*;

use crate::api::tokens::token_snapshot;
use crate::components::billing::{
    AutoTopUp, BillingLive, BillingQuery, BuyTokens, CheckoutBanner, ConnectionNotice,
    CurrentBalance, LedgerTable, LowBalanceNotice, ManageBilling,
};
use crate::components::layout::mark_hydrated;
use crate::components::require_user::LoginGate;

#[component]
pub fn BillingPage() -> impl IntoView {
    let query = leptos_router::hooks::use_query_map();
    let query = query.with_untracked(|q| BillingQuery {
        session_id: q.get("session_id"),
        canceled: q.get("canceled"),
        card_setup: q.get("card_setup"),
        source: q.get("source"),
        before: q.get("before"),
        after: q.get("after"),
    });
    // Where the tokens stood before any part read them: the parts are at least as new. The
    // balance stream's first event is compared with it, and the parts load again only if the
    // ledger moved since (a webhook landing while the page was on its way).
    let rendered = Resource::new_blocking(|| (), |_| token_snapshot());
    view! {
        <main class="page" data-hydrated="false">
            <header class="page-header">
                <h1>"Billing"</h1>
            </header>
            <LoginGate />
            <Suspense>
                {move || {
                    let query = query.clone();
                    Suspend::new(async move {
                        let seen = rendered.await.ok();
                        view! { <BillingParts query seen /> }
                    })
                }}
            </Suspense>
        </main>
    }
}

/// The page's parts, taken over by the browser (an island): what the address asks for and where
/// the tokens stood when the server began rendering them.
#[island]
fn BillingParts(query: BillingQuery, seen: Option<BalanceSnapshot>) -> impl IntoView {
    mark_hydrated();
    BillingLive::provide(query, seen);

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
