//! `/healthz`, `/readyz`, `/metrics` and request ids.

use billing::domain::Role;
use serde_json::{Value, json};

use crate::support::spawn_app;

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

async fn metrics_lines(app: &crate::support::TestApp) -> Vec<String> {
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    text.lines().map(str::to_owned).collect()
}

#[tokio::test]
async fn made_up_methods_and_unknown_paths_do_not_grow_the_metrics() {
    let app = spawn_app().await;
    let probe = |method: String, path: String| {
        let request = app.client.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            app.url(&path),
        );
        async move { request.send().await.unwrap().status() }
    };
    // One of each, so that their collapsed series exist...
    probe("XPROBEMETHOD".into(), "/healthz".into()).await;
    probe("GET".into(), "/no/such/path".into()).await;
    probe("XPROBEMETHOD".into(), "/no/such/path".into()).await;
    metrics_lines(&app).await; // the scrape counts itself from the second one on
    let before = metrics_lines(&app).await.len();
    // ...then many more, each different.
    for n in 0..100 {
        probe(format!("XPROBE{n}"), "/healthz".into()).await;
        probe("GET".into(), format!("/probe/{n}/{}", "x".repeat(n))).await;
        probe(format!("XPROBE{n}"), format!("/probe/{n}")).await;
    }
    let lines = metrics_lines(&app).await;
    let made_up: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("XPROBE") || l.contains("/probe/"))
        .collect();
    assert!(made_up.is_empty(), "{made_up:#?}");
    assert_eq!(lines.len(), before, "the page did not grow");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("http_requests_total{method=\"other\",route=\"/healthz\"")),
        "made-up methods are counted as one: {lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("http_requests_total{method=\"GET\",route=\"unmatched\"")),
        "unknown paths are counted as one: {lines:#?}"
    );
}

#[tokio::test]
async fn metrics_need_the_bearer_token_when_one_is_set() {
    let token = "a-long-random-metrics-token-for-tests";
    let app = crate::support::spawn_app_with(&[("METRICS_TOKEN", token)]).await;
    for authorization in [None, Some("Bearer wrong"), Some(token)] {
        let mut request = app.client.get(app.url("/metrics"));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{authorization:?}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
    }
    let response = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("http_requests_total")
    );
}
