//! The store's contract, run against both backends: a fresh SQLite file, and a fresh database
//! on the PostgreSQL server named by `TEST_POSTGRES_URL` (`scripts/test` starts one).

use std::sync::Arc;

use std::time::Duration;

use super::*;
use crate::testing::{FakeUser, contract};

use crate::api_key::{NewApiKey, SCOPE_CONSUME};
use crate::clock::ManualClock;
use crate::domain::{Currency, Money, Reason, TokenDelta, Tokens};
use crate::ledger::{LedgerError, Posting, StripeRefs};
use crate::rate_limit::{DatabaseLimiter, Decision, Quota, RateLimiter};

contract!(
    a_credit_moves_the_balance_and_appends_one_entry,
    a_replayed_key_returns_the_original_entry_and_changes_nothing,
    a_key_reused_for_another_change_is_refused,
    a_debit_never_takes_the_balance_below_zero,
    a_replayed_debit_answers_even_when_the_balance_is_now_too_low,
    a_reversal_may_go_below_zero_and_says_so,
    an_adjustment_records_the_admin_and_a_negative_one_stops_at_zero,
    unknown_users_are_refused,
    the_ledger_pages_newest_first_with_a_cursor_and_a_source_filter,
    totals_sum_each_source_and_net_to_the_balance,
    concurrent_debits_never_overdraw,
    one_credit_key_from_many_tasks_yields_one_entry,
    balances_cannot_overflow,
    the_ledger_is_append_only_and_the_audit_finds_tampering,
    users_are_unique_by_email,
    api_keys_are_found_by_digest_until_revoked,
    migrations_apply_once,
    credentials_carry_the_password_hash,
    a_password_hash_is_replaced_only_while_it_is_the_one_stored,
    the_rate_limit_allows_a_burst_then_one_request_an_interval,
    concurrent_requests_never_pass_the_rate_limit,
    a_balance_watch_hears_each_committed_change_and_nothing_else,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_revoked_on_one_node_is_refused_on_another_within_a_second_on_sqlite() {
    revoked_across_nodes(crate::testing::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_revoked_on_one_node_is_refused_on_another_within_a_second_on_postgres() {
    if let Some(db) = crate::testing::postgres().await {
        revoked_across_nodes(db).await;
    }
}

/// Keys are cached by each node briefly: the node that revokes refuses the key at once, and
/// every other node within a second.
async fn revoked_across_nodes(db: crate::testing::TestDb) {
    let (a, b) = (db.store.clone(), db.another_node().await);
    let made = NewApiKey::generate();
    let key = a
        .create_api_key("svc", &made.display_prefix, &made.digest, &[SCOPE_CONSUME])
        .await
        .unwrap();
    let presented = crate::api_key::KeyDigest::of(made.secret.expose());
    // Both nodes have it cached now.
    assert_eq!(
        a.active_api_key(&presented).await.unwrap(),
        Some(key.clone())
    );
    assert_eq!(
        b.active_api_key(&presented).await.unwrap(),
        Some(key.clone())
    );

    assert!(a.revoke_api_key(key.id).await.unwrap());
    let revoked = std::time::Instant::now();
    assert_eq!(
        a.active_api_key(&presented).await.unwrap(),
        None,
        "at once where revoked"
    );
    while b.active_api_key(&presented).await.unwrap().is_some() {
        assert!(
            revoked.elapsed() < Duration::from_secs(1),
            "the other node still takes the key a second after it was revoked"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(super) fn tokens(n: i64) -> Tokens {
    Tokens::new(n).unwrap()
}

pub(super) fn reason(text: &str) -> Reason {
    Reason::parse(text).unwrap()
}

pub(super) fn key(text: &str) -> IdempotencyKey {
    IdempotencyKey::parse(text).unwrap()
}

async fn new_user(store: &dyn Store, email: &str) -> User {
    FakeUser::new(email).create(store).await
}

fn purchase(user: &User, n: i64, k: &str) -> Posting {
    Posting::credit(
        user.id,
        tokens(n),
        Source::StripeCheckout,
        reason("Medium pack"),
        key(k),
    )
}

fn spend(user: &User, n: i64, k: &str) -> Posting {
    Posting::debit(user.id, tokens(n), reason("Image generation"), key(k))
}

async fn assert_consistent(store: &dyn Store) {
    assert_eq!(store.audit_balances().await.unwrap(), vec![]);
}

async fn entry_count(store: &dyn Store, user: &User) -> usize {
    store
        .ledger_page(user.id, &LedgerQuery::first(100))
        .await
        .unwrap()
        .entries
        .len()
}

async fn a_credit_moves_the_balance_and_appends_one_entry(store: Arc<SqlStore>) {
    let user = new_user(&*store, "ada@example.com").await;
    assert_eq!(store.balance(user.id).await.unwrap(), Balance::ZERO);

    let paid = Money::new(1200, Currency::parse("usd").unwrap()).unwrap();
    let posted = store
        .post(
            purchase(&user, 5000, "stripe:checkout:cs_1")
                .with_amount_paid(paid)
                .with_stripe(StripeRefs {
                    event_id: Some("evt_1".into()),
                    object_id: Some("cs_1".into()),
                    payment_intent: Some("pi_1".into()),
                }),
        )
        .await
        .unwrap();

    assert!(!posted.replayed);
    assert_eq!(posted.entry.delta.get(), 5000);
    assert_eq!(posted.entry.balance_after.get(), 5000);
    assert_eq!(posted.entry.amount_paid, Some(paid));
    assert_eq!(posted.entry.stripe_object_id.as_deref(), Some("cs_1"));
    assert_eq!(store.balance(user.id).await.unwrap().get(), 5000);

    let page = store
        .ledger_page(user.id, &LedgerQuery::first(10))
        .await
        .unwrap();
    assert_eq!(page.entries, vec![posted.entry]);
    assert_consistent(&*store).await;
}

async fn a_replayed_key_returns_the_original_entry_and_changes_nothing(store: Arc<SqlStore>) {
    let user = new_user(&*store, "ada@example.com").await;
    let first = store.post(purchase(&user, 1000, "k1")).await.unwrap();
    let again = store.post(purchase(&user, 1000, "k1")).await.unwrap();

    assert!(again.replayed);
    assert_eq!(again.entry, first.entry);
    assert_eq!(store.balance(user.id).await.unwrap().get(), 1000);
    assert_eq!(entry_count(&*store, &user).await, 1);
    assert_consistent(&*store).await;
}

async fn a_key_reused_for_another_change_is_refused(store: Arc<SqlStore>) {
    let user = new_user(&*store, "ada@example.com").await;
    let other = new_user(&*store, "bob@example.com").await;
    let first = store.post(purchase(&user, 1000, "k1")).await.unwrap();

    for different in [
        purchase(&user, 2000, "k1"),  // another amount
        purchase(&other, 1000, "k1"), // another user
        spend(&user, 1000, "k1"),     // another kind
    ] {
        match store.post(different).await {
            Err(StoreError::Ledger(LedgerError::IdempotencyConflict { existing })) => {
                assert_eq!(*existing, first.entry)
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
    }
    assert_eq!(store.balance(user.id).await.unwrap().get(), 1000);
    assert_eq!(store.balance(other.id).await.unwrap().get(), 0);
    assert_consistent(&*store).await;
}

async fn a_debit_never_takes_the_balance_below_zero(store: Arc<SqlStore>) {
    let user = new_user(&*store, "ada@example.com").await;
    store.post(purchase(&user, 100, "buy")).await.unwrap();

    let refused = store.post(spend(&user, 101, "spend-1")).await.unwrap_err();
    assert!(matches!(
        refused,
        StoreError::Ledger(LedgerError::InsufficientTokens { balance, requested })
            if balance.get() == 100 && requested.get() == 101
    ));
    assert_eq!(store.balance(user.id).await.unwrap().get(), 100);
    assert_eq!(entry_count(&*store, &user).await, 1);

    let spent = store.post(spend(&user, 100, "spend-2")).await.unwrap();
    assert_eq!(spent.entry.delta.get(), -100);
    assert_eq!(spent.entry.balance_after, Balance::ZERO);
    assert_eq!(spent.entry.source, Source::Consume);
    assert_consistent(&*store).await;
}

async fn a_replayed_debit_answers_even_when_the_balance_is_now_too_low(store: Arc<SqlStore>) {
    let user = new_user(&*store, "ada@example.com").await;
    store.post(purchase(&user, 100, "buy")).await.unwrap();
    let first = store.post(spend(&user, 100, "spend")).await.unwrap();

    let again = store.post(spend(&user, 100, "spend")).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.entry, first.entry);
    assert_eq!(store.balance(user.id).await.unwrap(), Balance::ZERO);
}

async fn a_reversal_may_go_below_zero_and_says_so(store: Arc<SqlStore>) {
    let user = new_user(&*store, "ada@example.com").await;
    store.post(purchase(&user, 5000, "buy")).await.unwrap();
    store.post(spend(&user, 4000, "spend")).await.unwrap();

    let reversed = store
        .post(Posting::reversal(
            user.id,
            tokens(5000),
            Source::StripeRefund,
            reason("Refund of the medium pack"),
            key("stripe:refund:re_1"),
        ))
        .await
        .unwrap();
    assert!(reversed.left_negative());
    assert_eq!(reversed.entry.balance_after.get(), -4000);
    assert_eq!(store.balance(user.id).await.unwrap().get(), -4000);

    // With a negative balance nothing more can be spent.
    assert!(matches!(
        store.post(spend(&user, 1, "spend-2")).await,
        Err(StoreError::Ledger(LedgerError::InsufficientTokens { .. }))
    ));
    assert_consistent(&*store).await;
}

async fn an_adjustment_records_the_admin_and_a_negative_one_stops_at_zero(store: Arc<SqlStore>) {
    let user = new_user(&*store, "ada@example.com").await;
    let admin = FakeUser::new("root@example.com")
        .admin()
        .create(&*store)
        .await;
    let adjust = |delta: i64, k: &str| {
        Posting::adjustment(
            user.id,
            TokenDelta::new(delta).unwrap(),
            reason("Goodwill for the outage"),
            key(k),
            admin.id,
        )
    };

    let given = store.post(adjust(300, "adm-1")).await.unwrap();
    assert_eq!(given.entry.actor_id, Some(admin.id));
    assert_eq!(given.entry.source, Source::Manual);
    assert_eq!(given.entry.reason, "Goodwill for the outage");

    assert!(matches!(
        store.post(adjust(-301, "adm-2")).await,
        Err(StoreError::Ledger(LedgerError::InsufficientTokens { .. }))
    ));
    let taken = store.post(adjust(-300, "adm-3")).await.unwrap();
    assert_eq!(taken.entry.balance_after, Balance::ZERO);
    assert_consistent(&*store).await;
}

async fn unknown_users_are_refused(store: Arc<SqlStore>) {
    let ghost = UserId::new(999_999).unwrap();
    let posting = Posting::credit(ghost, tokens(10), Source::Manual, reason("x"), key("k"));
    assert!(matches!(
        store.post(posting).await,
        Err(StoreError::Ledger(LedgerError::UnknownUser(id))) if id == ghost
    ));
    assert!(matches!(
        store.balance(ghost).await,
        Err(StoreError::NotFound)
    ));
}

async fn the_ledger_pages_newest_first_with_a_cursor_and_a_source_filter(store: Arc<SqlStore>) {
    let user = new_user(&*store, "ada@example.com").await;
    let other = new_user(&*store, "bob@example.com").await;
    store.post(purchase(&other, 50, "other")).await.unwrap();
    for i in 0..7 {
        store
            .post(purchase(&user, 100, &format!("buy-{i}")))
            .await
            .unwrap();
        store
            .post(spend(&user, 10, &format!("spend-{i}")))
            .await
            .unwrap();
    }

    // Walk every page of three, older and older...
    let mut pages = Vec::new();
    let mut query = LedgerQuery::first(3);
    loop {
        let page = store.ledger_page(user.id, &query).await.unwrap();
        assert!(page.entries.len() <= 3);
        assert_eq!(
            page.prev_cursor.is_some(),
            !pages.is_empty(),
            "a newer page"
        );
        pages.push(page.entries.iter().map(|e| e.id).collect::<Vec<_>>());
        match page.next_cursor {
            Some(cursor) => query.before = Some(cursor),
            None => break,
        }
    }
    let seen: Vec<_> = pages.concat();
    assert_eq!(seen.len(), 14, "every entry once");
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "newest first");

    // ...then back, newer and newer: the same pages, still newest first within each.
    let mut query = LedgerQuery {
        after: Some(*pages.last().unwrap().first().unwrap()),
        ..LedgerQuery::first(3)
    };
    for expected in pages.iter().rev().skip(1) {
        let page = store.ledger_page(user.id, &query).await.unwrap();
        let ids: Vec<_> = page.entries.iter().map(|e| e.id).collect();
        assert_eq!(&ids, expected);
        assert!(page.next_cursor.is_some(), "an older page");
        match page.prev_cursor {
            Some(cursor) => query.after = Some(cursor),
            None => assert_eq!(expected, &pages[0], "only the newest page has none newer"),
        }
    }

    let purchases = store
        .ledger_page(
            user.id,
            &LedgerQuery {
                source: Some(Source::StripeCheckout),
                ..LedgerQuery::first(100)
            },
        )
        .await
        .unwrap();
    assert_eq!(purchases.entries.len(), 7);
    assert!(
        purchases
            .entries
            .iter()
            .all(|e| e.source == Source::StripeCheckout && e.user_id == user.id)
    );
    assert_eq!(purchases.next_cursor, None);
}

async fn totals_sum_each_source_and_net_to_the_balance(store: Arc<SqlStore>) {
    let user = new_user(&*store, "ada@example.com").await;
    store.post(purchase(&user, 5000, "b1")).await.unwrap();
    store.post(purchase(&user, 1000, "b2")).await.unwrap();
    store.post(spend(&user, 700, "s1")).await.unwrap();
    store
        .post(Posting::reversal(
            user.id,
            tokens(500),
            Source::StripeRefund,
            reason("Partial refund"),
            key("r1"),
        ))
        .await
        .unwrap();

    let totals = store.ledger_totals(user.id).await.unwrap();
    let of = |source: Source| {
        totals
            .by_source
            .iter()
            .find(|t| t.source == source)
            .copied()
            .unwrap()
    };
    assert_eq!(
        (
            of(Source::StripeCheckout).added,
            of(Source::StripeCheckout).entries
        ),
        (6000, 2)
    );
    assert_eq!(of(Source::Consume).taken, 700);
    assert_eq!(of(Source::StripeRefund).taken, 500);
    assert_eq!(totals.net(), store.balance(user.id).await.unwrap().get());
    assert_eq!(totals.net(), 4800);
}

async fn concurrent_debits_never_overdraw(store: Arc<SqlStore>) {
    let user = new_user(&*store, "ada@example.com").await;
    store.post(purchase(&user, 1000, "buy")).await.unwrap();

    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = store.clone();
            let id = user.id;
            tokio::spawn(async move {
                store
                    .post(Posting::debit(
                        id,
                        tokens(10),
                        reason("Concurrent use"),
                        key(&format!("race-{i}")),
                    ))
                    .await
            })
        })
        .collect();
    let (mut ok, mut insufficient) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(posted) => {
                assert!(!posted.replayed);
                ok += 1;
            }
            Err(StoreError::Ledger(LedgerError::InsufficientTokens { .. })) => insufficient += 1,
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!((ok, insufficient), (100, 100));
    assert_eq!(store.balance(user.id).await.unwrap(), Balance::ZERO);
    let totals = store.ledger_totals(user.id).await.unwrap();
    assert_eq!(totals.net(), 0);
    assert_consistent(&*store).await;
}

async fn one_credit_key_from_many_tasks_yields_one_entry(store: Arc<SqlStore>) {
    let user = new_user(&*store, "ada@example.com").await;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let store = store.clone();
            let posting = purchase(&user, 5000, "stripe:checkout:cs_same");
            tokio::spawn(async move { store.post(posting).await })
        })
        .collect();
    let mut fresh = 0;
    let mut ids = std::collections::HashSet::new();
    for task in tasks {
        let posted = task.await.unwrap().expect("every delivery succeeds");
        if !posted.replayed {
            fresh += 1;
        }
        ids.insert(posted.entry.id);
    }
    assert_eq!(fresh, 1, "exactly one delivery credits");
    assert_eq!(ids.len(), 1, "every delivery sees the same entry");
    assert_eq!(store.balance(user.id).await.unwrap().get(), 5000);
    assert_eq!(entry_count(&*store, &user).await, 1);
    assert_consistent(&*store).await;
}

async fn balances_cannot_overflow(store: Arc<SqlStore>) {
    let user = new_user(&*store, "ada@example.com").await;
    // Start one grant below the limit (a thousand grants would take a while)...
    sqlx::query("UPDATE token_balances SET balance = $2 WHERE user_id = $1")
        .bind(user.id.get())
        .bind(Balance::LIMIT - Tokens::MAX)
        .execute(store.pool())
        .await
        .unwrap();
    // ...then one more grant reaches it exactly and the next is refused.
    let top = Posting::credit(
        user.id,
        tokens(Tokens::MAX),
        Source::Manual,
        reason("top"),
        key("top"),
    );
    assert_eq!(
        store.post(top).await.unwrap().entry.balance_after.get(),
        Balance::LIMIT
    );
    let over = Posting::credit(
        user.id,
        tokens(1),
        Source::Manual,
        reason("over"),
        key("over"),
    );
    assert!(matches!(
        store.post(over).await,
        Err(StoreError::Ledger(LedgerError::BalanceLimit))
    ));
    assert_eq!(store.balance(user.id).await.unwrap().get(), Balance::LIMIT);
    // Amounts past the per-operation bound cannot even be expressed.
    assert!(Tokens::new(Tokens::MAX + 1).is_err());
    assert!(Tokens::new(i64::MAX).is_err());
}

async fn the_ledger_is_append_only_and_the_audit_finds_tampering(store: Arc<SqlStore>) {
    let user = new_user(&*store, "ada@example.com").await;
    let honest = new_user(&*store, "bob@example.com").await;
    store.post(purchase(&user, 1000, "b1")).await.unwrap();
    store.post(purchase(&honest, 1000, "b2")).await.unwrap();
    assert_consistent(&*store).await;

    for statement in [
        "UPDATE token_ledger SET delta = 999999 WHERE user_id = $1",
        "DELETE FROM token_ledger WHERE user_id = $1",
    ] {
        let result = sqlx::query(statement)
            .bind(user.id.get())
            .execute(store.pool())
            .await;
        assert!(result.is_err(), "{statement} must be refused");
    }

    sqlx::query("UPDATE token_balances SET balance = 5000 WHERE user_id = $1")
        .bind(user.id.get())
        .execute(store.pool())
        .await
        .unwrap();
    assert_eq!(
        store.audit_balances().await.unwrap(),
        vec![BalanceMismatch {
            user: user.id,
            balance: Some(5000),
            ledger_sum: 1000,
            last_balance_after: Some(1000),
        }]
    );
}

async fn users_are_unique_by_email(store: Arc<SqlStore>) {
    let ada = new_user(&*store, "ada@example.com").await;
    let again = FakeUser::new("ADA@example.com")
        .admin()
        .try_create(&*store)
        .await;
    assert!(matches!(again, Err(StoreError::AlreadyExists)));

    let found = store
        .user_by_email(&Email::parse("ada@example.com").unwrap())
        .await
        .unwrap();
    assert_eq!(found.as_ref(), Some(&ada));
    assert_eq!(store.user_by_id(ada.id).await.unwrap(), Some(ada));
    assert_eq!(
        store
            .user_by_email(&Email::parse("nobody@example.com").unwrap())
            .await
            .unwrap(),
        None
    );
}

async fn api_keys_are_found_by_digest_until_revoked(store: Arc<SqlStore>) {
    let made = NewApiKey::generate();
    let key = store
        .create_api_key(
            "image-service",
            &made.display_prefix,
            &made.digest,
            &[SCOPE_CONSUME],
        )
        .await
        .unwrap();
    assert!(key.allows(SCOPE_CONSUME));
    assert!(!key.allows("admin"));

    let presented = crate::api_key::KeyDigest::of(made.secret.expose());
    assert_eq!(
        store.active_api_key(&presented).await.unwrap(),
        Some(key.clone())
    );
    let wrong = crate::api_key::KeyDigest::of("pbk_wrong");
    assert_eq!(store.active_api_key(&wrong).await.unwrap(), None);

    assert!(store.revoke_api_key(key.id).await.unwrap());
    assert!(
        !store.revoke_api_key(key.id).await.unwrap(),
        "already revoked"
    );
    assert_eq!(store.active_api_key(&presented).await.unwrap(), None);
    let listed = store.api_keys().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].revoked_at.is_some());
    assert!(!listed[0].allows(SCOPE_CONSUME));
}

