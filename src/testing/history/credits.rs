//! The grants replayed: a user's ledger, entry by entry in id order (the order their
//! transactions took the user's balance row), through a reference of the grant rules written
//! apart from the store's:
//! - a credit makes one grant of its tokens, less what covers a negative balance;
//! - a spend (consume, capture, admin debit) draws from the live grants, the soonest to
//!   expire first (never-expiring last), then the oldest; a reversal first from its own
//!   purchase's grant; what no grant has is debt, which only reversals and captures may make;
//! - a grant whose time has come expires what is left of it in an `expiry` entry, before any
//!   later entry of its user, keeping up to its rollover cap for one more period once;
//! - while the balance is positive it is the sum of what the grants have left.
//!
//! Each entry's recorded draws must be what the reference draws, and the grants at the end
//! what the reference has left of them.

use std::collections::BTreeMap;

use sqlx::Row;

use crate::domain::{Source, UserId};
use crate::store::SqlStore;

#[derive(Debug, Clone)]
struct Grant {
    tokens: i64,
    remaining: i64,
    expires_at: Option<i64>,
    rollover: Option<(i64, i64)>,
    rolled: bool,
    expired: bool,
}

struct Entry {
    id: i64,
    delta: i64,
    balance_after: i64,
    source: Source,
    reverses: Option<i64>,
    key: String,
    created_at: i64,
}

