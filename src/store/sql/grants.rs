//! Grants, inside a posting's transaction: every credit's tokens become a grant; spending
//! draws from the live grants soonest-expiring first (never-expiring last), then oldest first,
//! and records each draw (a spend one grant covers names it on its ledger row, `drawn_from`,
//! and the database takes the tokens off that grant; one that takes from several writes
//! `token_draws`); a grant whose time has come expires in [`super::expiry`].
//!
//! Kept true with the balance, in the same transactions: while the balance is positive it is
//! the sum of the live grants' `remaining`, and when it is negative (tokens taken back after
//! they were spent) no grant has anything left, and the next credit covers that debt first.
//! `token_balances.next_expiry` is never later than the earliest expiry of a live grant with
//! tokens left or of an open hold: the guarded update refuses once it has passed, and the
//! posting settles the user ([`super::expiry`]) before trying again.

use sqlx::{AnyConnection, Row};

use super::at::At;
use super::lists::{keep_prepared, placeholders};
use crate::domain::{Expiry, GrantTerms, LedgerEntryId, Rollover, Timestamp, Tokens, UserId};
use crate::ledger::{Posting, PostingKind};
use crate::store::StoreError;

/// How many grants one statement reads while drawing (most spends need one).
const DRAW_BATCH: i64 = 16;

/// The order grants are spent in: the soonest to expire first, those that never do last,
/// then the oldest.
pub(super) const SPENDING_ORDER: &str =
    "CASE WHEN expires_at IS NULL THEN 1 ELSE 0 END, expires_at, id";

/// The terms of a credit's grant: tokens given back (a failed refund, a won dispute) keep the
/// terms of the purchase they were taken from; admin credits and anything else keep the
/// posting's own.
pub(super) async fn terms_for(
    conn: &mut AnyConnection,
    posting: &Posting,
) -> Result<GrantTerms, StoreError> {
    match (posting.kind, posting.reverses) {
        (PostingKind::Credit, Some(purchase)) => terms_of(conn, purchase).await,
        _ => Ok(posting.terms),
    }
}

/// Makes the grant of the credit `entry` (`posting`, with `terms`), made on a balance of
/// `before`: what covers a debt is not left to spend. The posting's balance update has moved
/// `next_expiry` to the grant's end already, when the grant keeps tokens.
pub(super) async fn grant_in(
    conn: &mut AnyConnection,
    at: At,
    posting: &Posting,
    terms: GrantTerms,
    entry: LedgerEntryId,
    before: i64,
) -> Result<(), StoreError> {
    let tokens = posting.delta.get();
    let remaining = (tokens - (-before).max(0)).max(0);
    let rollover = terms.rollover;
    let expires_at = terms.expires_at(at.now);
    sqlx::query(
        "INSERT INTO token_grants (user_id, entry_id, tokens, remaining, expires_at, \
             rollover_cap, rollover_period_ms, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(posting.user.get())
    .bind(entry.get())
    .bind(tokens)
    .bind(remaining)
    .bind(expires_at.map(Timestamp::as_millis))
    .bind(rollover.map(|r| r.cap.get()))
    .bind(rollover.map(|r| r.period_ms))
    .bind(at.now.as_millis())
    .execute(&mut *conn)
    .await?;
    if expires_at.is_some_and(|end| remaining > 0 && end <= at.now) {
        // Given back after its grant's time: it expires at once, visibly.
        super::expiry::settle_in(conn, at, posting.user).await?;
    }
    Ok(())
}

/// The terms of a purchase's grant as they stand (a purchase from before grants never
/// expires): its end, moved on if it rolled over, and no rollover once it has.
async fn terms_of(
    conn: &mut AnyConnection,
    purchase: LedgerEntryId,
) -> Result<GrantTerms, StoreError> {
    let row = sqlx::query(
        "SELECT expires_at, rollover_cap, rollover_period_ms, rolled_over FROM token_grants \
         WHERE entry_id = $1",
    )
    .bind(purchase.get())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(GrantTerms::NEVER);
    };
    let rollover = match (
        row.try_get::<Option<i64>, _>("rollover_cap")?,
        row.try_get::<Option<i64>, _>("rollover_period_ms")?,
        row.try_get::<i64, _>("rolled_over")?,
    ) {
        (Some(cap), Some(period_ms), 0) => Some(Rollover {
            cap: Tokens::new(cap)?,
            period_ms,
        }),
        _ => None,
    };
    Ok(GrantTerms {
        expiry: match row.try_get::<Option<i64>, _>("expires_at")? {
            Some(at) => Expiry::At(Timestamp::from_millis(at)),
            None => Expiry::Never,
        },
        rollover,
    })
}

