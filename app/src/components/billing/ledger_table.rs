//! `LedgerTable`: every change to the user's tokens, newest first.

use billing::domain::{LedgerEntry, LedgerPage};
use leptos::prelude::*;

use crate::api::tokens::token_ledger;
use crate::error::AppError;

#[component]
pub fn LedgerTable() -> impl IntoView {
    let page = Resource::new(|| (), |_| token_ledger(None, None, None));
    view! {
        <section class="card" aria-labelledby="ledger-title">
            <h2 id="ledger-title">"Token history"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move { ledger_view(page.await) })}
            </Transition>
        </section>
    }
}

/// A ledger page as a table (shared with the admin page).
pub fn ledger_view(page: Result<LedgerPage, AppError>) -> AnyView {
    match page {
        Ok(page) if page.entries.is_empty() => view! {
            <p class="empty">"No token activity yet. Purchases, usage and refunds will show up here."</p>
        }
        .into_any(),
        Ok(page) => view! {
            <div class="table-scroll">
                <table class="ledger">
                    <thead>
                        <tr>
                            <th scope="col">"Date"</th>
                            <th scope="col">"Description"</th>
                            <th scope="col">"Source"</th>
                            <th scope="col" class="num">"Change"</th>
                            <th scope="col" class="num">"Balance"</th>
                        </tr>
                    </thead>
                    <tbody>{page.entries.into_iter().map(entry_row).collect_view()}</tbody>
                </table>
            </div>
        }
        .into_any(),
        Err(error) => view! { <p class="error" role="alert">{error.to_string()}</p> }.into_any(),
    }
}

fn entry_row(entry: LedgerEntry) -> impl IntoView {
    let change_class = if entry.delta.is_increase() {
        "num credit"
    } else {
        "num debit"
    };
    view! {
        <tr>
            <td>
                <time datetime=entry.created_at.rfc3339()>{entry.created_at.utc_minutes()}</time>
            </td>
            <td>{entry.reason}</td>
            <td>
                <span class=format!("badge badge-{}", entry.source.as_str())>{entry.source.label()}</span>
            </td>
            <td class=change_class>
                {entry.delta.signed()}
            </td>
            <td class="num">{entry.balance_after.grouped()}</td>
        </tr>
    }
}
