use crate::support::{spawn_app, spawn_app_with};

#[tokio::test]
async fn the_billing_page_is_rendered_on_the_server_with_its_hydration_scripts() {
    let app = spawn_app().await;
    app.user_with_tokens("ada@example.com", 0).await;
    let bob = app.user("bob").await;
    let response = bob.get("/app/billing").await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = response.text;
    assert!(html.contains("<h1>Billing</h1>"), "{html}");
    assert!(html.contains("bob@example.com"), "{html}");
    assert!(html.contains("/pkg/billing.js"), "{html}");
    assert!(html.contains("/pkg/billing.wasm"), "{html}");
}

/// The page's parts are one island, taken over by the browser, that carries no props: it reads
/// what the address asks for from the address itself, on the server and in the browser. A
/// crafted address stays text wherever the page shows it.
#[tokio::test]
async fn the_billing_island_reads_the_address_and_a_crafted_one_stays_text() {
    let app = spawn_app().await;
    let bob = app.user("bob").await;
    let crafted =
        "/app/billing?source=%22%3E%3Cscript%3Ealert(1)%3C/script%3E&session_id=%27%3Cb%3E";
    let response = bob.get(crafted).await;
    assert_eq!(response.status, 200, "{}", response.text);
    let html = response.text;
    let island = html
        .find("<leptos-island data-component=\"BillingParts_")
        .map(|at| &html[at..])
        .expect("the billing parts are an island");
    let island_tag = &island[..island.find('>').expect("the island's tag ends")];
    assert!(!island_tag.contains("data-props"), "{island_tag}");
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(!html.contains("<b>"), "{html}");
    // The frame is the server's alone: no island around the header or the page's title.
    let before_island = &html[..html.find("<leptos-island").unwrap()];
    assert!(before_island.contains("<h1>Billing</h1>"), "{html}");
}

#[tokio::test]
async fn the_login_page_renders_a_form_that_works_without_javascript() {
    let app = spawn_app().await;
    let response = app.browser().get("/login?next=/admin").await;
    assert_eq!(response.status, 200);
    let html = response.text;
    assert!(html.contains("action=\"/api/auth/login\""), "{html}");
    assert!(html.contains("name=\"password\""), "{html}");
}

#[tokio::test]
async fn an_unknown_page_is_a_404() {
    let app = spawn_app().await;
    let response = app.browser().get("/no/such/page").await;
    assert_eq!(response.status, 404);
}

/// The nonce a page's policy allows scripts by.
fn policy_nonce(policy: &str) -> String {
    policy
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or_else(|| panic!("no nonce in {policy}"))
        .to_owned()
}

