//! Waiting for what happens in the background (webhooks the simulated Stripe sends, a server
//! working through deliveries), instead of sleeping a guessed time.

use std::time::Duration;

/// Waits until `check` holds, asking every `every`, for `within` at most; panics with `what`
/// when it never does.
pub async fn eventually_within(
    what: &str,
    within: Duration,
    every: Duration,
    check: impl AsyncFn() -> bool,
) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {within:?} waiting for {what}");
        }
        tokio::time::sleep(every).await;
    }
}

/// Waits up to ten seconds until `check` holds; panics with `what` when it never does.
pub async fn eventually(what: &str, check: impl AsyncFn() -> bool) {
    eventually_within(
        what,
        Duration::from_secs(10),
        Duration::from_millis(100),
        check,
    )
    .await
}
