//! Admin credit and debit, roles, the billing-write rate limit and CSRF, over HTTP.

use std::time::Duration;

use billing::domain::Role;
use billing::store::LedgerQuery;
use serde_json::{Value, json};

use crate::support::{Answer, Browser, spawn_app, spawn_app_with};

async fn credit(admin: &Browser, body: Value) -> Answer {
    admin.post_json("/api/admin/tokens/credit", body).await
}

#[tokio::test]
async fn an_admin_credits_a_user_by_email_or_id_with_a_reason() {
    let app = spawn_app().await;
    let admin = app.admin("root").await;
    let ada = app.account("ada@example.com", Role::User).await;

    let response = credit(
        &admin,
        json!({ "user": "ada@example.com", "tokens": 500, "reason": "Goodwill for the outage" }),
    )
    .await;
    assert_eq!(response.status, 200);
    let body = response.json();
    assert_eq!(body["entry"]["delta"], 500);
    assert_eq!(body["entry"]["balance_after"], 500);
    assert_eq!(body["entry"]["source"], "manual");
    assert_eq!(body["entry"]["actor_id"], admin.me().id.get());
    assert_eq!(body["entry"]["reason"], "Goodwill for the outage");

    // By id, as a plain form (the admin page before hydration).
    let response = admin
        .post_form(
            "/api/admin/tokens/credit",
            &[
                ("user", ada.id.to_string().as_str()),
                ("tokens", "250"),
                ("reason", "Beta tester"),
            ],
        )
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(app.balance(&ada).await, 750);

    let debit = admin
        .post_json(
            "/api/admin/tokens/debit",
            json!({ "user": "ada@example.com", "tokens": 1000, "reason": "Too much" }),
        )
        .await;
    assert_eq!(debit.status, 402, "a debit never goes below zero");
    assert_eq!(app.balance(&ada).await, 750);
    assert!(app.store.audit_balances().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_resubmitted_request_id_credits_once() {
    let app = spawn_app().await;
    let admin = app.admin("root").await;
    let ada = app.account("ada@example.com", Role::User).await;
    let body = json!({ "user": "ada@example.com", "tokens": 100, "reason": "Promo", "request_id": "form-1" });

    let first = credit(&admin, body.clone()).await.json();
    let again = credit(&admin, body).await.json();
    assert_eq!(first["replayed"], false);
    assert_eq!(again["replayed"], true);
    assert_eq!(again["entry"]["id"], first["entry"]["id"]);
    assert_eq!(app.balance(&ada).await, 100);

    // Each answer brings a fresh id for the next adjustment: one sent with it is new.
    let next = first["next_request_id"].as_str().unwrap();
    assert!(!next.is_empty() && next != "form-1");
    assert_ne!(again["next_request_id"], first["next_request_id"]);
    let body =
        json!({ "user": "ada@example.com", "tokens": 7, "reason": "Later", "request_id": next });
    let later = credit(&admin, body).await.json();
    assert_eq!(later["replayed"], false);
    assert_eq!(app.balance(&ada).await, 107);
}

#[tokio::test]
async fn bad_adjustments_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let admin = app.admin("root").await;
    let ada = app.account("ada@example.com", Role::User).await;

    for (body, status) in [
        (
            json!({ "user": "ada@example.com", "tokens": -5, "reason": "x" }),
            422,
        ),
        (
            json!({ "user": "ada@example.com", "tokens": 0, "reason": "x" }),
            422,
        ),
        (
            json!({ "user": "ada@example.com", "tokens": 1_000_001, "reason": "x" }),
            422,
        ),
        (
            json!({ "user": "ada@example.com", "tokens": 10, "reason": " " }),
            422,
        ),
        (
            json!({ "user": "ada@example.com", "tokens": "ten", "reason": "x" }),
            422,
        ),
        (json!({ "user": "ada@example.com", "tokens": 10 }), 422),
        (
            json!({ "user": "ghost@example.com", "tokens": 10, "reason": "x" }),
            404,
        ),
        (
            json!({ "user": "not a user", "tokens": 10, "reason": "x" }),
            422,
        ),
    ] {
        let response = credit(&admin, body.clone()).await;
        assert_eq!(response.status, status, "{body}");
        let error = response.json();
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}: {error}"
        );
    }
    let malformed = admin
        .post("/api/admin/tokens/credit")
        .header("content-type", "application/json")
        .body("{\"user\": ")
        .await;
    assert_eq!(malformed.status, 422);
    assert_eq!(app.balance(&ada).await, 0);
}

