//! `POST /api/tokens/consume/batch` over HTTP: one answer per item, in order.

use billing::domain::Source;
use serde_json::{Value, json};

use crate::support::{TestApp, spawn_app, spawn_app_on_postgres};

fn item(user: impl Into<Value>, tokens: impl Into<Value>, key: &str) -> Value {
    json!({ "user": user.into(), "tokens": tokens.into(), "reason": "Chat", "idempotency_key": key })
}

#[tokio::test]
async fn each_item_is_answered_in_order_and_one_refusal_refuses_only_itself() {
    each_item_is_answered_in_order_and_one_refusal_refuses_only_itself_on(&spawn_app().await).await;
}

#[tokio::test]
async fn each_item_is_answered_in_order_and_one_refusal_refuses_only_itself_on_postgres() {
    if let Some(app) = spawn_app_on_postgres().await {
        each_item_is_answered_in_order_and_one_refusal_refuses_only_itself_on(&app).await;
    }
}

async fn each_item_is_answered_in_order_and_one_refusal_refuses_only_itself_on(app: &TestApp) {
    let ada = app.user_with_tokens("ada@example.com", 1000).await;
    let bob = app.user_with_tokens("bob@example.com", 10).await;
    let key = app.api_key().await;

    let items = json!([
        item(ada.id.get(), 100, "a-1"),
        item(bob.id.get(), 50, "b-1"),
        item(424242, 1, "nobody-1"),
        item(ada.id.get(), 0, "a-zero"),
        { "user": ada.id, "tokens": 1, "reason": "  ", "idempotency_key": "a-blank" },
        item(ada.id.get(), 1, "has space"),
        { "user": ada.id, "tokens": 1, "reason": "Chat" },
        "not an item",
        item(ada.id.get(), 200, "a-2"),
        item(ada.id.get(), 100, "a-1"),
        item(ada.id.get(), 999, "a-1"),
        item(bob.id.get(), 10, "b-2"),
    ]);
    let answer = app.service(&key).consume_batch(&items).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let body = answer.json();
    let answers = body["items"].as_array().unwrap();
    let statuses: Vec<&str> = answers
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "applied",
            "insufficient",
            "unknown_user",
            "invalid",
            "invalid",
            "invalid",
            "invalid",
            "invalid",
            "applied",
            "replayed",
            "conflict",
            "applied",
        ],
        "{body:#}"
    );
    assert_eq!(answers[0]["balance"], 900);
    assert_eq!(answers[0]["idempotency_key"], "a-1");
    assert_eq!(answers[1]["available"], 10);
    assert_eq!(answers[1]["requested"], 50);
    assert_eq!(answers[2]["user"], 424242);
    assert!(answers[3]["message"].as_str().unwrap().contains("tokens"));
    assert!(
        answers[5]["message"]
            .as_str()
            .unwrap()
            .contains("idempotency_key")
    );
    assert_eq!(answers[8]["balance"], 700);
    assert_eq!(answers[9]["entry_id"], answers[0]["entry_id"]);
    assert_eq!(answers[9]["balance"], 900, "the first answer's balance");
    assert_eq!(answers[11]["balance"], 0);
    assert_eq!(app.balance(&ada).await, 700);
    assert_eq!(app.balance(&bob).await, 0);
    assert_eq!(app.store.audit_credits().await.unwrap(), vec![]);
    assert_eq!(app.store.audit_balances().await.unwrap(), vec![]);

    // The whole batch again: every applied item is a replay now; nothing is spent twice.
    let again = app.service(&key).consume_batch(&items).await;
    let again = again.json();
    for i in [0, 8, 11] {
        assert_eq!(again["items"][i]["status"], "replayed", "{again:#}");
        assert_eq!(again["items"][i]["entry_id"], answers[i]["entry_id"]);
    }
    assert_eq!(app.balance(&ada).await, 700);
}