/// What is wrong with `user`'s grants, draws and expiries (named `who` in the problems);
/// `pack_ms` is how long the history's packs last.
pub(super) async fn replay(
    store: &SqlStore,
    user: UserId,
    who: &str,
    pack_ms: Option<i64>,
) -> Vec<String> {
    let pool = store.pool();
    let entries: Vec<Entry> = sqlx::query(
        "SELECT id, delta, balance_after, source, reverses_entry_id, idempotency_key, \
             created_at FROM token_ledger WHERE user_id = $1 ORDER BY id",
    )
    .bind(user.get())
    .fetch_all(pool)
    .await
    .unwrap()
    .iter()
    .map(|r| Entry {
        id: r.get("id"),
        delta: r.get("delta"),
        balance_after: r.get("balance_after"),
        source: Source::parse(&r.get::<String, _>("source")).unwrap(),
        reverses: r.get("reverses_entry_id"),
        key: r.get("idempotency_key"),
        created_at: r.get("created_at"),
    })
    .collect();
    // The grants as stored: by the credit that made them.
    let mut stored = BTreeMap::new();
    for r in sqlx::query(
        "SELECT id, entry_id, tokens, remaining, expires_at, rollover_cap, \
             rollover_period_ms, rolled_over, expired_at FROM token_grants WHERE user_id = $1",
    )
    .bind(user.get())
    .fetch_all(pool)
    .await
    .unwrap()
    {
        let entry: Option<i64> = r.get("entry_id");
        let period: Option<i64> = r.get("rollover_period_ms");
        let rolled = r.get::<i64, _>("rolled_over") == 1;
        let expires_at: Option<i64> = r.get("expires_at");
        stored.insert(
            r.get::<i64, _>("id"),
            (
                entry,
                Grant {
                    tokens: r.get("tokens"),
                    remaining: r.get("remaining"),
                    // As first made: a rolled-over grant's end moved one period on.
                    expires_at: expires_at.map(|at| at - if rolled { period.unwrap() } else { 0 }),
                    rollover: r.get::<Option<i64>, _>("rollover_cap").zip(period),
                    rolled,
                    expired: r.get::<Option<i64>, _>("expired_at").is_some(),
                },
            ),
        );
    }
    let mut draws: BTreeMap<i64, BTreeMap<i64, i64>> = BTreeMap::new();
    for r in sqlx::query(
        "SELECT d.entry_id, d.grant_id, d.tokens FROM token_draws d \
         JOIN token_ledger l ON l.id = d.entry_id WHERE l.user_id = $1 \
         UNION ALL \
         SELECT id AS entry_id, drawn_from AS grant_id, -delta AS tokens FROM token_ledger \
         WHERE user_id = $1 AND drawn_from IS NOT NULL",
    )
    .bind(user.get())
    .fetch_all(pool)
    .await
    .unwrap()
    {
        // Added up: an entry that recorded a grant twice (on its row and as a draw) differs.
        *draws
            .entry(r.get("entry_id"))
            .or_default()
            .entry(r.get("grant_id"))
            .or_default() += r.get::<i64, _>("tokens");
    }

    let mut problems = Vec::new();
    let mut grants: BTreeMap<i64, Grant> = BTreeMap::new();
    // The grant of the balance carried over from before grants, if any.
    for (id, (entry, grant)) in &stored {
        if entry.is_none() {
            problems.push(format!("{who}: grant {id} has no credit ({grant:?})"));
        }
    }
    let grant_of = |entry: i64| {
        stored
            .iter()
            .find(|(_, (e, _))| *e == Some(entry))
            .map(|(id, (_, g))| (*id, g.clone()))
    };
    let mut balance = 0;
    for e in &entries {
        // Whatever rolled over with nothing to lapse by now did so in the transaction of this
        // entry or before it (an expiry too: a later end of the same grant, or another's).
        roll_silently(&mut grants, e.created_at);
        if e.source != Source::Expiry {
            for (id, g) in &grants {
                if !g.expired
                    && g.remaining > 0
                    && g.expires_at.is_some_and(|at| at <= e.created_at)
                {
                    problems.push(format!(
                        "{who}: entry {} ({:?}) came at {} while grant {id} had {} left past \
                         its end at {:?}",
                        e.id, e.source, e.created_at, g.remaining, g.expires_at
                    ));
                }
            }
        }
        let before = balance;
        balance = e.balance_after;
        if before + e.delta != balance {
            problems.push(format!(
                "{who}: entry {} does not follow from the one before",
                e.id
            ));
        }
        let recorded = draws.get(&e.id).cloned().unwrap_or_default();
        if e.delta > 0 {
            let Some((id, stored_grant)) = grant_of(e.id) else {
                problems.push(format!(
                    "{who}: credit {} ({:?}) made no grant",
                    e.id, e.source
                ));
                continue;
            };
            let remaining = (e.delta - (-before).max(0)).max(0);
            // Given back: the terms of the purchase it was taken from, as they stand now.
            let purchase = e
                .reverses
                .and_then(|p| grant_of(p).and_then(|(id, _)| grants.get(&id).cloned()));
            let expires_at = match (e.source, &purchase) {
                (_, Some(purchase)) => purchase.expires_at,
                // A pack, bought at Checkout or by auto top-up.
                (Source::StripeCheckout | Source::AutoTopUp, None) => {
                    pack_ms.map(|ms| e.created_at + ms)
                }
                (Source::Manual, None) => None,
                // A plan period's end, as the invoice said: taken as stored.
                _ => stored_grant.expires_at,
            };
            if stored_grant.tokens != e.delta || stored_grant.expires_at != expires_at {
                problems.push(format!(
                    "{who}: credit {} of {} ({:?}) made grant {id} of {} until {:?}; expected \
                     until {expires_at:?}",
                    e.id, e.delta, e.source, stored_grant.tokens, stored_grant.expires_at
                ));
            }
            grants.insert(
                id,
                Grant {
                    tokens: e.delta,
                    remaining,
                    expires_at,
                    rollover: match &purchase {
                        Some(p) if p.rolled => None,
                        _ => stored_grant.rollover,
                    },
                    rolled: false,
                    expired: false,
                },
            );
            if !recorded.is_empty() {
                problems.push(format!("{who}: credit {} drew {recorded:?}", e.id));
            }
        } else if e.source == Source::Expiry {
            let Some(id) = e
                .key
                .strip_prefix("expiry:grant:")
                .and_then(|k| k.trim_end_matches(":rolled").parse::<i64>().ok())
            else {
                problems.push(format!("{who}: expiry {} names no grant: {}", e.id, e.key));
                continue;
            };
            let Some(g) = grants.get_mut(&id) else {
                problems.push(format!("{who}: expiry {} of grant {id}, never made", e.id));
                continue;
            };
            let lapsed = match g.rollover {
                Some((cap, period)) if !g.rolled => {
                    let kept = g.remaining.min(cap);
                    let lapsed = g.remaining - kept;
                    g.remaining = kept;
                    g.rolled = true;
                    g.expires_at = g.expires_at.map(|at| at + period);
                    lapsed
                }
                _ => {
                    g.expired = true;
                    std::mem::take(&mut g.remaining)
                }
            };
            if -e.delta != lapsed || recorded != BTreeMap::from([(id, lapsed)]) {
                problems.push(format!(
                    "{who}: expiry {} took {} (drawn {recorded:?}) where grant {id} had {lapsed} \
                     to lapse",
                    e.id, -e.delta
                ));
            }
            if g.expires_at.is_none_or(|at| at > e.created_at) && g.expired {
                problems.push(format!(
                    "{who}: grant {id} expired at {} before its end",
                    e.created_at
                ));
            }
        } else {
            let first = if matches!(e.source, Source::StripeRefund | Source::StripeDispute) {
                e.reverses.and_then(|p| grant_of(p).map(|(id, _)| id))
            } else {
                None
            };
            let expected = draw(&mut grants, -e.delta, first);
            let drawn: i64 = expected.values().sum();
            let may_owe = matches!(
                e.source,
                Source::StripeRefund | Source::StripeDispute | Source::Capture
            );
            if drawn < -e.delta && !may_owe {
                problems.push(format!(
                    "{who}: entry {} ({:?}) spent {} where the grants had {drawn}",
                    e.id, e.source, -e.delta
                ));
            }
            if recorded != expected {
                problems.push(format!(
                    "{who}: entry {} ({:?}, {}) drew {recorded:?}; soonest-expiring first draws \
                     {expected:?}",
                    e.id, e.source, e.delta
                ));
            }
        }
        let left: i64 = grants
            .values()
            .filter(|g| !g.expired)
            .map(|g| g.remaining)
            .sum();
        if left != balance.max(0) {
            problems.push(format!(
                "{who}: after entry {} the balance is {balance} but the grants have {left} left",
                e.id
            ));
        }
    }
    for (id, (_, s)) in &stored {
        if let Some(g) = grants.get(id)
            && !g.expired
            && g.remaining != s.remaining
        {
            problems.push(format!(
                "{who}: grant {id} has {} left; its entries leave {}",
                s.remaining, g.remaining
            ));
        }
    }
    problems
}

