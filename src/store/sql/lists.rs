//! Lists of values in SQL: the placeholders of a row or an `IN (...)` list, and a query run a
//! list at a time over many values (both engines cap the parameters of one statement).

use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection};

use crate::store::StoreError;

/// How many values one `IN (...)` list holds.
pub(super) const PER_LIST: usize = 500;

/// The most parameters a statement written for its count of values may have and still be
/// kept prepared on its connection. Such a statement has a text for every count, and each
/// connection keeps its last 100 statements prepared: kept, the statements of a few hundred
/// values (a batch's, a group commit's) grew the server's heap by megabytes, each held by
/// every connection that ran one. A statement with more parameters is prepared for its one use.
const KEPT_PREPARED_AT_MOST: usize = 64;

/// Whether a statement written for its count of values, with `parameters` in all, is kept
/// prepared (`.persistent(...)`).
pub(super) fn keep_prepared(parameters: usize) -> bool {
    parameters <= KEPT_PREPARED_AT_MOST
}

/// `$first, $first+1, ...`: `n` placeholders for an `IN (...)` list or a row of values.
pub(super) fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rows `sql` finds for `values`, a list at a time: `sql` is given the placeholders of
/// one list (`$1, $2, ...`) to put in its `IN (...)`.
pub(super) async fn rows_for<T>(
    conn: &mut AnyConnection,
    values: &[T],
    sql: impl Fn(&str) -> String,
) -> Result<Vec<AnyRow>, StoreError>
where
    T: for<'q> sqlx::Encode<'q, Any> + sqlx::Type<Any> + Send + Sync + Clone,
{
    let mut rows = Vec::new();
    for chunk in values.chunks(PER_LIST) {
        let sql = sql(&placeholders(1, chunk.len()));
        let mut query = sqlx::query(&sql).persistent(keep_prepared(chunk.len()));
        for value in chunk {
            query = query.bind(value.clone());
        }
        rows.extend(query.fetch_all(&mut *conn).await?);
    }
    Ok(rows)
}
