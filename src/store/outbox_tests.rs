//! Outgoing events as the store keeps them: written with the change that caused them (never
//! for one refused or replayed), once per crossing of a threshold, only for endpoints
//! registered when they happened (and not sent while one is disabled), delivered one user's
//! in order, under claims, retried, given up and replayed; grants about to expire and expired.

use std::sync::Arc;
use std::time::Duration;

use sqlx::Row;

use super::credit_tests::{credit, hold, spend, user};
use super::tests::{key, reason, tokens};
use super::*;
use crate::clock::{Clock, ManualClock};
use crate::domain::{GrantTerms, Timestamp};
use crate::outbox::{AfterAttempt, DeliveryState, EventKind, new_endpoint_secret};
use crate::testing::clocked_contract;

clocked_contract!(
    events_come_with_their_change_and_never_with_a_refused_or_replayed_one,
    going_under_the_threshold_is_one_event_per_crossing,
    an_endpoint_gets_what_happens_while_it_is_registered,
    a_late_attempt_under_a_claim_that_ran_out_changes_nothing,
    one_users_deliveries_keep_their_order_and_a_failure_holds_back_only_that_user,
    a_delivery_given_up_lets_the_next_go_and_is_sent_again_on_replay,
    grants_about_to_expire_and_expired_are_events,
);

const LEASE: Duration = Duration::from_secs(60);

/// The kinds of the user's events, in order.
async fn kinds(store: &SqlStore, user: UserId) -> Vec<&'static str> {
    sqlx::query("SELECT kind FROM outbox_events WHERE user_id = $1 ORDER BY id")
        .bind(user.get())
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|row| {
            EventKind::parse(&row.get::<String, _>("kind"))
                .unwrap()
                .as_str()
        })
        .collect()
}

async fn endpoint(store: &SqlStore, name: &str) -> i64 {
    store
        .add_endpoint(
            &format!("http://127.0.0.1:9/{name}"),
            &new_endpoint_secret(),
            name,
        )
        .await
        .unwrap()
        .id
}

fn failed_at(now: Timestamp, retry_at: Timestamp) -> Attempted {
    Attempted {
        at: now,
        status: Some(500),
        error: Some("answered 500".into()),
        duration_ms: 3,
        next: AfterAttempt::RetryAt(retry_at),
    }
}

fn delivered_at(now: Timestamp) -> Attempted {
    Attempted {
        at: now,
        status: Some(204),
        error: None,
        duration_ms: 2,
        next: AfterAttempt::Delivered,
    }
}

/// What `claim_deliveries` hands out now, endpoint by endpoint.
async fn claimed(store: &SqlStore, now: Timestamp) -> Vec<DueDelivery> {
    let mut due = Vec::new();
    for endpoint in store.endpoints().await.unwrap() {
        due.extend(
            store
                .claim_deliveries(now, endpoint.id, 100, LEASE)
                .await
                .unwrap(),
        );
    }
    due
}

async fn events_come_with_their_change_and_never_with_a_refused_or_replayed_one(
    store: Arc<SqlStore>,
    _clock: ManualClock,
) {
    let ada = user(&store, "ada@example.com").await;
    credit(&store, ada, 1000, "before", GrantTerms::NEVER).await;
    assert_eq!(
        kinds(&store, ada).await,
        Vec::<&str>::new(),
        "no endpoint, no ledger events"
    );

    endpoint(&store, "backend").await;
    let pack = credit(&store, ada, 1000, "pack", GrantTerms::NEVER).await;
    let spent = spend(&store, ada, 100, "c1").await.unwrap();
    assert!(spend(&store, ada, 100, "c1").await.unwrap().replayed);
    assert!(spend(&store, ada, 5000, "c2").await.is_err());
    let batch = store
        .post_batch(&[
            crate::ledger::Debit::new(ada, tokens(50), reason("usage"), key("b1")),
            crate::ledger::Debit::new(ada, tokens(50), reason("usage"), key("c1")),
            crate::ledger::Debit::new(ada, tokens(9000), reason("usage"), key("b2")),
        ])
        .await
        .unwrap();
    assert!(batch[0].is_ok() && batch[1].is_err() && batch[2].is_err());

    let entries: Vec<i64> = sqlx::query_scalar(
        "SELECT entry_id FROM outbox_events WHERE user_id = $1 AND kind = 'ledger.entry_created' \
         ORDER BY id",
    )
    .bind(ada.get())
    .fetch_all(store.pool())
    .await
    .unwrap();
    let batched = batch[0].as_ref().unwrap().entry.id.get();
    assert_eq!(
        entries,
        [pack.entry.id.get(), spent.entry.id.get(), batched],
        "one event per ledger row written, none for the replay or the refusals"
    );
}

