//! The operator subcommands, run as the real binary against the test app's database.

use std::process::Command;

use crate::support::{TestApp, spawn_app};

fn server(app: &TestApp, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_server"))
        .args(args)
        .env_clear()
        .env("DATA_DIR", app.data_dir.path())
        .env("RUST_LOG", "warn")
        .output()
        .expect("the server binary runs")
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn ledger_check_passes_on_a_consistent_ledger_and_names_users_on_a_mismatch() {
    let app = spawn_app().await;
    let ada = app.user_with_tokens("ada@example.com", 5000).await;
    app.user_with_tokens("bob@example.com", 1000).await;

    let ok = server(&app, &["ledger", "check"]);
    assert!(ok.status.success(), "{}", stdout(&ok));
    assert!(stdout(&ok).starts_with("OK"));

    // Tamper with one balance behind the ledger's back.
    tamper(&app, ada.id.get()).await;

    let bad = server(&app, &["ledger", "check"]);
    assert_eq!(bad.status.code(), Some(1));
    let out = stdout(&bad);
    assert!(
        out.contains(&format!("user {}: balance 99, ledger sum 5000", ada.id)),
        "{out}"
    );
    assert!(out.contains("1 user(s)"), "{out}");
}

#[tokio::test]
async fn ledger_check_names_users_whose_grants_disagree_with_their_balance() {
    let app = spawn_app().await;
    let bob = app.user_with_tokens("bob@example.com", 1000).await;
    let mut conn = app.sqlite().await;
    sqlx::query("UPDATE token_grants SET remaining = 1 WHERE user_id = $1")
        .bind(bob.id.get())
        .execute(&mut conn)
        .await
        .unwrap();

    let bad = server(&app, &["ledger", "check"]);
    assert_eq!(bad.status.code(), Some(1));
    let out = stdout(&bad);
    assert!(
        out.contains(&format!(
            "user {}: balance 1000, live grants 1, held 0, open holds 0",
            bob.id
        )),
        "{out}"
    );
}

async fn tamper(app: &TestApp, user: i64) {
    let mut conn = app.sqlite().await;
    sqlx::query("UPDATE token_balances SET balance = 99 WHERE user_id = $1")
        .bind(user)
        .execute(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn api_keys_are_created_listed_and_revoked_from_the_command_line() {
    let app = spawn_app().await;
    let created = server(&app, &["api-key", "create", "--name", "image-service"]);
    assert!(created.status.success());
    let out = stdout(&created);
    let secret = out
        .lines()
        .find(|l| l.starts_with("pbk_"))
        .expect("the secret is printed")
        .to_owned();

    let listed = stdout(&server(&app, &["api-key", "list"]));
    assert!(listed.contains("image-service"), "{listed}");
    assert!(listed.contains("active"), "{listed}");
    assert!(!listed.contains(&secret), "a list never shows secrets");

    let user = app.user_with_tokens("ada@example.com", 10).await;
    let body = serde_json::json!({ "user": user.id, "tokens": 1, "reason": "Chat" });
    let consume = async |key: &str| app.service(key).consume("cli-test", &body).await.status;
    assert_eq!(consume(&secret).await, 200);

    let id = app.store.api_keys().await.unwrap()[0].id.to_string();
    assert!(server(&app, &["api-key", "revoke", &id]).status.success());
    assert_eq!(
        server(&app, &["api-key", "revoke", &id]).status.code(),
        Some(1)
    );
    assert!(stdout(&server(&app, &["api-key", "list"])).contains("revoked"));
    // The command is another process: the server may take the key it remembers for up to
    // half a second more, never a second.
    let revoked = std::time::Instant::now();
    while consume(&secret).await != 401 {
        assert!(
            revoked.elapsed() < std::time::Duration::from_secs(1),
            "the key still works a second after it was revoked"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn webhook_endpoints_are_added_listed_logged_replayed_and_disabled_from_the_command_line() {
    let app = spawn_app().await;
    let receiver = crate::support::Receiver::start().await;
    let bad = server(
        &app,
        &["webhooks", "add", "--url", "ftp://backend.example/hooks"],
    );
    assert_eq!(bad.status.code(), Some(2), "{}", stdout(&bad));

    let added = server(&app, &["webhooks", "add", "--url", &receiver.url]);
    assert!(added.status.success(), "{}", stdout(&added));
    let out = stdout(&added);
    let secret = out
        .lines()
        .find(|line| line.starts_with("whsec_"))
        .unwrap_or_else(|| panic!("no secret printed: {out}"));
    let endpoint = app.store.endpoints().await.unwrap()[0].id;
    assert_eq!(
        app.store.endpoints().await.unwrap()[0].secret.expose(),
        secret,
        "the secret printed is the one it signs with"
    );
    let list = stdout(&server(&app, &["webhooks", "list"]));
    assert!(
        list.contains(&receiver.url) && list.contains("active"),
        "{list}"
    );
    assert!(!list.contains(secret), "never the secret: {list}");

    // The command stamped the endpoint by the wall clock; the app tells time by the test's,
    // which stands still: moved past that moment, what happens next happens after it.
    app.clock.advance(std::time::Duration::from_secs(5));
    app.user_with_tokens("ada@example.com", 1000).await;
    app.settled("the credit's event delivered", async || {
        !app.store.delivery_log(None, 10).await.unwrap().is_empty()
    })
    .await;
    let log = stdout(&server(
        &app,
        &["webhooks", "log", "--endpoint", &endpoint.to_string()],
    ));
    assert!(
        log.contains("ledger.entry_created") && log.contains("204") && log.contains("delivered"),
        "{log}"
    );

    let replay = server(
        &app,
        &[
            "webhooks",
            "replay",
            "--endpoint",
            &endpoint.to_string(),
            "--since",
            "1h",
        ],
    );
    assert!(
        stdout(&replay).starts_with("1 deliveries"),
        "{}",
        stdout(&replay)
    );

    let disabled = server(&app, &["webhooks", "disable", &endpoint.to_string()]);
    assert!(disabled.status.success(), "{}", stdout(&disabled));
    let list = stdout(&server(&app, &["webhooks", "list"]));
    assert!(list.contains("disabled"), "{list}");
}
