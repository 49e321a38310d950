//! Events sent to the product's backend: signed, in order, retried until the endpoint
//! recovers, and never in the way of the ledger.

use std::time::Duration;

use billing::outbox::{DeliveryState, EventKind};
use serde_json::json;

use crate::support::wait::eventually;
use crate::support::{Receiver, TestApp, spawn_app, spawn_app_on_postgres};

async fn register(app: &TestApp, receiver: &Receiver) -> i64 {
    app.store
        .add_endpoint(&receiver.url, &receiver.secret, "backend")
        .await
        .unwrap()
        .id
}

/// How many attempts to `endpoint` the node has recorded.
async fn attempts(app: &TestApp, endpoint: i64) -> usize {
    app.store
        .delivery_log(Some(endpoint), 100)
        .await
        .unwrap()
        .len()
}

async fn consume(app: &TestApp, key: &str, user: i64, tokens: i64, request: &str) {
    let body = json!({ "user": user, "tokens": tokens, "reason": "Chat" });
    let answer = app.service(key).consume(request, &body).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
}

#[tokio::test]
async fn every_ledger_row_reaches_the_backend_signed_and_in_order() {
    every_ledger_row_reaches_the_backend_signed_and_in_order_on(&spawn_app().await).await;
}

#[tokio::test]
async fn every_ledger_row_reaches_the_backend_signed_and_in_order_on_postgres() {
    if let Some(app) = spawn_app_on_postgres().await {
        every_ledger_row_reaches_the_backend_signed_and_in_order_on(&app).await;
    }
}

async fn every_ledger_row_reaches_the_backend_signed_and_in_order_on(app: &TestApp) {
    let receiver = Receiver::start().await;
    register(app, &receiver).await;
    let ada = app.user_with_tokens("ada@example.com", 1000).await;
    let key = app.api_key().await;
    for (i, tokens) in [100, 250, 50].into_iter().enumerate() {
        consume(app, &key, ada.id.get(), tokens, &format!("r{i}")).await;
    }

    eventually("four events at the backend", async || {
        receiver.received().len() == 4
    })
    .await;
    let got = receiver.received();
    assert!(got.iter().all(|r| r.verified), "{got:?}");
    assert!(got.iter().all(|r| r.kind == "ledger.entry_created"));
    let balances: Vec<i64> = got
        .iter()
        .map(|r| r.body["data"]["entry"]["balance_after"].as_i64().unwrap())
        .collect();
    assert_eq!(
        balances,
        [1000, 900, 650, 600],
        "as each entry left it, in order"
    );
    assert_eq!(got[1].body["data"]["entry"]["source"], "consume");
    assert_eq!(got[1].body["data"]["user"], ada.id.get());
    let mut ids: Vec<&str> = got.iter().map(|r| r.id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 4, "one webhook-id per event");
}

#[tokio::test]
async fn a_failing_endpoint_is_retried_until_it_recovers_and_the_order_holds() {
    a_failing_endpoint_is_retried_until_it_recovers_and_the_order_holds_on(&spawn_app().await)
        .await;
}

#[tokio::test]
async fn a_failing_endpoint_is_retried_until_it_recovers_and_the_order_holds_on_postgres() {
    if let Some(app) = spawn_app_on_postgres().await {
        a_failing_endpoint_is_retried_until_it_recovers_and_the_order_holds_on(&app).await;
    }
}

async fn a_failing_endpoint_is_retried_until_it_recovers_and_the_order_holds_on(app: &TestApp) {
    let receiver = Receiver::answering(&[500, 503]).await;
    let endpoint = register(app, &receiver).await;
    let ada = app.user_with_tokens("ada@example.com", 1000).await;
    let key = app.api_key().await;
    consume(app, &key, ada.id.get(), 100, "r1").await;

    // The clock moves only once an attempt is recorded: its retry is set from the moment
    // the answer came, and a clock moved before that would push the retry past the test.
    eventually("the first attempt, recorded", async || {
        attempts(app, endpoint).await == 1
    })
    .await;
    // The spend waits behind the credit that failed; nothing more until the wait is over.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.received().len(), 1);
    app.clock.advance(Duration::from_secs(31));
    eventually("the second attempt, recorded", async || {
        attempts(app, endpoint).await == 2
    })
    .await;
    app.clock.advance(Duration::from_secs(61));
    eventually("the credit, then the spend, recorded", async || {
        attempts(app, endpoint).await == 4
    })
    .await;

    let got = receiver.received();
    let ids: Vec<&str> = got.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[1], ids[2], "the same event until it is taken");
    assert_ne!(ids[2], ids[3]);
    assert_eq!(got[3].body["data"]["entry"]["delta"], -100);

    let log = app.store.delivery_log(Some(endpoint), 10).await.unwrap();
    let answers: Vec<(Option<u16>, DeliveryState)> =
        log.iter().rev().map(|a| (a.status, a.state)).collect();
    assert_eq!(
        answers,
        [
            (Some(500), DeliveryState::Delivered),
            (Some(503), DeliveryState::Delivered),
            (Some(204), DeliveryState::Delivered),
            (Some(204), DeliveryState::Delivered),
        ]
    );
}

