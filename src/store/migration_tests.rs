//! Migrations that remake what other rows point at keep every row and every link: a database
//! migrated by an older build still works after them.

use sqlx::Row;

use super::*;
use crate::config::DatabaseTarget;
use crate::domain::{Timestamp, Tokens};

/// A database migrated by the build before `version`, with `rows` written into it.
async fn migrated_before(target: &DatabaseTarget, backend: Backend, version: i64, rows: &str) {
    let dir = tempfile::tempdir().unwrap();
    for migration in backend.migrator().iter().filter(|m| m.version < version) {
        let name = format!(
            "{:04}_{}.sql",
            migration.version,
            migration.description.replace(' ', "_")
        );
        std::fs::write(dir.path().join(name), migration.sql.as_bytes()).unwrap();
    }
    let url = match target {
        DatabaseTarget::Sqlite { path } => format!("sqlite://{}?mode=rwc", path.display()),
        DatabaseTarget::Postgres { url } => url.expose().to_owned(),
    };
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::migrate::Migrator::new(dir.path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    sqlx::raw_sql(rows).execute(&pool).await.unwrap();
    pool.close().await;
}

/// Migration 8 remakes SQLite's outbox (and changes PostgreSQL's constraint) for the top-up
/// kinds: events, the deliveries and notices that point at them, and the ids still to come
/// are as they were.
async fn the_outbox_survives_migration_8(target: DatabaseTarget, backend: Backend) {
    migrated_before(
        &target,
        backend,
        8,
        "INSERT INTO users (id, email, role, created_at) VALUES (1, 'ada@example.com', 'user', 0);
         INSERT INTO token_balances (user_id, balance, updated_at, low_balance_below)
             VALUES (1, 400, 0, 500);
         INSERT INTO webhook_endpoints (id, url, secret, created_at)
             VALUES (1, 'http://127.0.0.1:9/hooks', 'whsec_abc', 0);
         INSERT INTO outbox_events (user_id, kind, tokens, threshold, created_at, fanned_out)
             VALUES (1, 'balance.low', 400, 500, 0, 1);
         INSERT INTO outbox_events (user_id, kind, tokens, created_at) VALUES
             (1, 'balance.depleted', 0, 0);
         DELETE FROM outbox_events WHERE kind = 'balance.depleted';
         INSERT INTO webhook_deliveries (endpoint_id, event_id, user_id, state, retrying_since,
             next_attempt_at, created_at)
             SELECT 1, id, 1, 'delivered', 0, 0, 0 FROM outbox_events;",
    )
    .await;
    // (Migration 7's trigger wrote the event's notice.) Event 1 is kept; event 2 is gone, and
    // its id is never given again.

    let store = connect(&target).await.expect("migration 8 applies");
    let user = UserId::new(1).unwrap();
    let notices = store.notices_of(user, 10).await.unwrap();
    assert_eq!(notices.len(), 1);
    assert_eq!(
        notices[0].event.id, 1,
        "the notice still points at its event"
    );
    let linked: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM webhook_deliveries d JOIN outbox_events o ON o.id = d.event_id",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(linked, 1, "the delivery still points at its event");

    // A new event takes an id after the old ones, and the triggers write it as before.
    store
        .set_low_balance_threshold(user, Some(Tokens::new(100).unwrap()))
        .await
        .unwrap();
    sqlx::query("UPDATE token_balances SET balance = 50, updated_at = $2 WHERE user_id = $1")
        .bind(user.get())
        .bind(Timestamp::from_millis(1).as_millis())
        .execute(store.pool())
        .await
        .unwrap();
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM outbox_events WHERE kind = 'balance.low' ORDER BY id")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids, [1, 3], "after the last id ever given");
    assert_eq!(store.notices_of(user, 10).await.unwrap().len(), 2);
    // The top-up kinds are allowed now.
    let row = sqlx::query(
        "INSERT INTO outbox_events (user_id, kind, tokens, created_at, detail) \
         VALUES (1, 'topup.failed', 1000, 2, 'declined') RETURNING id",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert!(row.try_get::<i64, _>("id").unwrap() > ids[1]);
}

#[tokio::test]
async fn the_outbox_survives_migration_8_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let target = DatabaseTarget::Sqlite {
        path: dir.path().join("billing.sqlite3"),
    };
    the_outbox_survives_migration_8(target, Backend::Sqlite).await;
}

#[tokio::test]
async fn the_outbox_survives_migration_8_on_postgres() {
    if let Some(target) = crate::testing::empty_postgres().await {
        the_outbox_survives_migration_8(target, Backend::Postgres).await;
    }
}
