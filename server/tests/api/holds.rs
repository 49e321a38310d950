//! Holds over HTTP: `POST /api/tokens/holds`, `/api/tokens/holds/{id}/capture` and
//! `/release`.

use std::time::Duration;

use billing::domain::{HoldId, Source, User};
use billing::store::LedgerQuery;

use serde_json::{Value, json};

use crate::support::{Answer, ApiClient, TestApp, spawn_app, spawn_app_on_postgres};

fn hold_body(user: &User, tokens: i64, ttl_secs: i64) -> Value {
    json!({ "user": user.id, "tokens": tokens, "ttl_secs": ttl_secs, "reason": "Video render" })
}

/// Opens a hold that must succeed; its id.
async fn open(service: &ApiClient, key: &str, user: &User, tokens: i64, ttl_secs: i64) -> i64 {
    let opened = service
        .open_hold(key, &hold_body(user, tokens, ttl_secs))
        .await;
    assert_eq!(opened.status, 200, "{}", opened.text);
    opened.json()["hold_id"].as_i64().expect("a hold id")
}

/// (balance, held) as the store has them.
async fn available(app: &TestApp, user: &User) -> (i64, i64) {
    let available = app.store.available(user.id).await.unwrap();
    (available.balance.get(), available.held)
}

async fn audited(app: &TestApp) {
    assert_eq!(app.store.audit_credits().await.unwrap(), vec![]);
    assert_eq!(app.store.audit_balances().await.unwrap(), vec![]);
}

fn conflict(answer: &Answer, field: &str, value: Value) {
    assert_eq!(answer.status, 409, "{}", answer.text);
    let body = answer.json();
    assert_eq!(body["error"], "conflict", "{body}");
    assert_eq!(body[field], value, "{body}");
}

/// Hold, then capture less than held: the balance, the ledger row, and every repeat.
async fn capture_less_than_held(app: &TestApp) {
    let ada = app.user_with_tokens("ada@example.com", 1000).await;
    let key = app.api_key().await;
    let service = app.service(&key);

    let opened = service.open_hold("job-1", &hold_body(&ada, 600, 60)).await;
    assert_eq!(opened.status, 200, "{}", opened.text);
    assert!(opened.header("idempotent-replayed").is_none());
    let body = opened.json();
    let id = body["hold_id"].as_i64().unwrap();
    assert_eq!(body["available"], 400);
    assert_eq!(body["tokens"], 600);
    assert!(
        body["expires_at"].as_str().unwrap().ends_with('Z'),
        "{body}"
    );
    assert_eq!(
        available(app, &ada).await,
        (1000, 600),
        "reserved, not spent"
    );

    // What is held is not available to a consume.
    let consume = json!({ "user": ada.id, "tokens": 401, "reason": "Chat" });
    let refused = service.consume("chat-1", &consume).await;
    assert_eq!(refused.status, 402, "{}", refused.text);
    assert_eq!(refused.json()["available"], 400);
    assert!(
        refused.message().contains("400 tokens available"),
        "{}",
        refused.text
    );

    let captured = service.capture_hold(id, &json!({ "tokens": 450 })).await;
    assert_eq!(captured.status, 200, "{}", captured.text);
    let body = captured.json();
    assert_eq!(body["hold_id"], id);
    assert_eq!(body["tokens"], 450);
    assert_eq!(body["held"], 600);
    assert_eq!(body["released"], 150);
    assert_eq!(body["balance"], 550);
    assert_eq!(available(app, &ada).await, (550, 0), "the rest went back");
    let page = app
        .store
        .ledger_page(ada.id, &LedgerQuery::first(1))
        .await
        .unwrap();
    let entry = &page.entries[0];
    assert_eq!(entry.id.get(), body["entry_id"].as_i64().unwrap());
    assert_eq!(entry.source, Source::Capture);
    assert_eq!(entry.hold, Some(HoldId::new(id).unwrap()));
    assert_eq!(entry.delta.get(), -450);

    // The same capture again: the same answer, byte for byte, and nothing spent.
    let again = service.capture_hold(id, &json!({ "tokens": 450 })).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.bytes, captured.bytes);
    // Another amount, or a release, of a captured hold: refused.
    let other = service.capture_hold(id, &json!({ "tokens": 300 })).await;
    conflict(&other, "captured", json!(450));
    let release = service.release_hold(id).await;
    conflict(&release, "state", json!("captured"));
    assert_eq!(available(app, &ada).await, (550, 0));
    audited(app).await;
}

