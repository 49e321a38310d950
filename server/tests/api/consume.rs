//! `POST /api/tokens/consume` over HTTP.

use billing::testing::paid_purchase;
use serde_json::json;

use crate::support::spawn_app;

#[tokio::test]
async fn consuming_debits_once_and_a_replay_returns_the_original_answer() {
    let app = spawn_app().await;
    let user = app.user_with_tokens("ada@example.com", 1000).await;
    let key = app.api_key().await;
    let body = json!({ "user": user.id, "tokens": 150, "reason": "Image generation" });

    let first = app.service(&key).consume("req-1", &body).await;
    assert_eq!(first.status, 200);
    assert!(first.header("idempotent-replayed").is_none());
    let answer = first.json();
    assert_eq!(answer["balance"], 850);
    assert_eq!(answer["tokens"], 150);

    // The balance moves on; a replay still answers what the first call answered, byte for
    // byte, and says it is a replay in its header alone.
    let other = json!({ "user": user.id, "tokens": 50, "reason": "Audio" });
    assert_eq!(app.service(&key).consume("req-2", &other).await.status, 200);
    let again = app.service(&key).consume("req-1", &body).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.bytes, first.bytes, "the first answer, byte for byte");
    assert_eq!(app.balance(&user).await, 800, "the replay spent nothing");
}

#[tokio::test]
async fn the_same_key_with_a_different_body_is_a_conflict() {
    let app = spawn_app().await;
    let user = app.user_with_tokens("ada@example.com", 1000).await;
    let key = app.api_key().await;
    let body = json!({ "user": user.id, "tokens": 150, "reason": "Image generation" });
    assert_eq!(app.service(&key).consume("req-1", &body).await.status, 200);

    let changed = json!({ "user": user.id, "tokens": 300, "reason": "Image generation" });
    let response = app.service(&key).consume("req-1", &changed).await;
    assert_eq!(response.status, 409);
    assert_eq!(response.json()["error"], "idempotency_conflict");
    assert_eq!(app.balance(&user).await, 850);
}

#[tokio::test]
async fn keys_of_different_services_never_collide() {
    let app = spawn_app().await;
    let user = app.user_with_tokens("ada@example.com", 1000).await;
    let (a, b) = (app.api_key().await, app.api_key().await);
    let body = json!({ "user": user.id, "tokens": 100, "reason": "Chat" });
    for key in [&a, &b] {
        let response = app.service(key).consume("same-client-key", &body).await;
        assert_eq!(response.status, 200);
        assert!(response.header("idempotent-replayed").is_none());
    }
    assert_eq!(app.balance(&user).await, 800);
}

#[tokio::test]
async fn insufficient_tokens_is_402_with_the_balance_and_changes_nothing() {
    let app = spawn_app().await;
    let user = app.user_with_tokens("ada@example.com", 100).await;
    let key = app.api_key().await;
    let body = json!({ "user": user.id, "tokens": 101, "reason": "Video" });

    let response = app.service(&key).consume("req-1", &body).await;
    assert_eq!(response.status, 402);
    let error = response.json();
    assert_eq!(error["error"], "insufficient_tokens");
    assert_eq!(error["balance"], 100);
    assert_eq!(error["requested"], 101);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("Nothing was consumed")
    );
    assert_eq!(app.balance(&user).await, 100);
}

#[tokio::test]
async fn bad_missing_and_revoked_api_keys_are_401() {
    let app = spawn_app().await;
    let user = app.user_with_tokens("ada@example.com", 100).await;
    let body = json!({ "user": user.id, "tokens": 1, "reason": "Chat" });
    let forged = format!("pbk_{}", "0".repeat(64));

    for key in [None, Some("not-a-key"), Some(forged.as_str())] {
        let service = match key {
            Some(key) => app.service(key),
            None => app.service_without_key(),
        };
        let response = service.consume("req", &body).await;
        assert_eq!(response.status, 401, "{key:?}");
        assert_eq!(response.json()["error"], "unauthorized");
    }

    let key = app.api_key().await;
    let id = app.store.api_keys().await.unwrap().last().unwrap().id;
    assert!(app.store.revoke_api_key(id).await.unwrap());
    assert_eq!(app.service(&key).consume("req", &body).await.status, 401);
    assert_eq!(app.balance(&user).await, 100);
}

