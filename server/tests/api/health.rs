//! `/healthz`, `/readyz`, `/metrics` and request ids.

use billing::domain::Role;
use serde_json::{Value, json};

use crate::helpers::spawn_app;

#[tokio::test]
async fn healthz_answers_ok() {
    let app = spawn_app().await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn readyz_checks_the_database_and_its_migrations() {
    let app = spawn_app().await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({ "status": "ready", "database": "sqlite" }));

    // A build that needs a migration the database lacks is not ready.
    use sqlx::Connection;
    let path = app.data_dir.path().join("billing.sqlite3");
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    assert_eq!(app.get("/readyz").await.status(), 503);
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_keeps_the_callers() {
    let app = spawn_app().await;
    let generated = app.get("/healthz").await;
    let id = generated.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let kept = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(kept.headers()["x-request-id"], "trace-me-123");
}

#[tokio::test]
async fn metrics_count_requests_ledger_entries_and_refusals() {
    let app = spawn_app().await;
    app.account("root@example.com", Role::Admin).await;
    app.account("ada@example.com", Role::User).await;
    let admin = app.logged_in("root@example.com").await;
    for _ in 0..6 {
        admin
            .post(app.url("/api/admin/tokens/credit"))
            .json(&json!({ "user": "ada@example.com", "tokens": 10, "reason": "Metrics" }))
            .send()
            .await
            .unwrap();
    }
    let forged = app
        .new_client()
        .post(app.url("/api/webhooks/stripe"))
        .header("stripe-signature", "t=1,v1=00")
        .body(r#"{"id":"evt_forged"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);
    assert_eq!(app.get("/healthz").await.status(), 200);
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    for expected in [
        "http_requests_total{method=\"GET\",route=\"/healthz\"",
        "http_request_duration_seconds_bucket{",
        "billing_ledger_entries_total{source=\"manual\"}",
        "billing_ledger_tokens_total{source=\"manual\",direction=\"added\"}",
        "billing_rate_limit_refusals_total{limit=\"billing\"}",
        "billing_webhook_refusals_total{reason=\"signature\"}",
    ] {
        assert!(text.contains(expected), "missing {expected} in:\n{text}");
    }
}