#[tokio::test]
async fn a_capture_of_less_than_held_spends_that_names_its_hold_and_repeats_the_same() {
    capture_less_than_held(&spawn_app().await).await;
}

#[tokio::test]
async fn holds_on_postgres() {
    if let Some(app) = spawn_app_on_postgres().await {
        capture_less_than_held(&app).await;
    }
}

#[tokio::test]
async fn a_released_hold_frees_its_tokens_answers_repeats_and_cannot_be_captured() {
    a_released_hold_frees_its_tokens_answers_repeats_and_cannot_be_captured_on(&spawn_app().await)
        .await;
}

#[tokio::test]
async fn a_released_hold_frees_its_tokens_answers_repeats_and_cannot_be_captured_on_postgres() {
    if let Some(app) = spawn_app_on_postgres().await {
        a_released_hold_frees_its_tokens_answers_repeats_and_cannot_be_captured_on(&app).await;
    }
}

async fn a_released_hold_frees_its_tokens_answers_repeats_and_cannot_be_captured_on(app: &TestApp) {
    let ada = app.user_with_tokens("ada@example.com", 1000).await;
    let key = app.api_key().await;
    let service = app.service(&key);
    let id = open(&service, "job-1", &ada, 700, 60).await;

    let released = service.release_hold(id).await;
    assert_eq!(released.status, 200, "{}", released.text);
    assert!(released.header("idempotent-replayed").is_none());
    let body = released.json();
    assert_eq!(body["state"], "released");
    assert_eq!(body["available"], 1000);
    assert_eq!(available(app, &ada).await, (1000, 0));

    let again = service.release_hold(id).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(
        again.bytes, released.bytes,
        "nothing else happened meanwhile"
    );

    let capture = service.capture_hold(id, &json!({ "tokens": 100 })).await;
    conflict(&capture, "state", json!("released"));
    assert!(capture.message().contains("released"), "{}", capture.text);
    assert_eq!(app.balance(&ada).await, 1000, "nothing spent");
    audited(app).await;
}

#[tokio::test]
async fn an_expired_hold_cannot_be_captured_and_its_release_says_it_expired() {
    let app = spawn_app().await;
    let ada = app.user_with_tokens("ada@example.com", 1000).await;
    let key = app.api_key().await;
    let service = app.service(&key);
    let id = open(&service, "job-1", &ada, 700, 1).await;
    app.clock.advance(Duration::from_millis(1200));

    let capture = service.capture_hold(id, &json!({ "tokens": 100 })).await;
    conflict(&capture, "state", json!("expired"));
    let release = service.release_hold(id).await;
    assert_eq!(release.status, 200, "{}", release.text);
    assert_eq!(release.json()["state"], "expired");
    assert_eq!(release.header("idempotent-replayed"), Some("true"));
    assert_eq!(available(&app, &ada).await, (1000, 0));
    audited(&app).await;
}

#[tokio::test]
async fn capturing_more_than_held_needs_allow_exceed_and_the_tokens_available() {
    let app = spawn_app().await;
    let ada = app.user_with_tokens("ada@example.com", 1000).await;
    let key = app.api_key().await;
    let service = app.service(&key);
    let id = open(&service, "job-1", &ada, 300, 60).await;

    let refused = service.capture_hold(id, &json!({ "tokens": 301 })).await;
    conflict(&refused, "held", json!(300));
    assert!(
        refused.message().contains("allow_exceed"),
        "{}",
        refused.text
    );
    let explicit = service
        .capture_hold(id, &json!({ "tokens": 301, "allow_exceed": false }))
        .await;
    conflict(&explicit, "held", json!(300));
    assert_eq!(available(&app, &ada).await, (1000, 300), "still open");

    // Beyond what is available (the hold's 300 and the 700 free): 402, still open.
    let short = service
        .capture_hold(id, &json!({ "tokens": 1001, "allow_exceed": true }))
        .await;
    assert_eq!(short.status, 402, "{}", short.text);
    assert_eq!(short.json()["error"], "insufficient_tokens");
    assert_eq!(short.json()["available"], 1000);
    assert_eq!(available(&app, &ada).await, (1000, 300));

    let all = service
        .capture_hold(id, &json!({ "tokens": 1000, "allow_exceed": true }))
        .await;
    assert_eq!(all.status, 200, "{}", all.text);
    assert_eq!(all.json()["balance"], 0);
    assert_eq!(all.json()["released"], 0);
    assert_eq!(available(&app, &ada).await, (0, 0));
    audited(&app).await;
}

