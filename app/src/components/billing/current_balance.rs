//! `CurrentBalance`: the signed-in user's tokens, kept current while the page is open.
//!
//! In the browser it listens to the server's `/api/tokens/stream` (server-sent events) and
//! reloads when the ledger changes; if the stream cannot be opened it polls instead.

use leptos::prelude::*;

use billing::domain::{Grant, group_thousands};

use super::BillingLive;
use crate::api::tokens::token_balance;

#[component]
pub fn CurrentBalance() -> impl IntoView {
    let live = BillingLive::expect();
    let balance = Resource::new(
        move || live.version.get(),
        move |_| async move {
            live.settled().await;
            token_balance().await
        },
    );
    // Runs once, in the browser only.
    Effect::new(move |_| follow_changes(live));

    view! {
        <section class="card balance" aria-labelledby="balance-title">
            <h2 id="balance-title">"Your balance"</h2>
            // The live region stays in the page while its content is replaced, so screen
            // readers announce each new balance (a region inserted anew is often not read).
            <div role="status" aria-live="polite" aria-atomic="true" data-testid="balance-live">
                <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        match balance.await {
                            Ok(view) => {
                                let negative = view.balance.is_negative();
                                view! {
                                    <p
                                        class="balance-amount"
                                        class:negative=negative
                                        data-testid="balance"
                                    >
                                        <span class="balance-number">{view.balance.grouped()}</span>
                                        " tokens"
                                        {(view.held > 0)
                                            .then(|| {
                                                view! {
                                                    ", "
                                                    <span data-testid="reserved">
                                                        {group_thousands(view.held)}
                                                    </span>
                                                    " reserved"
                                                }
                                            })}
                                    </p>
                                    {(view.held > 0)
                                        .then(|| {
                                            view! {
                                                <p class="hint">
                                                    "Reserved tokens are held for jobs still running; what they do not use comes back."
                                                </p>
                                            }
                                        })}
                                    {negative
                                        .then(|| {
                                            view! {
                                                <p class="hint">
                                                    "A refund or dispute took back tokens that were already spent. New purchases cover this first."
                                                </p>
                                            }
                                        })}
                                    <Grants grants=view.grants />
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
            </div>
        </section>
    }
}

/// What is left of each purchase or grant, in the order tokens are spent: the soonest to
/// expire first.
#[component]
fn Grants(grants: Vec<Grant>) -> impl IntoView {
    (!grants.is_empty()).then(|| {
        view! {
            <div class="grants" data-testid="grants">
                <h3 id="grants-title">"What is left, spent soonest-expiring first"</h3>
                <ul aria-labelledby="grants-title">
                    {grants
                        .into_iter()
                        .map(|grant| {
                            let expires = match grant.expires_at {
                                Some(at) => format!("expires {}", at.utc_minutes()),
                                None => "never expires".to_owned(),
                            };
                            view! {
                                <li>
                                    <span class="grant-label">{grant.label}</span>
                                    <span class="grant-left num">
                                        {format!(
                                            "{} of {} left",
                                            group_thousands(grant.remaining),
                                            group_thousands(grant.tokens.get()),
                                        )}
                                    </span>
                                    <span class="grant-expiry muted">{expires}</span>
                                </li>
                            }
                        })
                        .collect_view()}
                </ul>
            </div>
        }
    })
}

#[cfg(feature = "hydrate")]
fn follow_changes(live: BillingLive) {
    use futures::StreamExt;
    use gloo_net::eventsource::futures::EventSource;

    leptos::task::spawn_local(async move {
        let opened = EventSource::new("/api/tokens/stream")
            .and_then(|mut source| source.subscribe("balance").map(|changes| (source, changes)));
        let Ok((_source, mut changes)) = opened else {
            poll(live);
            return;
        };
        // The first event counts too: the ledger may have changed between the server
        // rendering the page and the stream opening (a webhook landing meanwhile).
        let mut last: Option<String> = None;
        while let Some(message) = changes.next().await {
            match message {
                Ok((_, event)) => {
                    let data = event.data().as_string();
                    if data != last {
                        live.changed();
                    }
                    last = data;
                }
                // The browser reconnects by itself; a closed stream ends the loop.
                Err(_) => continue,
            }
        }
        poll(live);
    });
}

#[cfg(feature = "hydrate")]
fn poll(live: BillingLive) {
    let _ = set_interval_with_handle(move || live.changed(), std::time::Duration::from_secs(10));
}

#[cfg(not(feature = "hydrate"))]
fn follow_changes(_live: BillingLive) {}
