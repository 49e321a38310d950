//! Holds: tokens reserved before work runs, then captured (the ledger entry, naming its hold)
//! or released; an open hold past its time is expired by the next settle of its user, and
//! never reserves anything after its time even before that (see [`super::grants`]).
//!
//! Each step is one transaction that locks the user's balance row before it reads the hold:
//! concurrent captures and releases of one hold take turns, and only one of them acts.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::at::At;
use super::posting::{self, Attempt};
use super::{ENTRY_COLUMNS, SqlStore, entry_from_row};
use super::{expiry, grants};
use crate::domain::{
    Available, Balance, Hold, HoldId, HoldState, IdempotencyKey, LedgerEntryId, Reason, Timestamp,
    Tokens, UserId,
};
use crate::ledger::{HoldRelease, LedgerError, Posted, Posting};
use crate::store::StoreError;
use crate::store::credits::{HoldCapture, HoldError, HoldOpened, HoldReleased, NewHold};

const HOLD_COLUMNS: &str =
    "id, user_id, api_key_id, tokens, reason, state, expires_at, created_at, capture_entry_id";

pub(super) async fn open(store: &SqlStore, new: &NewHold) -> Result<HoldOpened, StoreError> {
    let at = store.at();
    let mut tx = store.pool.begin_with(store.backend.begin_write()).await?;
    if let Some(existing) = by_key(&mut tx, &new.key).await? {
        tx.rollback().await?;
        return replay(store, existing, new).await;
    }
    let expires_at = Timestamp::from_millis(at.now.as_millis() + new.ttl_ms);
    let mut settled = false;
    let available = loop {
        // The same guarded single statement as a debit: reserves only from what is available
        // now, and not while anything of the user's is due to expire.
        let row = sqlx::query(
            "UPDATE token_balances SET held = held + $2, updated_at = $3 \
             WHERE user_id = $1 AND balance - held - $2 >= 0 \
                 AND (next_expiry IS NULL OR next_expiry > $3) \
             RETURNING balance, held",
        )
        .bind(new.user.get())
        .bind(new.tokens.get())
        .bind(at.now.as_millis())
        .fetch_optional(&mut *tx)
        .await?;
        match row {
            Some(row) => break available_of(&row)?,
            None if !settled && expiry::settle_in(&mut tx, at, new.user).await? => settled = true,
            None => {
                let available = available_in(&mut tx, new.user).await?;
                return Err(LedgerError::InsufficientTokens {
                    balance: Balance::new(available.spendable()).unwrap_or(Balance::ZERO),
                    requested: new.tokens,
                }
                .into());
            }
        }
    };
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO token_holds (user_id, api_key_id, tokens, reason, idempotency_key, state, \
             expires_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, 'open', $6, $7) \
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
    )
    .bind(new.user.get())
    .bind(new.api_key)
    .bind(new.tokens.get())
    .bind(new.reason.as_str())
    .bind(new.key.as_str())
    .bind(expires_at.as_millis())
    .bind(at.now.as_millis())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(id) = id else {
        // Another transaction opened a hold under this key meanwhile: that one stands.
        tx.rollback().await?;
        let mut conn = store.pool.acquire().await?;
        let existing = by_key(&mut conn, &new.key)
            .await?
            .ok_or_else(|| StoreError::Corrupt("a hold's key conflicted but has no hold".into()))?;
        return replay(store, existing, new).await;
    };
    grants::expires_no_later_than(&mut tx, new.user, expires_at).await?;
    tx.commit().await?;
    Ok(HoldOpened {
        hold: Hold {
            id: HoldId::new(id)?,
            user_id: new.user,
            tokens: new.tokens,
            reason: new.reason.as_str().to_owned(),
            state: HoldState::Open,
            expires_at,
            created_at: at.now,
            capture: None,
        },
        available,
        replayed: false,
    })
}

