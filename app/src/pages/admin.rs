//! `/admin`: find a user, see their balance and ledger, credit or debit tokens with a reason.
//! Admins only (403 for anyone else). The forms work before hydration too.

use leptos::ev::SubmitEvent;
use leptos::form::FromFormData;
use leptos::prelude::*;
use leptos::server_fn::ServerFn;

use crate::api::admin::{Adjusted, AdminCredit, AdminDebit, FindUser, UserAccount, find_user};
use crate::api::wire::Carried;
use crate::components::address::query_param;
use crate::components::billing::ledger_table::ledger_view;
use crate::components::form_error::recall_plain_post_error;
use crate::components::layout::mark_hydrated;
use crate::components::require_user::RequireUser;
use crate::error::AppError;

#[component]
pub fn AdminPage() -> impl IntoView {
    view! {
        <main class="page" data-hydrated="false">
            <h1>"Admin"</h1>
            <RequireUser admin=true let:_admin>
                <AdminTools />
            </RequireUser>
        </main>
    }
}

#[cfg_attr(feature = "lazy-islands", island(lazy))]
#[cfg_attr(not(feature = "lazy-islands"), island)]
fn AdminTools() -> impl IntoView {
    mark_hydrated();
    recall_plain_post_error();
    let q = StoredValue::new(query_param("q").unwrap_or_default());
    let q = move || q.get_value();
    let adjustments = Adjustments::new();
    // Drawn once for the user found: what an adjustment changes is read again in place,
    // so that what an admin types meanwhile stays.
    let account: Resource<_, Carried> = Resource::new_with_options(
        q,
        |q| async move {
            if q.trim().is_empty() {
                None
            } else {
                Some(find_user(q).await)
            }
        },
        false,
    );

    view! {
        <section class="card" aria-labelledby="find-title">
            <h2 id="find-title">"Find a user"</h2>
            <form method="get" action="/admin" class="inline-form" role="search">
                <label for="admin-q">"Email or user id"</label>
                // The value the server rendered, left alone on hydration: what an admin typed
                // before the WASM arrived stays (a `prop:value` would put the old query back).
                <input id="admin-q" name="q" type="search" value=q() required />
                <button class="button" type="submit">
                    "Find"
                </button>
            </form>
        </section>
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match account.await {
                    None => ().into_any(),
                    Some(Ok(account)) => view! { <Account account adjustments /> }.into_any(),
                    Some(Err(error)) => {
                        view! { <p class="error" role="alert">{error.to_string()}</p> }.into_any()
                    }
                }
            })}
        </Transition>
    }
}

/// Which button an admin pressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    Credit,
    Debit,
}

/// The two adjustments and which was asked for last: its answer, and only its, is shown.
/// Made once for the page, so that the answer outlives the account view it refreshes.
#[derive(Clone, Copy)]
struct Adjustments {
    credit: ServerAction<AdminCredit>,
    debit: ServerAction<AdminDebit>,
    last: RwSignal<Option<Way>>,
}

impl Adjustments {
    fn new() -> Self {
        let (credit, debit) = (ServerAction::new(), ServerAction::new());
        // A plain post refused before the page hydrated starts its action with the error
        // (`recall_plain_post_error`): that one was asked for last.
        let last = if debit.value().with_untracked(Option::is_some) {
            Some(Way::Debit)
        } else if credit.value().with_untracked(Option::is_some) {
            Some(Way::Credit)
        } else {
            None
        };
        Self {
            credit,
            debit,
            last: RwSignal::new(last),
        }
    }

    /// The answer to the newest adjustment that succeeded: it changes with each success only
    /// (a refusal after a success leaves it, and the form as typed).
    fn latest_success(self) -> Memo<Option<Adjusted>> {
        Memo::new(move |before: Option<&Option<Adjusted>>| {
            let before = || before.cloned().flatten();
            // One adjustment is on its way at a time: the answer to the one asked last is
            // the newest.
            if self.pending() {
                return before();
            }
            let answer = match self.last.get() {
                Some(Way::Credit) => self.credit.value().get(),
                Some(Way::Debit) => self.debit.value().get(),
                None => None,
            };
            match answer {
                Some(Ok(adjusted)) => Some(adjusted),
                _ => before(),
            }
        })
    }

    fn pending(self) -> bool {
        self.credit.pending().get() || self.debit.pending().get()
    }

    /// The answer to the last adjustment asked for; nothing while it is on its way.
    fn outcome(self) -> Option<Result<Adjusted, AppError>> {
        if self.pending() {
            return None;
        }
        match self.last.get()? {
            Way::Credit => self.credit.value().get(),
            Way::Debit => self.debit.value().get(),
        }
    }

