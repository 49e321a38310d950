use billing::domain::Role;

use crate::support::spawn_app;

#[tokio::test]
async fn the_billing_page_is_rendered_on_the_server_with_its_hydration_scripts() {
    let app = spawn_app().await;
    app.user_with_tokens("ada@example.com", 0).await;
    app.account("bob@example.com", Role::User).await;
    let bob = app.logged_in("bob@example.com").await;
    let response = bob.get(app.url("/app/billing")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    let html = response.text().await.unwrap();
    assert!(html.contains("<h1>Billing</h1>"), "{html}");
    assert!(html.contains("bob@example.com"), "{html}");
    assert!(html.contains("/pkg/billing.js"), "{html}");
    assert!(html.contains("/pkg/billing.wasm"), "{html}");
}

#[tokio::test]
async fn the_login_page_renders_a_form_that_works_without_javascript() {
    let app = spawn_app().await;
    let response = app.get("/login?next=/admin").await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains("action=\"/api/auth/login\""), "{html}");
    assert!(html.contains("name=\"password\""), "{html}");
}

#[tokio::test]
async fn an_unknown_page_is_a_404() {
    let app = spawn_app().await;
    let response = app.get("/no/such/page").await;
    assert_eq!(response.status(), 404);
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
    app.account("bob@example.com", Role::User).await;
    let bob = app.logged_in("bob@example.com").await;
    let mut nonces = Vec::new();
    for path in [
        "/login",
        "/signup",
        "/app/billing",
        "/no/such/page",
        "/login",
    ] {
        let response = bob.get(app.url(path)).send().await.unwrap();
        let headers = response.headers().clone();
        let policy = headers["content-security-policy"]
            .to_str()
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
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(
            headers["referrer-policy"], "strict-origin-when-cross-origin",
            "{path}"
        );
        assert!(
            headers.get("strict-transport-security").is_none(),
            "{path}: served over plain http"
        );

        let nonce = policy_nonce(&policy);
        assert!(nonce.len() >= 22, "128 bits or more: {nonce}");
        let html = response.text().await.unwrap();
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
    let response = app.get("/healthz").await;
    let headers = response.headers();
    assert_eq!(
        headers["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn a_site_served_over_https_asks_browsers_to_keep_to_https() {
    let app = crate::support::spawn_app_with(&[("SITE_URL", "https://billing.example.com")]).await;
    for path in ["/login", "/healthz"] {
        let response = app.get(path).await;
        assert_eq!(
            response.headers()["strict-transport-security"],
            "max-age=31536000",
            "{path}"
        );
    }
}
