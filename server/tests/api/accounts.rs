//! Sign up, log in, log out, sessions and the login rate limit, over HTTP.

use std::future::IntoFuture;
use std::time::Duration;

use billing::auth::{self, Password};
use billing::domain::{Email, Role};
use billing::testing::FakeUser;
use serde_json::{Value, json};

use crate::support::{
    Answer, Browser, PASSWORD, ServerProcess, StripeApi, TestApp, spawn_app, spawn_app_with,
};

#[tokio::test]
async fn signing_up_starts_a_session_with_a_safe_cookie() {
    let app = spawn_app_with(&[("SESSION_IDLE_MINUTES", "30")]).await;
    let browser = app.browser();
    let response = browser.sign_up("Ada@Example.com", PASSWORD).await;
    assert_eq!(response.status, 200);
    let cookie = response.cookie("pb_session").expect("a session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(cookie.contains("Max-Age=1800"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "development serves plain http: {cookie}"
    );
    let body = response.json();
    assert_eq!(body["email"], "ada@example.com");
    assert_eq!(body["role"], "user");

    assert_eq!(browser.whoami().await["email"], "ada@example.com");
    assert_eq!(app.browser().whoami().await, Value::Null);
}

#[tokio::test]
async fn a_site_served_over_https_marks_its_cookie_secure() {
    let app = spawn_app_with(&[("SITE_URL", "https://billing.example.com")]).await;
    let response = app.browser().sign_up("ada@example.com", PASSWORD).await;
    assert_eq!(response.status, 200);
    let cookie = response.cookie("pb_session").expect("a session cookie");
    assert!(cookie.contains("; Secure"), "{cookie}");
}