/// What spending entries drew from which grants, written together (one statement for a whole
/// batch of postings).
#[derive(Debug, Default)]
pub(super) struct Draws(Vec<(i64, i64, i64)>);

impl Draws {
    /// How many draws one statement writes (three parameters each).
    const PER_STATEMENT: usize = 300;

    pub(super) fn push(&mut self, entry: LedgerEntryId, grant: i64, tokens: i64) {
        self.0.push((entry.get(), grant, tokens));
    }

    /// Writes the draws kept so far, in the caller's transaction.
    pub(super) async fn flush(&mut self, conn: &mut AnyConnection) -> Result<(), StoreError> {
        for chunk in self.0.chunks(Self::PER_STATEMENT) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| format!("({})", placeholders(3 * i + 1, 3)))
                .collect();
            let sql = format!(
                "INSERT INTO token_draws (entry_id, grant_id, tokens) VALUES {}",
                values.join(", ")
            );
            let mut query = sqlx::query(&sql).persistent(keep_prepared(3 * chunk.len()));
            for (entry, grant, tokens) in chunk {
                query = query.bind(*entry).bind(*grant).bind(*tokens);
            }
            query.execute(&mut *conn).await?;
        }
        self.0.clear();
        Ok(())
    }
}

/// Draws `tokens` for the spending entry `entry` from the user's live grants, for a spend that
/// no one grant covers (one that does names its grant on its ledger row instead): from the
/// grant of `first` (a reversal's purchase) before the others. What no grant has left is debt (a
/// reversal of spent tokens, a capture of a hold whose tokens expired): the balance says so.
/// The draws are kept in `draws` for the caller to write.
pub(super) async fn draw_in(
    conn: &mut AnyConnection,
    user: UserId,
    entry: LedgerEntryId,
    tokens: Tokens,
    first: Option<LedgerEntryId>,
    draws: &mut Draws,
) -> Result<(), StoreError> {
    let mut wanted = tokens.get();
    if let Some(purchase) = first {
        let own = sqlx::query(
            "SELECT id, remaining FROM token_grants \
             WHERE entry_id = $1 AND expired_at IS NULL AND remaining > 0",
        )
        .bind(purchase.get())
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(own) = own {
            let (id, remaining) = (own.try_get("id")?, own.try_get("remaining")?);
            wanted -= draw_from(conn, entry, id, remaining, wanted, draws).await?;
        }
    }
    while wanted > 0 {
        let live = sqlx::query(&format!(
            "SELECT id, remaining FROM token_grants \
             WHERE user_id = $1 AND expired_at IS NULL AND remaining > 0 \
             ORDER BY {SPENDING_ORDER} LIMIT $2"
        ))
        .bind(user.get())
        .bind(DRAW_BATCH)
        .fetch_all(&mut *conn)
        .await?;
        if live.is_empty() {
            break;
        }
        for grant in &live {
            if wanted == 0 {
                break;
            }
            let (id, remaining) = (grant.try_get("id")?, grant.try_get("remaining")?);
            wanted -= draw_from(conn, entry, id, remaining, wanted, draws).await?;
        }
    }
    Ok(())
}

/// Takes up to `wanted` of a grant's `remaining` for `entry`; how many it took.
async fn draw_from(
    conn: &mut AnyConnection,
    entry: LedgerEntryId,
    grant: i64,
    remaining: i64,
    wanted: i64,
    draws: &mut Draws,
) -> Result<i64, StoreError> {
    let take = remaining.min(wanted);
    sqlx::query("UPDATE token_grants SET remaining = remaining - $2 WHERE id = $1")
        .bind(grant)
        .bind(take)
        .execute(&mut *conn)
        .await?;
    draws.push(entry, grant, take);
    Ok(take)
}

/// Lowers the user's `next_expiry` to `at` if it is later (or unset).
pub(super) async fn expires_no_later_than(
    conn: &mut AnyConnection,
    user: UserId,
    at: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE token_balances SET next_expiry = $2 \
         WHERE user_id = $1 AND (next_expiry IS NULL OR next_expiry > $2)",
    )
    .bind(user.get())
    .bind(at.as_millis())
    .execute(&mut *conn)
    .await?;
    Ok(())
}
