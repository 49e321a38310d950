//! Sign up, log in, log out, sessions and the login rate limit, over HTTP.

use std::time::Duration;

use billing::domain::Role;
use reqwest::Client;
use serde_json::Value;

use crate::support::{PASSWORD, TestApp, spawn_app, spawn_app_with};

async fn sign_up(app: &TestApp, client: &Client, email: &str, password: &str) -> reqwest::Response {
    client
        .post(app.url("/api/auth/signup"))
        .form(&[("email", email), ("password", password)])
        .send()
        .await
        .unwrap()
}

async fn log_in(app: &TestApp, client: &Client, email: &str, password: &str) -> reqwest::Response {
    client
        .post(app.url("/api/auth/login"))
        .form(&[("email", email), ("password", password)])
        .send()
        .await
        .unwrap()
}

async fn me(app: &TestApp, client: &Client) -> Value {
    let response = client.get(app.url("/api/auth/me")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("pb_session="))
        .map(str::to_owned)
}

#[tokio::test]
async fn signing_up_starts_a_session_with_a_safe_cookie() {
    let app = spawn_app_with(&[("SESSION_IDLE_MINUTES", "30")]).await;
    let client = app.new_client();
    let response = sign_up(&app, &client, "Ada@Example.com", PASSWORD).await;
    assert_eq!(response.status(), 200);
    let cookie = session_cookie(&response).expect("a session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(cookie.contains("Max-Age=1800"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "development serves plain http: {cookie}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["email"], "ada@example.com");
    assert_eq!(body["role"], "user");

    assert_eq!(me(&app, &client).await["email"], "ada@example.com");
    assert_eq!(me(&app, &app.new_client()).await, Value::Null);
}

#[tokio::test]
async fn a_site_served_over_https_marks_its_cookie_secure() {
    let app = spawn_app_with(&[("SITE_URL", "https://billing.example.com")]).await;
    let response = sign_up(&app, &app.new_client(), "ada@example.com", PASSWORD).await;
    assert_eq!(response.status(), 200);
    let cookie = session_cookie(&response).expect("a session cookie");
    assert!(cookie.contains("; Secure"), "{cookie}");
}

#[tokio::test]
async fn sign_up_explains_what_is_wrong() {
    let app = spawn_app().await;
    let client = app.new_client();
    assert_eq!(
        sign_up(&app, &client, "ada@example.com", PASSWORD)
            .await
            .status(),
        200
    );

    for (email, password, status, says) in [
        ("ada@example.com", PASSWORD, 409, "already exists"),
        ("bob@example.com", "short", 422, "at least 10 characters"),
        ("bob@example.com", "password12345", 422, "too easy to guess"),
        ("bob@example.com", "Summer2024!", 422, "too easy to guess"),
        ("bob@example.com", "1234512345", 422, "too easy to guess"),
        ("not-an-email", PASSWORD, 422, "email address"),
    ] {
        let response = sign_up(&app, &app.new_client(), email, password).await;
        assert_eq!(response.status(), status, "{email} / {password}");
        let error: Value = response.json().await.unwrap();
        assert!(
            error["message"].as_str().unwrap().contains(says),
            "{email} / {password}: {error}"
        );
    }
    assert_eq!(app.store.user_count().await.unwrap(), 1);
}

#[tokio::test]
async fn wrong_credentials_do_not_tell_whether_the_email_exists() {
    let app = spawn_app().await;
    app.account("ada@example.com", Role::User).await;

    let wrong_password = log_in(
        &app,
        &app.new_client(),
        "ada@example.com",
        "not the password",
    )
    .await;
    let unknown_email = log_in(&app, &app.new_client(), "nobody@example.com", PASSWORD).await;
    for response in [wrong_password, unknown_email] {
        assert_eq!(response.status(), 401);
        assert!(session_cookie(&response).is_none());
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"], "wrong_credentials");
        assert_eq!(error["message"], "Wrong email or password.");
    }
}

#[tokio::test]
async fn logging_in_cycles_the_session_id_and_logging_out_ends_it() {
    let app = spawn_app().await;
    app.account("ada@example.com", Role::User).await;
    let client = app.new_client();

    let first = session_cookie(&log_in(&app, &client, "ada@example.com", PASSWORD).await).unwrap();
    let second = session_cookie(&log_in(&app, &client, "ada@example.com", PASSWORD).await).unwrap();
    let id = |cookie: &str| cookie.split(';').next().unwrap().to_owned();
    assert_ne!(id(&first), id(&second), "a login gets a fresh session id");

    // The id from before the second login no longer opens the session.
    let stale = app.new_client();
    let response = stale
        .get(app.url("/api/tokens/balance"))
        .header("cookie", id(&first))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    let current = id(&second);
    let response = client
        .post(app.url("/api/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(me(&app, &client).await, Value::Null);
    let replayed = app
        .new_client()
        .get(app.url("/api/tokens/balance"))
        .header("cookie", current)
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), 401, "a logged-out session id is dead");
}