async fn going_under_the_threshold_is_one_event_per_crossing(
    store: Arc<SqlStore>,
    _clock: ManualClock,
) {
    let ada = user(&store, "ada@example.com").await;
    store
        .set_low_balance_threshold(ada, Some(tokens(500)))
        .await
        .unwrap();
    credit(&store, ada, 1000, "pack", GrantTerms::NEVER).await;
    spend(&store, ada, 400, "c1").await.unwrap(); // 600
    // Applied again, it would go under; replayed, it changes nothing and crosses nothing.
    assert!(spend(&store, ada, 400, "c1").await.unwrap().replayed);
    assert_eq!(kinds(&store, ada).await, Vec::<&str>::new());
    spend(&store, ada, 200, "c2").await.unwrap(); // 400: under
    spend(&store, ada, 100, "c3").await.unwrap(); // 300: still under
    assert_eq!(kinds(&store, ada).await, ["balance.low"]);
    let (available, threshold): (i64, i64) = {
        let row = sqlx::query("SELECT tokens, threshold FROM outbox_events WHERE user_id = $1")
            .bind(ada.get())
            .fetch_one(store.pool())
            .await
            .unwrap();
        (row.get("tokens"), row.get("threshold"))
    };
    assert_eq!((available, threshold), (400, 500));

    credit(&store, ada, 1000, "another", GrantTerms::NEVER).await; // 1300: over again
    let opened = store.open_hold(&hold(ada, 900, "h1", LEASE)).await.unwrap(); // 400 available: under, by a hold
    assert_eq!(kinds(&store, ada).await, ["balance.low", "balance.low"]);
    store.release_hold(opened.hold.id, None).await.unwrap();

    // A batch that goes under once is one event; running out is another.
    let items = store
        .post_batch(&[
            crate::ledger::Debit::new(ada, tokens(500), reason("usage"), key("b1")),
            crate::ledger::Debit::new(ada, tokens(500), reason("usage"), key("b2")),
            crate::ledger::Debit::new(ada, tokens(300), reason("usage"), key("b3")),
        ])
        .await
        .unwrap();
    assert!(items.iter().all(Result::is_ok));
    assert_eq!(
        kinds(&store, ada).await,
        [
            "balance.low",
            "balance.low",
            "balance.low",
            "balance.depleted"
        ]
    );
    store.set_low_balance_threshold(ada, None).await.unwrap();
    credit(&store, ada, 100, "small", GrantTerms::NEVER).await;
    spend(&store, ada, 60, "c4").await.unwrap();
    assert_eq!(kinds(&store, ada).await.len(), 4, "no threshold, no event");
}

