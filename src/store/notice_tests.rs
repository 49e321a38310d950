//! Email notices as the store keeps them: one for each event a person is told about, written
//! in the transaction of the change (none for a change rolled back, a refusal or a replay),
//! claimed by one node at a time, retried, given up, and recorded only under a live claim.

use std::sync::Arc;
use std::time::Duration;

use super::credit_tests::{credit, spend, user};
use super::tests::tokens;
use super::*;
use crate::clock::{Clock, ManualClock};
use crate::domain::{GrantTerms, Timestamp};
use crate::outbox::{AfterAttempt, DeliveryState, EventKind};
use crate::testing::clocked_contract;

clocked_contract!(
    a_notice_comes_with_each_event_a_person_is_told_about_and_only_then,
    a_notice_is_claimed_by_one_node_retried_and_recorded_under_its_claim,
);

const LEASE: Duration = Duration::from_secs(60);

async fn notice_kinds(store: &SqlStore, user: UserId) -> Vec<EventKind> {
    let mut kinds: Vec<EventKind> = store
        .notices_of(user, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|notice| notice.event.kind)
        .collect();
    kinds.reverse();
    kinds
}

async fn a_notice_comes_with_each_event_a_person_is_told_about_and_only_then(
    store: Arc<SqlStore>,
    clock: ManualClock,
) {
    const DAY: i64 = 86_400_000;
    let ada = user(&store, "ada@example.com").await;
    store
        .set_low_balance_threshold(ada, Some(tokens(500)))
        .await
        .unwrap();
    assert_eq!(
        store.low_balance_threshold(ada).await.unwrap(),
        Some(tokens(500))
    );
    let ends = Timestamp::from_millis(clock.now().as_millis() + 10 * DAY);
    credit(&store, ada, 1000, "pack", GrantTerms::expiring_at(ends)).await;
    spend(&store, ada, 400, "c1").await.unwrap(); // 600
    assert!(spend(&store, ada, 5000, "c2").await.is_err(), "refused");
    assert!(spend(&store, ada, 400, "c1").await.unwrap().replayed);
    assert_eq!(notice_kinds(&store, ada).await, []);

    // A change that crosses the threshold but is rolled back leaves no notice.
    let mut tx = store.pool().begin().await.unwrap();
    sqlx::query("UPDATE token_balances SET balance = 100 WHERE user_id = $1")
        .bind(ada.get())
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(notice_kinds(&store, ada).await, []);

    spend(&store, ada, 200, "c3").await.unwrap(); // 400: under
    spend(&store, ada, 100, "c4").await.unwrap(); // 300: still under, no second notice
    spend(&store, ada, 300, "c5").await.unwrap(); // 0: depleted is a webhook, not a letter
    assert_eq!(notice_kinds(&store, ada).await, [EventKind::BalanceLow]);

    credit(&store, ada, 700, "more", GrantTerms::expiring_at(ends)).await;
    clock.advance(Duration::from_millis(4 * DAY as u64)); // 6 days left
    assert_eq!(store.warn_expiring_grants(100).await.unwrap(), 1);
    clock.advance(Duration::from_millis(5 * DAY as u64)); // 1 day left
    assert_eq!(store.warn_expiring_grants(100).await.unwrap(), 1);
    assert_eq!(
        notice_kinds(&store, ada).await,
        [
            EventKind::BalanceLow,
            EventKind::GrantExpiring,
            EventKind::GrantExpiring
        ]
    );
    let notices = store.notices_of(ada, 10).await.unwrap();
    assert!(
        notices
            .iter()
            .all(|n| n.state == DeliveryState::Pending && n.attempts == 0)
    );
}

async fn a_notice_is_claimed_by_one_node_retried_and_recorded_under_its_claim(
    store: Arc<SqlStore>,
    clock: ManualClock,
) {
    let ada = user(&store, "ada@example.com").await;
    store
        .set_low_balance_threshold(ada, Some(tokens(500)))
        .await
        .unwrap();
    credit(&store, ada, 1000, "pack", GrantTerms::NEVER).await;
    spend(&store, ada, 600, "c1").await.unwrap();

    let due = store.claim_notices(clock.now(), 10, LEASE).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].to.as_str(), "ada@example.com");
    assert_eq!(due[0].event.kind, EventKind::BalanceLow);
    assert!(
        store
            .claim_notices(clock.now(), 10, LEASE)
            .await
            .unwrap()
            .is_empty(),
        "claimed: another node leaves it alone"
    );

    let retry_at = Timestamp::from_millis(clock.now().as_millis() + 30_000);
    let failed = NoticeSent {
        at: clock.now(),
        error: Some("connection refused".into()),
        next: AfterAttempt::RetryAt(retry_at),
    };
    store.record_notice(&due[0], &failed).await.unwrap();
    assert!(
        store
            .claim_notices(clock.now(), 10, LEASE)
            .await
            .unwrap()
            .is_empty(),
        "not due before its retry"
    );
    clock.advance(Duration::from_secs(31));
    let again = store.claim_notices(clock.now(), 10, LEASE).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1);

    // The first claim's late answer changes nothing: the second claim holds it now.
    let late = NoticeSent {
        at: clock.now(),
        error: None,
        next: AfterAttempt::Delivered,
    };
    store.record_notice(&due[0], &late).await.unwrap();
    let record = &store.notices_of(ada, 1).await.unwrap()[0];
    assert_eq!((record.state, record.attempts), (DeliveryState::Pending, 1));
    assert_eq!(record.last_error.as_deref(), Some("connection refused"));

    store.record_notice(&again[0], &late).await.unwrap();
    let record = &store.notices_of(ada, 1).await.unwrap()[0];
    assert_eq!(
        (record.state, record.attempts),
        (DeliveryState::Delivered, 2)
    );
    assert_eq!(record.settled_at, Some(clock.now()));
    clock.advance(LEASE * 2);
    assert!(
        store
            .claim_notices(clock.now(), 10, LEASE)
            .await
            .unwrap()
            .is_empty(),
        "delivered: never sent again"
    );

    // Given up: settled as failed, not claimed again.
    spend(&store, ada, 1, "c2").await.unwrap();
    credit(&store, ada, 1000, "pack 2", GrantTerms::NEVER).await;
    spend(&store, ada, 1000, "c3").await.unwrap();
    let due = store.claim_notices(clock.now(), 10, LEASE).await.unwrap();
    assert_eq!(due.len(), 1);
    let refused = NoticeSent {
        at: clock.now(),
        error: Some("550 no such mailbox".into()),
        next: AfterAttempt::GiveUp,
    };
    store.record_notice(&due[0], &refused).await.unwrap();
    assert_eq!(
        store.notices_of(ada, 1).await.unwrap()[0].state,
        DeliveryState::Failed
    );
    clock.advance(LEASE * 2);
    assert!(
        store
            .claim_notices(clock.now(), 10, LEASE)
            .await
            .unwrap()
            .is_empty()
    );
}
