//! The server's background jobs run by themselves, on their schedule: nothing here calls
//! them. Their timers are tokio's, so a test moves tokio's clock on (for a moment) instead of
//! waiting minutes; the rest of the app keeps real time.

use std::time::Duration;

use billing::domain::{Currency, HoldId, HoldState, IdempotencyKey, Money, Reason, Source, Tokens};
use billing::ledger::{Posting, StripeRefs};
use billing::testing::StripeEvent;

use crate::support::{TestApp, spawn_app};

/// The minute sweep's period and the session clean-up's (`server/src/startup.rs`,
/// `server/src/session.rs`).
const SWEEP_PERIOD: Duration = Duration::from_secs(60);
const CLEANUP_PERIOD: Duration = Duration::from_secs(300);

/// Moves tokio's clock on to `since_start` after the app was built (every timer due by then
/// fires), then lets it run in real time again.
async fn move_timers_to(app: &TestApp, since_start: Duration) {
    tokio::time::pause();
    let target = app.started + since_start;
    let now = tokio::time::Instant::now();
    if target > now {
        tokio::time::advance(target - now).await;
    }
    tokio::time::resume();
}

/// A moment of real time for a job that was due to do its work (it does it in milliseconds).
async fn a_moment() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}

async fn session_rows(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM sessions")
        .fetch_one(&mut app.sqlite().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn expired_sessions_are_deleted_by_themselves_every_five_minutes() {
    let app = spawn_app().await;
    app.user("ada").await;
    app.user("bob").await;
    assert_eq!(session_rows(&app).await, 2);
    // One of the two sessions expires; the other is still good.
    let expired = sqlx::query(
        "UPDATE sessions SET expiry_date = $1 WHERE id = (SELECT id FROM sessions LIMIT 1)",
    )
    .bind(time::OffsetDateTime::now_utc() - time::Duration::SECOND)
    .execute(&mut app.sqlite().await)
    .await
    .unwrap();
    assert_eq!(expired.rows_affected(), 1);

    // Not yet: the clean-up ran as the server started, and runs again five minutes on.
    move_timers_to(&app, CLEANUP_PERIOD - Duration::from_secs(1)).await;
    a_moment().await;
    assert_eq!(session_rows(&app).await, 2, "deleted before its time");

    move_timers_to(&app, CLEANUP_PERIOD + Duration::from_secs(1)).await;
    crate::support::eventually_within(
        "the clean-up to delete the expired session",
        Duration::from_secs(10),
        Duration::from_millis(50),
        async || session_rows(&app).await == 1,
    )
    .await;
    a_moment().await;
    assert_eq!(session_rows(&app).await, 1, "the live session is kept");
}

/// The payment the fixture dispute is about (`charge_dispute_created.json`: 40.00 USD).
const DISPUTED_PAYMENT: &str = "pi_3QfJ8jLkdIwHu7ix0x9Y";

#[tokio::test]
async fn the_minute_sweep_applies_held_back_events_by_itself() {
    let app = spawn_app().await;
    let ada = app.user_with_tokens("ada@example.com", 0).await;

    // A dispute arrives before its purchase: held back.
    let dispute = StripeEvent::dispute_created();
    assert_eq!(app.stripe_sends(&dispute).await.status, 200);
    assert_eq!(app.store.inbox_held().await.unwrap().len(), 1);

    // The purchase is credited by a transaction whose release never ran (the process died
    // right after its commit): no delivery will release the dispute now.
    app.store
        .post(
            Posting::credit(
                ada.id,
                Tokens::new(5_000).unwrap(),
                Source::StripeCheckout,
                Reason::parse("Medium pack (5,000 tokens)").unwrap(),
                IdempotencyKey::scoped("stripe:checkout", "cs_cut_short").unwrap(),
            )
            .with_stripe(StripeRefs {
                event_id: None,
                object_id: Some("cs_cut_short".into()),
                payment_intent: Some(DISPUTED_PAYMENT.into()),
            })
            .with_amount_paid(Money::new(4_000, Currency::parse("usd").unwrap()).unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(app.balance(&ada).await, 5_000);

    // Not yet: the sweep ran as the server started, and runs again a minute on.
    move_timers_to(&app, SWEEP_PERIOD - Duration::from_secs(1)).await;
    a_moment().await;
    assert_eq!(app.balance(&ada).await, 5_000, "swept before its time");
    assert_eq!(app.store.inbox_held().await.unwrap().len(), 1);

    move_timers_to(&app, SWEEP_PERIOD + Duration::from_secs(1)).await;
    app.settled("the sweep to apply the dispute", async || {
        app.balance(&ada).await == 0
    })
    .await;
    assert!(app.store.inbox_held().await.unwrap().is_empty());
    assert!(app.store.audit_balances().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_minute_sweep_expires_the_holds_of_users_who_do_nothing() {
    let app = spawn_app().await;
    let ada = app.user_with_tokens("ada@example.com", 1_000).await;
    let key = app.api_key().await;
    let body =
        serde_json::json!({ "user": ada.id, "tokens": 600, "ttl_secs": 1, "reason": "Render" });
    let opened = app.service(&key).open_hold("job-1", &body).await;
    assert_eq!(opened.status, 200, "{}", opened.text);
    let id = HoldId::new(opened.json()["hold_id"].as_i64().unwrap()).unwrap();
    let state = async || app.store.hold(id).await.unwrap().unwrap().state;
    let held = async || {
        sqlx::query_scalar::<_, i64>("SELECT held FROM token_balances WHERE user_id = $1")
            .bind(ada.id.get())
            .fetch_one(&mut app.sqlite().await)
            .await
            .unwrap()
    };

    // Its time passes; nobody asks about the user, so it stays open as stored...
    app.clock.advance(Duration::from_millis(1_200));
    move_timers_to(&app, SWEEP_PERIOD - Duration::from_secs(1)).await;
    a_moment().await;
    assert_eq!(state().await, HoldState::Open, "swept before its time");
    assert_eq!(held().await, 600);

    // ...until the minute sweep settles it.
    move_timers_to(&app, SWEEP_PERIOD + Duration::from_secs(1)).await;
    crate::support::eventually_within(
        "the sweep to expire the hold",
        Duration::from_secs(10),
        Duration::from_millis(50),
        async || state().await == HoldState::Expired,
    )
    .await;
    assert_eq!(held().await, 0);
    assert!(app.store.audit_credits().await.unwrap().is_empty());
}
