//! `/healthz`, `/readyz`, `/metrics` and request ids.

use billing::domain::{ProductId, UserId};
use billing::testing::{FakeUser, StripeEvent};
use serde_json::json;

use crate::support::process::sqlite_store;
use crate::support::stripe_api::live_price;
use crate::support::{
    Metrics, ServerProcess, StripeApi, TestApp, eventually_within, password_hash, spawn_app,
    spawn_app_with,
};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_log_line_of_a_request_carries_its_request_id_and_the_response_echoes_it() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&[
        ("DATA_DIR", &data.path().display().to_string()),
        ("LOG_FORMAT", "json"),
        ("RUST_LOG", "warn,server=info,app=info,tower_http=debug"),
    ])
    .await;
    let output = server.output();
    let logged_with = async |message: &str, id: &str| {
        eventually_within(
            &format!("{message:?} logged with the request id {id}"),
            std::time::Duration::from_secs(10),
            std::time::Duration::from_millis(20),
            async || {
                output.json_lines().iter().any(|line| {
                    line["fields"]["message"] == message && line["span"]["request_id"] == id
                })
            },
        )
        .await
    };

    // The caller's id: on the app's own line (the refused login) and echoed.
    let refused = server
        .browser()
        .post("/api/auth/login")
        .header("x-request-id", "trace-me-42")
        .form(&[
            ("email", "nobody@example.com"),
            ("password", "not the password"),
        ])
        .await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.header("x-request-id"), Some("trace-me-42"));
    logged_with("login refused: wrong credentials", "trace-me-42").await;

    // An id the server made: the same on the request's lines as in the response.
    let answered = server.browser().get("/healthz").await;
    let id = answered.header("x-request-id").expect("a request id");
    assert_eq!(id.len(), 36, "a UUID: {id}");
    logged_with("started processing request", id).await;
}

/// A fresh server process (its own metrics, counted from zero) on live Stripe (the
/// stand-in), with an admin and a user who can log in.
async fn counted_server(stripe: &StripeApi, data: &tempfile::TempDir) -> (ServerProcess, UserId) {
    let store = sqlite_store(data.path()).await;
    let hash = password_hash().await;
    FakeUser::new("root@example.com")
        .admin()
        .password_hash(&hash)
        .create(&*store)
        .await;
    let ada = FakeUser::new("ada@example.com").create(&*store).await.id;
    let mut vars = stripe.settings();
    vars.push(("DATA_DIR", data.path().display().to_string()));
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    (ServerProcess::start(&vars).await, ada)
}

