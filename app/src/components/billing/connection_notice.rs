//! `ConnectionNotice`: the one notice the billing page shows while the server cannot be
//! reached. The parts keep what they last showed (the balance marked as not current) and load
//! again by themselves when the server answers.

use leptos::prelude::*;

use super::{BillingLive, Connection};

#[component]
pub fn ConnectionNotice() -> impl IntoView {
    let live = BillingLive::expect();
    // The live region stays in the page and its content comes and goes, so that screen readers
    // announce the notice when it appears.
    view! {
        <div role="status" aria-live="polite">
            {move || {
                (live.connection.get() == Connection::Lost)
                    .then(|| {
                        view! {
                            <p class="banner banner-warning" data-testid="connection-lost">
                                "The server cannot be reached. What this page shows is from before; it will update by itself when the connection is back."
                            </p>
                        }
                    })
            }}
        </div>
    }
}
