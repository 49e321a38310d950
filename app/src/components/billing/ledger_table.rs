//! `LedgerTable`: every change to the user's tokens, newest first, a page at a time (older,
//! newer, back to the newest), with a filter by source and a CSV export. Paging and filtering
//! are links and a GET form (the URL holds the state), so they work without JavaScript and
//! with the back button.

use billing::domain::{LedgerEntry, LedgerEntryId, LedgerPage, Source};
use leptos::prelude::*;

use super::BillingLive;
use crate::api::tokens::token_ledger;
use crate::components::local_time::LocalTime;
use crate::error::AppError;

#[component]
pub fn LedgerTable() -> impl IntoView {
    let live = BillingLive::expect();
    let query = live.query;
    let source = move || {
        query
            .with_value(|q| q.source.clone())
            .and_then(|s| Source::parse(&s).ok())
    };
    let cursor =
        move |raw: &Option<String>| raw.as_deref().and_then(|b| b.parse::<LedgerEntryId>().ok());
    let page = live.load(
        move || {
            let (before, after) = query.with_value(|q| (cursor(&q.before), cursor(&q.after)));
            (before, after, source())
        },
        move |(before, after, source)| async move {
            live.settled().await;
            token_ledger(before, after, source, None).await
        },
    );
    // `("before", id)` for the older page, `("after", id)` for the newer, `None` the newest.
    let link = move |cursor: Option<(&str, LedgerEntryId)>| {
        let mut params = Vec::new();
        if let Some((name, id)) = cursor {
            params.push(format!("{name}={id}"));
        }
        if let Some(source) = source() {
            params.push(format!("source={source}"));
        }
        if params.is_empty() {
            "/app/billing".to_owned()
        } else {
            format!("/app/billing?{}", params.join("&"))
        }
    };
    let export = move || match source() {
        Some(source) => format!("/api/tokens/ledger.csv?source={source}"),
        None => "/api/tokens/ledger.csv".to_owned(),
    };

    view! {
        <section class="card" aria-labelledby="ledger-title">
            <div class="section-header">
                <h2 id="ledger-title">"Token history"</h2>
                <span class="section-actions">
                    <a href="/app/billing/statement" class="button button-quiet">
                        "Monthly statement"
                    </a>
                    <a class="button button-quiet" href=export download="promptbloom-ledger.csv" rel="external">
                        "Export CSV"
                    </a>
                </span>
            </div>
            <form method="GET" action="/app/billing" class="inline-form ledger-filter">
                <label for="ledger-source">"Show"</label>
                <select id="ledger-source" name="source">
                    <option value="" selected=move || source().is_none()>
                        "All activity"
                    </option>
                    {Source::ALL
                        .into_iter()
                        .map(|s| {
                            view! {
                                <option value=s.as_str() selected=move || source() == Some(s)>
                                    {s.label()}
                                </option>
                            }
                        })
                        .collect_view()}
                </select>
                <button type="submit" class="button button-quiet">
                    "Filter"
                </button>
            </form>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    let page = page.await;
                    let older = page.as_ref().ok().and_then(|p| p.next_cursor);
                    let newer = page.as_ref().ok().and_then(|p| p.prev_cursor);
                    view! {
                        {ledger_view(page)}
                        <nav class="pager" aria-label="Token history pages">
                            {newer
                                .map(|id| {
                                    view! {
                                        <span class="pager-newer">
                                            <a href=link(None)>"« Newest"</a>
                                            <a href=link(Some(("after", id)))>"← Newer"</a>
                                        </span>
                                    }
                                })}
                            {older
                                .map(|id| {
                                    view! { <a href=link(Some(("before", id)))>"Older →"</a> }
                                })}
                        </nav>
                    }
                        .into_any()
                })}
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
        Ok(page) => entries_table(page.entries, "Token history, newest first", Times::Local).into_any(),
        Err(error) => view! { <p class="error" role="alert">{error.to_string()}</p> }.into_any(),
    }
}

/// How a ledger table writes when each entry was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Times {
    /// In the viewer's zone, UTC on hover.
    Local,
    /// In UTC: a statement is a UTC month, and its rows say the dates it counts by.
    Utc,
}

/// Entries as a ledger table, in the order given (shared with the statement).
pub fn entries_table(
    entries: Vec<LedgerEntry>,
    caption: &'static str,
    times: Times,
) -> impl IntoView {
    view! {
        <div class="table-scroll">
            <table class="ledger">
                <caption class="visually-hidden">{caption}</caption>
                <thead>
                    <tr>
                        <th scope="col">"Date"</th>
                        <th scope="col">"Description"</th>
                        <th scope="col">"Source"</th>
                        <th scope="col" class="num">"Change"</th>
                        <th scope="col" class="num">"Balance"</th>
                    </tr>
                </thead>
                <tbody>
                    {entries.into_iter().map(|entry| entry_row(entry, times)).collect_view()}
                </tbody>
            </table>
        </div>
    }
}

/// One entry as a row of a ledger table.
fn entry_row(entry: LedgerEntry, times: Times) -> impl IntoView {
    let change_class = if entry.delta.is_increase() {
        "num change credit"
    } else {
        "num change debit"
    };
    // The classes place the cells when a phone shows each row as a small stack.
    view! {
        <tr>
            <td class="when">
                {match times {
                    Times::Local => view! { <LocalTime at=entry.created_at /> }.into_any(),
                    Times::Utc => {
                        view! {
                            <time datetime=entry.created_at.rfc3339()>
                                {entry.created_at.utc_minutes()}
                            </time>
                        }
                            .into_any()
                    }
                }}
            </td>
            <td class="what">{entry.reason}</td>
            <td class="source">
                <span class=format!("badge badge-{}", entry.source.as_str())>{entry.source.label()}</span>
            </td>
            <td class=change_class>{entry.delta.signed()}</td>
            <td class="num after" data-label="Balance">{entry.balance_after.grouped()}</td>
        </tr>
    }
}