async fn an_endpoint_gets_what_happens_while_it_is_registered(
    store: Arc<SqlStore>,
    clock: ManualClock,
) {
    let ada = user(&store, "ada@example.com").await;
    let first = endpoint(&store, "first").await;
    credit(&store, ada, 1000, "pack one", GrantTerms::NEVER).await;
    clock.advance(Duration::from_secs(1));
    assert!(store.disable_endpoint(first).await.unwrap());
    assert!(!store.disable_endpoint(first).await.unwrap(), "once");
    clock.advance(Duration::from_secs(1));
    let second = endpoint(&store, "second").await;
    clock.advance(Duration::from_secs(1));
    credit(&store, ada, 1000, "pack two", GrantTerms::NEVER).await;

    assert_eq!(store.fan_out_events(clock.now(), 100).await.unwrap(), 2);
    assert_eq!(store.fan_out_events(clock.now(), 100).await.unwrap(), 0);
    let due = claimed(&store, clock.now()).await;
    let got: Vec<(i64, String)> = due
        .iter()
        .map(|d| match &d.event.detail {
            crate::outbox::EventDetail::Entry(entry) => (d.endpoint.id, entry.reason.clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        got,
        [(second, "pack two".to_owned())],
        "the first endpoint's pack one waits, not sent, while it is disabled"
    );
    let pending: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM webhook_deliveries WHERE endpoint_id = $1 AND state = 'pending'",
    )
    .bind(first)
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(pending, 1);
}

async fn a_late_attempt_under_a_claim_that_ran_out_changes_nothing(
    store: Arc<SqlStore>,
    clock: ManualClock,
) {
    let ada = user(&store, "ada@example.com").await;
    endpoint(&store, "backend").await;
    credit(&store, ada, 1000, "pack", GrantTerms::NEVER).await;
    store.fan_out_events(clock.now(), 100).await.unwrap();
    let slow = claimed(&store, clock.now()).await.remove(0);
    clock.advance(LEASE + Duration::from_secs(1));
    let again = claimed(&store, clock.now()).await.remove(0);
    assert_eq!(again.id, slow.id, "the claim ran out: claimed again");

    store
        .record_attempt(&slow, &failed_at(clock.now(), clock.now()))
        .await
        .unwrap();
    store
        .record_attempt(&again, &delivered_at(clock.now()))
        .await
        .unwrap();
    let states: Vec<(Option<u16>, DeliveryState)> = store
        .delivery_log(None, 10)
        .await
        .unwrap()
        .iter()
        .map(|a| (a.status, a.state))
        .collect();
    assert_eq!(
        states,
        [
            (Some(204), DeliveryState::Delivered),
            (Some(500), DeliveryState::Delivered),
        ],
        "both attempts logged; only the one under the live claim moved the delivery"
    );
    store
        .record_attempt(&slow, &failed_at(clock.now(), clock.now()))
        .await
        .unwrap();
    assert!(
        claimed(&store, clock.now()).await.is_empty(),
        "a late failure does not make a delivered event pending again"
    );
}

async fn one_users_deliveries_keep_their_order_and_a_failure_holds_back_only_that_user(
    store: Arc<SqlStore>,
    clock: ManualClock,
) {
    let ada = user(&store, "ada@example.com").await;
    let bob = user(&store, "bob@example.com").await;
    endpoint(&store, "backend").await;
    credit(&store, ada, 1000, "ada's pack", GrantTerms::NEVER).await;
    spend(&store, ada, 10, "c1").await.unwrap();
    credit(&store, bob, 1000, "bob's pack", GrantTerms::NEVER).await;
    let now = clock.now();
    store.fan_out_events(now, 100).await.unwrap();

    let first = claimed(&store, now).await;
    let users: Vec<UserId> = first.iter().map(|d| d.event.user).collect();
    assert_eq!(users, [ada, bob], "each user's earliest event only");
    assert!(claimed(&store, now).await.is_empty(), "claimed: not again");

    let retry_at = Timestamp::from_millis(now.as_millis() + 30_000);
    store
        .record_attempt(&first[0], &failed_at(now, retry_at))
        .await
        .unwrap();
    store
        .record_attempt(&first[1], &delivered_at(now))
        .await
        .unwrap();
    assert!(
        claimed(&store, now).await.is_empty(),
        "ada's spend waits behind her credit"
    );
    clock.advance(Duration::from_secs(31));
    let again = claimed(&store, clock.now()).await;
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id, again[0].attempts), (first[0].id, 1));
    store
        .record_attempt(&again[0], &delivered_at(clock.now()))
        .await
        .unwrap();
    let next = claimed(&store, clock.now()).await;
    assert_eq!(next.len(), 1);
    assert!(
        matches!(&next[0].event.detail, crate::outbox::EventDetail::Entry(e) if e.delta.get() == -10)
    );

    let log = store.delivery_log(None, 10).await.unwrap();
    let lines: Vec<(Option<u16>, DeliveryState)> =
        log.iter().map(|a| (a.status, a.state)).collect();
    assert_eq!(
        lines,
        [
            (Some(204), DeliveryState::Delivered),
            (Some(204), DeliveryState::Delivered),
            (Some(500), DeliveryState::Delivered),
        ],
        "newest first, each attempt with its answer"
    );
}