#[tokio::test]
async fn sign_up_explains_what_is_wrong() {
    let app = spawn_app().await;
    assert_eq!(
        app.browser()
            .sign_up("ada@example.com", PASSWORD)
            .await
            .status,
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
        let response = app.browser().sign_up(email, password).await;
        assert_eq!(response.status, status, "{email} / {password}");
        let error = response.json();
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

    let wrong_password = app
        .browser()
        .log_in_with("ada@example.com", "not the password")
        .await;
    let unknown_email = app.browser().log_in("nobody@example.com").await;
    for response in [wrong_password, unknown_email] {
        assert_eq!(response.status, 401);
        assert!(response.cookie("pb_session").is_none());
        let error = response.json();
        assert_eq!(error["error"], "wrong_credentials");
        assert_eq!(error["message"], "Wrong email or password.");
    }
}

#[tokio::test]
async fn logging_in_cycles_the_session_id_and_logging_out_ends_it() {
    let app = spawn_app().await;
    app.account("ada@example.com", Role::User).await;
    let browser = app.browser();

    let first = browser.log_in("ada@example.com").await.cookie("pb_session");
    let second = browser.log_in("ada@example.com").await.cookie("pb_session");
    let (first, second) = (first.unwrap(), second.unwrap());
    let id = |cookie: &str| cookie.split(';').next().unwrap().to_owned();
    assert_ne!(id(&first), id(&second), "a login gets a fresh session id");

    // The id from before the second login no longer opens the session.
    let response = app
        .browser()
        .get("/api/tokens/balance")
        .header("cookie", id(&first))
        .await;
    assert_eq!(response.status, 401);

    let current = id(&second);
    let response = browser.post("/api/auth/logout").await;
    assert_eq!(response.status, 200);
    assert_eq!(browser.whoami().await, Value::Null);
    let replayed = app
        .browser()
        .get("/api/tokens/balance")
        .header("cookie", current)
        .await;
    assert_eq!(replayed.status, 401, "a logged-out session id is dead");
}

#[tokio::test]
async fn a_login_upgrades_a_password_hash_made_with_earlier_settings() {
    let app = spawn_app().await;
    let password = Password::offered(PASSWORD).unwrap();
    let earlier = auth::hash_with_earlier_settings(&password).unwrap();
    FakeUser::new("ada@example.com")
        .password_hash(&earlier)
        .create(&*app.store)
        .await;
    let stored = async || {
        let email = Email::parse("ada@example.com").unwrap();
        app.store
            .credentials(&email)
            .await
            .unwrap()
            .unwrap()
            .1
            .unwrap()
    };

    let wrong = app
        .browser()
        .log_in_with("ada@example.com", "not the password")
        .await;
    assert_eq!(wrong.status, 401, "{}", wrong.text);
    assert_eq!(stored().await, earlier, "a wrong password changes nothing");

    let login = app.browser().log_in("ada@example.com").await;
    assert_eq!(login.status, 200, "{}", login.text);
    let upgraded = stored().await;
    assert!(
        upgraded.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"),
        "{upgraded}"
    );
    assert!(app.browser().log_in("ada@example.com").await.status == 200);
    assert_eq!(stored().await, upgraded, "a current hash is kept as it is");
}

#[tokio::test]
async fn an_expired_session_is_refused() {
    let app = spawn_app().await;
    let ada = app.user("ada").await;
    assert_eq!(ada.get("/api/tokens/balance").await.status, 200);

    // Let the session's inactivity deadline pass.
    let mut conn = app.sqlite().await;
    // Bound as the store binds it (SQLite keeps it as text, and compares it so).
    let expired = sqlx::query("UPDATE sessions SET expiry_date = $1")
        .bind(time::OffsetDateTime::now_utc() - time::Duration::SECOND)
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(expired.rows_affected(), 1);

    let response = ada.get("/api/tokens/balance").await;
    assert_eq!(response.status, 401);
}

#[tokio::test]
async fn activity_keeps_a_session_alive() {
    let app = spawn_app().await;
    let ada = app.user("ada").await;

    // Seconds before the inactivity deadline, the user does something...
    let now = time::OffsetDateTime::now_utc();
    app.age_sessions(now + time::Duration::seconds(5)).await;
    let mut conn = app.sqlite().await;
    let response = ada.get("/api/tokens/balance").await;
    assert_eq!(response.status, 200);
    let cookie = response
        .cookie("pb_session")
        .expect("the cookie's lifetime is renewed too");
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
async fn a_session_is_written_again_only_when_its_deadline_moves_by_a_minute() {
    let app = spawn_app().await;
    let ada = app.user("ada").await;
    let mut conn = app.sqlite().await;
    let stored = async |conn: &mut sqlx::SqliteConnection| -> (Vec<u8>, time::OffsetDateTime) {
        sqlx::query_as("SELECT data, expiry_date FROM sessions")
            .fetch_one(conn)
            .await
            .unwrap()
    };
    let at_login = stored(&mut conn).await;

    // Requests at once after the login leave the stored session as it is: no write each.
    for _ in 0..3 {
        assert_eq!(ada.get("/api/tokens/balance").await.status, 200);
    }
    assert_eq!(stored(&mut conn).await, at_login);

    // Once its deadline would move by a minute or more, the next request writes it.
    let now = time::OffsetDateTime::now_utc();
    let idle = time::Duration::DAY;
    app.age_sessions(now + idle - server::session::SAVE_EVERY)
        .await;
    assert_eq!(ada.get("/api/tokens/balance").await.status, 200);
    let (_, deadline) = stored(&mut conn).await;
    assert!(
        deadline >= now + idle,
        "the deadline moved only to {deadline}"
    );
}

#[tokio::test]
async fn billing_reads_need_a_session() {
    let app = spawn_app().await;
    for path in ["/api/tokens/balance", "/api/tokens/ledger"] {
        let response = app.browser().get(path).await;
        assert_eq!(response.status, 401, "{path}");
        assert_eq!(response.json()["error"], "unauthorized", "{path}");
    }

    // Each user reads their own: Ada's tokens are not Bob's.
    let ada = app.user_with_tokens("ada@example.com", 700).await;
    let bob = app.user("bob").await;
    let balance = bob.get("/api/tokens/balance").await;
    assert_eq!(balance.status, 200);
    assert_eq!(balance.json()["balance"], 0);
    let ledger = bob.get("/api/tokens/ledger").await;
    assert_eq!(ledger.status, 200);
    assert_eq!(ledger.json()["entries"], serde_json::json!([]));
    assert_eq!(app.balance(&ada).await, 700);
}

/// The server functions anyone may call: who am I (nobody), sign up, log in, log out.
const PUBLIC_SERVER_FUNCTIONS: [&str; 4] = [
    "/api/auth/me",
    "/api/auth/signup",
    "/api/auth/login",
    "/api/auth/logout",
];

#[tokio::test]
async fn every_server_function_but_the_public_ones_is_401_without_a_session() {
    let app = spawn_app().await;
    let ada = app.user_with_tokens("ada@example.com", 100).await;
    let adjustment = json!({ "user": "ada@example.com", "tokens": 1, "reason": "No session" });
    // Each with arguments it would act on, so that only the missing session refuses it.
    let server_functions = [
        ("GET", "/api/tokens/balance", None),
        ("GET", "/api/tokens/ledger?limit=5", None),
        ("GET", "/api/tokens/statement?month=2026-11", None),
        ("GET", "/api/billing/catalog", None),
        (
            "POST",
            "/api/billing/create-checkout-session",
            Some(json!({ "product": "small" })),
        ),
        (
            "POST",
            "/api/billing/create-portal-session",
            Some(json!({})),
        ),
        ("GET", "/api/billing/subscription", None),
        ("GET", "/api/billing/subscriptions", None),
        ("GET", "/api/billing/notices", None),
        ("GET", "/api/billing/auto-topup", None),
        (
            "POST",
            "/api/billing/auto-topup/choose",
            Some(json!({ "below": 500, "pack": "small", "monthly_cap": 5000 })),
        ),
        ("POST", "/api/billing/auto-topup/off", Some(json!({}))),
        ("POST", "/api/billing/auto-topup/card", Some(json!({}))),
        (
            "POST",
            "/api/billing/auto-topup/card-saved",
            Some(json!({ "session_id": "cs_test_a1b2c3" })),
        ),
        (
            "POST",
            "/api/billing/notices/low-balance",
            Some(json!({ "below": 100 })),
        ),
        (
            "GET",
            "/api/billing/checkout-status?session_id=cs_test_a1b2c3",
            None,
        ),
        ("GET", "/api/admin/users/find?query=ada%40example.com", None),
        ("POST", "/api/admin/tokens/credit", Some(adjustment.clone())),
        ("POST", "/api/admin/tokens/debit", Some(adjustment)),
    ];
    // The table is every server function the app registers, less the public ones.
    let mut registered: Vec<(String, String)> = leptos::server_fn::axum::server_fn_paths()
        .filter(|(path, _)| !PUBLIC_SERVER_FUNCTIONS.contains(path))
        .map(|(path, method)| (method.as_str().to_owned(), path.to_owned()))
        .collect();
    registered.sort();
    let mut tabled: Vec<(String, String)> = server_functions
        .iter()
        .map(|(method, path, _)| {
            let path = path.split('?').next().unwrap();
            ((*method).to_owned(), path.to_owned())
        })
        .collect();
    tabled.sort();
    assert_eq!(
        registered, tabled,
        "every user server function is in the table"
    );

    // The server's own routes for signed-in users, beside its server functions.
    let routes = [
        ("GET", "/api/tokens/stream", None),
        ("GET", "/api/tokens/ledger.csv", None),
        ("GET", "/api/tokens/statement.csv?month=2026-11", None),
    ];
    for (method, path, body) in server_functions.into_iter().chain(routes) {
        let anonymous = app.browser();
        let request = match method {
            "GET" => anonymous.get(path),
            _ => anonymous.post(path),
        };
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        // Bounded: a stream opened for nobody would never end.
        let response = tokio::time::timeout(Duration::from_secs(10), request.into_future())
            .await
            .unwrap_or_else(|_| panic!("{method} {path}: no answer within 10 s"));
        assert_eq!(response.status, 401, "{method} {path}: {}", response.text);
        assert_eq!(response.json()["error"], "unauthorized", "{method} {path}");
    }
    assert_eq!(app.balance(&ada).await, 100, "nothing changed");
}

#[tokio::test]
async fn pages_send_visitors_to_log_in_and_back() {
    let app = spawn_app().await;
    let response = app.browser().get("/app/billing?canceled=1").await;
    assert_eq!(response.status, 302);
    assert_eq!(
        response.header("location"),
        Some("/login?next=/app/billing%3Fcanceled%3D1")
    );

    let ada = app.user("ada").await;
    let page = ada.get("/app/billing").await;
    assert_eq!(page.status, 200);
    let admin_page = ada.get("/admin").await;
    assert_eq!(admin_page.status, 403);
    assert!(admin_page.text.contains("Admins only"));
}

#[tokio::test]
async fn a_plain_form_login_redirects_to_next_and_errors_come_back_to_the_form() {
    let app = spawn_app().await;
    app.account("ada@example.com", Role::User).await;
    let browser = app.browser();
    let form = |password: &'static str| {
        browser
            .post("/api/auth/login")
            .header("accept", "text/html")
            .header("referer", app.url("/login?next=/admin"))
            .form(&[
                ("email", "ada@example.com"),
                ("password", password),
                ("next", "/app/billing"),
            ])
    };

    let wrong = form("nope nope nope").await;
    assert_eq!(wrong.status, 302);
    let back = wrong.header("location").unwrap().to_owned();
    assert!(back.starts_with(&app.url("/login?next=")), "{back}");
    assert!(back.contains("__err="), "{back}");
    let page = browser.get(&back).await.text;
    assert!(
        page.contains("Wrong email or password."),
        "the form shows the error"
    );

    let right = form(PASSWORD).await;
    assert_eq!(right.status, 302);
    assert_eq!(right.header("location"), Some("/app/billing"));
}

/// A login from `ip` (the app trusts one proxy, which names the client in `X-Forwarded-For`).
async fn log_in_from(browser: &Browser, ip: &str, email: &str, password: &str) -> Answer {
    browser
        .post("/api/auth/login")
        .header("x-forwarded-for", ip)
        .form(&[("email", email), ("password", password)])
        .await
}

/// A sign-up from `ip`, behind the one proxy the app trusts.
async fn sign_up_from(browser: &Browser, ip: &str, email: &str) -> Answer {
    browser
        .post("/api/auth/signup")
        .header("x-forwarded-for", ip)
        .form(&[("email", email), ("password", PASSWORD)])
        .await
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
        let response = log_in_from(&app.browser(), guesser, "ada@example.com", GUESS).await;
        assert_eq!(response.status, 401);
    }
    // From the guesser's address even the right password waits now: guessing cannot go on.
    let limited = log_in_from(&app.browser(), guesser, "ada@example.com", PASSWORD).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("retry-after"), Some("60"));
    assert_eq!(limited.json()["error"], "rate_limited");

    // The owner, from anywhere else, is not held by it.
    let owner = log_in_from(&app.browser(), "203.0.113.5", "ada@example.com", PASSWORD).await;
    assert_eq!(owner.status, 200);

    app.clock.advance(Duration::from_secs(60));
    let later = log_in_from(&app.browser(), guesser, "ada@example.com", PASSWORD).await;
    assert_eq!(later.status, 200);
}