#[tokio::test]
async fn only_admins_may_adjust_or_look_up_users() {
    let app = spawn_app().await;
    let ada = app.user("ada").await;
    let body = json!({ "user": "ada@example.com", "tokens": 100, "reason": "Free tokens" });

    let anonymous = credit(&app.browser(), body.clone()).await;
    assert_eq!(anonymous.status, 401);

    let response = credit(&ada, body).await;
    assert_eq!(response.status, 403);
    assert_eq!(response.json()["error"], "forbidden");
    let lookup = ada
        .get("/api/admin/users/find?query=ada%40example.com")
        .await;
    assert_eq!(lookup.status, 403);
    assert_eq!(app.balance(ada.me()).await, 0);
}

#[tokio::test]
async fn admins_find_users_with_their_balance_and_ledger() {
    let app = spawn_app().await;
    let admin = app.admin("root").await;
    app.user_with_tokens("ada@example.com", 5000).await;
    let found = admin
        .get("/api/admin/users/find?query=ADA%40example.com")
        .await;
    assert_eq!(found.status, 200);
    let found = found.json();
    assert_eq!(found["user"]["email"], "ada@example.com");
    assert_eq!(found["balance"], 5000);
    assert_eq!(found["ledger"]["entries"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn billing_writes_are_limited_to_five_a_minute() {
    let app = spawn_app().await;
    let admin = app.admin("root").await;
    let ada = app.account("ada@example.com", Role::User).await;
    let body = json!({ "user": "ada@example.com", "tokens": 1, "reason": "Test" });

    for i in 0..5 {
        assert_eq!(credit(&admin, body.clone()).await.status, 200, "write {i}");
    }
    let limited = credit(&admin, body.clone()).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("retry-after"), Some("12"));
    let error = limited.json();
    assert_eq!(error["error"], "rate_limited");
    assert_eq!(
        error["message"],
        "Too many requests. Please wait 12 seconds and try again."
    );
    assert_eq!(
        app.balance(&ada).await,
        5,
        "the refused write changed nothing"
    );

    app.clock.advance(Duration::from_secs(12));
    assert_eq!(credit(&admin, body).await.status, 200);
}

#[tokio::test]
async fn the_memory_limiter_enforces_the_same_limit() {
    let app = spawn_app_with(&[
        ("RATE_LIMIT_BACKEND", "memory"),
        ("RATE_LIMIT_PER_MINUTE", "2"),
    ])
    .await;
    let admin = app.admin("root").await;
    app.account("ada@example.com", Role::User).await;
    let body = json!({ "user": "ada@example.com", "tokens": 1, "reason": "Test" });
    for _ in 0..2 {
        assert_eq!(credit(&admin, body.clone()).await.status, 200);
    }
    let limited = credit(&admin, body).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("retry-after"), Some("30"));
}

#[tokio::test]
async fn cross_site_writes_are_refused() {
    let app = spawn_app().await;
    let admin = app.admin("root").await;
    let ada = app.account("ada@example.com", Role::User).await;
    let body = json!({ "user": "ada@example.com", "tokens": 100, "reason": "Forged" });

    for (name, value) in [
        ("origin", "https://evil.example"),
        ("sec-fetch-site", "cross-site"),
        ("origin", "null"),
    ] {
        let response = admin
            .post("/api/admin/tokens/credit")
            .header(name, value)
            .json(&body)
            .await;
        assert_eq!(response.status, 403, "{name}: {value}");
        assert_eq!(response.json()["error"], "cross_site_request");
    }
    let logout = admin
        .post("/api/auth/logout")
        .header("origin", "https://evil.example")
        .await;
    assert_eq!(logout.status, 403, "even logging out is a write");
    assert_eq!(app.balance(&ada).await, 0);

    // The same request from the site itself passes.
    let same = admin
        .post("/api/admin/tokens/credit")
        .header("origin", app.address.as_str())
        .header("sec-fetch-site", "same-origin")
        .json(&body)
        .await;
    assert_eq!(same.status, 200);
    assert_eq!(app.balance(&ada).await, 100);
}

async fn debit(admin: &Browser, body: Value) -> Answer {
    admin.post_json("/api/admin/tokens/debit", body).await
}

#[tokio::test]
async fn an_admin_debit_takes_tokens_with_the_admin_as_actor_and_never_below_zero() {
    let app = spawn_app().await;
    let admin = app.admin("root").await;
    let ada = app.user_with_tokens("ada@example.com", 750).await;
    let taking = |tokens: i64| json!({ "user": "ada@example.com", "tokens": tokens, "reason": "Duplicate credit" });

    let response = debit(&admin, taking(250)).await;
    assert_eq!(response.status, 200, "{}", response.text);
    let entry = &response.json()["entry"];
    assert_eq!(entry["delta"], -250);
    assert_eq!(entry["balance_after"], 500);
    assert_eq!(entry["source"], "manual");
    assert_eq!(entry["actor_id"], admin.me().id.get());
    assert_eq!(app.balance(&ada).await, 500);
    // The ledger row as stored.
    let newest = app
        .store
        .ledger_page(ada.id, &LedgerQuery::first(1))
        .await
        .unwrap()
        .entries
        .remove(0);
    assert_eq!(newest.delta.get(), -250);
    assert_eq!(newest.actor_id, Some(admin.me().id));
    assert_eq!(newest.reason, "Duplicate credit");

    // One token more than the balance is refused and changes nothing; the whole balance is not.
    let refused = debit(&admin, taking(501)).await;
    assert_eq!(refused.status, 402);
    let error = refused.json();
    assert_eq!(error["error"], "insufficient_tokens");
    assert_eq!(error["balance"], 500);
    assert_eq!(app.balance(&ada).await, 500);
    let all = debit(&admin, taking(500)).await;
    assert_eq!(all.status, 200, "{}", all.text);
    assert_eq!(all.json()["entry"]["balance_after"], 0);
    assert_eq!(app.balance(&ada).await, 0);
    assert!(app.store.audit_balances().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_adjustment_of_a_million_tokens_is_accepted_and_one_more_is_refused() {
    let app = spawn_app().await;
    let admin = app.admin("root").await;
    let ada = app.account("ada@example.com", Role::User).await;
    let body = |tokens: i64| json!({ "user": "ada@example.com", "tokens": tokens, "reason": "Enterprise deal" });

    let credited = credit(&admin, body(1_000_000)).await;
    assert_eq!(credited.status, 200, "{}", credited.text);
    assert_eq!(app.balance(&ada).await, 1_000_000);
    for too_many in [
        credit(&admin, body(1_000_001)).await,
        debit(&admin, body(1_000_001)).await,
    ] {
        assert_eq!(too_many.status, 422, "{}", too_many.text);
        assert_eq!(
            too_many.message(),
            "Tokens must be a whole number from 1 to 1000000."
        );
    }
    assert_eq!(app.balance(&ada).await, 1_000_000);
    let debited = debit(&admin, body(1_000_000)).await;
    assert_eq!(debited.status, 200, "{}", debited.text);
    assert_eq!(app.balance(&ada).await, 0);
}

#[tokio::test]
async fn the_billing_write_limit_is_kept_per_user_and_address() {
    let app = spawn_app_with(&[("TRUSTED_PROXIES", "1")]).await;
    let root = app.admin("root").await;
    let other = app.admin("other").await;
    let ada = app.account("ada@example.com", Role::User).await;
    let body = json!({ "user": "ada@example.com", "tokens": 1, "reason": "Test" });
    let credit_from = |admin: &Browser, ip: &str| {
        admin
            .post("/api/admin/tokens/credit")
            .header("x-forwarded-for", ip)
            .json(&body)
    };
    let (office, home) = ("198.51.100.7", "203.0.113.5");

    for i in 0..5 {
        assert_eq!(credit_from(&root, office).await.status, 200, "write {i}");
    }
    assert_eq!(credit_from(&root, office).await.status, 429);
    // The same admin from another address, and another admin from the same address, do not wait.
    assert_eq!(credit_from(&root, home).await.status, 200);
    assert_eq!(credit_from(&other, office).await.status, 200);
    assert_eq!(app.balance(&ada).await, 7);
}
