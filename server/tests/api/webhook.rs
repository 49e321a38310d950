//! `POST /api/webhooks/stripe` over HTTP: good, forged, stale, replayed, malformed, oversized.

use billing::domain::{ProductId, Role, UserId};
use billing::stripe::signature;
use billing::testing::StripeEvent;

use crate::support::webhooks::now;
use crate::support::{Answer, StripeApi, TestApp, spawn_app, spawn_app_on};

/// A paid first invoice of the simulated plan, for `user`.
fn invoice_paid(id: &str, invoice: &str, user: UserId) -> StripeEvent {
    StripeEvent::invoice_paid(user).id(id).object_id(invoice)
}

/// `body` delivered with this `Stripe-Signature` header (or none).
async fn deliver(app: &TestApp, body: &str, header: Option<&str>) -> Answer {
    app.webhooks().delivery(body, header).await
}

#[tokio::test]
async fn a_signed_event_credits_once_however_often_it_is_delivered() {
    let app = spawn_app().await;
    let user = app.account("ada@example.com", Role::User).await;
    let event = invoice_paid("evt_good", "in_good", user.id);

    let first = app.stripe_sends(&event).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.json()["outcome"], "credited");
    assert_eq!(app.balance(&user).await, 6_000);

    // Stripe retries (a fresh signature each time): nothing more.
    for _ in 0..3 {
        let again = app.stripe_sends(&event).await;
        assert_eq!(again.status, 200);
        assert_eq!(again.json()["outcome"], "already_applied");
    }
    // Another event about the same invoice (invoice.payment_succeeded) credits nothing either.
    let twin =
        invoice_paid("evt_twin", "in_good", user.id).set("/type", "invoice.payment_succeeded");
    let twin = app.stripe_sends(&twin).await;
    assert_eq!(twin.status, 200);
    assert_eq!(twin.json()["outcome"], "already_applied");
    assert_eq!(app.balance(&user).await, 6_000);
    assert!(app.store.audit_balances().await.unwrap().is_empty());
}

#[tokio::test]
async fn forged_and_stale_signatures_change_nothing() {
    let app = spawn_app().await;
    let user = app.account("ada@example.com", Role::User).await;
    let event = invoice_paid("evt_forged", "in_forged", user.id);
    let body = event.payload();

    let forged = signature::sign(body.as_bytes(), "whsec_someone_else", now());
    let stale = app.sign_at(&body, now() - 310);
    let future = app.sign_at(&body, now() + 310);
    let altered_body = event.set("/data/object/amount_paid", 350).payload();
    assert_ne!(altered_body, body);
    let altered = app.sign(&altered_body);
    for (name, header) in [
        ("forged", Some(forged.as_str())),
        ("stale", Some(stale.as_str())),
        ("from the future", Some(future.as_str())),
        ("for another body", Some(altered.as_str())),
        ("garbage", Some("t=abc,v1=zz")),
        ("missing", None),
    ] {
        let response = deliver(&app, &body, header).await;
        assert_eq!(response.status, 400, "{name}");
        assert!(
            response.message().starts_with("Signature refused"),
            "{name}: {}",
            response.text
        );
    }
    assert_eq!(app.balance(&user).await, 0);
    assert!(
        app.store.inbox_event("evt_forged").await.unwrap().is_none(),
        "nothing was kept"
    );
}