/// The status a body over the limit is answered with, and how many times it was sent. The
/// server answers 413 before it has read the body and closes the connection, so a client
/// still sending may see the connection go before the answer: it asks again, on a connection
/// of its own each time.
async fn too_big(server: &ServerProcess, payload: &str) -> (u16, usize) {
    for sent in 1..=3 {
        let webhooks = server.webhooks();
        let request = webhooks
            .delivery(payload, Some(&webhooks.sign(payload)))
            .header("connection", "close");
        if let Ok(answer) = request.try_send().await {
            return (answer.status, sent);
        }
    }
    panic!("no answer to a body over the limit, three times");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_ledger_entries_webhook_events_and_refusals() {
    let stripe = StripeApi::start().await;
    let data = tempfile::tempdir().unwrap();
    let (server, ada) = counted_server(&stripe, &data).await;
    let admin = server.browser();
    assert_eq!(admin.log_in("root@example.com").await.status, 200);

    // Five billing writes (four credits of 10, a debit of 15), and a sixth refused.
    let mut statuses = Vec::new();
    for (path, tokens) in [
        ("credit", 10),
        ("credit", 10),
        ("credit", 10),
        ("credit", 10),
    ]
    .into_iter()
    .chain([("debit", 15), ("credit", 10)])
    {
        let answer = admin
            .post_json(
                &format!("/api/admin/tokens/{path}"),
                json!({ "user": "ada@example.com", "tokens": tokens, "reason": "Metrics" }),
            )
            .await;
        statuses.push(answer.status);
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 200, 429],
        "the sixth is refused"
    );

    // Webhooks: one of each outcome, and one of each refusal.
    let webhooks = server.webhooks();
    let invoice = |id: &str, user: UserId| {
        StripeEvent::invoice_paid(user).id(id).set(
            "/data/object/lines/data/0/pricing/price_details/price",
            live_price(ProductId::Starter),
        )
    };
    let mut outcomes = Vec::new();
    for event in [
        invoice("evt_paid", ada).object_id("in_paid"),
        invoice("evt_paid", ada).object_id("in_paid"),
        StripeEvent::customer_created().id("evt_customer"),
        invoice("evt_nobody", UserId::new(999_999).unwrap()).object_id("in_nobody"),
    ] {
        let answer = webhooks.send(&event).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        outcomes.push(answer.json()["outcome"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        outcomes,
        ["credited", "already_applied", "ignored", "failed"]
    );
    let forged = webhooks
        .delivery(r#"{"id":"evt_forged"}"#, Some("t=1,v1=00"))
        .await;
    assert_eq!(forged.status, 400);
    assert_eq!(webhooks.send_payload("{}").await.status, 400);
    let huge = format!(r#"{{"id":"evt_huge","pad":"{}"}}"#, "x".repeat(300 * 1024));
    let (status, too_large) = too_big(&server, &huge).await;
    assert_eq!(status, 413);
    // The server closed the connection the refused body came on: a fresh client goes on.
    let webhooks = server.webhooks();
    let pack = stripe.paid_checkout(ada, "cus_ada", ProductId::Small).await;
    stripe.set_down(true);
    assert_eq!(webhooks.send(&pack.event).await.status, 503);
    stripe.set_down(false);

    let before = Metrics::scrape(&admin).await;
    for _ in 0..3 {
        assert_eq!(admin.get("/healthz").await.status, 200);
    }
    let metrics = Metrics::scrape(&admin).await;
    let healthz = [("method", "GET"), ("route", "/healthz"), ("status", "200")];
    assert_eq!(
        metrics.value("http_requests_total", &healthz)
            - before.value("http_requests_total", &healthz),
        3.0
    );
    assert_eq!(
        metrics.value("http_request_duration_seconds_count", &healthz)
            - before.value("http_request_duration_seconds_count", &healthz),
        3.0
    );
    let manual = [("source", "manual")];
    for (name, labels, expected) in [
        ("billing_ledger_entries_total", &manual[..], 5.0),
        (
            "billing_ledger_tokens_total",
            &[("source", "manual"), ("direction", "added")],
            40.0,
        ),
        (
            "billing_ledger_tokens_total",
            &[("source", "manual"), ("direction", "taken")],
            15.0,
        ),
        (
            "billing_ledger_entries_total",
            &[("source", "stripe_invoice")],
            1.0,
        ),
        (
            "billing_ledger_tokens_total",
            &[("source", "stripe_invoice"), ("direction", "added")],
            6_000.0,
        ),
        (
            "billing_ledger_entries_total",
            &[("source", "stripe_checkout")],
            0.0,
        ),
        (
            "billing_rate_limit_refusals_total",
            &[("limit", "billing")],
            1.0,
        ),
        (
            "billing_webhook_events_total",
            &[("type", "invoice.paid"), ("outcome", "credited")],
            1.0,
        ),
        (
            "billing_webhook_events_total",
            &[("type", "invoice.paid"), ("outcome", "already_applied")],
            1.0,
        ),
        (
            "billing_webhook_events_total",
            &[("type", "invoice.paid"), ("outcome", "failed")],
            1.0,
        ),
        (
            "billing_webhook_events_total",
            &[("type", "customer.created"), ("outcome", "ignored")],
            1.0,
        ),
        ("billing_webhook_events_total", &[], 4.0),
        (
            "billing_webhook_refusals_total",
            &[("reason", "signature")],
            1.0,
        ),
        (
            "billing_webhook_refusals_total",
            &[("reason", "malformed")],
            1.0,
        ),
        (
            "billing_webhook_refusals_total",
            &[("reason", "too_large")],
            too_large as f64,
        ),
        (
            "billing_webhook_refusals_total",
            &[("reason", "unavailable")],
            1.0,
        ),
    ] {
        assert_eq!(metrics.value(name, labels), expected, "{name} {labels:?}");
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