async fn migrations_apply_once(store: Arc<SqlStore>) {
    // Connecting again to a migrated database applies nothing and keeps the data.
    let user = new_user(&*store, "ada@example.com").await;
    store.post(purchase(&user, 10, "k")).await.unwrap();
    store.backend().migrator().run(store.pool()).await.unwrap();
    assert_eq!(store.balance(user.id).await.unwrap().get(), 10);
}

async fn credentials_carry_the_password_hash(store: Arc<SqlStore>) {
    let email = Email::parse("ada@example.com").unwrap();
    let made = FakeUser::new(email.as_str())
        .password_hash("$argon2id$stored")
        .create(&*store)
        .await;
    assert_eq!(
        store.credentials(&email).await.unwrap(),
        Some((made, Some("$argon2id$stored".to_owned())))
    );
    let nobody = Email::parse("nobody@example.com").unwrap();
    assert_eq!(store.credentials(&nobody).await.unwrap(), None);
    assert_eq!(store.user_count().await.unwrap(), 1);
}

async fn a_password_hash_is_replaced_only_while_it_is_the_one_stored(store: Arc<SqlStore>) {
    let email = Email::parse("ada@example.com").unwrap();
    let ada = FakeUser::new(email.as_str())
        .password_hash("$argon2id$old")
        .create(&*store)
        .await;
    let hash = async || store.credentials(&email).await.unwrap().unwrap().1;
    assert!(
        !store
            .replace_password_hash(ada.id, "$argon2id$other", "$argon2id$new")
            .await
            .unwrap()
    );
    assert_eq!(hash().await.as_deref(), Some("$argon2id$old"));
    assert!(
        store
            .replace_password_hash(ada.id, "$argon2id$old", "$argon2id$new")
            .await
            .unwrap()
    );
    assert_eq!(hash().await.as_deref(), Some("$argon2id$new"));
}

