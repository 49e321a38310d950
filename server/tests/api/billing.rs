//! Checkout and the Customer Portal over HTTP, through the simulated Stripe's own pages and
//! its signed webhooks to the app.

use serde_json::{Value, json};

use crate::support::wait::eventually;
use crate::support::{Answer, Browser, TestApp, spawn_app};

async fn start_checkout(browser: &Browser, body: Value) -> Answer {
    browser
        .post_json("/api/billing/create-checkout-session", body)
        .await
}

/// Opens Checkout for `product` and pays by card on the simulator's page; returns the
/// session id.
async fn buy(browser: &Browser, product: &str) -> String {
    let started = start_checkout(browser, json!({ "product": product })).await;
    assert_eq!(started.status, 200, "{}", started.text);
    let started = started.json();
    let session = started["session_id"].as_str().unwrap().to_owned();
    let page = browser.get(started["url"].as_str().unwrap()).await;
    assert_eq!(page.status, 200);
    let paid = browser
        .post_form(
            &format!("/simulated-stripe/checkout/{session}/pay"),
            &[("method", "card")],
        )
        .await;
    assert_eq!(paid.status, 303);
    let back = paid.header("location").unwrap();
    assert!(back.ends_with(&format!("session_id={session}")), "{back}");
    session
}

/// The Customer Portal's URL, opened for the browser's user.
async fn open_portal(browser: &Browser) -> String {
    let portal = browser
        .post_json("/api/billing/create-portal-session", json!({}))
        .await;
    assert_eq!(portal.status, 200, "{}", portal.text);
    portal.json()["url"].as_str().unwrap().to_owned()
}

/// A JSON read the page makes, which must answer 200.
async fn read(browser: &Browser, path: &str) -> Value {
    let answer = browser.get(path).await;
    assert_eq!(answer.status, 200, "{path}: {}", answer.text);
    answer.json()
}

/// The Stripe events of a type in the app's inbox, as stored: id, payload, whether applied.
async fn inbox_of_type(app: &TestApp, kind: &str) -> Vec<(String, String, bool)> {
    sqlx::query_as::<_, (String, String, Option<i64>)>(
        "SELECT id, payload, processed_at FROM stripe_events WHERE type = $1",
    )
    .bind(kind)
    .fetch_all(&mut app.sqlite().await)
    .await
    .unwrap()
    .into_iter()
    .map(|(id, payload, processed)| (id, payload, processed.is_some()))
    .collect()
}

#[tokio::test]
async fn buying_a_pack_credits_it_once_from_the_webhook_and_the_success_page() {
    let app = spawn_app().await;
    let ada = app.user("ada").await;

    let session = buy(&ada, "medium").await;

    // Stripe's webhook is on its way as the browser comes back: wait until it is applied.
    // (The success page coming first is `stripe_live`'s, where the test delivers events.)
    let completed = "checkout.session.completed";
    eventually("the webhook to be applied", async || {
        inbox_of_type(&app, completed)
            .await
            .iter()
            .any(|(_, _, applied)| *applied)
    })
    .await;
    let [(event, payload, true)] = &inbox_of_type(&app, completed).await[..] else {
        panic!("one delivery, applied");
    };

    // Back on the success page: it asks Stripe about the session and finds it credited.
    let status = read(
        &ada,
        &format!("/api/billing/checkout-status?session_id={session}"),
    )
    .await;
    assert_eq!(
        status,
        json!({ "Credited": { "tokens": 5_000, "balance": 5_000 } })
    );
    // Stripe delivers the event again (it does, at least once): applied already.
    let again = app.webhooks().send_payload(payload).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json()["outcome"], "already_applied");

    // One entry, the webhook's, for the session.
    let entries = app
        .store
        .ledger_page(ada.me().id, &billing::store::LedgerQuery::first(10))
        .await
        .unwrap()
        .entries;
    assert_eq!(entries.len(), 1, "one entry: {entries:?}");
    assert_eq!(entries[0].delta.get(), 5_000);
    assert_eq!(
        entries[0].stripe_object_id.as_deref(),
        Some(session.as_str())
    );
    let credited_by: Option<String> =
        sqlx::query_scalar("SELECT stripe_event_id FROM token_ledger WHERE id = $1")
            .bind(entries[0].id.get())
            .fetch_one(&mut app.sqlite().await)
            .await
            .unwrap();
    assert_eq!(credited_by.as_ref(), Some(event));
    assert_eq!(app.balance(ada.me()).await, 5_000, "credited exactly once");
    assert!(app.store.inbox_unfinished().await.unwrap().is_empty());
    assert!(app.store.audit_balances().await.unwrap().is_empty());

    // Someone else cannot look at this session.
    let eve = app.user("eve").await;
    let peek = eve
        .get(&format!(
            "/api/billing/checkout-status?session_id={session}"
        ))
        .await;
    assert_eq!(peek.status, 404);
}