#[tokio::test]
async fn a_batch_item_and_a_single_consume_with_the_same_key_are_one_posting() {
    let app = spawn_app().await;
    let ada = app.user_with_tokens("ada@example.com", 1000).await;
    let (key, other_key) = (app.api_key().await, app.api_key().await);
    let service = app.service(&key);

    let single = json!({ "user": ada.id, "tokens": 150, "reason": "Chat" });
    let consumed = service.consume("job-1", &single).await;
    assert_eq!(consumed.status, 200, "{}", consumed.text);
    let batch = service
        .consume_batch(&json!([
            item(ada.id.get(), 150, "job-1"),
            item(ada.id.get(), 50, "job-2")
        ]))
        .await
        .json();
    assert_eq!(batch["items"][0]["status"], "replayed", "{batch:#}");
    assert_eq!(batch["items"][0]["entry_id"], consumed.json()["entry_id"]);
    assert_eq!(batch["items"][1]["status"], "applied");

    // And the other way: a single consume after the batch item is its replay.
    let after = service
        .consume(
            "job-2",
            &json!({ "user": ada.id, "tokens": 50, "reason": "Chat" }),
        )
        .await;
    assert_eq!(after.status, 200, "{}", after.text);
    assert_eq!(after.header("idempotent-replayed"), Some("true"));
    assert_eq!(after.json()["entry_id"], batch["items"][1]["entry_id"]);
    assert_eq!(app.balance(&ada).await, 800);

    // Another API key's "job-1" is its own posting.
    let theirs = app
        .service(&other_key)
        .consume_batch(&json!([item(ada.id.get(), 150, "job-1")]))
        .await
        .json();
    assert_eq!(theirs["items"][0]["status"], "applied", "{theirs:#}");
    assert_eq!(app.balance(&ada).await, 650);
}

#[tokio::test]
async fn a_thousand_items_are_one_batch_and_one_more_is_refused() {
    a_thousand_items_are_one_batch_and_one_more_is_refused_on(&spawn_app().await).await;
}

#[tokio::test]
async fn a_thousand_items_are_one_batch_and_one_more_is_refused_on_postgres() {
    if let Some(app) = spawn_app_on_postgres().await {
        a_thousand_items_are_one_batch_and_one_more_is_refused_on(&app).await;
    }
}

async fn a_thousand_items_are_one_batch_and_one_more_is_refused_on(app: &TestApp) {
    let ada = app.user_with_tokens("ada@example.com", 1000).await;
    let key = app.api_key().await;
    // Long reasons: the body is well over the 256 KiB other routes accept.
    let reason = "r".repeat(500);
    let items = |n: usize, tag: &str| {
        Value::Array(
            (0..n)
                .map(|i| {
                    json!({ "user": ada.id, "tokens": 1, "reason": reason,
                            "idempotency_key": format!("{tag}-{i}") })
                })
                .collect(),
        )
    };

    let over = app.service(&key).consume_batch(&items(1001, "over")).await;
    assert_eq!(
        over.status,
        413,
        "{}",
        &over.text[..over.text.len().min(500)]
    );
    let body = over.json();
    assert_eq!(body["error"], "payload_too_large");
    assert_eq!(body["max_items"], 1000);
    assert_eq!(body["items"], 1001);
    assert!(
        over.message().contains("at most 1000 items"),
        "{}",
        over.text
    );
    assert_eq!(app.balance(&ada).await, 1000, "nothing consumed");

    let full = items(1000, "full");
    assert!(full.to_string().len() > 256 * 1024);
    let answer = app.service(&key).consume_batch(&full).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        &answer.text[..answer.text.len().min(500)]
    );
    let answers = answer.json()["items"].as_array().unwrap().clone();
    assert_eq!(answers.len(), 1000);
    assert!(answers.iter().all(|a| a["status"] == "applied"));
    assert_eq!(answers[999]["balance"], 0);
    assert_eq!(app.balance(&ada).await, 0);
    let totals = app.store.ledger_totals(ada.id).await.unwrap();
    let consumes: i64 = totals
        .by_source
        .iter()
        .filter(|t| t.source == Source::Consume)
        .map(|t| t.entries)
        .sum();
    assert_eq!(consumes, 1000);
}

#[tokio::test]
async fn a_batch_needs_a_key_and_a_list_of_items() {
    let app = spawn_app().await;
    let ada = app.user_with_tokens("ada@example.com", 100).await;
    let key = app.api_key().await;
    let service = app.service(&key);
    let one = json!([item(ada.id.get(), 1, "k")]);

    let anonymous = app.service_without_key().consume_batch(&one).await;
    assert_eq!(anonymous.status, 401);
    for (items, status) in [(json!([]), 422), (json!("items"), 422), (json!({}), 422)] {
        let answer = service.consume_batch(&items).await;
        assert_eq!(answer.status, status, "{items}: {}", answer.text);
        assert_eq!(answer.json()["error"], "invalid");
    }
    let malformed = service
        .post("/api/tokens/consume/batch")
        .header("content-type", "application/json")
        .body("{\"items\": [")
        .await;
    assert_eq!(malformed.status, 400);
    let huge = service
        .post("/api/tokens/consume/batch")
        .header("content-type", "application/json")
        .body(format!(
            "{{\"items\": [\"{}\"]}}",
            "x".repeat(4 * 1024 * 1024)
        ))
        .await;
    assert_eq!(huge.status, 413);
    assert_eq!(app.balance(&ada).await, 100);
}