#[tokio::test]
async fn malformed_and_oversized_deliveries_are_refused() {
    let app = spawn_app().await;
    for body in ["not json", "{}", r#"{"id":"evt_x","type":"invoice.paid"}"#] {
        let response = app.webhooks().send_payload(body).await;
        assert_eq!(response.status, 400, "{body}");
    }
    let huge = format!(r#"{{"id":"evt_huge","pad":"{}"}}"#, "x".repeat(300 * 1024));
    let response = app.webhooks().send_payload(&huge).await;
    assert_eq!(response.status, 413);
    // Nothing is kept: neither as unfinished nor as done.
    assert!(app.store.inbox_unfinished().await.unwrap().is_empty());
    for id in ["evt_x", "evt_huge"] {
        assert!(
            app.store.inbox_event(id).await.unwrap().is_none(),
            "{id} was kept"
        );
    }
}

#[tokio::test]
async fn stripe_failing_while_an_event_is_applied_answers_503_and_stripes_retry_credits() {
    let stripe = StripeApi::start().await;
    let app = spawn_app_on(&stripe, &[]).await;
    let ada = app.account("ada@example.com", Role::User).await;
    let paid = stripe
        .paid_checkout(ada.id, "cus_ada", ProductId::Medium)
        .await;
    let id = paid.event.json()["id"].as_str().unwrap().to_owned();

    // Stripe fails as the app reads the session's line items: 503, so that Stripe retries.
    stripe.set_down(true);
    let failed = app.stripe_sends(&paid.event).await;
    assert_eq!(failed.status, 503, "{}", failed.text);
    assert_eq!(failed.json()["error"], "unavailable");
    assert_eq!(
        stripe
            .requests_to(&format!(
                "/v1/checkout/sessions/{}/line_items",
                paid.session
            ))
            .len(),
        1,
        "the read that failed"
    );
    assert_eq!(app.balance(&ada).await, 0);
    let kept = app.store.inbox_event(&id).await.unwrap().expect("kept");
    assert!(kept.processed_at.is_none(), "{kept:?}");

    // Stripe answers again; its retry credits, once.
    stripe.set_down(false);
    let retried = app.stripe_sends(&paid.event).await;
    assert_eq!(retried.status, 200, "{}", retried.text);
    assert_eq!(retried.json()["outcome"], "credited");
    assert_eq!(app.balance(&ada).await, 5_000);
    assert!(app.store.inbox_unfinished().await.unwrap().is_empty());
}

#[tokio::test]
async fn events_billing_does_not_act_on_are_acknowledged_and_kept() {
    let app = spawn_app().await;
    let event = StripeEvent::customer_created()
        .id("evt_other")
        .object_id("cus_1");
    let response = app.stripe_sends(&event).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["outcome"], "ignored");
    let kept = app.store.inbox_event("evt_other").await.unwrap().unwrap();
    assert_eq!(kept.outcome.as_deref(), Some("ignored"));
}

#[tokio::test]
async fn an_event_for_an_unknown_user_is_kept_for_an_operator() {
    let app = spawn_app().await;
    let event = invoice_paid("evt_nobody", "in_nobody", UserId::new(999_999).unwrap());
    let response = app.stripe_sends(&event).await;
    // Acknowledged (Stripe's retries would not help) but not applied: listed as pending.
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["outcome"], "failed");
    let pending = app.store.inbox_unfinished().await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, "evt_nobody");
}

#[tokio::test]
async fn a_development_server_signs_with_a_secret_of_its_own_kept_in_its_data_folder() {
    let logs = crate::support::capture_logs();
    let app = spawn_app().await;
    let user = app.account("ada@example.com", Role::User).await;
    let body = invoice_paid("evt_public", "in_public", user.id).payload();

    // The secret every copy of this code once shared signs nothing any more.
    let public = signature::sign(body.as_bytes(), "whsec_simulated_development_only", now());
    assert_eq!(deliver(&app, &body, Some(&public)).await.status, 400);
    assert_eq!(app.balance(&user).await, 0);

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
    assert_eq!(deliver(&app, &body, Some(&own)).await.status, 200);
    assert_eq!(app.balance(&user).await, 6_000);

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
    let body = invoice_paid("evt_public_2", "in_public_2", user.id).payload();
    let own = signature::sign(body.as_bytes(), secret, now());
    assert_eq!(deliver(&again, &body, Some(&own)).await.status, 200);
}

#[tokio::test]
async fn a_plan_checkout_links_stripes_customer_to_the_user_from_the_webhook_itself() {
    let app = spawn_app().await;
    let ada = app.account("ada@example.com", Role::User).await;
    assert_eq!(app.store.customer_of(ada.id).await.unwrap(), None);

    let completed = StripeEvent::checkout_completed_subscription(ada.id).id("evt_plan_checkout");
    let customer = completed.json()["data"]["object"]["customer"]
        .as_str()
        .unwrap()
        .to_owned();
    let answer = app.stripe_sends(&completed).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json()["outcome"], "recorded");
    assert_eq!(app.balance(&ada).await, 0, "tokens come with the invoice");
    assert_eq!(
        app.store.customer_of(ada.id).await.unwrap(),
        Some(customer.clone())
    );

    // The plan's invoice names only the customer (no user in its metadata): the link finds
    // whose tokens they are.
    let invoice = StripeEvent::invoice_paid(ada.id)
        .id("evt_plan_invoice")
        .without("/data/object/parent/subscription_details/metadata/user_id");
    assert_eq!(
        invoice.json()["data"]["object"]["customer"],
        customer.as_str()
    );
    let answer = app.stripe_sends(&invoice).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json()["outcome"], "credited");
    assert_eq!(app.balance(&ada).await, 6_000);
}
