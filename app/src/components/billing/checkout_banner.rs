//! Banners for a return from Stripe Checkout: paid (with the tokens added), still clearing,
//! a subscription started, or cancelled.

use leptos::prelude::*;

use super::BillingLive;
use crate::api::billing::CheckoutProgress;
use crate::error::AppError;

#[component]
pub fn CheckoutBanner() -> impl IntoView {
    let live = BillingLive::expect();
    let query = live.query;
    let canceled = move || query.with_value(|q| q.canceled.as_deref() == Some("1"));
    let status = live.checkout;
    // While a payment is clearing, ask again every few seconds (in the browser).
    let pending = RwSignal::new(false);
    Effect::new(move |_| {
        pending.set(matches!(
            status.get(),
            Some(Some(Ok(CheckoutProgress::Pending { .. })))
        ));
    });
    #[cfg(feature = "hydrate")]
    {
        let handle = set_interval_with_handle(
            move || {
                if pending.get_untracked() {
                    live.changed();
                }
            },
            std::time::Duration::from_secs(3),
        );
        on_cleanup(move || {
            if let Ok(handle) = handle {
                handle.clear();
            }
        });
    }
    let returning = move || query.with_value(|q| q.session_id.is_some());
    // Back from Checkout, the answer is what the user came for: focus goes to it (not to the
    // page's body), so a screen reader reads it and the keyboard starts there.
    let canceled_banner = focused_when_shown();
    let result_banner = focused_when_shown();
    // While the server cannot be reached, what the banner said last stands (the page's one
    // connection notice says the rest).
    let said = StoredValue::new(None::<(&'static str, String)>);

    view! {
        <Show when=canceled>
            <p class="banner banner-info" role="status" tabindex="-1" node_ref=canceled_banner>
                "Checkout canceled. Nothing was charged."
            </p>
        </Show>
        <Transition fallback=move || {
            returning()
                .then(|| {
                    view! {
                        <p class="banner banner-info" role="status">
                            "Payment received: adding your tokens…"
                        </p>
                    }
                })
        }>
            {move || Suspend::new(async move {
                let message = match status.await {
                    None => return ().into_any(),
                    Some(Ok(CheckoutProgress::Credited { tokens, balance })) => {
                        (
                            "banner-success",
                            format!(
                                "Payment received: {} tokens added. Your balance is {} tokens.",
                                grouped(tokens),
                                balance.grouped(),
                            ),
                        )
                    }
                    Some(Ok(CheckoutProgress::Subscribed)) => {
                        (
                            "banner-success",
                            "Subscription started. 6,000 tokens are added with each paid invoice."
                                .to_owned(),
                        )
                    }
                    Some(Ok(CheckoutProgress::Pending { tokens })) => {
                        (
                            "banner-info",
                            format!(
                                "Payment received: adding {} as soon as your bank confirms it. Your balance updates here by itself.",
                                tokens.map_or_else(|| "your tokens".to_owned(), |n| format!("{} tokens", grouped(n))),
                            ),
                        )
                    }
                    Some(Ok(CheckoutProgress::Unpaid)) => {
                        (
                            "banner-warning",
                            "The payment did not go through. Nothing was charged.".to_owned(),
                        )
                    }
                    Some(Err(error)) => match (error, said.get_value()) {
                        (AppError::Network, Some(before)) => before,
                        (error, _) => ("banner-warning", error.to_string()),
                    },
                };
                said.set_value(Some(message.clone()));
                view! {
                    <p
                        class=format!("banner {}", message.0)
                        role="status"
                        data-testid="checkout-banner"
                        tabindex="-1"
                        node_ref=result_banner
                    >
                        {message.1}
                    </p>
                }
                    .into_any()
            })}
        </Transition>
    }
}

/// An element that takes the focus the first time it is shown (in the browser); not again
/// when it changes (a payment clearing, asked about every few seconds), which its
/// `role="status"` announces.
fn focused_when_shown() -> NodeRef<leptos::html::P> {
    let node = NodeRef::<leptos::html::P>::new();
    Effect::new(move |focused: Option<bool>| {
        if focused == Some(true) {
            return true;
        }
        match node.get() {
            Some(element) => {
                let _ = element.focus();
                true
            }
            None => false,
        }
    });
    node
}

fn grouped(n: i64) -> String {
    billing::domain::Balance::new(n).map_or_else(|_| n.to_string(), |b| b.grouped())
}
