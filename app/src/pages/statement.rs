//! `/app/billing/statement?month=2026-11`: one month of the user's tokens: the balance it
//! opened and closed with, what came in and went out by kind, and its entries. Printable (the
//! print styles leave out the navigation) and downloadable as CSV.

use billing::domain::{Month, Statement, group_thousands};
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::api::tokens::token_statement;
use crate::components::billing::ledger_table::{Times, entries_table};
use crate::components::require_user::LoginGate;
use crate::error::AppError;

#[component]
pub fn StatementPage() -> impl IntoView {
    let query = use_query_map();
    let month = move || {
        query
            .read()
            .get("month")
            .and_then(|m| Month::parse(&m).ok())
    };
    let statement = Resource::new(month, token_statement);

    view! {
        <main class="page statement">
            <header class="page-header">
                <h1>"Statement"</h1>
                <a href="/app/billing" class="no-print">"← Billing"</a>
            </header>
            <LoginGate />
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move { statement_view(statement.await) })}
            </Transition>
        </main>
    }
}

fn statement_view(statement: Result<Statement, AppError>) -> AnyView {
    let statement = match statement {
        Ok(statement) => statement,
        Err(error) => {
            return view! { <p class="error" role="alert">{error.to_string()}</p> }.into_any();
        }
    };
    let month = statement.month;
    let link = |m: Month| format!("/app/billing/statement?month={m}");
    let csv = format!("/api/tokens/statement.csv?month={month}");
    let line = |label: &'static str, tokens: i64, testid: &'static str| {
        view! {
            <tr>
                <th scope="row">{label}</th>
                <td class="num" data-testid=testid>{signed(tokens)}</td>
            </tr>
        }
    };
    view! {
        <section class="card" aria-labelledby="statement-title">
            <div class="section-header">
                <h2 id="statement-title">{format!("{month}")}</h2>
                <nav class="pager no-print" aria-label="Months">
                    <a href=link(month.previous())>"← Previous month"</a>
                    <a href=link(month.next())>"Next month →"</a>
                    <a class="button button-quiet" href=csv download=format!("promptbloom-statement-{month}.csv") rel="external">
                        "Download CSV"
                    </a>
                </nav>
            </div>
            <table class="statement-totals">
                <caption class="visually-hidden">"Totals of the month"</caption>
                <tbody>
                    <tr>
                        <th scope="row">"Opening balance"</th>
                        <td class="num" data-testid="opening">{group_thousands(statement.opening)}</td>
                    </tr>
                    {line("Credits", statement.credits, "credits")}
                    {line("Refunds and disputes", statement.reversals, "reversals")}
                    {line("Usage", statement.usage, "usage")}
                    {line("Expired", statement.expiries, "expiries")}
                    <tr class="total">
                        <th scope="row">"Closing balance"</th>
                        <td class="num" data-testid="closing">{group_thousands(statement.closing)}</td>
                    </tr>
                </tbody>
            </table>
            {if statement.entries.is_empty() {
                view! { <p class="empty">"No token activity this month."</p> }.into_any()
            } else {
                entries_table(statement.entries, "The month's entries, oldest first", Times::Utc)
                    .into_any()
            }}
        </section>
    }
    .into_any()
}

/// `+1,000`, `-250`, `0`.
fn signed(n: i64) -> String {
    if n > 0 {
        format!("+{}", group_thousands(n))
    } else {
        group_thousands(n)
    }
}
