//! `AutoTopUp`: buy a pack by itself when the balance runs low. The user sets the mark, the
//! pack and the monthly cap, saves a card in a setup-mode Checkout, and sees where it stands
//! (paused, with a way to fix the card, when the bank said no) and the latest top-ups.

use leptos::ev::SubmitEvent;
use leptos::html::{Input, Select};
use leptos::prelude::*;
use leptos::server_fn::ServerFn;

use billing::domain::{AutoTopUpState, PauseReason, ProductId, TopUp, TopUpState, group_thousands};

use super::{BillingLive, go_to};
use crate::api::topups::{
    AutoTopUpView, CardSaved, ChooseAutoTopup, StartCardSetup, TurnOffAutoTopup, auto_topup,
};

#[component]
pub fn AutoTopUp() -> impl IntoView {
    let live = BillingLive::expect();
    let choose = ServerAction::<ChooseAutoTopup>::new();
    let off = ServerAction::<TurnOffAutoTopup>::new();
    let card = ServerAction::<StartCardSetup>::new();
    let saved = ServerAction::<CardSaved>::new();
    let current = live.load(|| (), |_| auto_topup());
    // Again after each of its own actions (not part of the question: an action that failed while
    // the server was away leaves the last answer standing).
    Effect::watch(
        move || {
            (
                choose.version().get(),
                off.version().get(),
                saved.version().get(),
            )
        },
        move |_, _, _| current.refetch(),
        false,
    );
    // While a top-up is being paid, ask again every few seconds (in the browser): a bank that
    // says no changes no ledger row, so nothing else would tell the page.
    #[cfg(feature = "hydrate")]
    {
        let paying = move || {
            current.with_untracked(|view| {
                matches!(view, Some(Ok(view)) if view.recent.iter().any(|t| t.state == TopUpState::Pending))
            })
        };
        let handle = set_interval_with_handle(
            move || {
                if paying() {
                    current.refetch();
                }
            },
            std::time::Duration::from_secs(2),
        );
        on_cleanup(move || {
            if let Ok(handle) = handle {
                handle.clear();
            }
        });
    }
    Effect::new(move |_| {
        if let Some(Ok(started)) = card.value().get() {
            go_to(&started.url);
        }
    });
    // Back from saving a card: once, in the browser.
    let query = live.query;
    Effect::new(move |done: Option<bool>| {
        if done == Some(true) {
            return true;
        }
        match query
            .with_value(|q| q.card_setup.clone())
            .filter(|id| !id.is_empty())
        {
            Some(session_id) => {
                saved.dispatch(CardSaved { session_id });
                true
            }
            None => false,
        }
    });

    let (below, pack, cap) = (
        NodeRef::<Input>::new(),
        NodeRef::<Select>::new(),
        NodeRef::<Input>::new(),
    );
    let on_choose = move |ev: SubmitEvent| {
        ev.prevent_default();
        let number = |input: NodeRef<Input>| {
            input
                .get()
                .and_then(|i| i.value().trim().parse::<i64>().ok())
        };
        let chosen_pack = pack
            .get()
            .and_then(|select| ProductId::parse(&select.value()).ok());
        if let (Some(below), Some(pack), Some(monthly_cap)) =
            (number(below), chosen_pack, number(cap))
        {
            choose.dispatch(ChooseAutoTopup {
                below,
                pack,
                monthly_cap,
            });
        }
    };
    let on_card = move |ev: SubmitEvent| {
        ev.prevent_default();
        card.dispatch(StartCardSetup { request_id: None });
    };
    let on_off = move |ev: SubmitEvent| {
        ev.prevent_default();
        off.dispatch(TurnOffAutoTopup {});
    };
    let outcome = move || {
        let error = |e: &crate::error::AppError| Some(e.to_string());
        match (
            choose.value().get(),
            off.value().get(),
            card.value().get(),
            saved.value().get(),
        ) {
            (_, _, _, Some(Ok(_))) => Some("Card saved.".to_owned()),
            (_, _, _, Some(Err(e))) | (_, _, Some(Err(e)), _) => error(&e),
            (Some(Err(e)), _, _, _) | (_, Some(Err(e)), _, _) => error(&e),
            (_, Some(Ok(_)), _, _) => Some("Auto top-up is off.".to_owned()),
            (Some(Ok(_)), _, _, _) => Some("Saved.".to_owned()),
            _ => None,
        }
    };
    let busy = move || choose.pending().get() || off.pending().get() || card.pending().get();

    view! {
        <section class="card" aria-labelledby="auto-topup-title">
            <h2 id="auto-topup-title">"Auto top-up"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match current.await {
                        Ok(view) => {
                            let state = view.auto.as_ref().map(|a| a.state);
                            let choice = view.auto.as_ref().map(|a| a.choice);
                            let needs_card = matches!(
                                state,
                                Some(AutoTopUpState::CardNeeded | AutoTopUpState::Paused(_))
                            );
                            let can_turn_off = matches!(
                                state,
                                Some(AutoTopUpState::On | AutoTopUpState::CardNeeded | AutoTopUpState::Paused(_))
                            );
                            let chosen_pack = choice.map_or(ProductId::Small, |c| c.pack());
                            view! {
                                <p
                                    data-testid="auto-topup-state"
                                    class:banner=matches!(state, Some(AutoTopUpState::Paused(_)))
                                    class:banner-warning=matches!(state, Some(AutoTopUpState::Paused(_)))
                                >
                                    {describe(&view)}
                                </p>
                                <form method="post" action=ChooseAutoTopup::url() on:submit=on_choose class="form">
                                    <div class="field">
                                        <label for="auto-topup-below">"When fewer tokens than this are left"</label>
                                        <input id="auto-topup-below" name="below" type="number" min="1" max="1000000000" required node_ref=below
                                            value=choice.map_or_else(|| "1000".to_owned(), |c| c.below.get().to_string()) />
                                    </div>
                                    <div class="field">
                                        <label for="auto-topup-pack">"Buy"</label>
                                        <select id="auto-topup-pack" name="pack" node_ref=pack>
                                            {[ProductId::Small, ProductId::Medium, ProductId::Large]
                                                .into_iter()
                                                .map(|p| view! {
                                                    <option value=p.as_str() selected=p == chosen_pack>
                                                        {format!("{} ({} tokens)", p.label(), group_thousands(p.tokens().get()))}
                                                    </option>
                                                })
                                                .collect_view()}
                                        </select>
                                    </div>
                                    <div class="field">
                                        <label for="auto-topup-cap">"At most this many tokens a month"</label>
                                        <input id="auto-topup-cap" name="monthly_cap" type="number" min="1" max="1000000000" required node_ref=cap
                                            value=choice.map_or_else(|| "12000".to_owned(), |c| c.monthly_cap.get().to_string()) />
                                    </div>
                                    <div class="actions">
                                        <button type="submit" class="button" disabled=busy>
                                            {if view.auto.is_some() { "Save" } else { "Turn on" }}
                                        </button>
                                    </div>
                                </form>
                                {needs_card.then(|| view! {
                                    <form method="post" action=StartCardSetup::url() on:submit=on_card>
                                        <button type="submit" class="button" disabled=busy>
                                            {if matches!(state, Some(AutoTopUpState::Paused(_))) { "Update card" } else { "Add a card" }}
                                        </button>
                                    </form>
                                })}
                                {can_turn_off.then(|| view! {
                                    <form method="post" action=TurnOffAutoTopup::url() on:submit=on_off>
                                        <button type="submit" class="button button-quiet" disabled=busy>"Turn off"</button>
                                    </form>
                                })}
                                {(!view.recent.is_empty()).then(|| view! {
                                    <ul class="topups" data-testid="topups">
                                        {view.recent.iter().map(|t| view! { <li>{line(t)}</li> }).collect_view()}
                                    </ul>
                                })}
                            }
                                .into_any()
                        }
                        Err(error) => {
                            view! { <p class="error" role="alert">{error.to_string()}</p> }.into_any()
                        }
                    }
                })}
            </Transition>
            <p class="status" role="status" aria-live="polite" data-testid="auto-topup-outcome">
                {outcome}
            </p>
        </section>
    }
}