fn limiter(store: &Arc<SqlStore>, clock: &ManualClock) -> DatabaseLimiter {
    DatabaseLimiter::new(
        "billing",
        Quota::per_minute(std::num::NonZeroU32::new(5).unwrap()),
        store.clone(),
        Arc::new(clock.clone()),
    )
}

async fn the_rate_limit_allows_a_burst_then_one_request_an_interval(store: Arc<SqlStore>) {
    let clock = ManualClock::starting_at(Timestamp::from_millis(1_800_000_000_000));
    let limiter = limiter(&store, &clock);

    for i in 0..5 {
        assert_eq!(
            limiter.check("user-1").await.unwrap(),
            Decision::Allowed,
            "request {i}"
        );
    }
    // The sixth within the minute waits for one interval (60 s / 5).
    assert_eq!(
        limiter.check("user-1").await.unwrap(),
        Decision::Limited {
            retry_after: Duration::from_secs(12)
        }
    );
    // Another key has its own allowance.
    assert_eq!(limiter.check("user-2").await.unwrap(), Decision::Allowed);

    clock.advance(Duration::from_secs(11));
    assert_eq!(
        limiter.check("user-1").await.unwrap(),
        Decision::Limited {
            retry_after: Duration::from_secs(1)
        }
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(limiter.check("user-1").await.unwrap(), Decision::Allowed);
    assert!(matches!(
        limiter.check("user-1").await.unwrap(),
        Decision::Limited { .. }
    ));

    // After a quiet minute the whole burst is back, and idle keys can be forgotten.
    clock.advance(Duration::from_secs(60));
    limiter.forget_idle().await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rate_limits")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(left, 0);
    for _ in 0..5 {
        assert_eq!(limiter.check("user-1").await.unwrap(), Decision::Allowed);
    }
}

async fn concurrent_requests_never_pass_the_rate_limit(store: Arc<SqlStore>) {
    let clock = ManualClock::starting_at(Timestamp::from_millis(1_800_000_000_000));
    let limiter = Arc::new(limiter(&store, &clock));
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.check("hot").await.unwrap() })
        })
        .collect();
    let mut allowed = 0;
    for task in tasks {
        if task.await.unwrap() == Decision::Allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 5);
}