#[tokio::test]
async fn a_device_that_logged_in_before_is_not_held_by_the_account_wide_ceiling() {
    let app = behind_a_proxy().await;
    let owner = app.browser();
    let first = log_in_from(&owner, "203.0.113.5", "ada@example.com", PASSWORD).await;
    assert_eq!(first.status, 200);
    let cookie = first.cookie("pb_device").expect("a device cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("Max-Age="), "{cookie}");

    // Guesses from many addresses, each within its own limit, until the account-wide ceiling
    // holds every device the account has not logged in from.
    let mut wrong = 0;
    'guessing: for a in 0..30 {
        for _ in 0..10 {
            let ip = format!("198.51.100.{a}");
            let response = log_in_from(&app.browser(), &ip, "ada@example.com", GUESS).await;
            match response.status {
                401 => wrong += 1,
                429 => break 'guessing,
                other => panic!("{other}"),
            }
        }
    }
    // The ceiling is 100 attempts an hour; the owner's first login was one.
    assert_eq!(wrong, 99);
    let new_device = log_in_from(&app.browser(), "192.0.2.1", "ada@example.com", PASSWORD).await;
    assert_eq!(new_device.status, 429);

    // The owner's own device logs in, from wherever it is now.
    let back = log_in_from(&owner, "192.0.2.99", "ada@example.com", PASSWORD).await;
    assert_eq!(back.status, 200);

    // A forged or altered device cookie is just a new device.
    let value = cookie.split(';').next().unwrap().to_owned();
    for forged in [
        "pb_device=v1.1.AAAAAAAAAAAAAAAAAAAAAA.AAAA".to_owned(),
        format!("{}x", value),
        value.replace("pb_device=v1.1.", "pb_device=v1.2."),
    ] {
        let response = app
            .browser()
            .post("/api/auth/login")
            .header("x-forwarded-for", "192.0.2.50")
            .header("cookie", forged.as_str())
            .form(&[("email", "ada@example.com"), ("password", PASSWORD)])
            .await;
        assert_eq!(response.status, 429, "{forged}");
    }
}

