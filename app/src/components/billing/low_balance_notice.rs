//! `LowBalanceNotice`: the mark under which the user is emailed that their balance is low (once
//! each time what they can spend goes under it), set or turned off here.

use leptos::ev::SubmitEvent;
use leptos::html::Input;
use leptos::prelude::*;
use leptos::server_fn::ServerFn;

use billing::domain::group_thousands;

use super::Load;
use crate::api::notices::{EmailNotices, SetLowBalanceNotice, notice_settings};

#[component]
pub fn LowBalanceNotice() -> impl IntoView {
    let save = ServerAction::<SetLowBalanceNotice>::new();
    let settings: Load<EmailNotices> =
        Resource::new_with_options(move || save.version().get(), |_| notice_settings(), false);
    let mark = NodeRef::<Input>::new();
    let on_save = move |ev: SubmitEvent| {
        ev.prevent_default();
        let Some(input) = mark.get() else { return };
        // The browser checked the number (required, 1 or more); the server checks it again.
        if let Ok(below) = input.value().trim().parse::<i64>() {
            save.dispatch(SetLowBalanceNotice { below: Some(below) });
        }
    };
    let on_turn_off = move |ev: SubmitEvent| {
        ev.prevent_default();
        save.dispatch(SetLowBalanceNotice { below: None });
    };
    let outcome = move || match save.value().get() {
        Some(Ok(saved)) => Some(view! { <span>{saved_message(&saved)}</span> }.into_any()),
        Some(Err(error)) => {
            Some(view! { <span class="error">{error.to_string()}</span> }.into_any())
        }
        None => None,
    };

    view! {
        <section class="card" aria-labelledby="notices-title">
            <h2 id="notices-title">"Email notices"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match settings.await {
                        Ok(current) => {
                            view! {
                                <p data-testid="low-balance-state">{describe(&current)}</p>
                                <form
                                    method="post"
                                    action=SetLowBalanceNotice::url()
                                    on:submit=on_save
                                    class="form form-inline"
                                >
                                    <div class="field">
                                        <label for="low-balance-below">
                                            "Email me when fewer tokens than this are left"
                                        </label>
                                        <input
                                            id="low-balance-below"
                                            name="below"
                                            type="number"
                                            min="1"
                                            max="1000000000"
                                            required
                                            node_ref=mark
                                            value=current.low_balance_below.map(|n| n.to_string())
                                        />
                                    </div>
                                    <div class="actions">
                                        <button type="submit" class="button" disabled=move || save.pending().get()>
                                            "Save"
                                        </button>
                                    </div>
                                </form>
                                {current
                                    .low_balance_below
                                    .is_some()
                                    .then(|| {
                                        view! {
                                            <form method="post" action=SetLowBalanceNotice::url() on:submit=on_turn_off>
                                                <button type="submit" class="button button-quiet" disabled=move || save.pending().get()>
                                                    "Turn off"
                                                </button>
                                            </form>
                                        }
                                    })}
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
            <p class="status" role="status" aria-live="polite" data-testid="low-balance-outcome">
                {outcome}
            </p>
            <p class="hint">
                "Once each time your balance goes under the mark. Tokens about to expire are emailed a week and a day before."
            </p>
        </section>
    }
}

fn describe(settings: &EmailNotices) -> String {
    match settings.low_balance_below {
        Some(below) => format!(
            "We email you when fewer than {} tokens are left.",
            group_thousands(below)
        ),
        None => "No low-balance email.".to_owned(),
    }
}

fn saved_message(saved: &EmailNotices) -> String {
    match saved.low_balance_below {
        Some(_) => format!("Saved. {}", describe(saved)),
        None => "Low-balance emails are off.".to_owned(),
    }
}
