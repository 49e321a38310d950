//! A batch of debits (consume items) in one transaction, decided together: the users'
//! balance rows are locked and read at once, their keys looked up at once, each debit is
//! decided in turn by the ledger's rules ([`Posting::apply_to`]) and drawn from the user's
//! grants in the spending order, and then the ledger rows, the draws and one change per
//! balance row are written many to a statement. A batch of a thousand items takes about as
//! many statements as a batch of ten.
//!
//! It keeps the rules a single posting keeps: the rows it decides on are locked (the whole
//! database on SQLite) until it commits, anything due to expire is settled first, every item
//! is its own ledger row under its own key, and a refused item refuses only itself.

use std::collections::{BTreeSet, HashMap, VecDeque};

use sqlx::{AnyConnection, Row};

use super::at::At;
use super::expiry;
use super::grants::{Draws, SPENDING_ORDER};
use super::lists::{PER_LIST, keep_prepared, placeholders, rows_for};
use super::{ENTRY_COLUMNS, POST_ATTEMPTS, SqlStore, entry_from_row, entry_of, record_posting};
use crate::domain::{Balance, LedgerEntry, LedgerEntryId, UserId};
use crate::ledger::{Debit, LedgerError, Posted, Posting};
use crate::store::StoreError;
use crate::store::credits::BatchItem;

/// How many ledger rows one insert writes (eight parameters each).
const ROWS_PER_INSERT: usize = 250;

/// Applies `debits` in one transaction, each in turn; one refused debit refuses only itself.
pub(super) async fn post(store: &SqlStore, debits: &[Debit]) -> Result<Vec<BatchItem>, StoreError> {
    for _ in 0..POST_ATTEMPTS {
        let at = store.at();
        let mut tx = store.pool.begin_with(store.backend.begin_write()).await?;
        match write(&mut tx, at, debits).await? {
            Some(written) => {
                tx.commit().await?;
                for entry in &written.posted {
                    record_posting(entry);
                }
                return Ok(written.items);
            }
            // Another transaction took one of the keys meanwhile: decide again, seeing it.
            None => tx.rollback().await?,
        }
    }
    Err(StoreError::Contended)
}

/// A user's balance row as the batch finds and changes it.
struct Account {
    balance: i64,
    held: i64,
    /// What the batch has changed the balance by so far.
    change: i64,
    /// The live grants with tokens left, in the spending order: (grant id, remaining).
    grants: VecDeque<(i64, i64)>,
}

/// What became of one debit before anything is written.
enum Decision {
    Refused(LedgerError),
    Replayed(LedgerEntry),
    /// The `n`th new ledger row.
    New(usize),
    /// The same key as the `n`th new row, earlier in this batch: a replay of it or a conflict.
    SameKeyAs(usize),
}

/// A ledger row to write: the debit, the balance it leaves, and the grant that covers it
/// alone, if one does.
struct NewRow<'a> {
    posting: &'a Posting,
    balance_after: i64,
    drawn_from: Option<i64>,
    /// What it takes from several grants, when no one grant covers it.
    draws: Vec<(i64, i64)>,
}

struct Written {
    items: Vec<BatchItem>,
    posted: Vec<LedgerEntry>,
}

