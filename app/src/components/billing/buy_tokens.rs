//! `BuyTokens`: the packs and the plan from the server's catalog, each a button that goes to
//! Stripe Checkout. A plain form before hydration; after it, the button shows progress and
//! errors in place (rate limited, payments unavailable).

use billing::domain::{Offer, ProductKind};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::server_fn::ServerFn;

use super::{BillingLive, fresh_request_id, go_to};
use crate::api::billing::{CreateCheckoutSession, offers};

#[component]
pub fn BuyTokens() -> impl IntoView {
    let live = BillingLive::expect();
    // Again when the ledger changes: a subscription's first invoice means it is live now.
    let storefront = live.load(|| (), |_| offers());
    let checkout = ServerAction::<CreateCheckoutSession>::new();
    Effect::new(move |_| {
        if let Some(Ok(started)) = checkout.value().get() {
            go_to(&started.url);
        }
    });
    let error = move || match checkout.value().get() {
        Some(Err(error)) => Some(error.to_string()),
        _ => None,
    };

    view! {
        <section class="card" aria-labelledby="buy-title">
            <h2 id="buy-title">"Buy tokens"</h2>
            <p class="error" role="alert" data-testid="buy-error">
                {error}
            </p>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match storefront.await {
                        Ok(storefront) => {
                            view! {
                                <p class="banner banner-warning" hidden=!storefront.payments_simulated>
                                    "Payments are simulated here: no card is charged."
                                </p>
                                <ul class="offers" role="list">
                                    {storefront
                                        .offers
                                        .into_iter()
                                        .map(|offer| {
                                            let subscribed = storefront.subscribed;
                                            view! { <OfferCard offer checkout subscribed /> }
                                        })
                                        .collect_view()}
                                </ul>
                            }
                                .into_any()
                        }
                        Err(error) => {
                            view! { <p class="error" role="alert">{error.to_string()}</p> }
                                .into_any()
                        }
                    }
                })}
            </Transition>
        </section>
    }
}

/// One offer. The plan is offered only to a user without a live subscription: a second would
/// charge twice for the same plan.
#[component]
fn OfferCard(
    offer: Offer,
    checkout: ServerAction<CreateCheckoutSession>,
    subscribed: bool,
) -> impl IntoView {
    let monthly = offer.kind == ProductKind::Subscription;
    if monthly && subscribed {
        let heading = format!("offer-{}", offer.product.as_str());
        let labelled_by = heading.clone();
        return view! {
            <li class="offer" aria-labelledby=labelled_by>
                <h3 id=heading>{offer.label.clone()}</h3>
                <p class="offer-tokens" data-testid="plan-subscribed">
                    "You are subscribed. Manage the plan under Subscription."
                </p>
            </li>
        }
        .into_any();
    }
    let tokens = billing::domain::Balance::new(offer.tokens.get())
        .map(|b| b.grouped())
        .unwrap_or_default();
    let price = offer.price.map(|p| p.to_string());
    let heading = format!("offer-{}", offer.product.as_str());
    let (labelled_by, described_by) = (heading.clone(), heading.clone());
    let product = offer.product;
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        // The form's own fields, without its request id: the button is disabled while a
        // checkout is being opened, so there is no double submission to tell apart.
        checkout.dispatch(CreateCheckoutSession {
            product,
            request_id: None,
        });
    };
    view! {
        <li class="offer" aria-labelledby=labelled_by>
            <h3 id=heading>{offer.label.clone()}</h3>
            <p class="offer-tokens">
                <strong>{tokens}</strong>
                {if monthly { " tokens every month" } else { " tokens" }}
            </p>
            <p class="offer-price">
                {match price {
                    Some(price) if monthly => format!("{price} / month"),
                    Some(price) => price,
                    None => "Price shown at checkout".to_owned(),
                }}
            </p>
            <form method="post" action=CreateCheckoutSession::url() on:submit=on_submit>
                <input type="hidden" name="product" value=offer.product.as_str() />
                <input type="hidden" name="request_id" value=fresh_request_id() />
                <button
                    type="submit"
                    class="button"
                    disabled=move || checkout.pending().get()
                    aria-describedby=described_by
                >
                    {if monthly { "Subscribe" } else { "Buy" }}
                </button>
            </form>
        </li>
    }
    .into_any()
}