/// Migration 3 rebuilds SQLite's ledger (and changes PostgreSQL's constraint): a database
/// migrated by an older build keeps every row, every link from a reversal to its purchase,
/// and the append-only rule; a source not in `ledger_sources` is refused.
async fn the_ledger_survives_migration_3(target: crate::config::DatabaseTarget, backend: Backend) {
    use sqlx::Row;
    let dir = tempfile::tempdir().unwrap();
    let source = format!(
        "{}/migrations/{}",
        env!("CARGO_MANIFEST_DIR"),
        backend.name()
    );
    for file in ["0001_schema.sql", "0002_stripe.sql"] {
        std::fs::copy(format!("{source}/{file}"), dir.path().join(file)).unwrap();
    }
    let url = match &target {
        crate::config::DatabaseTarget::Sqlite { path } => {
            format!("sqlite://{}?mode=rwc", path.display())
        }
        crate::config::DatabaseTarget::Postgres { url } => url.expose().to_owned(),
    };
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::migrate::Migrator::new(dir.path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    sqlx::raw_sql(
        "INSERT INTO users (id, email, role, created_at) VALUES (1, 'ada@example.com', 'user', 0);
         INSERT INTO token_balances (user_id, balance, updated_at) VALUES (1, 3750, 0);
         INSERT INTO token_ledger (id, user_id, delta, balance_after, source, reason,
             idempotency_key, created_at) VALUES
             (1, 1, 5000, 5000, 'stripe_checkout', 'Medium pack', 'stripe:checkout:cs_1', 0);
         INSERT INTO token_ledger (id, user_id, delta, balance_after, source, reason,
             idempotency_key, created_at, reverses_entry_id) VALUES
             (2, 1, -1250, 3750, 'stripe_refund', 'Refund', 'stripe:refund:ch_1:1000', 0, 1);",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let store = connect(&target).await.expect("migration 3 applies");
    let user = UserId::new(1).unwrap();
    assert_eq!(store.balance(user).await.unwrap().get(), 3_750);
    let page = store
        .ledger_page(user, &LedgerQuery::first(10))
        .await
        .unwrap();
    assert_eq!(page.entries.len(), 2);
    assert_eq!(
        page.entries[0].reverses,
        Some(LedgerEntryId::new(1).unwrap())
    );
    assert_eq!(store.audit_balances().await.unwrap(), vec![]);
    assert!(
        sqlx::query("UPDATE token_ledger SET delta = 1 WHERE id = 1")
            .execute(store.pool())
            .await
            .is_err(),
        "still append-only"
    );
    let with_source = |source: &str| {
        // Ids given, as the rows above were: PostgreSQL's identity has not moved past them.
        format!(
            "INSERT INTO token_ledger (id, user_id, delta, balance_after, source, reason, \
                 idempotency_key, created_at) VALUES ({}, 1, 1, 1, '{source}', 'x', 'k-{source}', 0)",
            10 + source.len()
        )
    };
    assert!(
        sqlx::query(&with_source("made_up"))
            .execute(store.pool())
            .await
            .is_err(),
        "an unknown source is refused"
    );
    sqlx::query(&with_source("trial"))
        .execute(store.pool())
        .await
        .expect("the trial source exists");
    let row = sqlx::query("SELECT COUNT(*) AS n FROM ledger_sources")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(
        row.try_get::<i64, _>("n").unwrap(),
        Source::ALL.len() as i64
    );
}

#[tokio::test]
async fn the_ledger_survives_migration_3_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let target = crate::config::DatabaseTarget::Sqlite {
        path: dir.path().join("billing.sqlite3"),
    };
    the_ledger_survives_migration_3(target, Backend::Sqlite).await;
}

#[tokio::test]
async fn the_ledger_survives_migration_3_on_postgres() {
    if let Some(target) = crate::testing::empty_postgres().await {
        the_ledger_survives_migration_3(target, Backend::Postgres).await;
    }
}

/// The node's watch on balances hears every committed change of a balance or of what holds
/// reserve of it, once per user per transaction, and nothing of a refusal.
async fn a_balance_watch_hears_each_committed_change_and_nothing_else(store: Arc<SqlStore>) {
    let ada = new_user(&*store, "ada@example.com").await;
    let bob = new_user(&*store, "bob@example.com").await;
    let mut watch = store.watch_balances().await.unwrap();

    store.post(purchase(&ada, 10, "a")).await.unwrap();
    assert_eq!(news(&mut watch).await, BalanceNews::Changed(vec![ada.id]));

    // A refused debit commits nothing of a balance: no news.
    let refused = store
        .post(Posting::debit(
            bob.id,
            tokens(5),
            reason("usage"),
            key("refused"),
        ))
        .await;
    assert!(matches!(
        refused,
        Err(StoreError::Ledger(LedgerError::InsufficientTokens { .. }))
    ));
    assert!(
        tokio::time::timeout(Duration::from_millis(700), watch.next())
            .await
            .is_err(),
        "news of a refusal"
    );

    // A hold changes what is available: news. A batch over both users: news of each.
    store
        .open_hold(&NewHold {
            user: ada.id,
            tokens: tokens(4),
            reason: reason("a job"),
            ttl_ms: 60_000,
            key: key("hold"),
            api_key: None,
        })
        .await
        .unwrap();
    assert_eq!(news(&mut watch).await, BalanceNews::Changed(vec![ada.id]));
    store.post(purchase(&bob, 10, "b")).await.unwrap();
    assert_eq!(news(&mut watch).await, BalanceNews::Changed(vec![bob.id]));
    let debits: Vec<crate::ledger::Debit> = [(ada.id, "x1"), (bob.id, "x2"), (ada.id, "x3")]
        .into_iter()
        .map(|(user, k)| crate::ledger::Debit::new(user, tokens(1), reason("usage"), key(k)))
        .collect();
    store.post_batch(&debits).await.unwrap();
    // (The news may come in more than one piece.)
    let mut heard = std::collections::BTreeSet::new();
    while heard.len() < 2 {
        match news(&mut watch).await {
            BalanceNews::Changed(users) => heard.extend(users),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(heard.into_iter().collect::<Vec<_>>(), [ada.id, bob.id]);
}

async fn news(watch: &mut Box<dyn BalanceWatch>) -> BalanceNews {
    tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("news within 5 s")
        .unwrap()
}
