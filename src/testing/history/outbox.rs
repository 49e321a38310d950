//! The outbox held against the ledger: with an endpoint registered (every history has one),
//! each ledger row a user has is one `ledger.entry_created` event, and no event names a row
//! that is not there: nothing for a change rolled back (the faults roll some back), nothing
//! missing for one that committed, nothing twice.

use sqlx::Row;

use crate::domain::UserId;
use crate::store::SqlStore;

pub(super) async fn check(store: &SqlStore, user: UserId, who: &str) -> Vec<String> {
    let rows = sqlx::query(
        "SELECT l.id, (SELECT COUNT(*) FROM outbox_events o \
             WHERE o.entry_id = l.id AND o.kind = 'ledger.entry_created') AS events \
         FROM token_ledger l WHERE l.user_id = $1 ORDER BY l.id",
    )
    .bind(user.get())
    .fetch_all(store.pool())
    .await
    .unwrap();
    let mut problems: Vec<String> = rows
        .iter()
        .filter(|row| row.get::<i64, _>("events") != 1)
        .map(|row| {
            format!(
                "{who}: ledger entry {} has {} ledger.entry_created events, not one",
                row.get::<i64, _>("id"),
                row.get::<i64, _>("events")
            )
        })
        .collect();
    let strays: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox_events o WHERE o.user_id = $1 \
             AND o.kind = 'ledger.entry_created' \
             AND NOT EXISTS (SELECT 1 FROM token_ledger l \
                 WHERE l.id = o.entry_id AND l.user_id = o.user_id)",
    )
    .bind(user.get())
    .fetch_one(store.pool())
    .await
    .unwrap();
    if strays > 0 {
        problems.push(format!(
            "{who}: {strays} ledger.entry_created events name no ledger row of theirs"
        ));
    }
    problems
}
