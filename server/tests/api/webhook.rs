//! `POST /api/webhooks/stripe` over HTTP: good, forged, stale, replayed, malformed, oversized.

use billing::domain::{Role, Timestamp, UserId};
use billing::stripe::signature;
use serde_json::{Value, json};

use crate::support::{TestApp, spawn_app};

/// A paid first invoice of the simulated plan, for `user`.
fn invoice_paid(id: &str, invoice: &str, user: UserId) -> String {
    json!({
        "id": id,
        "object": "event",
        "api_version": "2026-09-30.endive",
        "created": Timestamp::now().as_millis() / 1000,
        "livemode": false,
        "type": "invoice.paid",
        "data": { "object": {
            "id": invoice,
            "object": "invoice",
            "customer": "cus_test",
            "billing_reason": "subscription_create",
            "amount_paid": 3500,
            "currency": "usd",
            "status": "paid",
            "parent": {
                "type": "subscription_details",
                "subscription_details": {
                    "subscription": "sub_test",
                    "metadata": { "user_id": user.to_string() }
                }
            },
            "lines": { "object": "list", "data": [{
                "id": "il_test",
                "object": "line_item",
                "amount": 3500,
                "quantity": 1,
                "pricing": { "type": "price_details", "price_details": { "price": "price_sim_subscription_starter" } }
            }]}
        }}
    })
    .to_string()
}

fn now() -> i64 {
    Timestamp::now().as_millis() / 1000
}

async fn deliver(app: &TestApp, body: &str, header: Option<&str>) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/api/webhooks/stripe"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(header) = header {
        request = request.header("stripe-signature", header);
    }
    request.send().await.unwrap()
}

async fn balance(app: &TestApp, user: UserId) -> i64 {
    app.store.balance(user).await.unwrap().get()
}

#[tokio::test]
async fn a_signed_event_credits_once_however_often_it_is_delivered() {
    let app = spawn_app().await;
    let user = app.account("ada@example.com", Role::User).await;
    let body = invoice_paid("evt_good", "in_good", user.id);

    let first = deliver(&app, &body, Some(&app.sign(&body))).await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["outcome"], "credited");
    assert_eq!(balance(&app, user.id).await, 6_000);

    // Stripe retries (a fresh signature each time): nothing more.
    for _ in 0..3 {
        let again = deliver(&app, &body, Some(&app.sign(&body))).await;
        assert_eq!(again.status(), 200);
        let again: Value = again.json().await.unwrap();
        assert_eq!(again["outcome"], "already_applied");
    }
    // Another event about the same invoice (invoice.payment_succeeded) credits nothing either.
    let twin = invoice_paid("evt_twin", "in_good", user.id)
        .replace("invoice.paid", "invoice.payment_succeeded");
    let twin: Value = deliver(&app, &twin, Some(&app.sign(&twin)))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(twin["outcome"], "already_applied");
    assert_eq!(balance(&app, user.id).await, 6_000);
    assert!(app.store.audit_balances().await.unwrap().is_empty());
}

#[tokio::test]
async fn forged_and_stale_signatures_change_nothing() {
    let app = spawn_app().await;
    let user = app.account("ada@example.com", Role::User).await;
    let body = invoice_paid("evt_forged", "in_forged", user.id);

    let forged = signature::sign(body.as_bytes(), "whsec_someone_else", now());
    let stale = app.sign_at(&body, now() - 310);
    let future = app.sign_at(&body, now() + 310);
    let altered = app.sign(&body.replace("6000", "60000").replace("3500", "350"));
    for (name, header) in [
        ("forged", Some(forged.as_str())),
        ("stale", Some(stale.as_str())),
        ("from the future", Some(future.as_str())),
        ("for another body", Some(altered.as_str())),
        ("garbage", Some("t=abc,v1=zz")),
        ("missing", None),
    ] {
        let response = deliver(&app, &body, header).await;
        assert_eq!(response.status(), 400, "{name}");
        let error: Value = response.json().await.unwrap();
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .starts_with("Signature refused"),
            "{name}: {error}"
        );
    }
    assert_eq!(balance(&app, user.id).await, 0);
    assert!(
        app.store.inbox_event("evt_forged").await.unwrap().is_none(),
        "nothing was kept"
    );
}

