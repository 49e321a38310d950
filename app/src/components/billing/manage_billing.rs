//! `ManageBilling`: the subscription's state and a way into Stripe's Customer Portal
//! (payment methods, invoices, cancelling).

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::server_fn::ServerFn;

use super::{BillingLive, go_to};
use crate::api::billing::{CreatePortalSession, SubscriptionView, subscriptions};

#[component]
pub fn ManageBilling() -> impl IntoView {
    let live = BillingLive::expect();
    let current = live.load(|| (), |_| subscriptions());
    let portal = ServerAction::<CreatePortalSession>::new();
    Effect::new(move |_| {
        if let Some(Ok(opened)) = portal.value().get() {
            go_to(&opened.url);
        }
    });
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        portal.dispatch(CreatePortalSession {});
    };
    let error = move || match portal.value().get() {
        Some(Err(error)) => Some(error.to_string()),
        _ => None,
    };

    view! {
        <section class="card" aria-labelledby="manage-title">
            <h2 id="manage-title">"Subscription"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match current.await {
                        Ok(all) if !all.is_empty() => describe_all(all).into_any(),
                        Ok(_) => {
                            view! {
                                <p data-testid="subscription-status">
                                    "No subscription. The Starter plan adds 6,000 tokens every month."
                                </p>
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
            <p class="error" role="alert">
                {error}
            </p>
            <form method="post" action=CreatePortalSession::url() on:submit=on_submit>
                <button type="submit" class="button button-quiet" disabled=move || portal.pending().get()>
                    "Manage billing"
                </button>
            </form>
            <p class="hint">"Payment methods, invoices and cancelling, on Stripe."</p>
        </section>
    }
}

/// Each subscription; more than one live is said plainly, since each one charges.
fn describe_all(all: Vec<SubscriptionView>) -> impl IntoView {
    let live = all.iter().filter(|s| s.is_live()).count();
    let warning = (live > 1).then(|| {
        view! {
            <p class="banner banner-warning" data-testid="subscription-several">
                {format!(
                    "You have {live} live subscriptions: each one charges you and adds its \
                     tokens. Cancel the one you do not want in Manage billing."
                )}
            </p>
        }
    });
    // The ended ones only while nothing is live: the last state is what matters then.
    let shown: Vec<SubscriptionView> = if live > 0 {
        all.into_iter().filter(SubscriptionView::is_live).collect()
    } else {
        all.into_iter().take(1).collect()
    };
    view! {
        {warning}
        {shown.into_iter().map(describe).collect_view()}
    }
}

fn describe(subscription: SubscriptionView) -> impl IntoView {
    let plan = subscription
        .plan
        .clone()
        .unwrap_or_else(|| "Subscription".to_owned());
    let until = subscription
        .period_end
        .map(|at| at.date())
        .unwrap_or_else(|| "the end of the period".to_owned());
    let (state, detail) = match (subscription.is_live(), subscription.cancel_at_period_end) {
        (true, false) => (
            format!("{plan}: {}", capitalised(&subscription.status)),
            format!("Renews on {until}."),
        ),
        (true, true) => (
            format!("{plan}: cancels at the end of the period"),
            format!("Ends on {until}. Your tokens stay yours."),
        ),
        (false, _) => (
            format!("{plan}: {}", capitalised(&subscription.status)),
            "No further charges.".to_owned(),
        ),
    };
    view! {
        <p data-testid="subscription-status">
            <strong>{state}</strong>
        </p>
        <p class="muted" data-testid="subscription-detail">
            {detail}
        </p>
    }
}

fn capitalised(status: &str) -> String {
    let words = status.replace('_', " ");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => words,
    }
}
