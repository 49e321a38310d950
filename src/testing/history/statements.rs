//! Monthly statements held against the ledger: for every month a user's entries span, the
//! totals lead from the opening balance to the closing one, each month opens where the last
//! closed, and the months' entries together are the whole ledger, once each, in order.

use crate::domain::UserId;
use crate::domain::{LedgerEntryId, Month};
use crate::store::{LedgerQuery, SqlStore, Store};

pub(super) async fn check(store: &SqlStore, user: UserId, who: &str) -> Vec<String> {
    let mut ledger = Vec::new();
    let mut query = LedgerQuery::first(LedgerQuery::MAX_LIMIT);
    loop {
        let page = store.ledger_page(user, &query).await.unwrap();
        ledger.extend(page.entries.iter().map(|e| (e.id, e.created_at)));
        match page.next_cursor {
            Some(cursor) => query.before = Some(cursor),
            None => break,
        }
    }
    ledger.reverse(); // oldest first
    let Some(first) = ledger.iter().map(|(_, at)| *at).min() else {
        return Vec::new();
    };
    let last = ledger.iter().map(|(_, at)| *at).max().unwrap();
    let mut problems = Vec::new();
    let mut listed: Vec<LedgerEntryId> = Vec::new();
    let mut month = Month::of(first).previous();
    let mut closed = 0;
    while month <= Month::of(last).next() {
        let statement = store.statement(user, month).await.unwrap();
        if !statement.adds_up() {
            problems.push(format!(
                "{who}: the statement of {month} does not add up: {statement:?}"
            ));
        }
        if statement.opening != closed {
            problems.push(format!(
                "{who}: {month} opens at {} where the month before closed at {closed}",
                statement.opening
            ));
        }
        closed = statement.closing;
        listed.extend(statement.entries.iter().map(|e| e.id));
        month = month.next();
    }
    let all: Vec<LedgerEntryId> = ledger.iter().map(|(id, _)| *id).collect();
    if listed != all {
        problems.push(format!(
            "{who}: the statements list {} entries, the ledger has {}",
            listed.len(),
            all.len()
        ));
    }
    let balance = store.balance(user).await.unwrap().get();
    if closed != balance {
        problems.push(format!(
            "{who}: the last statement closes at {closed}, the balance is {balance}"
        ));
    }
    problems
}