#[tokio::test]
async fn a_hold_beyond_what_is_available_is_402_and_holds_nothing() {
    let app = spawn_app().await;
    let ada = app.user_with_tokens("ada@example.com", 100).await;
    let key = app.api_key().await;
    let service = app.service(&key);

    let short = service.open_hold("job-1", &hold_body(&ada, 101, 60)).await;
    assert_eq!(short.status, 402, "{}", short.text);
    let body = short.json();
    assert_eq!(body["error"], "insufficient_tokens");
    assert_eq!(body["available"], 100);
    assert_eq!(body["requested"], 101);
    assert!(
        short.message().contains("Nothing was held"),
        "{}",
        short.text
    );

    open(&service, "job-2", &ada, 60, 60).await;
    let second = service.open_hold("job-3", &hold_body(&ada, 41, 60)).await;
    assert_eq!(second.status, 402, "{}", second.text);
    assert_eq!(
        second.json()["available"],
        40,
        "the first hold's tokens are reserved"
    );
    assert_eq!(available(&app, &ada).await, (100, 60));

    let nobody = json!({ "user": 424242, "tokens": 1, "ttl_secs": 60, "reason": "x" });
    let unknown = service.open_hold("job-4", &nobody).await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    assert_eq!(unknown.json()["error"], "unknown_user");
}

#[tokio::test]
async fn a_hold_of_another_api_key_is_404_to_it() {
    let app = spawn_app().await;
    let ada = app.user_with_tokens("ada@example.com", 1000).await;
    let (mine, theirs) = (app.api_key().await, app.api_key().await);
    let id = open(&app.service(&mine), "job-1", &ada, 500, 60).await;

    let other = app.service(&theirs);
    for answer in [
        other.capture_hold(id, &json!({ "tokens": 100 })).await,
        other.release_hold(id).await,
    ] {
        assert_eq!(answer.status, 404, "{}", answer.text);
        assert_eq!(answer.json()["error"], "not_found");
    }
    assert_eq!(available(&app, &ada).await, (1000, 500), "untouched");
    let captured = app
        .service(&mine)
        .capture_hold(id, &json!({ "tokens": 100 }))
        .await;
    assert_eq!(captured.status, 200, "{}", captured.text);

    // The same client key under another API key is another hold.
    let body = hold_body(&ada, 100, 60);
    let second = other.open_hold("job-1", &body).await;
    assert_eq!(second.status, 200, "{}", second.text);
    assert_ne!(second.json()["hold_id"], id);
}

#[tokio::test]
async fn ids_in_the_path_that_name_no_hold_are_404() {
    let app = spawn_app().await;
    let ada = app.user_with_tokens("ada@example.com", 1000).await;
    let key = app.api_key().await;
    let service = app.service(&key);
    open(&service, "job-1", &ada, 100, 60).await;

    for id in [
        "abc",
        "0",
        "-1",
        "1.5",
        "1e3",
        "99999999999999999999",
        "424242",
        "%FF",
        "%20",
    ] {
        for answer in [
            service.capture_hold(id, &json!({ "tokens": 1 })).await,
            service.release_hold(id).await,
        ] {
            assert_eq!(answer.status, 404, "{id}: {}", answer.text);
            assert_eq!(answer.json()["error"], "not_found", "{id}");
        }
    }
    // Without a key, the key is what is wrong.
    let anonymous = app.service_without_key().release_hold("1").await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(available(&app, &ada).await, (1000, 100));
}