#[tokio::test]
async fn every_page_carries_a_content_security_policy_that_its_own_scripts_meet() {
    let app = spawn_app().await;
    let bob = app.user("bob").await;
    let mut nonces = Vec::new();
    for path in [
        "/login",
        "/signup",
        "/app/billing",
        "/no/such/page",
        "/login",
    ] {
        let response = bob.get(path).await;
        let policy = response
            .header("content-security-policy")
            .unwrap()
            .to_owned();
        for directive in [
            "default-src 'self'",
            "script-src 'self' 'nonce-",
            "'wasm-unsafe-eval'",
            "style-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ] {
            assert!(
                policy.contains(directive),
                "{path}: {directive} in {policy}"
            );
        }
        assert!(!policy.contains("unsafe-inline"), "{path}: {policy}");
        assert_eq!(
            response.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(response.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(
            response.header("referrer-policy"),
            Some("strict-origin-when-cross-origin"),
            "{path}"
        );
        assert!(
            response.header("strict-transport-security").is_none(),
            "{path}: served over plain http"
        );

        let nonce = policy_nonce(&policy);
        assert!(nonce.len() >= 22, "128 bits or more: {nonce}");
        let html = &response.text;
        let scripts: Vec<&str> = html
            .split("<script")
            .skip(1)
            .map(|tag| tag.split('>').next().unwrap_or_default())
            .collect();
        assert!(!scripts.is_empty(), "{path}: the hydration script");
        for tag in scripts {
            assert!(
                tag.contains(&format!("nonce=\"{nonce}\"")),
                "{path}: <script{tag}> without the page's nonce"
            );
        }
        nonces.push(nonce);
    }
    nonces.sort();
    nonces.dedup();
    assert_eq!(nonces.len(), 5, "a new nonce for every page");

    // Everything else answers with the strictest policy and the same headers.
    let response = app.browser().get("/healthz").await;
    assert_eq!(
        response.header("content-security-policy"),
        Some("default-src 'none'; frame-ancestors 'none'; base-uri 'none'")
    );
    assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
}

#[tokio::test]
async fn a_site_served_over_https_asks_browsers_to_keep_to_https() {
    let app = spawn_app_with(&[("SITE_URL", "https://billing.example.com")]).await;
    for path in ["/login", "/healthz"] {
        let response = app.browser().get(path).await;
        assert_eq!(
            response.header("strict-transport-security"),
            Some("max-age=31536000"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn the_billing_page_shows_what_is_reserved_and_what_is_left_of_each_grant() {
    use billing::domain::{IdempotencyKey, Reason, Tokens};
    use billing::store::NewHold;

    let app = spawn_app().await;
    let bob = app.user("bob").await;
    let user = bob.user.clone().unwrap().id;
    billing::testing::paid_purchase(&*app.store, user, 5_000, "test:bob").await;
    app.store
        .open_hold(&NewHold {
            user,
            tokens: Tokens::new(1_200).unwrap(),
            reason: Reason::parse("a render job").unwrap(),
            ttl_ms: 600_000,
            key: IdempotencyKey::parse("hold:page").unwrap(),
            api_key: None,
        })
        .await
        .unwrap();

    let html = bob.get("/app/billing").await.page();
    assert!(html.contains(">5,000</span> tokens"), "{html}");
    assert!(
        html.contains(r#"<span data-testid="reserved">1,200</span> reserved"#),
        "{html}"
    );
    assert!(html.contains(r#"data-testid="grants""#), "{html}");
    assert!(html.contains("5,000 of 5,000 left"), "{html}");
    assert!(html.contains("never expires"), "{html}");

    let balance = bob.get("/api/tokens/balance").await;
    assert_eq!(balance.status, 200, "{}", balance.text);
    let balance = balance.json();
    assert_eq!(balance["balance"], 5_000);
    assert_eq!(balance["held"], 1_200);
    assert_eq!(balance["grants"][0]["remaining"], 5_000);
}

#[tokio::test]
async fn the_ledger_on_the_page_says_what_a_capture_and_an_expiry_were() {
    use billing::domain::{GrantTerms, IdempotencyKey, Reason, Source, Timestamp, Tokens};
    use billing::ledger::Posting;
    use billing::store::{HoldCapture, NewHold};

    let app = spawn_app().await;
    let bob = app.user("bob").await;
    let user = bob.user.clone().unwrap().id;
    billing::testing::paid_purchase(&*app.store, user, 5_000, "test:bob").await;
    let opened = app
        .store
        .open_hold(&NewHold {
            user,
            tokens: Tokens::new(1_200).unwrap(),
            reason: Reason::parse("A render job").unwrap(),
            ttl_ms: 600_000,
            key: IdempotencyKey::parse("hold:ledger-page").unwrap(),
            api_key: None,
        })
        .await
        .unwrap();
    app.store
        .capture_hold(&HoldCapture {
            hold: opened.hold.id,
            tokens: Tokens::new(900).unwrap(),
            may_exceed: false,
            api_key: None,
        })
        .await
        .unwrap();
    // Tokens whose time is over as they arrive expire at once, with a row of their own.
    // By the app's clock, which the store stamps by too.
    let ended = Timestamp::from_millis(billing::clock::Clock::now(&app.clock).as_millis() - 1_000);
    app.store
        .post(
            Posting::credit(
                user,
                Tokens::new(300).unwrap(),
                Source::Manual,
                Reason::parse("Launch week bonus").unwrap(),
                IdempotencyKey::parse("admin:ledger-page").unwrap(),
            )
            .expiring(GrantTerms::expiring_at(ended)),
        )
        .await
        .unwrap();

    let html = bob.get("/app/billing").await.page();
    assert!(html.contains("Usage (reserved)"), "{html}");
    assert!(html.contains("A render job"), "{html}");
    assert!(html.contains("Expired"), "{html}");
    assert!(
        html.contains("Expired unspent: Launch week bonus"),
        "{html}"
    );
    assert!(html.contains(">4,100</span> tokens"), "{html}");
}

#[tokio::test]
async fn a_months_statement_adds_up_on_the_page_in_json_and_as_csv() {
    use billing::domain::{IdempotencyKey, Month, Reason, Tokens};
    use billing::ledger::Posting;

    let app = spawn_app().await;
    let bob = app.user("bob").await;
    let user = bob.user.clone().unwrap().id;
    billing::testing::paid_purchase(&*app.store, user, 5_000, "test:bob").await;
    app.store
        .post(Posting::debit(
            user,
            Tokens::new(1_200).unwrap(),
            Reason::parse("Image generation").unwrap(),
            IdempotencyKey::parse("consume:statement").unwrap(),
        ))
        .await
        .unwrap();
    let month = Month::of(billing::clock::Clock::now(&app.clock));

    let json = bob
        .get(&format!("/api/tokens/statement?month={month}"))
        .await;
    assert_eq!(json.status, 200, "{}", json.text);
    let statement = json.json();
    assert_eq!(
        [
            &statement["opening"],
            &statement["credits"],
            &statement["usage"],
            &statement["closing"]
        ],
        [0, 5_000, -1_200, 3_800]
    );
    assert_eq!(statement["entries"].as_array().unwrap().len(), 2);
    let before = bob
        .get(&format!("/api/tokens/statement?month={}", month.previous()))
        .await
        .json();
    assert_eq!(
        (
            &before["closing"],
            before["entries"].as_array().unwrap().len()
        ),
        (&0.into(), 0)
    );

    let page = bob
        .get(&format!("/app/billing/statement?month={month}"))
        .await;
    assert_eq!(page.status, 200);
    assert!(
        page.text
            .contains(r#"data-testid="closing" class="num">3,800<"#),
        "{}",
        page.text
    );
    assert!(
        page.text
            .contains(r#"data-testid="usage" class="num">-1,200<"#),
        "{}",
        page.text
    );
    assert!(page.text.contains("Image generation"), "{}", page.text);

    let csv = bob
        .get(&format!("/api/tokens/statement.csv?month={month}"))
        .await;
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    let mut lines = csv.text.lines();
    assert_eq!(
        lines.next(),
        Some("month,opening,credits,reversals,usage,expiries,closing")
    );
    assert_eq!(
        lines.next(),
        Some(format!("{month},0,5000,0,-1200,0,3800").as_str())
    );
    assert_eq!(
        csv.text.lines().filter(|l| l.contains(",consume,")).count(),
        1
    );

    for bad in ["2026-13", "november", "2026-1"] {
        let refused = bob
            .get(&format!("/api/tokens/statement.csv?month={bad}"))
            .await;
        assert_eq!(refused.status, 422, "{bad}: {}", refused.text);
    }
}
