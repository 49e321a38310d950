//! What every server does in the background for as long as it runs: forgets idle rate-limit
//! keys, and each minute applies held-back Stripe events, settles the grants and holds whose
//! time has come, and writes the events of grants about to expire.

use std::sync::Arc;
use std::time::Duration;

use app::state::Limits;
use billing::fulfilment::Fulfilment;
use billing::store::Store;

/// The most users whose due expiries one round of the minute sweep settles; it goes on with
/// another round while rounds come back full, up to `EXPIRY_ROUNDS` a minute.
const EXPIRY_BATCH: i64 = 500;
const EXPIRY_ROUNDS: usize = 20;

/// How often idle rate-limit keys are forgotten.
const HOUSEKEEPING_PERIOD: Duration = Duration::from_secs(300);

/// How often the inbox is swept for held-back events whose purchase has been credited.
const RELEASE_PERIOD: Duration = Duration::from_secs(60);

/// Forgets idle rate-limit keys every few minutes.
pub fn spawn_housekeeping(limits: Limits) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(HOUSEKEEPING_PERIOD);
        loop {
            tick.tick().await;
            for limiter in limits.all() {
                if let Err(error) = limiter.forget_idle().await {
                    tracing::warn!(%error, "forgetting idle rate-limit keys failed");
                }
            }
        }
    });
}

/// The minute sweep: applies refunds and disputes held back for a purchase whose release was
/// cut short (see `Fulfilment::release_held`), and expires the grants and holds whose time has
/// come, so that those of users who do nothing expire too (a user's next posting or read
/// would settle them anyway). Every node sweeps; both are idempotent.
///
/// The first sweep is done before this returns (before the server serves), so that what was
/// left when the last process stopped is swept once as it starts, and the next sweep comes a
/// whole minute after it.
pub async fn start_release_sweep(fulfilment: Arc<Fulfilment>, store: Arc<dyn Store>) {
    sweep(&fulfilment, &*store).await;
    tokio::spawn(async move {
        let first = tokio::time::Instant::now() + RELEASE_PERIOD;
        let mut tick = tokio::time::interval_at(first, RELEASE_PERIOD);
        loop {
            tick.tick().await;
            sweep(&fulfilment, &*store).await;
        }
    });
}

async fn sweep(fulfilment: &Fulfilment, store: &dyn Store) {
    match fulfilment.release_held().await {
        Ok(0) => {}
        Ok(released) => tracing::info!(released, "applied held-back Stripe events"),
        Err(error) => tracing::warn!(%error, "sweeping held-back Stripe events failed"),
    }
    settle_expiries(store).await;
    warn_expiring_grants(store).await;
}

/// Settles the expiries that are due, [`EXPIRY_BATCH`] users at a time.
async fn settle_expiries(store: &dyn Store) {
    let mut users = 0;
    for _ in 0..EXPIRY_ROUNDS {
        match store.settle_expiries(EXPIRY_BATCH).await {
            Ok(settled) => {
                users += settled;
                if settled < EXPIRY_BATCH as u64 {
                    break;
                }
            }
            Err(error) => {
                tracing::warn!(%error, settled_before = users, "settling expired grants and holds failed");
                break;
            }
        }
    }
    if users > 0 {
        tracing::info!(users, "expired grants and holds that were due");
    }
}

/// Writes the `grant.expiring` events that are due (7 days and 1 day before a grant ends).
async fn warn_expiring_grants(store: &dyn Store) {
    match store.warn_expiring_grants(EXPIRY_BATCH).await {
        Ok(0) => {}
        Ok(warned) => tracing::info!(warned, "grants about to expire: events written"),
        Err(error) => tracing::warn!(%error, "writing the events of grants about to expire failed"),
    }
}