#[tokio::test]
async fn a_known_device_has_a_guessing_limit_of_its_own() {
    let app = behind_a_proxy().await;
    let device = app.browser();
    let ip = "203.0.113.5";
    assert_eq!(
        log_in_from(&device, ip, "ada@example.com", PASSWORD)
            .await
            .status,
        200
    );
    for _ in 0..10 {
        let response = log_in_from(&device, ip, "ada@example.com", GUESS).await;
        assert_eq!(response.status, 401);
    }
    let limited = log_in_from(&device, ip, "ada@example.com", PASSWORD).await;
    assert_eq!(limited.status, 429);

    // Another device, even at the same address, is not held by it.
    let other = log_in_from(&app.browser(), ip, "ada@example.com", PASSWORD).await;
    assert_eq!(other.status, 200);
}

#[tokio::test]
async fn logins_and_sign_ups_from_one_address_share_twenty_a_minute_and_other_addresses_do_not_wait()
 {
    let app = behind_a_proxy().await;
    let busy = "198.51.100.7";
    // Twenty attempts that each fail for what they are, not for the limit (none of them
    // hashes a password or names an account, so no other limit counts them).
    for i in 0..10 {
        let response = sign_up_from(&app.browser(), busy, &format!("not-an-email-{i}")).await;
        assert_eq!(response.status, 422, "sign-up {i}: {}", response.text);
        let response = log_in_from(&app.browser(), busy, &format!("nobody-{i}"), GUESS).await;
        assert_eq!(response.status, 401, "login {i}: {}", response.text);
    }

    // The address has used its minute: a good sign-up and the owner's own login wait there.
    let limited = sign_up_from(&app.browser(), busy, "bob@example.com").await;
    assert_eq!(limited.status, 429, "{}", limited.text);
    assert_eq!(limited.header("retry-after"), Some("3"));
    assert_eq!(limited.json()["error"], "rate_limited");
    let owner = log_in_from(&app.browser(), busy, "ada@example.com", PASSWORD).await;
    assert_eq!(owner.status, 429);
    assert_eq!(
        app.store.user_count().await.unwrap(),
        1,
        "Bob was not signed up"
    );

    // Another address does not wait.
    let elsewhere = "203.0.113.5";
    assert_eq!(
        sign_up_from(&app.browser(), elsewhere, "bob@example.com")
            .await
            .status,
        200
    );
    assert_eq!(
        log_in_from(&app.browser(), elsewhere, "ada@example.com", PASSWORD)
            .await
            .status,
        200
    );

    // One attempt comes back every three seconds.
    app.clock.advance(Duration::from_secs(3));
    assert_eq!(
        sign_up_from(&app.browser(), busy, "carol@example.com")
            .await
            .status,
        200
    );
    assert_eq!(
        sign_up_from(&app.browser(), busy, "dan@example.com")
            .await
            .status,
        429
    );
}