/// Decides and writes the batch in the caller's transaction; `None` when a key was taken by
/// another transaction after it was looked up (the caller rolls back and tries again).
async fn write(
    conn: &mut AnyConnection,
    at: At,
    debits: &[Debit],
) -> Result<Option<Written>, StoreError> {
    let users: Vec<i64> = debits
        .iter()
        .map(|d| d.posting().user.get())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut accounts = lock_accounts(conn, at, &users).await?;
    let existing = entries_by_key(conn, debits).await?;

    let mut rows: Vec<NewRow> = Vec::new();
    let mut pending: HashMap<&str, usize> = HashMap::new();
    let mut decisions = Vec::with_capacity(debits.len());
    for debit in debits {
        let posting = debit.posting();
        let key = posting.key.as_str();
        let decision = if let Some(entry) = existing.get(key) {
            if posting.matches(entry) {
                Decision::Replayed(entry.clone())
            } else {
                Decision::Refused(LedgerError::IdempotencyConflict {
                    existing: Box::new(entry.clone()),
                })
            }
        } else if let Some(&row) = pending.get(key) {
            Decision::SameKeyAs(row)
        } else if let Some(account) = accounts.get_mut(&posting.user.get()) {
            match posting.apply_to(Balance::new(account.balance)?, account.held) {
                Err(refusal) => Decision::Refused(refusal),
                Ok(after) => {
                    account.balance = after.get();
                    account.change += posting.delta.get();
                    let mut draws = draw(&mut account.grants, posting.delta.magnitude().get());
                    let drawn_from = match draws.as_slice() {
                        [(grant, _)] => Some(*grant),
                        _ => None,
                    };
                    if drawn_from.is_some() {
                        draws.clear();
                    }
                    pending.insert(key, rows.len());
                    rows.push(NewRow {
                        posting,
                        balance_after: after.get(),
                        drawn_from,
                        draws,
                    });
                    Decision::New(rows.len() - 1)
                }
            }
        } else {
            Decision::Refused(LedgerError::UnknownUser(posting.user))
        };
        decisions.push(decision);
    }

    let Some(ids) = insert_rows(conn, at, &rows).await? else {
        return Ok(None);
    };
    write_draws(conn, &rows, &ids).await?;
    change_balances(conn, at, &accounts).await?;

    let posted: Vec<LedgerEntry> = rows
        .iter()
        .zip(&ids)
        .map(|(row, id)| {
            Ok(entry_of(
                row.posting,
                *id,
                Balance::new(row.balance_after)?,
                at.now,
            ))
        })
        .collect::<Result<_, StoreError>>()?;
    let items = debits
        .iter()
        .zip(decisions)
        .map(|(debit, decision)| match decision {
            Decision::Refused(refusal) => Err(refusal),
            Decision::Replayed(entry) => Ok(Posted {
                entry,
                replayed: true,
            }),
            Decision::New(row) => Ok(Posted {
                entry: posted[row].clone(),
                replayed: false,
            }),
            Decision::SameKeyAs(row) if debit.posting().matches(&posted[row]) => Ok(Posted {
                entry: posted[row].clone(),
                replayed: true,
            }),
            Decision::SameKeyAs(row) => Err(LedgerError::IdempotencyConflict {
                existing: Box::new(posted[row].clone()),
            }),
        })
        .collect();
    Ok(Some(Written { items, posted }))
}

/// Takes `tokens` from `grants` in their order: (grant, tokens taken) for each it takes from.
fn draw(grants: &mut VecDeque<(i64, i64)>, mut tokens: i64) -> Vec<(i64, i64)> {
    let mut draws = Vec::new();
    while tokens > 0 {
        let Some((grant, remaining)) = grants.front_mut() else {
            break;
        };
        let take = tokens.min(*remaining);
        draws.push((*grant, take));
        tokens -= take;
        *remaining -= take;
        if *remaining == 0 {
            grants.pop_front();
        }
    }
    draws
}

/// Locks the users' balance rows in id order (so batches never deadlock each other), settles
/// whatever of theirs is due to expire, and reads them with their live grants.
async fn lock_accounts(
    conn: &mut AnyConnection,
    at: At,
    users: &[i64],
) -> Result<HashMap<i64, Account>, StoreError> {
    let mut accounts = HashMap::with_capacity(users.len());
    let due = read_accounts(conn, at, users, &mut accounts).await?;
    if !due.is_empty() {
        for user in &due {
            expiry::settle_in(conn, at, UserId::new(*user)?).await?;
        }
        read_accounts(conn, at, &due, &mut accounts).await?;
    }
    let grants = rows_for(conn, users, |list| {
        format!(
            "SELECT id, user_id, remaining FROM token_grants \
             WHERE user_id IN ({list}) AND expired_at IS NULL AND remaining > 0 \
             ORDER BY user_id, {SPENDING_ORDER}"
        )
    })
    .await?;
    for row in grants {
        if let Some(account) = accounts.get_mut(&row.try_get("user_id")?) {
            account
                .grants
                .push_back((row.try_get("id")?, row.try_get("remaining")?));
        }
    }
    Ok(accounts)
}

/// Locks and reads the users' balance rows into `accounts`; the users with something due to
/// expire.
async fn read_accounts(
    conn: &mut AnyConnection,
    at: At,
    users: &[i64],
    accounts: &mut HashMap<i64, Account>,
) -> Result<Vec<i64>, StoreError> {
    let rows = rows_for(conn, users, |list| {
        format!(
            "SELECT user_id, balance, held, next_expiry FROM token_balances \
             WHERE user_id IN ({list}) ORDER BY user_id{}",
            at.backend.lock_rows()
        )
    })
    .await?;
    let mut due = Vec::new();
    for row in rows {
        let user: i64 = row.try_get("user_id")?;
        let next: Option<i64> = row.try_get("next_expiry")?;
        if next.is_some_and(|next| next <= at.now.as_millis()) {
            due.push(user);
        }
        accounts.insert(
            user,
            Account {
                balance: row.try_get("balance")?,
                held: row.try_get("held")?,
                change: 0,
                grants: VecDeque::new(),
            },
        );
    }
    Ok(due)
}

