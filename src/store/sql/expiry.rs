//! Settling what is due, inside a transaction: open holds past their time stop reserving,
//! and grants past theirs expire what is left with a ledger row of their own (source
//! `expiry`, naming the grant it takes the tokens from) and a `grant.expired` event; a plan
//! grant with a rollover cap keeps up to the cap for one more period, once. The guarded
//! statements refuse while `token_balances.next_expiry` has passed, and call this first.

use sqlx::{AnyConnection, Row};

use super::at::At;
use crate::domain::{IdempotencyKey, Reason, Source, Timestamp, UserId};
use crate::outbox::EventKind;
use crate::store::StoreError;

/// Settles what of the user's has expired by `at.now`, if anything is due: open holds past
/// their time stop reserving, grants past theirs expire what is left (a plan grant with a
/// rollover cap keeps up to the cap for one more period, once). Locks the user's balance row
/// first. Whether anything was due.
pub(super) async fn settle_in(
    conn: &mut AnyConnection,
    at: At,
    user: UserId,
) -> Result<bool, StoreError> {
    let next: Option<Option<i64>> = sqlx::query_scalar(&format!(
        "SELECT next_expiry FROM token_balances WHERE user_id = $1{}",
        at.backend.lock_rows()
    ))
    .bind(user.get())
    .fetch_optional(&mut *conn)
    .await?;
    let now = at.now.as_millis();
    if next.flatten().is_none_or(|next| next > now) {
        return Ok(false);
    }

    let released: Vec<i64> = sqlx::query_scalar(
        "UPDATE token_holds SET state = 'expired', settled_at = $2 \
         WHERE user_id = $1 AND state = 'open' AND expires_at <= $2 \
         RETURNING tokens",
    )
    .bind(user.get())
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    if !released.is_empty() {
        sqlx::query("UPDATE token_balances SET held = held - $2 WHERE user_id = $1")
            .bind(user.get())
            .bind(released.iter().sum::<i64>())
            .execute(&mut *conn)
            .await?;
    }

    loop {
        let due = sqlx::query(
            "SELECT g.id, g.remaining, g.expires_at, g.rollover_cap, g.rollover_period_ms, \
                 g.rolled_over, l.reason \
             FROM token_grants g LEFT JOIN token_ledger l ON l.id = g.entry_id \
             WHERE g.user_id = $1 AND g.expired_at IS NULL AND g.expires_at <= $2 \
             ORDER BY g.expires_at, g.id",
        )
        .bind(user.get())
        .bind(now)
        .fetch_all(&mut *conn)
        .await?;
        if due.is_empty() {
            break;
        }
        for grant in &due {
            let id: i64 = grant.try_get("id")?;
            let remaining: i64 = grant.try_get("remaining")?;
            let ends: i64 = grant.try_get("expires_at")?;
            let label: Option<String> = grant.try_get("reason")?;
            let label = label.unwrap_or_else(|| "the balance from before grants".to_owned());
            let rollover = match (
                grant.try_get::<Option<i64>, _>("rollover_cap")?,
                grant.try_get::<Option<i64>, _>("rollover_period_ms")?,
                grant.try_get::<i64, _>("rolled_over")?,
            ) {
                (Some(cap), Some(period), 0) if remaining > 0 => Some((cap, period)),
                _ => None,
            };
            match rollover {
                Some((cap, period)) => {
                    let kept = remaining.min(cap);
                    let lapsed = remaining - kept;
                    if lapsed > 0 {
                        let lapse = Lapse {
                            grant: id,
                            tokens: lapsed,
                            ended: Timestamp::from_millis(ends),
                        };
                        expire(conn, at, user, lapse, &label, "").await?;
                    }
                    // What lapsed came off `remaining` with its expiry row: `kept` is left,
                    // until one period later (and warned of again before then).
                    sqlx::query(
                        "UPDATE token_grants SET expires_at = expires_at + $2, rolled_over = 1, \
                             warned_days = NULL \
                         WHERE id = $1",
                    )
                    .bind(id)
                    .bind(period)
                    .execute(&mut *conn)
                    .await?;
                }
                None => {
                    let suffix = if grant.try_get::<i64, _>("rolled_over")? == 1 {
                        ":rolled"
                    } else {
                        ""
                    };
                    if remaining > 0 {
                        let lapse = Lapse {
                            grant: id,
                            tokens: remaining,
                            ended: Timestamp::from_millis(ends),
                        };
                        expire(conn, at, user, lapse, &label, suffix).await?;
                    }
                    // Nothing is left: the expiry row took it.
                    sqlx::query("UPDATE token_grants SET expired_at = $2 WHERE id = $1")
                        .bind(id)
                        .bind(now)
                        .execute(&mut *conn)
                        .await?;
                }
            }
        }
    }

    sqlx::query(
        "UPDATE token_balances SET next_expiry = ( \
             SELECT MIN(at) FROM ( \
                 SELECT MIN(expires_at) AS at FROM token_holds \
                     WHERE user_id = $1 AND state = 'open' \
                 UNION ALL \
                 SELECT MIN(expires_at) AS at FROM token_grants \
                     WHERE user_id = $1 AND expired_at IS NULL AND remaining > 0 \
             ) AS soonest) \
         WHERE user_id = $1",
    )
    .bind(user.get())
    .execute(&mut *conn)
    .await?;
    Ok(true)
}

/// What of a grant expires, and when its time ended.
struct Lapse {
    grant: i64,
    tokens: i64,
    ended: Timestamp,
}

/// The ledger row of `lapse` expiring, naming the grant it takes the tokens from, and its
/// `grant.expired` event.
async fn expire(
    conn: &mut AnyConnection,
    at: At,
    user: UserId,
    lapse: Lapse,
    label: &str,
    key_suffix: &str,
) -> Result<(), StoreError> {
    let Lapse {
        grant,
        tokens,
        ended,
    } = lapse;
    let balance_after: i64 = sqlx::query_scalar(
        "UPDATE token_balances SET balance = balance - $2, updated_at = $3 \
         WHERE user_id = $1 RETURNING balance",
    )
    .bind(user.get())
    .bind(tokens)
    .bind(at.now.as_millis())
    .fetch_one(&mut *conn)
    .await?;
    let label: String = label.chars().take(200).collect();
    let reason = Reason::parse(&format!("Expired unspent: {label}"))?;
    let key = IdempotencyKey::scoped("expiry:grant", &format!("{grant}{key_suffix}"))?;
    // Naming the grant on the row takes the tokens off it (migration 0005).
    sqlx::query(
        "INSERT INTO token_ledger (user_id, delta, balance_after, source, reason, \
             idempotency_key, drawn_from, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(user.get())
    .bind(-tokens)
    .bind(balance_after)
    .bind(Source::Expiry.as_str())
    .bind(reason.as_str())
    .bind(key.as_str())
    .bind(grant)
    .bind(at.now.as_millis())
    .execute(&mut *conn)
    .await?;
    super::grant_events::record_grant_event(
        conn,
        at,
        user,
        EventKind::GrantExpired,
        grant,
        tokens,
        ended,
    )
    .await
}