#[tokio::test]
async fn a_hold_is_opened_once_per_key_and_its_fields_are_checked() {
    let app = spawn_app().await;
    let ada = app.user_with_tokens("ada@example.com", 1000).await;
    let key = app.api_key().await;
    let service = app.service(&key);
    let body = hold_body(&ada, 100, 60);

    let first = service.open_hold("job-1", &body).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let again = service.open_hold("job-1", &body).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.json()["hold_id"], first.json()["hold_id"]);
    assert_eq!(available(&app, &ada).await, (1000, 100), "held once");

    let changed = service.open_hold("job-1", &hold_body(&ada, 200, 60)).await;
    assert_eq!(changed.status, 409, "{}", changed.text);
    assert_eq!(changed.json()["error"], "idempotency_conflict");

    // A consume with the same client key is another thing: keys are per kind.
    let consume = json!({ "user": ada.id, "tokens": 1, "reason": "Chat" });
    assert_eq!(service.consume("job-1", &consume).await.status, 200);

    for ttl in [0, -1, 86_401] {
        let answer = service.open_hold("job-ttl", &hold_body(&ada, 1, ttl)).await;
        assert_eq!(answer.status, 422, "{ttl}: {}", answer.text);
        assert_eq!(answer.json()["error"], "invalid");
        assert!(answer.message().contains("ttl_secs"), "{}", answer.text);
    }
    let day = service
        .open_hold("job-day", &hold_body(&ada, 1, 86_400))
        .await;
    assert_eq!(day.status, 200, "{}", day.text);

    for bad in [
        json!({ "user": ada.id, "tokens": 0, "ttl_secs": 60, "reason": "x" }),
        json!({ "user": ada.id, "tokens": 1, "ttl_secs": 60, "reason": " " }),
        json!({ "user": ada.id, "tokens": 1, "reason": "x" }),
        json!({ "user": ada.id, "tokens": 1, "ttl_secs": 60, "reason": "x", "extra": 1 }),
    ] {
        let answer = service.open_hold("job-bad", &bad).await;
        assert_eq!(answer.status, 422, "{bad}: {}", answer.text);
    }
    let no_key = service.post("/api/tokens/holds").json(&body).await;
    assert_eq!(no_key.status, 400, "{}", no_key.text);
    let anonymous = app.service_without_key().open_hold("job-9", &body).await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(available(&app, &ada).await, (999, 101));
}

#[tokio::test]
async fn a_capture_body_is_checked() {
    let app = spawn_app().await;
    let ada = app.user_with_tokens("ada@example.com", 1000).await;
    let key = app.api_key().await;
    let service = app.service(&key);
    let id = open(&service, "job-1", &ada, 100, 60).await;
    for bad in [
        json!({ "tokens": 0 }),
        json!({}),
        json!({ "tokens": 1, "allow_exceed": "yes" }),
        json!({ "tokens": 1, "more": true }),
    ] {
        let answer = service.capture_hold(id, &bad).await;
        assert_eq!(answer.status, 422, "{bad}: {}", answer.text);
        assert_eq!(answer.json()["error"], "invalid");
    }
    assert_eq!(available(&app, &ada).await, (1000, 100), "still open");
}

/// Services authenticate with their key, not cookies: like consume, the hold and batch routes
/// answer a call whatever `Origin` a proxy in between adds.
#[tokio::test]
async fn service_routes_take_calls_with_any_origin_as_consume_does() {
    let app = spawn_app().await;
    let ada = app.user_with_tokens("ada@example.com", 1_000).await;
    let key = app.api_key().await;
    let service = app.service(&key);
    let from_elsewhere = |path: &str| {
        service
            .post(path)
            .header("origin", "https://elsewhere.example")
            .header("sec-fetch-site", "cross-site")
    };
    let opened = from_elsewhere("/api/tokens/holds")
        .header("idempotency-key", "origin-hold")
        .json(&hold_body(&ada, 100, 60))
        .await;
    assert_eq!(opened.status, 200, "{}", opened.text);
    let hold = opened.json()["hold_id"].as_i64().unwrap();
    let captured = from_elsewhere(&format!("/api/tokens/holds/{hold}/capture"))
        .json(&json!({ "tokens": 100 }))
        .await;
    assert_eq!(captured.status, 200, "{}", captured.text);
    let batch = from_elsewhere("/api/tokens/consume/batch")
        .json(&json!({ "items": [
            { "user": ada.id, "tokens": 1, "reason": "Usage", "idempotency_key": "origin-1" }
        ] }))
        .await;
    assert_eq!(batch.status, 200, "{}", batch.text);
    assert_eq!(batch.json()["items"][0]["status"], "applied");
}