#[tokio::test]
async fn malformed_and_oversized_deliveries_are_refused() {
    let app = spawn_app().await;
    for body in ["not json", "{}", r#"{"id":"evt_x","type":"invoice.paid"}"#] {
        let response = deliver(&app, body, Some(&app.sign(body))).await;
        assert_eq!(response.status(), 400, "{body}");
    }
    let huge = format!(r#"{{"id":"evt_huge","pad":"{}"}}"#, "x".repeat(300 * 1024));
    let response = deliver(&app, &huge, Some(&app.sign(&huge))).await;
    assert_eq!(response.status(), 413);
    assert!(app.store.inbox_unfinished().await.unwrap().is_empty());
}

#[tokio::test]
async fn events_billing_does_not_act_on_are_acknowledged_and_kept() {
    let app = spawn_app().await;
    let body = json!({
        "id": "evt_other", "object": "event", "created": now(), "type": "customer.created",
        "data": { "object": { "id": "cus_1", "object": "customer" } }
    })
    .to_string();
    let response = deliver(&app, &body, Some(&app.sign(&body))).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["outcome"], "ignored");
    let kept = app.store.inbox_event("evt_other").await.unwrap().unwrap();
    assert_eq!(kept.outcome.as_deref(), Some("ignored"));
}

#[tokio::test]
async fn an_event_for_an_unknown_user_is_kept_for_an_operator() {
    let app = spawn_app().await;
    let body = invoice_paid("evt_nobody", "in_nobody", UserId::new(999_999).unwrap());
    let response = deliver(&app, &body, Some(&app.sign(&body))).await;
    // Acknowledged (Stripe's retries would not help) but not applied: listed as pending.
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["outcome"], "failed");
    let pending = app.store.inbox_unfinished().await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, "evt_nobody");
}

#[tokio::test]
async fn a_development_server_signs_with_a_secret_of_its_own_kept_in_its_data_folder() {
    let logs = crate::support::capture_logs();
    let app = spawn_app().await;
    let user = app.account("ada@example.com", Role::User).await;
    let body = invoice_paid("evt_public", "in_public", user.id);

    // The secret every copy of this code once shared signs nothing any more.
    let public = signature::sign(body.as_bytes(), "whsec_simulated_development_only", now());
    assert_eq!(deliver(&app, &body, Some(&public)).await.status(), 400);
    assert_eq!(balance(&app, user.id).await, 0);

    let path = app.data_dir.path().join("stripe_webhook_secret");
    let secret = std::fs::read_to_string(&path).expect("the secret is in the data folder");
    let secret = secret.trim();
    assert!(
        secret.starts_with("whsec_") && secret.len() >= 6 + 64,
        "{secret}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "only its owner reads it");
    }
    let own = signature::sign(body.as_bytes(), secret, now());
    assert_eq!(deliver(&app, &body, Some(&own)).await.status(), 200);
    assert_eq!(balance(&app, user.id).await, 6_000);

    // Start-up says where it is, and never what it is.
    let info = logs.at_least(tracing::Level::INFO);
    assert!(
        info.iter().any(|l| l.contains(&path.display().to_string())),
        "{info:#?}"
    );
    assert!(info.iter().all(|l| !l.contains(secret)));

    // Kept across restarts: a second start on the same folder uses the same one.
    let folder = app.data_dir.path().display().to_string();
    let again = crate::support::spawn_app_with(&[("DATA_DIR", &folder)]).await;
    assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), secret);
    let body = invoice_paid("evt_public_2", "in_public_2", user.id);
    let own = signature::sign(body.as_bytes(), secret, now());
    assert_eq!(deliver(&again, &body, Some(&own)).await.status(), 200);
}
