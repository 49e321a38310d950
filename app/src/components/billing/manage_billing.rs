//! `ManageBilling`: the subscription's state and a way into Stripe's Customer Portal
//! (payment methods, invoices, cancelling).

use leptos::prelude::*;
use leptos::server_fn::ServerFn;

use super::BillingLive;
use crate::api::billing::{CreatePortalSession, SubscriptionView, subscriptions};
use crate::components::local_time::LocalTime;

#[component]
pub fn ManageBilling() -> impl IntoView {
    let live = BillingLive::expect();
    let current = live.load(|| (), |_| subscriptions());
    // The way into the portal is a plain form, hydrated or not: the server answers its post
    // with a redirect to the portal (the page is left either way). The action is here only to
    // show what a refused post came back with (`__err`, as the server's render shows it).
    let portal = ServerAction::<CreatePortalSession>::new();
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
            <form method="post" action=CreatePortalSession::url()>
                <button type="submit" class="button button-quiet">
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
    let live = subscription.is_live();
    let state = match (live, subscription.cancel_at_period_end) {
        (true, true) => format!("{plan}: cancels at the end of the period"),
        _ => format!("{plan}: {}", capitalised(&subscription.status)),
    };
    // When the period ends, in the viewer's own time (UTC until the browser has the page).
    let ends = subscription.period_end;
    let (lead, tail) = match (live, subscription.cancel_at_period_end, ends) {
        (true, false, Some(_)) => ("Renews on ", "."),
        (true, false, None) => ("Renews at the end of the period.", ""),
        (true, true, Some(_)) => ("Ends on ", ". Your tokens stay yours."),
        (true, true, None) => ("Ends at the end of the period. Your tokens stay yours.", ""),
        (false, ..) => ("No further charges.", ""),
    };
    let when = ends.filter(|_| live).map(|at| view! { <LocalTime at /> });
    view! {
        <p data-testid="subscription-status">
            <strong>{state}</strong>
        </p>
        <p class="muted" data-testid="subscription-detail">
            {lead}
            {when}
            {tail}
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