/// The entries already written under the batch's keys.
async fn entries_by_key(
    conn: &mut AnyConnection,
    debits: &[Debit],
) -> Result<HashMap<String, LedgerEntry>, StoreError> {
    let keys: Vec<String> = debits
        .iter()
        .map(|d| d.posting().key.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let rows = rows_for(conn, &keys, |list| {
        format!(
            "SELECT {ENTRY_COLUMNS}, idempotency_key FROM token_ledger \
             WHERE idempotency_key IN ({list})"
        )
    })
    .await?;
    let mut found = HashMap::with_capacity(rows.len());
    for row in &rows {
        found.insert(row.try_get("idempotency_key")?, entry_from_row(row)?);
    }
    Ok(found)
}

/// Writes the new ledger rows (a row naming its grant takes its tokens off it, migration
/// 0005); their ids in order, or `None` if a key was taken meanwhile.
async fn insert_rows(
    conn: &mut AnyConnection,
    at: At,
    rows: &[NewRow<'_>],
) -> Result<Option<Vec<LedgerEntryId>>, StoreError> {
    let mut ids = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("({})", placeholders(8 * i + 1, 8)))
            .collect();
        let sql = format!(
            "INSERT INTO token_ledger (user_id, delta, balance_after, source, reason, \
                 idempotency_key, drawn_from, created_at) VALUES {} \
             ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, idempotency_key",
            values.join(", ")
        );
        let mut query = sqlx::query(&sql).persistent(keep_prepared(8 * chunk.len()));
        for row in chunk {
            let posting = row.posting;
            query = query
                .bind(posting.user.get())
                .bind(posting.delta.get())
                .bind(row.balance_after)
                .bind(posting.source.as_str())
                .bind(posting.reason.as_str())
                .bind(posting.key.as_str())
                .bind(row.drawn_from)
                .bind(at.now.as_millis());
        }
        let mut written: HashMap<String, i64> = HashMap::with_capacity(chunk.len());
        for row in query.fetch_all(&mut *conn).await? {
            written.insert(row.try_get("idempotency_key")?, row.try_get("id")?);
        }
        for row in chunk {
            match written.get(row.posting.key.as_str()) {
                Some(id) => ids.push(LedgerEntryId::new(*id)?),
                None => return Ok(None),
            }
        }
    }
    Ok(Some(ids))
}

/// Writes what rows that no one grant covered took from several, and takes it off them.
async fn write_draws(
    conn: &mut AnyConnection,
    rows: &[NewRow<'_>],
    ids: &[LedgerEntryId],
) -> Result<(), StoreError> {
    let mut draws = Draws::default();
    let mut taken: HashMap<i64, i64> = HashMap::new();
    for (row, id) in rows.iter().zip(ids) {
        for (grant, tokens) in &row.draws {
            draws.push(*id, *grant, *tokens);
            *taken.entry(*grant).or_default() += tokens;
        }
    }
    for (grant, tokens) in taken {
        sqlx::query("UPDATE token_grants SET remaining = remaining - $2 WHERE id = $1")
            .bind(grant)
            .bind(tokens)
            .execute(&mut *conn)
            .await?;
    }
    draws.flush(conn).await
}

/// One change per balance row the batch changed, many rows to a statement.
async fn change_balances(
    conn: &mut AnyConnection,
    at: At,
    accounts: &HashMap<i64, Account>,
) -> Result<(), StoreError> {
    let changed: Vec<(i64, i64)> = accounts
        .iter()
        .filter(|(_, account)| account.change != 0)
        .map(|(user, account)| (*user, account.change))
        .collect();
    for chunk in changed.chunks(PER_LIST / 2) {
        let cases: String = (0..chunk.len())
            .map(|i| format!(" WHEN ${} THEN ${}", 2 * i + 2, 2 * i + 3))
            .collect();
        let users: Vec<String> = (0..chunk.len())
            .map(|i| format!("${}", 2 * i + 2))
            .collect();
        let sql = format!(
            "UPDATE token_balances SET balance = balance + CASE user_id{cases} END, \
                 updated_at = $1 \
             WHERE user_id IN ({})",
            users.join(", ")
        );
        let mut query = sqlx::query(&sql)
            .persistent(keep_prepared(1 + 2 * chunk.len()))
            .bind(at.now.as_millis());
        for (user, change) in chunk {
            query = query.bind(*user).bind(*change);
        }
        let updated = query.execute(&mut *conn).await?.rows_affected();
        if updated != chunk.len() as u64 {
            return Err(StoreError::Corrupt(format!(
                "a batch changed {updated} balance rows of {} locked",
                chunk.len()
            )));
        }
    }
    Ok(())
}