/// The hold a key opened before: the same request answers with it, another is refused.
async fn replay(
    store: &SqlStore,
    (existing, api_key): (Hold, Option<i64>),
    new: &NewHold,
) -> Result<HoldOpened, StoreError> {
    let same = existing.user_id == new.user
        && existing.tokens == new.tokens
        && existing.reason == new.reason.as_str()
        && api_key == new.api_key;
    if !same {
        return Err(HoldError::KeyReused.into());
    }
    let available = store.available_now(existing.user_id).await?;
    Ok(HoldOpened {
        hold: existing,
        available,
        replayed: true,
    })
}

pub(super) async fn capture(store: &SqlStore, capture: &HoldCapture) -> Result<Posted, StoreError> {
    let at = store.at();
    let mut tx = store.pool.begin_with(store.backend.begin_write()).await?;
    let hold = locked(&mut tx, at, capture.hold, capture.api_key).await?;
    match hold.state_at(at.now) {
        HoldState::Open => {}
        HoldState::Captured => {
            let entry = hold.capture.ok_or_else(|| {
                StoreError::Corrupt(format!("hold {} is captured without an entry", hold.id))
            })?;
            let entry = entry_in(&mut tx, entry).await?;
            tx.rollback().await?;
            let captured = entry.delta.magnitude();
            if captured != capture.tokens {
                return Err(HoldError::CapturedDifferently { captured }.into());
            }
            return Ok(Posted {
                entry,
                replayed: true,
            });
        }
        HoldState::Expired => {
            // Past its time, swept or not: the sweep's work is done now, and kept.
            expiry::settle_in(&mut tx, at, hold.user_id).await?;
            tx.commit().await?;
            return Err(HoldError::Settled(HoldState::Expired).into());
        }
        state @ HoldState::Released => {
            tx.rollback().await?;
            return Err(HoldError::Settled(state).into());
        }
    }
    if capture.tokens > hold.tokens && !capture.may_exceed {
        tx.rollback().await?;
        return Err(HoldError::ExceedsHold { held: hold.tokens }.into());
    }
    let posting = Posting::capture(
        hold.user_id,
        capture.tokens,
        Reason::parse(&hold.reason)?,
        IdempotencyKey::scoped("capture:hold", &hold.id.to_string())?,
        HoldRelease {
            hold: hold.id,
            held: hold.tokens,
            may_exceed: capture.may_exceed,
        },
    );
    for _ in 0..super::POST_ATTEMPTS {
        match posting::post_in(&mut tx, at, &posting).await? {
            Attempt::Posted(entry) => {
                tx.commit().await?;
                super::record_posting(&entry);
                return Ok(Posted {
                    entry,
                    replayed: false,
                });
            }
            Attempt::Replayed(entry) => {
                return Ok(Posted {
                    entry,
                    replayed: true,
                });
            }
            Attempt::Moved => continue,
        }
    }
    Err(StoreError::Contended)
}

pub(super) async fn release(
    store: &SqlStore,
    hold: HoldId,
    api_key: Option<i64>,
) -> Result<HoldReleased, StoreError> {
    let at = store.at();
    let mut tx = store.pool.begin_with(store.backend.begin_write()).await?;
    let mut found = locked(&mut tx, at, hold, api_key).await?;
    let replayed = match found.state_at(at.now) {
        HoldState::Open => {
            sqlx::query(
                "UPDATE token_holds SET state = 'released', settled_at = $2 \
                 WHERE id = $1 AND state = 'open'",
            )
            .bind(hold.get())
            .bind(at.now.as_millis())
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE token_balances SET held = held - $2 WHERE user_id = $1")
                .bind(found.user_id.get())
                .bind(found.tokens.get())
                .execute(&mut *tx)
                .await?;
            found.state = HoldState::Released;
            false
        }
        HoldState::Captured => {
            tx.rollback().await?;
            return Err(HoldError::Settled(HoldState::Captured).into());
        }
        HoldState::Expired => {
            // Nothing is reserved by it any more: the release holds already.
            expiry::settle_in(&mut tx, at, found.user_id).await?;
            found.state = HoldState::Expired;
            true
        }
        HoldState::Released => true,
    };
    let available = available_in(&mut tx, found.user_id).await?;
    tx.commit().await?;
    Ok(HoldReleased {
        hold: found,
        available,
        replayed,
    })
}

