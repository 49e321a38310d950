//! `CurrentBalance`: the signed-in user's tokens.

use leptos::prelude::*;

use crate::api::tokens::token_balance;

#[component]
pub fn CurrentBalance() -> impl IntoView {
    let balance = Resource::new(|| (), |_| token_balance());
    view! {
        <section class="card balance" aria-labelledby="balance-title">
            <h2 id="balance-title">"Your balance"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match balance.await {
                        Ok(view) => {
                            let negative = view.balance.is_negative();
                            view! {
                                <p class="balance-amount" class:negative=negative data-testid="balance">
                                    <span class="balance-number">{view.balance.grouped()}</span>
                                    " tokens"
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
        </section>
    }
}
