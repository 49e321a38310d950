//! `/app/billing`: the user's balance, purchases and ledger.

use leptos::prelude::*;

use crate::api::status::{SystemStatus, service_status};
use crate::components::billing::{
    BillingLive, BuyTokens, CheckoutBanner, CurrentBalance, LedgerTable, ManageBilling,
};
use crate::components::require_user::LoginGate;

#[component]
pub fn BillingPage() -> impl IntoView {
    // Every component here creates its data loads as the page is built, in one order on the
    // server and in the browser (loads created after an await can be numbered differently on
    // each side, which breaks hydration).
    BillingLive::provide();
    view! {
        <main class="page">
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
            <LedgerTable />
            <ConnectionCheck />
        </main>
    }
}

/// Asks the server what it runs with. The button does nothing until the page is hydrated,
/// which makes it the page's proof that WASM and server functions work.
#[component]
fn ConnectionCheck() -> impl IntoView {
    let check = Action::new(|_: &()| service_status());
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));

    view! {
        <section class="card" aria-labelledby="connection-title">
            <h2 id="connection-title">"Connection"</h2>
            <button
                class="button"
                data-hydrated=move || hydrated.get().to_string()
                disabled=move || !hydrated.get() || check.pending().get()
                on:click=move |_| {
                    check.dispatch(());
                }
            >
                "Check connection"
            </button>
            <p class="status" role="status" aria-live="polite">
                {move || match check.value().get() {
                    None if check.pending().get() => "Checking…".to_owned(),
                    None => String::new(),
                    Some(Ok(status)) => describe(&status),
                    Some(Err(_)) => "The server could not be reached. Try again.".to_owned(),
                }}
            </p>
        </section>
    }
}

fn describe(status: &SystemStatus) -> String {
    let payments = if status.payments_simulated {
        "simulated payments"
    } else {
        "live Stripe payments"
    };
    format!(
        "Server {} answered: {payments}, {} database.",
        status.version, status.database
    )
}
