//! `server stripe reconcile|replay|pending`, run as the real binary against a stand-in for
//! Stripe's API (the live gateway pointed at it through STRIPE_API_BASE).

use billing::domain::{Role, UserId};
use billing::testing::StripeEvent;

use crate::support::webhooks::now;
use crate::support::{StripeApi, TestApp, spawn_app};

const DAY: i64 = 24 * 3600;

/// The live catalog's plan price (`cli` below sells it).
const LIVE_PLAN_PRICE: &str = "price_live_starter";

/// A Stripe account whose event list holds `events`, oldest first.
async fn stripe_with(events: Vec<StripeEvent>) -> StripeApi {
    let stripe = StripeApi::start().await;
    for event in events {
        stripe.add_event(event.into_json());
    }
    stripe
}

/// A paid monthly invoice of the live plan for `user`, as Stripe lists it.
fn invoice_paid(id: &str, user: UserId, created: i64) -> StripeEvent {
    StripeEvent::invoice_paid(user)
        .id(id)
        .object_id(&format!("in_{id}"))
        .created(created)
        .set("/data/object/billing_reason", "subscription_cycle")
        .set(
            "/data/object/lines/data/0/pricing/price_details/price",
            LIVE_PLAN_PRICE,
        )
}

/// An event billing does not act on.
fn customer_created(id: &str, customer: &str, created: i64) -> StripeEvent {
    StripeEvent::customer_created()
        .id(id)
        .object_id(customer)
        .created(created)
}

async fn cli(app: &TestApp, stripe: &StripeApi, args: &[&str]) -> (Option<i32>, String) {
    let data_dir = app.data_dir.path().to_owned();
    let stripe = stripe.url.to_string();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    // The stand-in answers from this runtime while the binary runs: wait on another thread.
    tokio::task::spawn_blocking(move || {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_server"))
            .args(&args)
            .env_clear()
            .env("DATA_DIR", data_dir)
            .env("RUST_LOG", "warn")
            .env("STRIPE_SECRET_KEY", "sk_test_reconcile")
            .env("STRIPE_WEBHOOK_SECRET", "whsec_reconcile")
            .env("STRIPE_API_BASE", stripe)
            .env("STRIPE_PRICE_TOKENS_SMALL", "price_live_small")
            .env("STRIPE_PRICE_TOKENS_MEDIUM", "price_live_medium")
            .env("STRIPE_PRICE_TOKENS_LARGE", "price_live_large")
            .env("STRIPE_PRICE_SUBSCRIPTION_STARTER", LIVE_PLAN_PRICE)
            .output()
            .expect("the server binary runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.code(), text)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_applies_the_events_the_inbox_missed_once() {
    let app = spawn_app().await;
    let ada = app.account("ada@example.com", Role::User).await;
    // Three days ago: outside the window asked for, so neither listed nor applied.
    let mut events = vec![invoice_paid("evt_too_old", ada.id, now() - 3 * DAY)];
    events.push(invoice_paid("evt_missed", ada.id, now() - 3600));
    // More than one page of events, so that paging has to work.
    for n in 0..120 {
        events.push(customer_created(
            &format!("evt_other{n:03}"),
            &format!("cus_{n}"),
            now() - 1800 + n,
        ));
    }
    let stripe = stripe_with(events).await;

    let asked_at = now();
    let (code, out) = cli(&app, &stripe, &["stripe", "reconcile", "--since", "2d"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("Stripe lists 121 event(s)"), "{out}");
    assert!(out.contains("121 missing from the inbox"), "{out}");
    assert!(
        out.contains("read 100 event(s)") && out.contains("read 121 event(s)"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "evt_missed: credited 6000 tokens to user {}",
            ada.id
        )),
        "{out}"
    );
    assert!(out.contains("evt_other000: ignored"), "{out}");
    assert!(!out.contains("evt_too_old"), "{out}");
    assert_eq!(app.store.balance(ada.id).await.unwrap().get(), 6_000);

    // Two pages, asked as Stripe reads them: the window's bound, a full page, then on.
    let requests = stripe.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    let (first, second) = (&requests[0], &requests[1]);
    assert!(first.authorization.starts_with("Bearer sk_test_reconcile"));
    assert_eq!(first.path, "/v1/events");
    let bound: i64 = first.param("created[gte]").unwrap().parse().unwrap();
    assert!(
        (asked_at - 2 * DAY - 5..=asked_at - 2 * DAY + 60).contains(&bound),
        "the window starts two days back: {bound} vs {asked_at}"
    );
    assert_eq!(first.param("limit"), Some("100"));
    assert_eq!(first.param("starting_after"), None);
    assert_eq!(
        second.param("starting_after"),
        Some("evt_other020"),
        "{second:?}"
    );
    assert_eq!(second.param("created[gte]"), first.param("created[gte]"));

    // Nothing is missing any more; re-applying a stored event changes nothing.
    let (code, out) = cli(&app, &stripe, &["stripe", "reconcile", "--since", "2d"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("0 missing"), "{out}");
    let (code, out) = cli(&app, &stripe, &["stripe", "replay", "evt_missed"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("already applied"), "{out}");
    assert_eq!(app.store.balance(ada.id).await.unwrap().get(), 6_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_that_does_not_move_on_stops_the_reconciliation() {
    let app = spawn_app().await;
    let events = (0..150)
        .map(|n| customer_created(&format!("evt_{n:03}"), "cus_1", now() - 600 + n))
        .collect();
    let stripe = stripe_with(events).await;
    stripe.repeat_pages();
    let (code, out) = cli(&app, &stripe, &["stripe", "reconcile", "--since", "1d"]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("did not move past"), "{out}");
    assert_eq!(stripe.requests().len(), 2, "asked once more, then stopped");
    let (_, pending) = cli(&app, &stripe, &["stripe", "pending"]).await;
    assert!(
        pending.contains("No unfinished events."),
        "nothing applied: {pending}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_event_is_listed_and_re_applied_after_the_cause_is_fixed() {
    let app = spawn_app().await;
    // The event names a user that does not exist yet (say, a restored backup).
    let ghost = UserId::new(2).unwrap();
    let stripe = stripe_with(vec![invoice_paid("evt_early", ghost, now() - 3600)]).await;
    let (code, out) = cli(&app, &stripe, &["stripe", "reconcile", "--since", "1d"]).await;
    assert_eq!(code, Some(1), "a failure makes the command fail: {out}");
    assert!(out.contains("FAILED"), "{out}");

    let (_, pending) = cli(&app, &stripe, &["stripe", "pending"]).await;
    assert!(
        pending.contains("evt_early") && pending.contains("invoice.paid"),
        "{pending}"
    );

    app.account("first@example.com", Role::User).await;
    let user = app.account("second@example.com", Role::User).await;
    assert_eq!(user.id, ghost);
    let (code, out) = cli(&app, &stripe, &["stripe", "replay", "evt_early"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("credited 6000"), "{out}");
    assert_eq!(app.store.balance(ghost).await.unwrap().get(), 6_000);
    let (_, pending) = cli(&app, &stripe, &["stripe", "pending"]).await;
    assert!(pending.contains("No unfinished events."), "{pending}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_needs_real_stripe_keys() {
    let app = spawn_app().await;
    let data_dir = app.data_dir.path().to_owned();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_server"))
            .args(["stripe", "reconcile", "--since", "1d"])
            .env_clear()
            .env("DATA_DIR", data_dir)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("STRIPE_SECRET_KEY"));
}