/// Twenty logins (of no account) with these `X-Forwarded-For` headers, then a 21st with
/// `last`; its status.
async fn twenty_logins_then(
    app: &TestApp,
    forwarded_for: impl Fn(usize) -> String,
    last: &str,
) -> u16 {
    for i in 0..20 {
        let response = log_in_from(&app.browser(), &forwarded_for(i), "nobody", GUESS).await;
        assert_eq!(response.status, 401, "login {i}: {}", response.text);
    }
    log_in_from(&app.browser(), last, "nobody", GUESS)
        .await
        .status
}

#[tokio::test]
async fn x_forwarded_for_names_the_client_only_as_a_trusted_proxy_wrote_it() {
    // No proxy trusted: the header is anyone's to write, and a new one each time changes
    // nothing: every attempt comes from the test's own address.
    let direct = spawn_app().await;
    let status = twenty_logins_then(&direct, |i| format!("198.51.100.{i}"), "192.0.2.1").await;
    assert_eq!(status, 429, "a forged X-Forwarded-For escaped the limit");

    // One proxy trusted: the client is the entry it added (the last); whatever the client
    // wrote before it is not believed.
    let proxied = behind_a_proxy().await;
    let status = twenty_logins_then(
        &proxied,
        |i| format!("203.0.113.{i}, 198.51.100.7"),
        "192.0.2.1, 198.51.100.7",
    )
    .await;
    assert_eq!(
        status, 429,
        "a forged entry before the proxy's escaped the limit"
    );
    let other_client = log_in_from(
        &proxied.browser(),
        "198.51.100.7, 198.51.100.8",
        "nobody",
        GUESS,
    )
    .await;
    assert_eq!(
        other_client.status, 401,
        "another client of the same proxy does not wait"
    );
}