#[tokio::test]
async fn checkout_takes_a_product_name_and_nothing_else() {
    let app = spawn_app().await;
    let ada = app.user("ada").await;

    for body in [
        json!({ "product": "mega" }),
        json!({ "product": "medium", "price": "price_cheap" }),
        json!({ "product": "medium", "tokens": 1_000_000 }),
        json!({}),
    ] {
        let response = start_checkout(&ada, body.clone()).await;
        assert_eq!(response.status, 422, "{body}");
        assert_eq!(response.json()["error"], "invalid", "{body}");
    }
    let anonymous = start_checkout(&app.browser(), json!({ "product": "small" })).await;
    assert_eq!(anonymous.status, 401);

    // A form post (the page before hydration) works too, and sends the browser on.
    let form = ada
        .post("/api/billing/create-checkout-session")
        .header("accept", "text/html")
        .form(&[("product", "small")])
        .await;
    assert_eq!(form.status, 302);
    assert!(
        form.header("location")
            .unwrap()
            .contains("/simulated-stripe/checkout/cs_")
    );
}

#[tokio::test]
async fn a_repeated_request_id_opens_one_session_and_reuses_the_customer() {
    let app = spawn_app().await;
    let ada = app.user("ada").await;
    let body = json!({ "product": "large", "request_id": "page-load-1" });
    let first = start_checkout(&ada, body.clone()).await.json();
    let again = start_checkout(&ada, body).await.json();
    assert_eq!(first["session_id"], again["session_id"]);
    let customer = app.store.customer_of(ada.me().id).await.unwrap().unwrap();

    // Another request (no request id): another session, for what it asks, same customer.
    let third = start_checkout(&ada, json!({ "product": "small" })).await;
    assert_eq!(third.status, 200, "{}", third.text);
    let third = third.json();
    assert_ne!(third["session_id"], first["session_id"], "{third}");
    let url = third["url"].as_str().unwrap();
    assert!(
        url.ends_with(&format!(
            "/simulated-stripe/checkout/{}",
            third["session_id"].as_str().unwrap()
        )),
        "{url}"
    );
    let page = ada.get(url).await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("Small pack"), "{}", page.text);
    assert!(page.text.contains("Pay $10.00"), "{}", page.text);
    assert_eq!(
        app.store.customer_of(ada.me().id).await.unwrap().unwrap(),
        customer
    );
}

#[tokio::test]
async fn the_sixth_quick_checkout_is_rate_limited() {
    let app = spawn_app().await;
    let ada = app.user("ada").await;
    for i in 0..5 {
        let response = start_checkout(&ada, json!({ "product": "small" })).await;
        assert_eq!(response.status, 200, "checkout {i}");
    }
    let limited = start_checkout(&ada, json!({ "product": "small" })).await;
    assert_eq!(limited.status, 429);
    assert!(limited.header("retry-after").is_some());
    let portal = ada
        .post_json("/api/billing/create-portal-session", json!({}))
        .await;
    assert_eq!(portal.status, 429, "the portal is a billing write too");
}

