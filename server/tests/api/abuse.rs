//! Hostile input over HTTP: deeply nested JSON, oversized bodies, SQL- and HTML-looking text.

use billing::domain::Role;
use billing::testing::StripeEvent;
use serde_json::json;

use crate::support::{TestApp, capture_logs, spawn_app};

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

#[tokio::test]
async fn deeply_nested_json_is_refused_everywhere_and_the_server_stays_up() {
    let app = spawn_app().await;
    let admin = app.admin("root").await;
    let key = app.api_key().await;
    // Small enough for every endpoint's size limit, far deeper than any parser allows.
    let deep = nested(5_000);

    // Deep where the parser must descend: an event's object is any JSON.
    let event = format!(
        r#"{{"id":"evt_deep","object":"event","type":"invoice.paid","created":1,"data":{{"object":{deep}}}}}"#
    );
    let webhook = app.webhooks().send_payload(&event).await;
    assert_eq!(webhook.status, 400);
    assert!(
        webhook.message().contains("recursion limit exceeded"),
        "{}",
        webhook.text
    );
    assert!(app.store.inbox_event("evt_deep").await.unwrap().is_none());

    let credit = admin
        .post("/api/admin/tokens/credit")
        .header("content-type", "application/json")
        .body(format!(r#"{{"user":{deep}}}"#))
        .await;
    assert_eq!(credit.status, 422);
    assert!(
        credit.message().contains("recursion limit exceeded"),
        "{}",
        credit.text
    );

    // Consume reads its fields by type: a number where the nesting starts, so it never
    // descends into it.
    let consume = app
        .service(&key)
        .consume_request(Some("deep"))
        .header("content-type", "application/json")
        .body(format!(r#"{{"user":{deep}}}"#))
        .await;
    assert_eq!(consume.status, 422);
    assert_eq!(consume.json()["error"], "invalid");
    assert!(
        consume
            .message()
            .contains("invalid type: sequence, expected i64 at line 1 column 8"),
        "{}",
        consume.text
    );

    assert_eq!(app.browser().get("/healthz").await.status, 200);
}

/// `json` (an object) with a `pad` field that brings it to exactly `bytes` bytes.
fn padded_to(json: &str, bytes: usize) -> String {
    let empty = format!(r#"{{"pad":"",{}"#, &json[1..]);
    let padded = format!(
        r#"{{"pad":"{}",{}"#,
        "x".repeat(bytes - empty.len()),
        &json[1..]
    );
    assert_eq!(padded.len(), bytes);
    padded
}

#[tokio::test]
async fn a_body_at_the_limit_is_read_and_one_byte_more_is_refused() {
    const LIMIT: usize = 256 * 1024;
    let app = spawn_app().await;
    let ada = app.account("ada@example.com", Role::User).await;
    let key = app.api_key().await;

    // A webhook delivery: Stripe's event, padded.
    let event = |id: &str| {
        StripeEvent::invoice_paid(ada.id)
            .id(id)
            .object_id(&format!("in_{id}"))
            .payload()
    };
    let over = app
        .webhooks()
        .send_payload(&padded_to(&event("evt_over"), LIMIT + 1))
        .await;
    assert_eq!(over.status, 413, "{}", over.text);
    let at = app
        .webhooks()
        .send_payload(&padded_to(&event("evt_at"), LIMIT))
        .await;
    assert_eq!(at.status, 200, "{}", at.text);
    assert_eq!(at.json()["outcome"], "credited");
    assert_eq!(app.balance(&ada).await, 6_000);

    // A server function's form (a login, its `next` padded): read, and answered on its merits.
    let form = |bytes: usize| {
        let head = "email=ada%40example.com&password=not+the+password&next=%2F";
        format!("{head}{}", "x".repeat(bytes - head.len()))
    };
    for (bytes, status) in [(LIMIT + 1, 413), (LIMIT, 401)] {
        let login = app
            .browser()
            .post("/api/auth/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(bytes))
            .await;
        assert_eq!(login.status, status, "{bytes} bytes: {}", login.text);
    }

    // Consume's own limit is 16 KiB.
    let body = json!({ "user": ada.id, "tokens": 1, "reason": "Chat" }).to_string();
    for (bytes, status) in [(16 * 1024 + 1, 413), (16 * 1024, 422)] {
        let consume = app
            .service(&key)
            .consume_request(Some(&format!("limit-{bytes}")))
            .header("content-type", "application/json")
            .body(padded_to(&body, bytes))
            .await;
        assert_eq!(consume.status, status, "{bytes} bytes: {}", consume.text);
    }
    assert!(app.store.inbox_event("evt_over").await.unwrap().is_none());
}

#[tokio::test]
async fn oversized_bodies_are_refused_before_they_are_read() {
    let app = spawn_app().await;
    let admin = app.admin("root").await;
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
            .post(path)
            .header("content-type", "application/json")
            .body(huge.clone())
            .await;
        assert_eq!(response.status, 413, "{path}");
    }
}

#[tokio::test]
async fn sql_and_html_in_a_reason_are_kept_as_text_and_escaped_on_the_page() {
    let app = spawn_app().await;
    let admin = app.admin("root").await;
    let ada = app.user("ada").await;
    let reason = r#"<script>alert("x")</script>'); DROP TABLE users; --"#;
    let response = admin
        .post_json(
            "/api/admin/tokens/credit",
            json!({ "user": "ada@example.com", "tokens": 42, "reason": reason }),
        )
        .await;
    assert_eq!(response.status, 200);

    // Stored verbatim, and the users are all still there.
    let page = app
        .store
        .ledger_page(ada.me().id, &billing::store::LedgerQuery::first(1))
        .await
        .unwrap();
    assert_eq!(page.entries[0].reason, reason);
    assert_eq!(app.store.user_count().await.unwrap(), 2);

    // Shown as text: escaped in the HTML the server renders.
    let page = ada.get("/app/billing").await;
    assert_eq!(page.status, 200);
    let html = page.text;
    assert!(
        !html.contains("<script>alert"),
        "the reason must be escaped"
    );
    assert!(
        html.contains("&lt;script&gt;alert"),
        "the reason is shown as text"
    );
}

/// Posts `bytes` bytes of form in chunks (`Transfer-Encoding: chunked`, no length said up
/// front) and gives the answer's status.
async fn post_chunked(app: &TestApp, path: &str, bytes: usize) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 16 * 1024, "a".repeat(16 * 1024));
    for _ in 0..bytes.div_ceil(16 * 1024) {
        // The server may answer and close before the body ends.
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {answer:?}"))
}

#[tokio::test]
async fn chunked_bodies_over_the_limit_answer_413_without_an_error_in_the_logs() {
    let logs = capture_logs();
    let app = spawn_app().await;
    for path in [
        "/api/auth/login",
        "/api/auth/signup",
        "/api/admin/tokens/credit",
        "/api/billing/create-checkout-session",
    ] {
        assert_eq!(post_chunked(&app, path, 512 * 1024).await, 413, "{path}");
    }
    // A chunked body within the limit is read as usual (and lacks the fields a login needs).
    assert_eq!(post_chunked(&app, "/api/auth/login", 1024).await, 422);
    assert_eq!(app.browser().get("/healthz").await.status, 200);
    let errors = logs.at_least(tracing::Level::ERROR);
    assert!(errors.is_empty(), "{errors:#?}");
}

#[tokio::test]
async fn non_utf8_form_bodies_answer_400_without_an_error_in_the_logs() {
    let logs = capture_logs();
    let app = spawn_app().await;
    for path in [
        "/api/auth/login",
        "/api/auth/signup",
        "/api/admin/tokens/credit",
    ] {
        let response = app
            .browser()
            .post(path)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(b"email=ada%40example.com&password=\xff\xfe\xfd".to_vec())
            .await;
        assert_eq!(response.status, 400, "{path}");
        assert_eq!(response.json()["error"], "bad_request", "{path}");
    }
    assert_eq!(app.store.user_count().await.unwrap(), 0, "nothing was made");
    let errors = logs.at_least(tracing::Level::ERROR);
    assert!(errors.is_empty(), "{errors:#?}");
}