#[tokio::test]
async fn the_idempotency_key_header_is_required_and_bounded() {
    let app = spawn_app().await;
    let user = app.user_with_tokens("ada@example.com", 100).await;
    let key = app.api_key().await;
    let body = json!({ "user": user.id, "tokens": 1, "reason": "Chat" });

    let missing = app.service(&key).consume_request(None).json(&body).await;
    assert_eq!(missing.status, 400);
    assert!(
        missing.message().contains("Idempotency-Key"),
        "{}",
        missing.text
    );

    let too_long = "k".repeat(201);
    for bad in [too_long.as_str(), "has space"] {
        assert_eq!(app.service(&key).consume(bad, &body).await.status, 400);
    }
    assert_eq!(app.balance(&user).await, 100);
}

#[tokio::test]
async fn invalid_bodies_are_refused_with_a_clear_error() {
    let app = spawn_app().await;
    let user = app.user_with_tokens("ada@example.com", 100).await;
    let key = app.api_key().await;
    let id = user.id.get();

    for (body, status) in [
        (json!({ "user": id, "tokens": -5, "reason": "x" }), 422),
        (json!({ "user": id, "tokens": 0, "reason": "x" }), 422),
        (json!({ "user": id, "tokens": 1.5, "reason": "x" }), 422),
        (
            json!({ "user": id, "tokens": 10_000_000_000_i64, "reason": "x" }),
            422,
        ),
        (json!({ "user": id, "tokens": 1, "reason": "  " }), 422),
        (json!({ "user": id, "tokens": 1 }), 422),
        (
            json!({ "user": id, "tokens": 1, "reason": "x", "price": 0 }),
            422,
        ),
        (json!({ "user": -1, "tokens": 1, "reason": "x" }), 422),
    ] {
        let response = app.service(&key).consume("req", &body).await;
        assert_eq!(response.status, status, "{body}");
        assert_eq!(response.json()["error"], "invalid", "{body}");
    }

    let service = app.service(&key);
    let malformed = service
        .consume_request(Some("req"))
        .header("Content-Type", "application/json")
        .body("{\"user\": ")
        .await;
    assert_eq!(malformed.status, 400);

    let not_json = service.consume_request(Some("req")).body("user=1").await;
    assert_eq!(not_json.status, 415);

    let huge = service
        .consume_request(Some("req"))
        .header("Content-Type", "application/json")
        .body(format!("{{\"reason\": \"{}\"}}", "x".repeat(100_000)))
        .await;
    assert_eq!(huge.status, 413);

    assert_eq!(app.balance(&user).await, 100, "nothing was consumed");
}

#[tokio::test]
async fn an_unknown_user_is_404() {
    let app = spawn_app().await;
    let key = app.api_key().await;
    let body = json!({ "user": 424242, "tokens": 1, "reason": "Chat" });
    let response = app.service(&key).consume("req", &body).await;
    assert_eq!(response.status, 404);
    assert_eq!(response.json()["error"], "unknown_user");
}

#[tokio::test]
async fn a_billion_tokens_are_consumed_at_once_and_one_more_is_refused_with_a_clear_error() {
    let app = spawn_app().await;
    let user = app.user_with_tokens("ada@example.com", 1_000_000_000).await;
    paid_purchase(&*app.store, user.id, 1_000_000_000, "second-billion").await;
    let key = app.api_key().await;
    let body = |tokens: i64| json!({ "user": user.id, "tokens": tokens, "reason": "Batch job" });

    // Refused for its size, not for the balance (which has two billion).
    let refused = app
        .service(&key)
        .consume("req-1", &body(1_000_000_001))
        .await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    assert_eq!(refused.json()["error"], "invalid");
    assert!(
        refused.message().contains("`tokens` (1 to 1000000000)"),
        "{}",
        refused.text
    );
    assert_eq!(app.balance(&user).await, 2_000_000_000);

    let consumed = app
        .service(&key)
        .consume("req-2", &body(1_000_000_000))
        .await;
    assert_eq!(consumed.status, 200, "{}", consumed.text);
    assert_eq!(consumed.json()["balance"], 1_000_000_000);
    assert_eq!(app.balance(&user).await, 1_000_000_000);
}