#[tokio::test]
async fn a_production_server_marks_its_cookies_secure_even_over_plain_http() {
    let stripe = StripeApi::start().await;
    let data = tempfile::tempdir().unwrap();
    let mut vars = stripe.settings();
    vars.extend([
        ("APP_ENV", "production".to_owned()),
        // Plain http: only production makes the cookies Secure here.
        ("SITE_URL", "http://billing.internal".to_owned()),
        (
            "METRICS_TOKEN",
            "a-long-random-metrics-token-for-tests".to_owned(),
        ),
        ("DATA_DIR", data.path().display().to_string()),
        (
            "MAIL_FROM",
            "PromptBloom <billing@billing.internal>".to_owned(),
        ),
        // A relay on this machine; nothing is mailed in this test.
        ("SMTP_HOST", "localhost".to_owned()),
        ("SMTP_TLS", "none".to_owned()),
    ]);
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = ServerProcess::start(&vars).await;

    let response = server.browser().sign_up("ada@example.com", PASSWORD).await;
    assert_eq!(response.status, 200, "{}", response.text);
    for name in ["pb_session", "pb_device"] {
        let cookie = response.cookie(name).expect("the cookie is set");
        assert!(cookie.contains("; Secure"), "{cookie}");
        assert!(cookie.contains("HttpOnly"), "{cookie}");
    }
}