/// A plan grant whose end has come with something left, but no more than its cap, keeps it
/// all for one more period, with no entry (nothing lapsed). One with nothing left just ends.
fn roll_silently(grants: &mut BTreeMap<i64, Grant>, now: i64) {
    for g in grants.values_mut() {
        if let (Some((cap, period)), false, Some(at)) = (g.rollover, g.rolled, g.expires_at)
            && at <= now
            && !g.expired
            && g.remaining > 0
            && g.remaining <= cap
        {
            g.rolled = true;
            g.expires_at = Some(at + period);
        }
    }
}

/// Draws `tokens` in the reference order: `first`'s grant first, then the soonest to expire
/// (never last), then the oldest. What each grant gave.
fn draw(grants: &mut BTreeMap<i64, Grant>, tokens: i64, first: Option<i64>) -> BTreeMap<i64, i64> {
    let mut order: Vec<i64> = grants
        .iter()
        .filter(|(_, g)| !g.expired && g.remaining > 0)
        .map(|(id, _)| *id)
        .collect();
    order.sort_by_key(|id| {
        let g = &grants[id];
        (
            Some(*id) != first,
            g.expires_at.is_none(),
            g.expires_at,
            *id,
        )
    });
    let mut wanted = tokens;
    let mut taken = BTreeMap::new();
    for id in order {
        if wanted == 0 {
            break;
        }
        let g = grants.get_mut(&id).unwrap();
        let take = g.remaining.min(wanted);
        g.remaining -= take;
        wanted -= take;
        taken.insert(id, take);
    }
    taken
}
