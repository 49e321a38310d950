//! Outbox events read back with what they are about, for the parts that send them (webhook
//! deliveries, email notices): a query selects [`EVENT_COLUMNS`] from `outbox_events o`.

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::lists::rows_for;
use super::{ENTRY_COLUMNS, entry_from_row};
use crate::domain::{GrantId, LedgerEntry, Timestamp, UserId};
use crate::outbox::{EventDetail, EventKind, OutboxEvent};
use crate::store::StoreError;

/// The columns [`event_from`] reads, of `outbox_events` named `o`.
pub(super) const EVENT_COLUMNS: &str = "o.id AS event_id, o.user_id, o.kind, o.entry_id, \
     o.grant_id, o.tokens, o.threshold, o.expires_at, o.created_at AS event_created_at, \
     o.topup_id, o.detail";

/// The ledger rows the events in `rows` are about, by id.
pub(super) async fn entries_of(
    conn: &mut AnyConnection,
    rows: &[AnyRow],
) -> Result<HashMap<i64, LedgerEntry>, StoreError> {
    let ids: Vec<i64> = rows
        .iter()
        .filter_map(|row| row.try_get::<Option<i64>, _>("entry_id").ok().flatten())
        .collect();
    rows_for(conn, &ids, |list| {
        format!("SELECT {ENTRY_COLUMNS} FROM token_ledger WHERE id IN ({list})")
    })
    .await?
    .iter()
    .map(|row| entry_from_row(row).map(|entry| (entry.id.get(), entry)))
    .collect()
}

/// The event in `row`, with its ledger row from `entries` (see [`entries_of`]).
pub(super) fn event_from(
    row: &AnyRow,
    entries: &HashMap<i64, LedgerEntry>,
) -> Result<OutboxEvent, StoreError> {
    let kind = EventKind::parse(&row.try_get::<String, _>("kind")?)?;
    let tokens: Option<i64> = row.try_get("tokens")?;
    let missing =
        |what: &str| StoreError::Corrupt(format!("a {} event without its {what}", kind.as_str()));
    let detail = match kind {
        EventKind::LedgerEntryCreated => {
            let id: Option<i64> = row.try_get("entry_id")?;
            let entry = id
                .and_then(|id| entries.get(&id))
                .ok_or_else(|| missing("entry"))?;
            EventDetail::Entry(Box::new(entry.clone()))
        }
        EventKind::BalanceLow => EventDetail::Low {
            available: tokens.ok_or_else(|| missing("tokens"))?,
            threshold: row
                .try_get::<Option<i64>, _>("threshold")?
                .ok_or_else(|| missing("threshold"))?,
        },
        EventKind::BalanceDepleted => EventDetail::Depleted {
            available: tokens.ok_or_else(|| missing("tokens"))?,
        },
        EventKind::GrantExpiring | EventKind::GrantExpired => EventDetail::Grant {
            grant: GrantId::new(
                row.try_get::<Option<i64>, _>("grant_id")?
                    .ok_or_else(|| missing("grant"))?,
            )?,
            tokens: tokens.ok_or_else(|| missing("tokens"))?,
            expires_at: row
                .try_get::<Option<i64>, _>("expires_at")?
                .map(Timestamp::from_millis),
        },
        EventKind::TopUpSucceeded | EventKind::TopUpFailed => EventDetail::TopUp {
            topup: row
                .try_get::<Option<i64>, _>("topup_id")?
                .ok_or_else(|| missing("top-up"))?,
            tokens,
            entry: row.try_get("entry_id")?,
            failure: row.try_get("detail")?,
        },
    };
    Ok(OutboxEvent {
        id: row.try_get("event_id")?,
        user: UserId::new(row.try_get("user_id")?)?,
        kind,
        created_at: Timestamp::from_millis(row.try_get("event_created_at")?),
        detail,
    })
}
