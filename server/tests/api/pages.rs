use billing::domain::Role;

use crate::helpers::spawn_app;

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