fn describe(view: &AutoTopUpView) -> String {
    let Some(auto) = &view.auto else {
        return "Off. Set a mark, and a pack is bought by itself when your balance goes under it."
            .to_owned();
    };
    let plan = format!(
        "when fewer than {} tokens are left, buys the {} ({} tokens), at most {} tokens a month",
        group_thousands(auto.choice.below.get()),
        auto.choice.pack().label(),
        group_thousands(auto.choice.pack().tokens().get()),
        group_thousands(auto.choice.monthly_cap.get()),
    );
    let card = auto
        .card
        .as_ref()
        .map(|c| format!(" Pays with {}.", c.label))
        .unwrap_or_default();
    match auto.state {
        AutoTopUpState::On => format!("On: {plan}.{card}"),
        AutoTopUpState::CardNeeded => format!("Add a card to turn it on: {plan}."),
        AutoTopUpState::Paused(PauseReason::Declined) => {
            "Paused: your bank declined the last top-up. Update your card to turn it back on."
                .to_owned()
        }
        AutoTopUpState::Paused(PauseReason::AuthenticationRequired) => {
            "Paused: your bank asked to confirm the last top-up with you. Update your card to \
             turn it back on."
                .to_owned()
        }
        AutoTopUpState::Off => format!("Off.{card}"),
    }
}

fn line(topup: &TopUp) -> String {
    let when = topup.created_at.date();
    let what = match topup.state {
        TopUpState::Pending => "paying…".to_owned(),
        TopUpState::Succeeded => format!(
            "+{} tokens",
            group_thousands(topup.tokens.unwrap_or_else(|| topup.pack.tokens().get()))
        ),
        TopUpState::Failed(PauseReason::Declined) => "declined".to_owned(),
        TopUpState::Failed(PauseReason::AuthenticationRequired) => {
            "the bank asked for you".to_owned()
        }
        TopUpState::Capped => "not bought: the monthly cap".to_owned(),
        TopUpState::Canceled => "canceled".to_owned(),
    };
    format!("{when} · {}: {what}", topup.pack.label())
}