pub(super) async fn hold(store: &SqlStore, id: HoldId) -> Result<Option<Hold>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {HOLD_COLUMNS} FROM token_holds WHERE id = $1"
    ))
    .bind(id.get())
    .fetch_optional(&store.pool)
    .await?;
    row.as_ref()
        .map(|r| hold_from_row(r).map(|(h, _)| h))
        .transpose()
}

/// The hold, read after its user's balance row is locked; `NotFound` for another key's hold.
async fn locked(
    conn: &mut AnyConnection,
    at: At,
    id: HoldId,
    api_key: Option<i64>,
) -> Result<Hold, StoreError> {
    let user: Option<i64> = sqlx::query_scalar("SELECT user_id FROM token_holds WHERE id = $1")
        .bind(id.get())
        .fetch_optional(&mut *conn)
        .await?;
    let user = user.ok_or(HoldError::NotFound)?;
    sqlx::query(&format!(
        "SELECT balance FROM token_balances WHERE user_id = $1{}",
        at.backend.lock_rows()
    ))
    .bind(user)
    .fetch_optional(&mut *conn)
    .await?;
    let row = sqlx::query(&format!(
        "SELECT {HOLD_COLUMNS} FROM token_holds WHERE id = $1"
    ))
    .bind(id.get())
    .fetch_one(&mut *conn)
    .await?;
    let (hold, owner) = hold_from_row(&row)?;
    if owner != api_key {
        return Err(HoldError::NotFound.into());
    }
    Ok(hold)
}

async fn by_key(
    conn: &mut AnyConnection,
    key: &IdempotencyKey,
) -> Result<Option<(Hold, Option<i64>)>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {HOLD_COLUMNS} FROM token_holds WHERE idempotency_key = $1"
    ))
    .bind(key.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(hold_from_row).transpose()
}

async fn entry_in(
    conn: &mut AnyConnection,
    id: LedgerEntryId,
) -> Result<crate::domain::LedgerEntry, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {ENTRY_COLUMNS} FROM token_ledger WHERE id = $1"
    ))
    .bind(id.get())
    .fetch_one(&mut *conn)
    .await?;
    entry_from_row(&row)
}

pub(super) async fn available_in(
    conn: &mut AnyConnection,
    user: UserId,
) -> Result<Available, StoreError> {
    let row = sqlx::query("SELECT balance, held FROM token_balances WHERE user_id = $1")
        .bind(user.get())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(LedgerError::UnknownUser(user))?;
    available_of(&row)
}

fn available_of(row: &AnyRow) -> Result<Available, StoreError> {
    Ok(Available {
        balance: Balance::new(row.try_get("balance")?)?,
        held: row.try_get("held")?,
    })
}

/// A hold and the service key that opened it.
fn hold_from_row(row: &AnyRow) -> Result<(Hold, Option<i64>), StoreError> {
    let hold = Hold {
        id: HoldId::new(row.try_get("id")?)?,
        user_id: UserId::new(row.try_get("user_id")?)?,
        tokens: Tokens::new(row.try_get("tokens")?)?,
        reason: row.try_get("reason")?,
        state: HoldState::parse(&row.try_get::<String, _>("state")?)?,
        expires_at: Timestamp::from_millis(row.try_get("expires_at")?),
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        capture: row
            .try_get::<Option<i64>, _>("capture_entry_id")?
            .map(LedgerEntryId::new)
            .transpose()?,
    };
    Ok((hold, row.try_get("api_key_id")?))
}
