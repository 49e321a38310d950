//! `/healthz`, `/readyz`, `/metrics` and request ids.

use billing::domain::Role;
use serde_json::json;

use crate::support::{TestApp, spawn_app, spawn_app_with};

#[tokio::test]
async fn healthz_answers_ok() {
    let app = spawn_app().await;
    let response = app.browser().get("/healthz").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["status"], "ok");
}

#[tokio::test]
async fn readyz_checks_the_database_and_its_migrations() {
    let app = spawn_app().await;
    let response = app.browser().get("/readyz").await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.json(),
        json!({ "status": "ready", "database": "sqlite" })
    );

    // A build that needs a migration the database lacks is not ready.
    let mut conn = app.sqlite().await;
    sqlx::query(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    assert_eq!(app.browser().get("/readyz").await.status, 503);
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_keeps_the_callers() {
    let app = spawn_app().await;
    let generated = app.browser().get("/healthz").await;
    let id = generated.header("x-request-id").unwrap();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let kept = app
        .browser()
        .get("/healthz")
        .header("x-request-id", "trace-me-123")
        .await;
    assert_eq!(kept.header("x-request-id"), Some("trace-me-123"));
}

#[tokio::test]
async fn metrics_count_requests_ledger_entries_and_refusals() {
    let app = spawn_app().await;
    let admin = app.admin("root").await;
    app.account("ada@example.com", Role::User).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let credit = admin
            .post_json(
                "/api/admin/tokens/credit",
                json!({ "user": "ada@example.com", "tokens": 10, "reason": "Metrics" }),
            )
            .await;
        statuses.push(credit.status);
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 200, 429],
        "the sixth is refused"
    );
    let forged = app
        .webhooks()
        .delivery(r#"{"id":"evt_forged"}"#, Some("t=1,v1=00"))
        .await;
    assert_eq!(forged.status, 400);
    assert_eq!(app.browser().get("/healthz").await.status, 200);
    let response = app.browser().get("/metrics").await;
    assert_eq!(response.status, 200);
    let text = response.text;
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

async fn metrics_lines(app: &TestApp) -> Vec<String> {
    let response = app.browser().get("/metrics").await;
    assert_eq!(response.status, 200);
    response.text.lines().map(str::to_owned).collect()
}

#[tokio::test]
async fn made_up_methods_and_unknown_paths_do_not_grow_the_metrics() {
    let app = spawn_app().await;
    let browser = app.browser();
    let probe = async |method: String, path: String| {
        browser
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                &path,
            )
            .await
            .status
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
    let app = spawn_app_with(&[("METRICS_TOKEN", token)]).await;
    for authorization in [None, Some("Bearer wrong"), Some(token)] {
        let mut request = app.browser().get("/metrics");
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request.await;
        assert_eq!(response.status, 401, "{authorization:?}");
        assert_eq!(response.header("www-authenticate"), Some("Bearer"));
    }
    let response = app.browser().get("/metrics").bearer(token).await;
    assert_eq!(response.status, 200);
    assert!(response.text.contains("http_requests_total"));
}