async fn a_delivery_given_up_lets_the_next_go_and_is_sent_again_on_replay(
    store: Arc<SqlStore>,
    clock: ManualClock,
) {
    let ada = user(&store, "ada@example.com").await;
    let backend = endpoint(&store, "backend").await;
    credit(&store, ada, 1000, "pack", GrantTerms::NEVER).await;
    spend(&store, ada, 10, "c1").await.unwrap();
    let now = clock.now();
    store.fan_out_events(now, 100).await.unwrap();
    let first = claimed(&store, now).await;
    store
        .record_attempt(
            &first[0],
            &Attempted {
                next: AfterAttempt::GiveUp,
                ..failed_at(now, now)
            },
        )
        .await
        .unwrap();
    let next = claimed(&store, now).await;
    assert_eq!(next.len(), 1, "the spend goes once the credit is given up");
    assert_ne!(next[0].id, first[0].id);

    clock.advance(Duration::from_secs(3600));
    assert_eq!(
        store
            .replay_deliveries(clock.now(), backend, ReplayScope::Failed)
            .await
            .unwrap(),
        1
    );
    let replayed = claimed(&store, clock.now()).await;
    assert_eq!(replayed.len(), 1);
    assert_eq!(replayed[0].id, first[0].id);
    assert_eq!(replayed[0].retrying_since, clock.now(), "three more days");
}

async fn grants_about_to_expire_and_expired_are_events(store: Arc<SqlStore>, clock: ManualClock) {
    const DAY: Duration = Duration::from_secs(86_400);
    let ada = user(&store, "ada@example.com").await;
    let ends = Timestamp::from_millis(clock.now().as_millis() + 10 * DAY.as_millis() as i64);
    credit(&store, ada, 1000, "pack", GrantTerms::expiring_at(ends)).await;
    spend(&store, ada, 300, "c1").await.unwrap();
    assert_eq!(store.warn_expiring_grants(100).await.unwrap(), 0);
    clock.advance(DAY * 4); // 6 days left
    assert_eq!(store.warn_expiring_grants(100).await.unwrap(), 1);
    assert_eq!(store.warn_expiring_grants(100).await.unwrap(), 0, "once");
    clock.advance(DAY * 5); // 1 day left
    assert_eq!(store.warn_expiring_grants(100).await.unwrap(), 1);
    assert_eq!(store.warn_expiring_grants(100).await.unwrap(), 0, "once");
    clock.advance(DAY * 2);
    assert_eq!(store.balance(ada).await.unwrap().get(), 0);
    assert_eq!(
        kinds(&store, ada).await,
        [
            "grant.expiring",
            "grant.expiring",
            "balance.depleted",
            "grant.expired"
        ],
        "the expiry took what was left: nothing is available"
    );
    let left: Vec<i64> =
        sqlx::query_scalar("SELECT tokens FROM outbox_events WHERE user_id = $1 ORDER BY id")
            .bind(ada.get())
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(left, [700, 700, 0, 700]);
}
