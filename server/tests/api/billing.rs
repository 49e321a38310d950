//! Checkout and the Customer Portal over HTTP, through the simulated Stripe's own pages and
//! its signed webhooks to the app.

use std::time::Duration;

use billing::domain::{Role, User};
use reqwest::Client;
use serde_json::{Value, json};

use crate::support::{TestApp, spawn_app};

async fn start_checkout(app: &TestApp, client: &Client, body: Value) -> reqwest::Response {
    client
        .post(app.url("/api/billing/create-checkout-session"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Opens Checkout for `product` and pays by card on the simulator's page; returns the
/// session id.
async fn buy(app: &TestApp, client: &Client, product: &str) -> String {
    let started: Value = start_checkout(app, client, json!({ "product": product }))
        .await
        .json()
        .await
        .unwrap();
    let session = started["session_id"].as_str().unwrap().to_owned();
    let page = client
        .get(started["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let paid = client
        .post(app.url(&format!("/simulated-stripe/checkout/{session}/pay")))
        .form(&[("method", "card")])
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 303);
    let back = paid.headers()["location"].to_str().unwrap();
    assert!(back.ends_with(&format!("session_id={session}")), "{back}");
    session
}

/// Waits until no event is unfinished and `check` holds (webhooks arrive in the background).
async fn eventually(app: &TestApp, what: &str, check: impl AsyncFn() -> bool) {
    for _ in 0..100 {
        if check().await && app.store.inbox_unfinished().await.unwrap().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting: {what}");
}

async fn balance(app: &TestApp, user: &User) -> i64 {
    app.store.balance(user.id).await.unwrap().get()
}

#[tokio::test]
async fn buying_a_pack_credits_it_once_from_the_success_page_and_the_webhook() {
    let app = spawn_app().await;
    let ada = app.account("ada@example.com", Role::User).await;
    let client = app.logged_in("ada@example.com").await;

    let session = buy(&app, &client, "medium").await;

    // Back on the success page: it asks about the session.
    let status: Value = client
        .get(app.url(&format!(
            "/api/billing/checkout-status?session_id={session}"
        )))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["Credited"]["tokens"], 5_000, "{status}");
    eventually(&app, "the webhook", async || {
        app.store
            .ledger_page(ada.id, &billing::store::LedgerQuery::first(10))
            .await
            .unwrap()
            .entries
            .len()
            == 1
    })
    .await;
    // The webhook came after the success page had credited: it found the purchase done.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(app.store.inbox_unfinished().await.unwrap().is_empty());
    assert_eq!(balance(&app, &ada).await, 5_000, "credited exactly once");
    assert!(app.store.audit_balances().await.unwrap().is_empty());

    // Someone else cannot look at this session.
    app.account("eve@example.com", Role::User).await;
    let eve = app.logged_in("eve@example.com").await;
    let peek = eve
        .get(app.url(&format!(
            "/api/billing/checkout-status?session_id={session}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(peek.status(), 404);
}

#[tokio::test]
async fn checkout_takes_a_product_name_and_nothing_else() {
    let app = spawn_app().await;
    app.account("ada@example.com", Role::User).await;
    let client = app.logged_in("ada@example.com").await;

    for body in [
        json!({ "product": "mega" }),
        json!({ "product": "medium", "price": "price_cheap" }),
        json!({ "product": "medium", "tokens": 1_000_000 }),
        json!({}),
    ] {
        let response = start_checkout(&app, &client, body.clone()).await;
        assert_eq!(response.status(), 422, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"], "invalid", "{body}");
    }
    let anonymous = start_checkout(&app, &app.new_client(), json!({ "product": "small" })).await;
    assert_eq!(anonymous.status(), 401);

    // A form post (the page before hydration) works too, and sends the browser on.
    let form = client
        .post(app.url("/api/billing/create-checkout-session"))
        .header("accept", "text/html")
        .form(&[("product", "small")])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 302);
    assert!(
        form.headers()["location"]
            .to_str()
            .unwrap()
            .contains("/simulated-stripe/checkout/cs_")
    );
}

#[tokio::test]
async fn a_repeated_request_id_opens_one_session_and_reuses_the_customer() {
    let app = spawn_app().await;
    let ada = app.account("ada@example.com", Role::User).await;
    let client = app.logged_in("ada@example.com").await;
    let body = json!({ "product": "large", "request_id": "page-load-1" });
    let first: Value = start_checkout(&app, &client, body.clone())
        .await
        .json()
        .await
        .unwrap();
    let again: Value = start_checkout(&app, &client, body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["session_id"], again["session_id"]);
    let customer = app.store.customer_of(ada.id).await.unwrap().unwrap();
    start_checkout(&app, &client, json!({ "product": "small" })).await;
    assert_eq!(
        app.store.customer_of(ada.id).await.unwrap().unwrap(),
        customer
    );
}

#[tokio::test]
async fn the_sixth_quick_checkout_is_rate_limited() {
    let app = spawn_app().await;
    app.account("ada@example.com", Role::User).await;
    let client = app.logged_in("ada@example.com").await;
    for i in 0..5 {
        let response = start_checkout(&app, &client, json!({ "product": "small" })).await;
        assert_eq!(response.status(), 200, "checkout {i}");
    }
    let limited = start_checkout(&app, &client, json!({ "product": "small" })).await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    let portal = client
        .post(app.url("/api/billing/create-portal-session"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(portal.status(), 429, "the portal is a billing write too");
}

#[tokio::test]
async fn a_subscription_credits_monthly_and_the_portal_cancels_it() {
    let app = spawn_app().await;
    let ada = app.account("ada@example.com", Role::User).await;
    let client = app.logged_in("ada@example.com").await;
    buy(&app, &client, "starter").await;
    eventually(&app, "the first invoice", async || {
        balance(&app, &ada).await == 6_000
    })
    .await;

    let subscription: Value = client
        .get(app.url("/api/billing/subscription"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(subscription["status"], "active", "{subscription}");
    assert_eq!(subscription["plan"], "Starter monthly");
    assert_eq!(subscription["cancel_at_period_end"], false);

    let portal: Value = client
        .post(app.url("/api/billing/create-portal-session"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let portal_url = portal["url"].as_str().unwrap().to_owned();
    let page = client
        .get(&portal_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Renews on"), "{page}");
    let sub = app
        .store
        .subscription_of(ada.id)
        .await
        .unwrap()
        .unwrap()
        .subscription;

    // Renew (next month's invoice), then cancel at the period's end.
    for action in ["renew", "cancel"] {
        let done = client
            .post(format!("{portal_url}/subscriptions/{sub}/{action}"))
            .send()
            .await
            .unwrap();
        assert_eq!(done.status(), 303, "{action}");
    }
    eventually(&app, "the renewal and the cancellation", async || {
        balance(&app, &ada).await == 12_000
            && app
                .store
                .subscription_of(ada.id)
                .await
                .unwrap()
                .is_some_and(|s| s.cancel_at_period_end)
    })
    .await;
    let subscription: Value = client
        .get(app.url("/api/billing/subscription"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(subscription["cancel_at_period_end"], true);
}

#[tokio::test]
async fn a_second_subscription_is_refused_and_one_made_in_the_dashboard_is_shown() {
    let app = spawn_app().await;
    let ada = app.account("ada@example.com", Role::User).await;
    let client = app.logged_in("ada@example.com").await;
    buy(&app, &client, "starter").await;
    eventually(&app, "the first invoice", async || {
        balance(&app, &ada).await == 6_000
    })
    .await;

    // Subscribe again: refused, with a reason, and no second Checkout is opened.
    let again = start_checkout(&app, &client, json!({ "product": "starter" })).await;
    assert_eq!(again.status(), 409);
    let refused: Value = again.json().await.unwrap();
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("already have the Starter plan"),
        "{refused}"
    );
    let catalog: Value = client
        .get(app.url("/api/billing/catalog"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(catalog["subscribed"], true, "{catalog}");
    // Packs are still for sale.
    assert_eq!(
        start_checkout(&app, &client, json!({ "product": "small" }))
            .await
            .status(),
        200
    );

    // The merchant adds a second subscription in Stripe's Dashboard: it is shown, not hidden.
    let portal: Value = client
        .post(app.url("/api/billing/create-portal-session"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let added = client
        .post(format!(
            "{}/dashboard-subscription",
            portal["url"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 303);
    eventually(&app, "the second subscription", async || {
        app.store.subscriptions_of(ada.id).await.unwrap().len() == 2
    })
    .await;
    let all: Value = client
        .get(app.url("/api/billing/subscriptions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let statuses: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["active", "active"], "{all}");
    assert_eq!(
        balance(&app, &ada).await,
        12_000,
        "each paid invoice credits"
    );
    let page = client
        .get(app.url("/app/billing"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("You have 2 live subscriptions"), "{page}");
}

#[tokio::test]
async fn a_partial_refund_from_stripe_reverses_tokens_in_proportion() {
    let app = spawn_app().await;
    let ada = app.account("ada@example.com", Role::User).await;
    let client = app.logged_in("ada@example.com").await;
    buy(&app, &client, "medium").await; // $40.00 for 5,000 tokens
    eventually(&app, "the purchase", async || {
        balance(&app, &ada).await == 5_000
    })
    .await;

    let portal: Value = client
        .post(app.url("/api/billing/create-portal-session"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let portal_url = portal["url"].as_str().unwrap().to_owned();
    let page = client
        .get(&portal_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let charge = page
        .split("/payments/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_owned();
    let refunded = client
        .post(format!("{portal_url}/payments/{charge}/refund"))
        .form(&[("amount", "10.00")])
        .send()
        .await
        .unwrap();
    assert_eq!(refunded.status(), 303);
    eventually(&app, "the refund", async || {
        balance(&app, &ada).await == 3_750
    })
    .await;
    assert!(app.store.audit_balances().await.unwrap().is_empty());
}