#[tokio::test]
async fn an_expired_session_is_refused() {
    let app = spawn_app().await;
    app.account("ada@example.com", Role::User).await;
    let client = app.logged_in("ada@example.com").await;
    assert_eq!(
        client
            .get(app.url("/api/tokens/balance"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Let the session's inactivity deadline pass.
    use sqlx::Connection;
    let path = app.data_dir.path().join("billing.sqlite3");
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    // Bound as the store binds it (SQLite keeps it as text, and compares it so).
    let expired = sqlx::query("UPDATE sessions SET expiry_date = $1")
        .bind(time::OffsetDateTime::now_utc() - time::Duration::SECOND)
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(expired.rows_affected(), 1);

    let response = client
        .get(app.url("/api/tokens/balance"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn activity_keeps_a_session_alive() {
    let app = spawn_app().await;
    app.account("ada@example.com", Role::User).await;
    let client = app.logged_in("ada@example.com").await;

    // Seconds before the inactivity deadline, the user does something...
    use sqlx::Connection;
    let path = app.data_dir.path().join("billing.sqlite3");
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let now = time::OffsetDateTime::now_utc();
    sqlx::query("UPDATE sessions SET expiry_date = $1")
        .bind(now + time::Duration::seconds(5))
        .execute(&mut conn)
        .await
        .unwrap();
    let response = client
        .get(app.url("/api/tokens/balance"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cookie = session_cookie(&response).expect("the cookie's lifetime is renewed too");
    assert!(cookie.contains("Max-Age="), "{cookie}");

    // ...and the deadline moves a whole idle period on from now.
    let deadline: time::OffsetDateTime = sqlx::query_scalar("SELECT expiry_date FROM sessions")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(
        deadline > now + time::Duration::HOUR,
        "the deadline is only {} away",
        deadline - now
    );
}

#[tokio::test]
async fn billing_reads_need_a_session() {
    let app = spawn_app().await;
    for path in ["/api/tokens/balance", "/api/tokens/ledger"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 401, "{path}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"], "unauthorized", "{path}");
    }

    app.user_with_tokens("ada@example.com", 0).await;
    app.account("bob@example.com", Role::User).await;
    let bob = app.logged_in("bob@example.com").await;
    let balance: Value = bob
        .get(app.url("/api/tokens/balance"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(balance["balance"], 0);
}

#[tokio::test]
async fn pages_send_visitors_to_log_in_and_back() {
    let app = spawn_app().await;
    let response = app.get("/app/billing?canceled=1").await;
    assert_eq!(response.status(), 302);
    assert_eq!(
        response.headers()["location"],
        "/login?next=/app/billing%3Fcanceled%3D1"
    );

    app.account("ada@example.com", Role::User).await;
    let ada = app.logged_in("ada@example.com").await;
    let page = ada.get(app.url("/app/billing")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let admin_page = ada.get(app.url("/admin")).send().await.unwrap();
    assert_eq!(admin_page.status(), 403);
    assert!(admin_page.text().await.unwrap().contains("Admins only"));
}

#[tokio::test]
async fn a_plain_form_login_redirects_to_next_and_errors_come_back_to_the_form() {
    let app = spawn_app().await;
    app.account("ada@example.com", Role::User).await;
    let client = app.new_client();
    let form = |password: &'static str| {
        client
            .post(app.url("/api/auth/login"))
            .header("accept", "text/html")
            .header("referer", app.url("/login?next=/admin"))
            .form(&[
                ("email", "ada@example.com"),
                ("password", password),
                ("next", "/app/billing"),
            ])
    };

    let wrong = form("nope nope nope").send().await.unwrap();
    assert_eq!(wrong.status(), 302);
    let back = wrong.headers()["location"].to_str().unwrap().to_owned();
    assert!(back.starts_with(&app.url("/login?next=")), "{back}");
    assert!(back.contains("__err="), "{back}");
    let page = client
        .get(&back)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Wrong email or password."),
        "the form shows the error"
    );

    let right = form(PASSWORD).send().await.unwrap();
    assert_eq!(right.status(), 302);
    assert_eq!(right.headers()["location"], "/app/billing");
}

/// A login from `ip` (the app trusts one proxy, which names the client in `X-Forwarded-For`).
async fn log_in_from(
    app: &TestApp,
    client: &Client,
    ip: &str,
    email: &str,
    password: &str,
) -> reqwest::Response {
    client
        .post(app.url("/api/auth/login"))
        .header("x-forwarded-for", ip)
        .form(&[("email", email), ("password", password)])
        .send()
        .await
        .unwrap()
}

const GUESS: &str = "guess guess guess";

async fn behind_a_proxy() -> TestApp {
    let app = spawn_app_with(&[("TRUSTED_PROXIES", "1")]).await;
    app.account("ada@example.com", Role::User).await;
    app
}

#[tokio::test]
async fn guessing_from_one_address_waits_there_and_the_owner_still_logs_in() {
    let app = behind_a_proxy().await;
    let guesser = "198.51.100.7";
    for _ in 0..10 {
        let response =
            log_in_from(&app, &app.new_client(), guesser, "ada@example.com", GUESS).await;
        assert_eq!(response.status(), 401);
    }
    // From the guesser's address even the right password waits now: guessing cannot go on.
    let limited = log_in_from(
        &app,
        &app.new_client(),
        guesser,
        "ada@example.com",
        PASSWORD,
    )
    .await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "60");
    let error: Value = limited.json().await.unwrap();
    assert_eq!(error["error"], "rate_limited");

    // The owner, from anywhere else, is not held by it.
    let owner = log_in_from(
        &app,
        &app.new_client(),
        "203.0.113.5",
        "ada@example.com",
        PASSWORD,
    )
    .await;
    assert_eq!(owner.status(), 200);

    app.clock.advance(Duration::from_secs(60));
    let later = log_in_from(
        &app,
        &app.new_client(),
        guesser,
        "ada@example.com",
        PASSWORD,
    )
    .await;
    assert_eq!(later.status(), 200);
}

fn device_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("pb_device="))
        .map(str::to_owned)
}

#[tokio::test]
async fn a_device_that_logged_in_before_is_not_held_by_the_account_wide_ceiling() {
    let app = behind_a_proxy().await;
    let owner = app.new_client();
    let first = log_in_from(&app, &owner, "203.0.113.5", "ada@example.com", PASSWORD).await;
    assert_eq!(first.status(), 200);
    let cookie = device_cookie(&first).expect("a device cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("Max-Age="), "{cookie}");

    // Guesses from many addresses, each within its own limit, until the account-wide ceiling
    // holds every device the account has not logged in from.
    let mut wrong = 0;
    'guessing: for a in 0..30 {
        for _ in 0..10 {
            let ip = format!("198.51.100.{a}");
            let response =
                log_in_from(&app, &app.new_client(), &ip, "ada@example.com", GUESS).await;
            match response.status().as_u16() {
                401 => wrong += 1,
                429 => break 'guessing,
                other => panic!("{other}"),
            }
        }
    }
    // The ceiling is 100 attempts an hour; the owner's first login was one.
    assert_eq!(wrong, 99);
    let new_device = log_in_from(
        &app,
        &app.new_client(),
        "192.0.2.1",
        "ada@example.com",
        PASSWORD,
    )
    .await;
    assert_eq!(new_device.status(), 429);

    // The owner's own device logs in, from wherever it is now.
    let back = log_in_from(&app, &owner, "192.0.2.99", "ada@example.com", PASSWORD).await;
    assert_eq!(back.status(), 200);

    // A forged or altered device cookie is just a new device.
    let value = cookie.split(';').next().unwrap().to_owned();
    for forged in [
        "pb_device=v1.1.AAAAAAAAAAAAAAAAAAAAAA.AAAA".to_owned(),
        format!("{}x", value),
        value.replace("pb_device=v1.1.", "pb_device=v1.2."),
    ] {
        let response = app
            .new_client()
            .post(app.url("/api/auth/login"))
            .header("x-forwarded-for", "192.0.2.50")
            .header("cookie", forged.as_str())
            .form(&[("email", "ada@example.com"), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 429, "{forged}");
    }
}

#[tokio::test]
async fn a_known_device_has_a_guessing_limit_of_its_own() {
    let app = behind_a_proxy().await;
    let device = app.new_client();
    let ip = "203.0.113.5";
    assert_eq!(
        log_in_from(&app, &device, ip, "ada@example.com", PASSWORD)
            .await
            .status(),
        200
    );
    for _ in 0..10 {
        let response = log_in_from(&app, &device, ip, "ada@example.com", GUESS).await;
        assert_eq!(response.status(), 401);
    }
    let limited = log_in_from(&app, &device, ip, "ada@example.com", PASSWORD).await;
    assert_eq!(limited.status(), 429);

    // Another device, even at the same address, is not held by it.
    let other = log_in_from(&app, &app.new_client(), ip, "ada@example.com", PASSWORD).await;
    assert_eq!(other.status(), 200);
}