#[tokio::test]
async fn a_subscription_credits_monthly_and_the_portal_cancels_it() {
    let app = spawn_app().await;
    let ada = app.user("ada").await;
    buy(&ada, "starter").await;
    app.settled("the first invoice", async || {
        app.balance(ada.me()).await == 6_000
    })
    .await;

    let subscription = read(&ada, "/api/billing/subscription").await;
    assert_eq!(subscription["status"], "active", "{subscription}");
    assert_eq!(subscription["plan"], "Starter monthly");
    assert_eq!(subscription["cancel_at_period_end"], false);

    let portal_url = open_portal(&ada).await;
    let page = ada.get(&portal_url).await.text;
    assert!(page.contains("Renews on"), "{page}");
    let sub = app
        .store
        .subscription_of(ada.me().id)
        .await
        .unwrap()
        .unwrap()
        .subscription;

    // Renew (next month's invoice), then cancel at the period's end.
    for action in ["renew", "cancel"] {
        let done = ada
            .post(&format!("{portal_url}/subscriptions/{sub}/{action}"))
            .await;
        assert_eq!(done.status, 303, "{action}");
    }
    app.settled("the renewal and the cancellation", async || {
        app.balance(ada.me()).await == 12_000
            && app
                .store
                .subscription_of(ada.me().id)
                .await
                .unwrap()
                .is_some_and(|s| s.cancel_at_period_end)
    })
    .await;
    let subscription = read(&ada, "/api/billing/subscription").await;
    assert_eq!(subscription["cancel_at_period_end"], true);
}

#[tokio::test]
async fn a_second_subscription_is_refused_and_one_made_in_the_dashboard_is_shown() {
    let app = spawn_app().await;
    let ada = app.user("ada").await;
    buy(&ada, "starter").await;
    app.settled("the first invoice", async || {
        app.balance(ada.me()).await == 6_000
    })
    .await;

    // Subscribe again: refused, with a reason, and no second Checkout is opened.
    let again = start_checkout(&ada, json!({ "product": "starter" })).await;
    assert_eq!(again.status, 409);
    assert!(
        again.message().contains("already have the Starter plan"),
        "{}",
        again.text
    );
    let catalog = read(&ada, "/api/billing/catalog").await;
    assert_eq!(catalog["subscribed"], true, "{catalog}");
    // Packs are still for sale.
    assert_eq!(
        start_checkout(&ada, json!({ "product": "small" }))
            .await
            .status,
        200
    );

    // The merchant adds a second subscription in Stripe's Dashboard: it is shown, not hidden.
    let portal_url = open_portal(&ada).await;
    let added = ada
        .post(&format!("{portal_url}/dashboard-subscription"))
        .await;
    assert_eq!(added.status, 303);
    app.settled("the second subscription", async || {
        app.store.subscriptions_of(ada.me().id).await.unwrap().len() == 2
    })
    .await;
    let all = read(&ada, "/api/billing/subscriptions").await;
    let statuses: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["active", "active"], "{all}");
    assert_eq!(
        app.balance(ada.me()).await,
        12_000,
        "each paid invoice credits"
    );
    let page = ada.get("/app/billing").await.text;
    assert!(page.contains("You have 2 live subscriptions"), "{page}");
}

#[tokio::test]
async fn a_partial_refund_from_stripe_reverses_tokens_in_proportion() {
    let app = spawn_app().await;
    let ada = app.user("ada").await;
    buy(&ada, "medium").await; // $40.00 for 5,000 tokens
    app.settled("the purchase", async || {
        app.balance(ada.me()).await == 5_000
    })
    .await;

    let portal_url = open_portal(&ada).await;
    let page = ada.get(&portal_url).await.text;
    let charge = page
        .split("/payments/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_owned();
    let refunded = ada
        .post_form(
            &format!("{portal_url}/payments/{charge}/refund"),
            &[("amount", "10.00")],
        )
        .await;
    assert_eq!(refunded.status, 303);
    app.settled("the refund", async || app.balance(ada.me()).await == 3_750)
        .await;
    assert!(app.store.audit_balances().await.unwrap().is_empty());
}