    fn submit(self, ev: &SubmitEvent) {
        let way = match ev
            .submitter()
            .and_then(|button| button.get_attribute("value"))
            .as_deref()
        {
            Some("debit") => Way::Debit,
            _ => Way::Credit,
        };
        self.last.set(Some(way));
        match way {
            Way::Debit => {
                if let Ok(args) = AdminDebit::from_event(ev) {
                    self.debit.dispatch(args);
                }
            }
            Way::Credit => {
                if let Ok(args) = AdminCredit::from_event(ev) {
                    self.credit.dispatch(args);
                }
            }
        }
    }
}

#[component]
fn Account(account: UserAccount, adjustments: Adjustments) -> impl IntoView {
    let email = account.user.email.clone();
    let latest = adjustments.latest_success();
    // The next adjustment's id comes with the answer to the last: a submission made at once
    // after a success is a new adjustment, not a replay of the last one's id.
    let first_request_id = account.adjustment_id.clone();
    let request_id = move || {
        latest.with(|latest| match latest {
            Some(adjusted) => adjusted.next_request_id.clone(),
            None => first_request_id.clone(),
        })
    };
    // After each adjustment that changed something, the balance and ledger are read again.
    let reread = ServerAction::<FindUser>::new();
    let query = email.clone();
    Effect::watch(
        move || latest.get(),
        move |latest, _, _| {
            if latest.as_ref().is_some_and(|adjusted| !adjusted.replayed) {
                reread.dispatch(FindUser {
                    query: query.clone(),
                });
            }
        },
        false,
    );
    let shown = Memo::new(
        move |before: Option<&UserAccount>| match reread.value().get() {
            Some(Ok(account)) => account,
            _ => before.cloned().unwrap_or_else(|| account.clone()),
        },
    );
    let unread = move || matches!(reread.value().get(), Some(Err(_)));
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        adjustments.submit(&ev);
    };
    let pending = move || adjustments.pending();
    // A success empties the form (one more press must not adjust again); a refusal keeps
    // what was typed, to correct.
    let form = NodeRef::<leptos::html::Form>::new();
    Effect::new(move |_| {
        if let (Some(Ok(_)), Some(form)) = (adjustments.outcome(), form.get()) {
            form.reset();
        }
    });
    let failed = move || matches!(adjustments.outcome(), Some(Err(_)));
    let outcome = move || adjustments.outcome().map(describe);

    view! {
        <section class="card" aria-labelledby="account-title">
            <h2 id="account-title">{email.clone()}</h2>
            <p class="muted">
                {move || shown.with(|account| {
                    let role = if account.user.is_admin() { "admin" } else { "user" };
                    format!("User {} · {role}", account.user.id)
                })}
            </p>
            <p class="balance-amount" data-testid="admin-balance">
                <span class="balance-number">{move || shown.with(|account| account.balance.grouped())}</span>
                " tokens"
            </p>
            <Show when=unread>
                <p class="error" role="alert">
                    "The account could not be read again: the balance and ledger shown may be out of date. Reload to try again."
                </p>
            </Show>
        </section>
        <section class="card" aria-labelledby="adjust-title">
            <h2 id="adjust-title">"Credit or debit tokens"</h2>
            <form method="post" action=AdminCredit::url() on:submit=on_submit class="form" node_ref=form>
                <p class="status" class:error=failed role="status" aria-live="polite" data-testid="adjust-outcome">
                    {outcome}
                </p>
                <input type="hidden" name="user" value=email />
                <input type="hidden" name="request_id" value=request_id />
                <div class="field">
                    <label for="adjust-tokens">"Tokens"</label>
                    <input id="adjust-tokens" name="tokens" type="number" min="1" max=crate::api::admin::MAX_ADJUSTMENT required />
                </div>
                <div class="field">
                    <label for="adjust-reason">"Reason (shown in the user's ledger)"</label>
                    <input id="adjust-reason" name="reason" type="text" maxlength="500" required />
                </div>
                <div class="actions">
                    <button type="submit" class="button" value="credit" disabled=pending>
                        "Credit tokens"
                    </button>
                    <button
                        type="submit"
                        class="button button-danger"
                        value="debit"
                        formaction=AdminDebit::url()
                        disabled=pending
                    >
                        "Debit tokens"
                    </button>
                </div>
            </form>
        </section>
        <section class="card" aria-labelledby="admin-ledger-title">
            <h2 id="admin-ledger-title">"Ledger"</h2>
            {move || ledger_view(Ok(shown.with(|account| account.ledger.clone())))}
        </section>
    }
}

fn describe(outcome: Result<Adjusted, AppError>) -> String {
    match outcome {
        Ok(adjusted) if adjusted.replayed => {
            "That adjustment was already applied; nothing changed.".to_owned()
        }
        Ok(adjusted) => format!(
            "{} {}. New balance: {}.",
            adjusted.entry.delta.signed(),
            if adjusted.entry.delta.magnitude().get() == 1 {
                "token"
            } else {
                "tokens"
            },
            adjusted.entry.balance_after.grouped()
        ),
        Err(error) => error.to_string(),
    }
}
