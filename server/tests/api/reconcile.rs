//! `server stripe reconcile|replay|pending`, run as the real binary against a stand-in for
//! Stripe's API (the live gateway pointed at it through STRIPE_API_BASE).

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::Query;
use axum::http::HeaderMap;
use axum::routing::get;
use billing::domain::{Role, Timestamp, UserId};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

/// Serves `GET /v1/events` (newest first, as Stripe does) and remembers the requests.
async fn fake_stripe(events: Vec<Value>) -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let router = Router::new().route(
        "/v1/events",
        get(
            move |headers: HeaderMap, Query(query): Query<Vec<(String, String)>>| {
                let log = log.clone();
                let events = events.clone();
                async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    log.lock().unwrap().push(format!("{auth} {query:?}"));
                    axum::Json(json!({
                        "object": "list",
                        "url": "/v1/events",
                        "has_more": false,
                        "data": events.iter().rev().collect::<Vec<_>>(),
                    }))
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{address}"), seen)
}

fn invoice_paid(id: &str, user: UserId) -> Value {
    json!({
        "id": id, "object": "event", "api_version": "2026-09-30.endive",
        "created": Timestamp::now().as_millis() / 1000 - 3600, "livemode": false,
        "type": "invoice.paid",
        "data": { "object": {
            "id": format!("in_{id}"), "object": "invoice", "customer": "cus_live",
            "billing_reason": "subscription_cycle", "amount_paid": 3500, "currency": "usd",
            "parent": { "type": "subscription_details", "subscription_details": {
                "subscription": "sub_live", "metadata": { "user_id": user.to_string() } } },
            "lines": { "object": "list", "data": [{ "id": "il_1", "quantity": 1,
                "pricing": { "type": "price_details", "price_details": { "price": "price_live_starter" } } }] }
        }}
    })
}

async fn cli(app: &TestApp, stripe: &str, args: &[&str]) -> (Option<i32>, String) {
    let data_dir = app.data_dir.path().to_owned();
    let stripe = stripe.to_owned();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    // The stand-in answers from this runtime while the binary runs: wait on another thread.
    tokio::task::spawn_blocking(move || {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_server"))
            .args(&args)
            .env_clear()
            .env("DATA_DIR", data_dir)
            .env("RUST_LOG", "warn")
            .env("STRIPE_SECRET_KEY", "sk_test_reconcile")
            .env("STRIPE_WEBHOOK_SECRET", "whsec_reconcile")
            .env("STRIPE_API_BASE", stripe)
            .env("STRIPE_PRICE_TOKENS_SMALL", "price_live_small")
            .env("STRIPE_PRICE_TOKENS_MEDIUM", "price_live_medium")
            .env("STRIPE_PRICE_TOKENS_LARGE", "price_live_large")
            .env("STRIPE_PRICE_SUBSCRIPTION_STARTER", "price_live_starter")
            .output()
            .expect("the server binary runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.code(), text)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_applies_the_events_the_inbox_missed_once() {
    let app = spawn_app().await;
    let ada = app.account("ada@example.com", Role::User).await;
    let other = json!({
        "id": "evt_other", "object": "event", "created": Timestamp::now().as_millis() / 1000 - 7200,
        "type": "customer.created", "data": { "object": { "id": "cus_live", "object": "customer" } }
    });
    let (stripe, seen) = fake_stripe(vec![other, invoice_paid("evt_missed", ada.id)]).await;

    let (code, out) = cli(&app, &stripe, &["stripe", "reconcile", "--since", "2d"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("2 missing from the inbox"), "{out}");
    assert!(
        out.contains(&format!(
            "evt_missed: credited 6000 tokens to user {}",
            ada.id
        )),
        "{out}"
    );
    assert!(out.contains("evt_other: ignored"), "{out}");
    assert_eq!(app.store.balance(ada.id).await.unwrap().get(), 6_000);
    let request = seen.lock().unwrap()[0].clone();
    assert!(request.starts_with("Bearer sk_test_reconcile"), "{request}");
    assert!(request.contains("created[gte]"), "{request}");

    // Nothing is missing any more; re-applying a stored event changes nothing.
    let (code, out) = cli(&app, &stripe, &["stripe", "reconcile", "--since", "2d"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("0 missing"), "{out}");
    let (code, out) = cli(&app, &stripe, &["stripe", "replay", "evt_missed"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("already applied"), "{out}");
    assert_eq!(app.store.balance(ada.id).await.unwrap().get(), 6_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_event_is_listed_and_re_applied_after_the_cause_is_fixed() {
    let app = spawn_app().await;
    // The event names a user that does not exist yet (say, a restored backup).
    let ghost = UserId::new(2).unwrap();
    let (stripe, _) = fake_stripe(vec![invoice_paid("evt_early", ghost)]).await;
    let (code, out) = cli(&app, &stripe, &["stripe", "reconcile", "--since", "1d"]).await;
    assert_eq!(code, Some(1), "a failure makes the command fail: {out}");
    assert!(out.contains("FAILED"), "{out}");

    let (_, pending) = cli(&app, &stripe, &["stripe", "pending"]).await;
    assert!(
        pending.contains("evt_early") && pending.contains("invoice.paid"),
        "{pending}"
    );

    app.account("first@example.com", Role::User).await;
    let user = app.account("second@example.com", Role::User).await;
    assert_eq!(user.id, ghost);
    let (code, out) = cli(&app, &stripe, &["stripe", "replay", "evt_early"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("credited 6000"), "{out}");
    assert_eq!(app.store.balance(ghost).await.unwrap().get(), 6_000);
    let (_, pending) = cli(&app, &stripe, &["stripe", "pending"]).await;
    assert!(pending.contains("No unfinished events."), "{pending}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_needs_real_stripe_keys() {
    let app = spawn_app().await;
    let data_dir = app.data_dir.path().to_owned();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_server"))
            .args(["stripe", "reconcile", "--since", "1d"])
            .env_clear()
            .env("DATA_DIR", data_dir)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("STRIPE_SECRET_KEY"));
}
