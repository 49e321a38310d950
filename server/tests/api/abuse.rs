//! Hostile input over HTTP: deeply nested JSON, oversized bodies, SQL- and HTML-looking text.

use billing::config::SIMULATED_WEBHOOK_SECRET;
use billing::domain::{Role, Timestamp};
use billing::stripe::signature;
use serde_json::json;

use crate::helpers::spawn_app;

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

#[tokio::test]
async fn deeply_nested_json_is_refused_everywhere_and_the_server_stays_up() {
    let app = spawn_app().await;
    app.account("root@example.com", Role::Admin).await;
    let admin = app.logged_in("root@example.com").await;
    let key = app.api_key().await;
    // Small enough for every endpoint's size limit, far deeper than any parser allows.
    let body = format!(r#"{{"user":{}}}"#, nested(5_000));

    let now = Timestamp::now().as_millis() / 1000;
    let webhook = app
        .client
        .post(app.url("/api/webhooks/stripe"))
        .header(
            "stripe-signature",
            signature::sign(body.as_bytes(), SIMULATED_WEBHOOK_SECRET, now),
        )
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(webhook.status(), 400);

    let consume = app
        .client
        .post(app.url("/api/tokens/consume"))
        .bearer_auth(&key)
        .header("idempotency-key", "deep")
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(consume.status(), 422);

    let credit = admin
        .post(app.url("/api/admin/tokens/credit"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(credit.status(), 422);

    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn oversized_bodies_are_refused_before_they_are_read() {
    let app = spawn_app().await;
    app.account("root@example.com", Role::Admin).await;
    let admin = app.logged_in("root@example.com").await;
    let huge = format!(
        r#"{{"user":"a@b.co","tokens":1,"reason":"{}"}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    for path in [
        "/api/admin/tokens/credit",
        "/api/auth/login",
        "/api/billing/create-checkout-session",
    ] {
        let response = admin
            .post(app.url(path))
            .header("content-type", "application/json")
            .body(huge.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 413, "{path}");
    }
}

#[tokio::test]
async fn sql_and_html_in_a_reason_are_kept_as_text_and_escaped_on_the_page() {
    let app = spawn_app().await;
    app.account("root@example.com", Role::Admin).await;
    let ada = app.account("ada@example.com", Role::User).await;
    let admin = app.logged_in("root@example.com").await;
    let reason = r#"<script>alert("x")</script>'); DROP TABLE users; --"#;
    let response = admin
        .post(app.url("/api/admin/tokens/credit"))
        .json(&json!({ "user": "ada@example.com", "tokens": 42, "reason": reason }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // Stored verbatim, and the users are all still there.
    let page = app
        .store
        .ledger_page(ada.id, &billing::store::LedgerQuery::first(1))
        .await
        .unwrap();
    assert_eq!(page.entries[0].reason, reason);
    assert_eq!(app.store.user_count().await.unwrap(), 2);

    // Shown as text: escaped in the HTML the server renders.
    let ada_client = app.logged_in("ada@example.com").await;
    let html = ada_client
        .get(app.url("/app/billing"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !html.contains("<script>alert"),
        "the reason must be escaped"
    );
    assert!(
        html.contains("&lt;script&gt;alert"),
        "the reason is shown as text"
    );
}