#[tokio::test]
async fn a_dead_endpoint_holds_up_neither_the_ledger_nor_another_endpoint() {
    let app = spawn_app().await;
    let dead = Receiver::hanging().await;
    let alive = Receiver::start().await;
    register(&app, &dead).await;
    register(&app, &alive).await;
    // More users than the node has requests: each user's first event goes to the dead
    // endpoint at once, and it may hold only a few of them.
    let mut users = Vec::new();
    for n in 0..20 {
        users.push(
            app.user_with_tokens(&format!("user{n}@example.com"), 500)
                .await,
        );
    }
    eventually("the dead endpoint holding requests", async || {
        dead.received().len() == 4
    })
    .await;

    let key = app.api_key().await;
    for (n, user) in users.iter().enumerate() {
        consume(&app, &key, user.id.get(), 10, &format!("r{n}")).await;
    }
    eventually("every event at the live endpoint", async || {
        alive.received().len() == 40
    })
    .await;
    assert_eq!(
        dead.received().len(),
        4,
        "the dead one holds four requests, and the rest wait behind them"
    );
    for user in &users {
        assert_eq!(app.balance(user).await, 490);
    }
}

#[tokio::test]
async fn every_kind_of_event_reaches_the_backend_signed_as_it_happens() {
    use billing::domain::{GrantTerms, IdempotencyKey, Reason, Source, Timestamp, Tokens};
    use billing::ledger::Posting;

    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    register(&app, &receiver).await;
    let ada = app.user("ada").await;
    let id = ada.me().id;
    const DAY: Duration = Duration::from_secs(86_400);
    let ends = Timestamp::from_millis(
        billing::clock::Clock::now(&app.clock).as_millis() + 10 * DAY.as_millis() as i64,
    );
    let pack = Posting::credit(
        id,
        Tokens::new(300).unwrap(),
        Source::StripeCheckout,
        Reason::parse("Pack").unwrap(),
        IdempotencyKey::scoped("stripe:checkout", "pack").unwrap(),
    )
    .expiring(GrantTerms::expiring_at(ends));
    app.store.post(pack).await.unwrap();
    app.store
        .set_low_balance_threshold(id, Some(Tokens::new(200).unwrap()))
        .await
        .unwrap();
    let key = app.api_key().await;
    consume(&app, &key, id.get(), 150, "r1").await; // 150: under the mark
    app.clock.advance(DAY * 4); // six days left
    app.store.warn_expiring_grants(100).await.unwrap();
    app.clock.advance(DAY * 7); // expired: nothing left
    app.store.settle_expiries(100).await.unwrap();

    // Auto top-up: under its mark already, so a pack is bought as soon as the card is saved;
    // then a declining card, and a spend under the mark.
    let chosen = ada
        .post_json(
            "/api/billing/auto-topup/choose",
            json!({ "below": 500, "pack": "small", "monthly_cap": 5000 }),
        )
        .await;
    assert_eq!(chosen.status, 200, "{}", chosen.text);
    crate::auto_topup::save_card(&app, &ada, "succeeds").await;
    eventually("the top-up credited", async || {
        app.balance(ada.me()).await == 1000
    })
    .await;
    crate::auto_topup::save_card(&app, &ada, "declines").await;
    consume(&app, &key, id.get(), 600, "r2").await; // 400: under the mark
    eventually("the top-up declined", async || {
        receiver.received().iter().any(|r| r.kind == "topup.failed")
    })
    .await;

    eventually("every kind at the backend", async || {
        let kinds: Vec<String> = receiver.received().iter().map(|r| r.kind.clone()).collect();
        EventKind::ALL
            .iter()
            .all(|kind| kinds.iter().any(|k| k == kind.as_str()))
    })
    .await;
    let got = receiver.received();
    assert!(got.iter().all(|r| r.verified), "{got:?}");
    let first = |kind: &str| {
        got.iter()
            .find(|r| r.kind == kind)
            .map(|r| r.body["data"].clone())
            .unwrap()
    };
    assert_eq!(first("balance.low")["available"], 150);
    assert_eq!(first("balance.low")["threshold"], 200);
    assert_eq!(first("grant.expiring")["tokens_left"], 150);
    assert_eq!(first("grant.expired")["tokens_expired"], 150);
    assert_eq!(first("balance.depleted")["available"], 0);
    assert_eq!(first("topup.succeeded")["tokens"], 1000);
    assert!(first("topup.succeeded")["entry"].is_i64());
    assert_eq!(first("topup.failed")["reason"], "declined");
    // One user's events in the order they happened.
    let order: Vec<&str> = got
        .iter()
        .map(|r| r.kind.as_str())
        .filter(|k| *k != "ledger.entry_created")
        .collect();
    assert_eq!(
        order,
        [
            "balance.low",
            "grant.expiring",
            "balance.depleted",
            "grant.expired",
            "topup.succeeded",
            "topup.failed"
        ],
        "400 left is over the low-balance mark (200), under auto top-up's (500)"
    );
}
