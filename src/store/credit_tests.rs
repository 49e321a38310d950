//! Holds, grants, expiry and batches, against both backends, with a clock the tests move.
//! Every test ends with the audits: each balance is the sum of its ledger, and of its live
//! grants while positive; what is held is the sum of the open holds.

use std::sync::Arc;
use std::time::Duration;

use super::tests::{key, reason, tokens};
use super::*;
use crate::clock::{Clock, ManualClock};
use crate::domain::{Expiry, GrantTerms, HoldState, Rollover};
use crate::ledger::{Debit, LedgerError, Posting};
use crate::testing::{FakeUser, clocked_contract};

clocked_contract!(
    a_hold_reserves_from_what_is_available,
    a_capture_spends_at_most_its_hold_and_releases_the_rest,
    a_capture_beyond_its_hold_needs_leave_and_the_tokens_available,
    a_released_hold_frees_its_tokens_and_cannot_be_captured,
    an_expired_hold_never_reserves_even_before_any_sweep,
    a_hold_key_answers_with_its_hold_and_refuses_another,
    only_the_key_that_opened_a_hold_may_touch_it,
    spending_draws_the_soonest_expiring_grant_first_then_the_oldest,
    expired_tokens_are_never_spent_and_their_expiry_is_an_entry,
    a_reversal_takes_from_its_own_grant_first_and_a_later_grant_covers_the_debt,
    tokens_given_back_keep_the_expiry_of_their_purchase,
    tokens_given_back_when_their_plan_grant_rolls_over_follow_it_as_rolled,
    a_plan_grant_rolls_over_up_to_its_cap_once,
    the_sweep_expires_grants_and_holds_of_users_who_do_nothing,
    a_batch_answers_each_item_and_one_refusal_refuses_only_itself,
    a_batch_spends_only_what_holds_leave_and_draws_soonest_expiring_first,
    concurrent_holds_and_spends_never_overdraw_what_is_available,
    consumes_arriving_together_commit_together_each_decided_alone,
    a_key_sent_twice_at_once_is_spent_once,
);

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(86_400);

fn in_(clock: &ManualClock, after: Duration) -> Timestamp {
    Timestamp::from_millis(clock.now().as_millis() + after.as_millis() as i64)
}

pub(super) async fn user(store: &SqlStore, email: &str) -> UserId {
    FakeUser::new(email).create(store).await.id
}

pub(super) async fn credit(
    store: &SqlStore,
    user: UserId,
    n: i64,
    k: &str,
    terms: GrantTerms,
) -> Posted {
    store
        .post(
            Posting::credit(
                user,
                tokens(n),
                Source::StripeCheckout,
                reason(k),
                key(&k.replace([' ', '\''], "-")),
            )
            .expiring(terms),
        )
        .await
        .unwrap()
}

pub(super) async fn spend(
    store: &SqlStore,
    user: UserId,
    n: i64,
    k: &str,
) -> Result<Posted, StoreError> {
    store
        .post(Posting::debit(user, tokens(n), reason("usage"), key(k)))
        .await
}

pub(super) fn hold(user: UserId, n: i64, k: &str, ttl: Duration) -> NewHold {
    NewHold {
        user,
        tokens: tokens(n),
        reason: reason("a job"),
        ttl_ms: ttl.as_millis() as i64,
        key: key(k),
        api_key: None,
    }
}

fn capture(hold: HoldId, n: i64) -> HoldCapture {
    HoldCapture {
        hold,
        tokens: tokens(n),
        may_exceed: false,
        api_key: None,
    }
}

async fn available(store: &SqlStore, user: UserId) -> (i64, i64) {
    let a = store.available(user).await.unwrap();
    (a.balance.get(), a.held)
}

/// What each live grant has left, in spending order.
async fn left(store: &SqlStore, user: UserId) -> Vec<i64> {
    store
        .grants(user)
        .await
        .unwrap()
        .iter()
        .map(|g| g.remaining)
        .collect()
}

async fn audited(store: &SqlStore) {
    assert_eq!(store.audit_balances().await.unwrap(), vec![]);
    assert_eq!(store.audit_credits().await.unwrap(), vec![]);
}

fn insufficient(result: Result<impl std::fmt::Debug, StoreError>) -> i64 {
    match result {
        Err(StoreError::Ledger(LedgerError::InsufficientTokens { balance, .. })) => balance.get(),
        other => panic!("expected insufficient tokens, got {other:?}"),
    }
}

async fn a_hold_reserves_from_what_is_available(store: Arc<SqlStore>, _clock: ManualClock) {
    let ada = user(&store, "ada@example.com").await;
    credit(&store, ada, 1000, "pack", GrantTerms::NEVER).await;
    let opened = store
        .open_hold(&hold(ada, 600, "h1", MINUTE))
        .await
        .unwrap();
    assert_eq!(opened.hold.state, HoldState::Open);
    assert_eq!(opened.available.spendable(), 400);
    assert_eq!(available(&store, ada).await, (1000, 600));

    assert_eq!(insufficient(spend(&store, ada, 401, "c1").await), 400);
    assert_eq!(
        insufficient(store.open_hold(&hold(ada, 401, "h2", MINUTE)).await),
        400
    );
    spend(&store, ada, 400, "c2").await.unwrap();
    assert_eq!(available(&store, ada).await, (600, 600));
    assert_eq!(insufficient(spend(&store, ada, 1, "c3").await), 0);
    audited(&store).await;
}

async fn a_capture_spends_at_most_its_hold_and_releases_the_rest(
    store: Arc<SqlStore>,
    _clock: ManualClock,
) {
    let ada = user(&store, "ada@example.com").await;
    credit(&store, ada, 1000, "pack", GrantTerms::NEVER).await;
    let id = store
        .open_hold(&hold(ada, 600, "h1", MINUTE))
        .await
        .unwrap()
        .hold
        .id;

    let captured = store.capture_hold(&capture(id, 450)).await.unwrap();
    assert!(!captured.replayed);
    assert_eq!(captured.entry.delta.get(), -450);
    assert_eq!(captured.entry.source, Source::Capture);
    assert_eq!(captured.entry.hold, Some(id));
    assert_eq!(captured.entry.reason, "a job");
    assert_eq!(
        available(&store, ada).await,
        (550, 0),
        "the other 150 are free again"
    );
    let stored = store.hold(id).await.unwrap().unwrap();
    assert_eq!(stored.state, HoldState::Captured);
    assert_eq!(stored.capture, Some(captured.entry.id));

    let again = store.capture_hold(&capture(id, 450)).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.entry.id, captured.entry.id);
    assert!(matches!(
        store.capture_hold(&capture(id, 500)).await,
        Err(StoreError::Hold(HoldError::CapturedDifferently { captured })) if captured.get() == 450
    ));
    assert!(matches!(
        store.release_hold(id, None).await,
        Err(StoreError::Hold(HoldError::Settled(HoldState::Captured)))
    ));
    assert_eq!(available(&store, ada).await, (550, 0));
    audited(&store).await;
}

async fn a_capture_beyond_its_hold_needs_leave_and_the_tokens_available(
    store: Arc<SqlStore>,
    _clock: ManualClock,
) {
    let ada = user(&store, "ada@example.com").await;
    credit(&store, ada, 1000, "pack", GrantTerms::NEVER).await;
    let id = store
        .open_hold(&hold(ada, 600, "h1", MINUTE))
        .await
        .unwrap()
        .hold
        .id;
    spend(&store, ada, 300, "c1").await.unwrap(); // 100 left beyond the hold

    assert!(matches!(
        store.capture_hold(&capture(id, 601)).await,
        Err(StoreError::Hold(HoldError::ExceedsHold { held })) if held.get() == 600
    ));
    let exceeding = |n| HoldCapture {
        may_exceed: true,
        ..capture(id, n)
    };
    assert_eq!(
        insufficient(store.capture_hold(&exceeding(701)).await),
        700,
        "the hold's 600 and the 100 available"
    );
    assert_eq!(available(&store, ada).await, (700, 600), "nothing changed");
    let captured = store.capture_hold(&exceeding(700)).await.unwrap();
    assert_eq!(captured.entry.balance_after.get(), 0);
    assert_eq!(available(&store, ada).await, (0, 0));
    audited(&store).await;
}

async fn a_released_hold_frees_its_tokens_and_cannot_be_captured(
    store: Arc<SqlStore>,
    _clock: ManualClock,
) {
    let ada = user(&store, "ada@example.com").await;
    credit(&store, ada, 1000, "pack", GrantTerms::NEVER).await;
    let id = store
        .open_hold(&hold(ada, 600, "h1", MINUTE))
        .await
        .unwrap()
        .hold
        .id;

    let released = store.release_hold(id, None).await.unwrap();
    assert!(!released.replayed);
    assert_eq!(released.hold.state, HoldState::Released);
    assert_eq!(released.available.spendable(), 1000);
    let again = store.release_hold(id, None).await.unwrap();
    assert!(again.replayed, "a second release changes nothing");
    assert_eq!(again.available.spendable(), 1000);
    assert!(matches!(
        store.capture_hold(&capture(id, 1)).await,
        Err(StoreError::Hold(HoldError::Settled(HoldState::Released)))
    ));
    assert_eq!(available(&store, ada).await, (1000, 0));
    assert_eq!(
        store
            .ledger_page(ada, &LedgerQuery::first(10))
            .await
            .unwrap()
            .entries
            .len(),
        1,
        "holds and releases are not ledger entries; only captures are"
    );
    audited(&store).await;
}

async fn an_expired_hold_never_reserves_even_before_any_sweep(
    store: Arc<SqlStore>,
    clock: ManualClock,
) {
    let ada = user(&store, "ada@example.com").await;
    credit(&store, ada, 1000, "pack", GrantTerms::NEVER).await;
    let id = store
        .open_hold(&hold(ada, 900, "h1", MINUTE))
        .await
        .unwrap()
        .hold
        .id;
    assert_eq!(insufficient(spend(&store, ada, 101, "c1").await), 100);

    clock.advance(MINUTE);
    // No sweep has run: the spend itself finds the hold over.
    spend(&store, ada, 1000, "c2").await.unwrap();
    assert_eq!(available(&store, ada).await, (0, 0));
    let stored = store.hold(id).await.unwrap().unwrap();
    assert_eq!(stored.state, HoldState::Expired);
    assert!(matches!(
        store.capture_hold(&capture(id, 900)).await,
        Err(StoreError::Hold(HoldError::Settled(HoldState::Expired)))
    ));
    let released = store.release_hold(id, None).await.unwrap();
    assert!(released.replayed);
    assert_eq!(released.hold.state, HoldState::Expired);

    // A hold past its time but not yet swept refuses a capture too.
    credit(&store, ada, 500, "pack 2", GrantTerms::NEVER).await;
    let late = store
        .open_hold(&hold(ada, 500, "h2", MINUTE))
        .await
        .unwrap()
        .hold
        .id;
    clock.advance(MINUTE + Duration::from_millis(1));
    assert_eq!(
        store.hold(late).await.unwrap().unwrap().state,
        HoldState::Open
    );
    assert!(matches!(
        store.capture_hold(&capture(late, 500)).await,
        Err(StoreError::Hold(HoldError::Settled(HoldState::Expired)))
    ));
    assert_eq!(
        store.hold(late).await.unwrap().unwrap().state,
        HoldState::Expired
    );
    assert_eq!(available(&store, ada).await, (500, 0));
    audited(&store).await;
}

async fn a_hold_key_answers_with_its_hold_and_refuses_another(
    store: Arc<SqlStore>,
    _clock: ManualClock,
) {
    let ada = user(&store, "ada@example.com").await;
    credit(&store, ada, 1000, "pack", GrantTerms::NEVER).await;
    let first = store
        .open_hold(&hold(ada, 300, "h1", MINUTE))
        .await
        .unwrap();
    let again = store
        .open_hold(&hold(ada, 300, "h1", MINUTE))
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.hold.id, first.hold.id);
    assert_eq!(available(&store, ada).await, (1000, 300), "reserved once");
    assert!(matches!(
        store.open_hold(&hold(ada, 301, "h1", MINUTE)).await,
        Err(StoreError::Hold(HoldError::KeyReused))
    ));
    audited(&store).await;
}

async fn only_the_key_that_opened_a_hold_may_touch_it(store: Arc<SqlStore>, _clock: ManualClock) {
    let ada = user(&store, "ada@example.com").await;
    credit(&store, ada, 1000, "pack", GrantTerms::NEVER).await;
    let service = |name: &'static str| {
        let store = store.clone();
        async move {
            let digest = crate::api_key::KeyDigest::of(&format!("pbk_{name}"));
            store
                .create_api_key(name, name, &digest, &[crate::api_key::SCOPE_CONSUME])
                .await
                .unwrap()
                .id
        }
    };
    let (mine, theirs) = (service("mine").await, service("theirs").await);
    let opened = NewHold {
        api_key: Some(mine),
        ..hold(ada, 300, "h1", MINUTE)
    };
    let id = store.open_hold(&opened).await.unwrap().hold.id;
    let other = HoldCapture {
        api_key: Some(theirs),
        ..capture(id, 300)
    };
    assert!(matches!(
        store.capture_hold(&other).await,
        Err(StoreError::Hold(HoldError::NotFound))
    ));
    assert!(matches!(
        store.release_hold(id, Some(theirs)).await,
        Err(StoreError::Hold(HoldError::NotFound))
    ));
    assert!(matches!(
        store.release_hold(id, None).await,
        Err(StoreError::Hold(HoldError::NotFound))
    ));
    assert!(matches!(
        store
            .capture_hold(&capture(HoldId::new(id.get() + 1000).unwrap(), 1))
            .await,
        Err(StoreError::Hold(HoldError::NotFound))
    ));
    assert_eq!(available(&store, ada).await, (1000, 300));
    audited(&store).await;
}

async fn spending_draws_the_soonest_expiring_grant_first_then_the_oldest(
    store: Arc<SqlStore>,
    clock: ManualClock,
) {
    let ada = user(&store, "ada@example.com").await;
    credit(&store, ada, 1000, "never a", GrantTerms::NEVER).await;
    credit(&store, ada, 700, "never b", GrantTerms::NEVER).await;
    credit(
        &store,
        ada,
        500,
        "ten days",
        GrantTerms::expiring_at(in_(&clock, DAY * 10)),
    )
    .await;
    credit(
        &store,
        ada,
        300,
        "five days",
        GrantTerms::expiring_at(in_(&clock, DAY * 5)),
    )
    .await;
    assert_eq!(
        left(&store, ada).await,
        [300, 500, 1000, 700],
        "spending order"
    );

    spend(&store, ada, 400, "c1").await.unwrap();
    assert_eq!(left(&store, ada).await, [400, 1000, 700]);
    spend(&store, ada, 1000, "c2").await.unwrap();
    assert_eq!(
        left(&store, ada).await,
        [400, 700],
        "then the oldest of those that never expire"
    );
    let grants = store.grants(ada).await.unwrap();
    assert_eq!(grants[0].label, "never a");
    assert_eq!(grants[0].tokens.get(), 1000);
    assert_eq!(grants[1].expires_at, None);
    audited(&store).await;
}

async fn expired_tokens_are_never_spent_and_their_expiry_is_an_entry(
    store: Arc<SqlStore>,
    clock: ManualClock,
) {
    let ada = user(&store, "ada@example.com").await;
    credit(
        &store,
        ada,
        500,
        "an hour",
        GrantTerms::expiring_at(in_(&clock, MINUTE * 60)),
    )
    .await;
    credit(&store, ada, 1000, "never", GrantTerms::NEVER).await;
    spend(&store, ada, 200, "c1").await.unwrap(); // from the hour's grant: 300 left of it

    clock.advance(MINUTE * 60);
    // Nothing has written the expiry yet; the spend must not reach the 300.
    assert_eq!(insufficient(spend(&store, ada, 1001, "c2").await), 1000);
    let page = store
        .ledger_page(ada, &LedgerQuery::first(10))
        .await
        .unwrap();
    let expiry = &page.entries[0];
    assert_eq!(expiry.source, Source::Expiry);
    assert_eq!(expiry.delta.get(), -300);
    assert_eq!(expiry.balance_after.get(), 1000);
    assert!(expiry.reason.contains("an hour"), "{}", expiry.reason);
    assert_eq!(left(&store, ada).await, [1000]);
    spend(&store, ada, 1000, "c3").await.unwrap();
    assert_eq!(available(&store, ada).await, (0, 0));
    audited(&store).await;
}

async fn a_reversal_takes_from_its_own_grant_first_and_a_later_grant_covers_the_debt(
    store: Arc<SqlStore>,
    clock: ManualClock,
) {
    let ada = user(&store, "ada@example.com").await;
    let soon = credit(
        &store,
        ada,
        1000,
        "soon",
        GrantTerms::expiring_at(in_(&clock, DAY)),
    )
    .await;
    let never = credit(&store, ada, 5000, "never", GrantTerms::NEVER).await;
    spend(&store, ada, 500, "c1").await.unwrap(); // from `soon`: 500 left

    let refund = |purchase: &Posted, n, k| {
        Posting::reversal(
            ada,
            tokens(n),
            Source::StripeRefund,
            reason("refunded"),
            key(k),
        )
        .reversing(purchase.entry.id)
    };
    store.post(refund(&never, 5000, "r1")).await.unwrap();
    assert_eq!(
        left(&store, ada).await,
        [500],
        "the refund took its own grant, not the soonest"
    );
    let taken = store.post(refund(&soon, 1000, "r2")).await.unwrap();
    assert_eq!(
        taken.entry.balance_after.get(),
        -500,
        "500 of it were spent"
    );
    assert_eq!(left(&store, ada).await, Vec::<i64>::new());

    credit(&store, ada, 1200, "later", GrantTerms::NEVER).await;
    assert_eq!(available(&store, ada).await, (700, 0));
    assert_eq!(
        left(&store, ada).await,
        [700],
        "500 of the new grant covered the debt"
    );
    audited(&store).await;
}

async fn tokens_given_back_keep_the_expiry_of_their_purchase(
    store: Arc<SqlStore>,
    clock: ManualClock,
) {
    let ada = user(&store, "ada@example.com").await;
    let pack = credit(
        &store,
        ada,
        1000,
        "pack",
        GrantTerms::expiring_at(in_(&clock, DAY)),
    )
    .await;
    let dispute = |delta: Posting| delta.reversing(pack.entry.id);
    store
        .post(dispute(Posting::reversal(
            ada,
            tokens(1000),
            Source::StripeDispute,
            reason("disputed"),
            key("d1"),
        )))
        .await
        .unwrap();
    let won = |k| {
        dispute(Posting::credit(
            ada,
            tokens(1000),
            Source::StripeDispute,
            reason("dispute won"),
            key(k),
        ))
    };
    // Won within the pack's time: the tokens are back until the pack's end.
    store.post(won("d2")).await.unwrap();
    let grants = store.grants(ada).await.unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].expires_at, Some(in_(&clock, DAY)));

    // Taken again and won again after the pack's end: back, and expired at once.
    store
        .post(dispute(Posting::reversal(
            ada,
            tokens(1000),
            Source::StripeDispute,
            reason("disputed"),
            key("d3"),
        )))
        .await
        .unwrap();
    clock.advance(DAY * 2);
    store.post(won("d4")).await.unwrap();
    assert_eq!(available(&store, ada).await, (0, 0));
    let page = store
        .ledger_page(ada, &LedgerQuery::first(1))
        .await
        .unwrap();
    assert_eq!(page.entries[0].source, Source::Expiry);
    assert_eq!(page.entries[0].delta.get(), -1000);
    audited(&store).await;
}

/// The purchase's period ends with nothing posted since, and its refund fails only then: the
/// posting that gives the tokens back settles the purchase first (it rolls over), and the
/// tokens come back on its terms as they are after that, not as they were before.
async fn tokens_given_back_when_their_plan_grant_rolls_over_follow_it_as_rolled(
    store: Arc<SqlStore>,
    clock: ManualClock,
) {
    let ada = user(&store, "ada@example.com").await;
    let month = DAY * 30;
    let terms = GrantTerms {
        expiry: Expiry::At(in_(&clock, month)),
        rollover: Some(Rollover {
            cap: tokens(2000),
            period_ms: month.as_millis() as i64,
        }),
    };
    let plan = credit(&store, ada, 6000, "plan", terms).await;
    let refund = |posting: Posting| posting.reversing(plan.entry.id);
    store
        .post(refund(Posting::reversal(
            ada,
            tokens(3000),
            Source::StripeRefund,
            reason("refunded"),
            key("r1"),
        )))
        .await
        .unwrap();

    clock.advance(month);
    store
        .post(refund(Posting::credit(
            ada,
            tokens(3000),
            Source::StripeRefund,
            reason("refund failed"),
            key("r2"),
        )))
        .await
        .unwrap();
    assert_eq!(
        available(&store, ada).await,
        (5000, 0),
        "of the 3,000 left 1,000 lapsed and 2,000 rolled over; the 3,000 back are whole"
    );
    let ends: Vec<_> = store
        .grants(ada)
        .await
        .unwrap()
        .iter()
        .map(|g| g.expires_at)
        .collect();
    assert_eq!(
        ends,
        [Some(in_(&clock, month)); 2],
        "both until the period rolled into"
    );
    clock.advance(month);
    assert_eq!(
        available(&store, ada).await,
        (0, 0),
        "tokens given back never roll over a second time"
    );
    audited(&store).await;
}

async fn a_plan_grant_rolls_over_up_to_its_cap_once(store: Arc<SqlStore>, clock: ManualClock) {
    let ada = user(&store, "ada@example.com").await;
    let month = DAY * 30;
    let terms = GrantTerms {
        expiry: Expiry::At(in_(&clock, month)),
        rollover: Some(Rollover {
            cap: tokens(2000),
            period_ms: month.as_millis() as i64,
        }),
    };
    credit(&store, ada, 6000, "plan", terms).await;
    spend(&store, ada, 1000, "c1").await.unwrap();

    clock.advance(month);
    assert_eq!(
        available(&store, ada).await,
        (2000, 0),
        "3,000 lapsed, 2,000 rolled over"
    );
    let grants = store.grants(ada).await.unwrap();
    assert_eq!(grants[0].expires_at, Some(in_(&clock, month)));
    clock.advance(month);
    assert_eq!(
        available(&store, ada).await,
        (0, 0),
        "rolled over once only"
    );
    let page = store
        .ledger_page(ada, &LedgerQuery::first(2))
        .await
        .unwrap();
    let expiries: Vec<i64> = page.entries.iter().map(|e| e.delta.get()).collect();
    assert_eq!(expiries, [-2000, -3000]);
    assert!(page.entries.iter().all(|e| e.source == Source::Expiry));
    audited(&store).await;
}

async fn the_sweep_expires_grants_and_holds_of_users_who_do_nothing(
    store: Arc<SqlStore>,
    clock: ManualClock,
) {
    let ada = user(&store, "ada@example.com").await;
    let bob = user(&store, "bob@example.com").await;
    credit(
        &store,
        ada,
        500,
        "pack",
        GrantTerms::expiring_at(in_(&clock, DAY)),
    )
    .await;
    credit(&store, bob, 500, "bob's pack", GrantTerms::NEVER).await;
    let held = store
        .open_hold(&hold(bob, 200, "h1", MINUTE))
        .await
        .unwrap()
        .hold
        .id;
    assert_eq!(
        store.settle_expiries(100).await.unwrap(),
        0,
        "nothing due yet"
    );

    clock.advance(DAY);
    assert_eq!(store.settle_expiries(100).await.unwrap(), 2);
    assert_eq!(
        store.hold(held).await.unwrap().unwrap().state,
        HoldState::Expired
    );
    let page = store
        .ledger_page(ada, &LedgerQuery::first(1))
        .await
        .unwrap();
    assert_eq!(page.entries[0].source, Source::Expiry);
    assert_eq!(available(&store, ada).await, (0, 0));
    assert_eq!(available(&store, bob).await, (500, 0));
    assert_eq!(store.settle_expiries(100).await.unwrap(), 0, "each once");
    audited(&store).await;
}

async fn a_batch_answers_each_item_and_one_refusal_refuses_only_itself(
    store: Arc<SqlStore>,
    _clock: ManualClock,
) {
    let ada = user(&store, "ada@example.com").await;
    let bob = user(&store, "bob@example.com").await;
    credit(&store, ada, 1000, "pack", GrantTerms::NEVER).await;
    credit(&store, bob, 100, "bob's pack", GrantTerms::NEVER).await;
    let debit = |user, n, k: &str| Debit::new(user, tokens(n), reason("usage"), key(k));
    let nobody = UserId::new(999_999).unwrap();
    let items = store
        .post_batch(&[
            debit(ada, 300, "b1"),
            debit(bob, 101, "b2"),
            debit(ada, 300, "b1"),
            debit(ada, 301, "b1"),
            debit(nobody, 1, "b3"),
            debit(bob, 100, "b4"),
            debit(ada, 700, "b5"),
            debit(ada, 1, "b6"),
        ])
        .await
        .unwrap();
    assert!(matches!(&items[0], Ok(p) if !p.replayed && p.entry.balance_after.get() == 700));
    assert!(matches!(
        &items[1],
        Err(LedgerError::InsufficientTokens { .. })
    ));
    assert!(matches!(&items[2], Ok(p) if p.replayed));
    assert!(matches!(
        &items[3],
        Err(LedgerError::IdempotencyConflict { .. })
    ));
    assert!(matches!(&items[4], Err(LedgerError::UnknownUser(_))));
    assert!(matches!(&items[5], Ok(p) if p.entry.balance_after.get() == 0));
    assert!(matches!(&items[6], Ok(p) if p.entry.balance_after.get() == 0));
    assert!(matches!(
        &items[7],
        Err(LedgerError::InsufficientTokens { .. })
    ));
    assert_eq!(available(&store, ada).await, (0, 0));
    assert_eq!(available(&store, bob).await, (0, 0));
    // A batch replayed whole changes nothing.
    let again = store.post_batch(&[debit(ada, 300, "b1")]).await.unwrap();
    assert!(matches!(&again[0], Ok(p) if p.replayed));
    audited(&store).await;
}

async fn a_batch_spends_only_what_holds_leave_and_draws_soonest_expiring_first(
    store: Arc<SqlStore>,
    clock: ManualClock,
) {
    let ada = user(&store, "ada@example.com").await;
    credit(&store, ada, 1000, "never", GrantTerms::NEVER).await;
    credit(
        &store,
        ada,
        300,
        "five days",
        GrantTerms::expiring_at(in_(&clock, DAY * 5)),
    )
    .await;
    store
        .open_hold(&hold(ada, 900, "h1", DAY * 30))
        .await
        .unwrap();
    let debit = |n, k: &str| Debit::new(ada, tokens(n), reason("usage"), key(k));
    let items = store
        .post_batch(&[
            debit(401, "b1"),
            debit(250, "b2"),
            debit(150, "b3"),
            debit(1, "b4"),
        ])
        .await
        .unwrap();
    assert!(
        matches!(&items[0], Err(LedgerError::InsufficientTokens { balance, .. }) if balance.get() == 400),
        "the hold reserves 900 of 1,300: {:?}",
        items[0]
    );
    assert!(matches!(&items[1], Ok(p) if p.entry.balance_after.get() == 1050));
    assert!(matches!(&items[2], Ok(p) if p.entry.balance_after.get() == 900));
    assert!(matches!(
        &items[3],
        Err(LedgerError::InsufficientTokens { .. })
    ));
    // 250 from the grant that expires, then 50 of it and 100 of the other.
    assert_eq!(left(&store, ada).await, [900]);
    assert_eq!(available(&store, ada).await, (900, 900));

    // Past the five days with nothing written yet: the batch settles first.
    credit(
        &store,
        ada,
        100,
        "a day",
        GrantTerms::expiring_at(in_(&clock, DAY)),
    )
    .await;
    clock.advance(DAY * 2);
    let items = store.post_batch(&[debit(1, "b5")]).await.unwrap();
    assert!(
        matches!(&items[0], Err(LedgerError::InsufficientTokens { balance, .. }) if balance.get() == 0),
        "the day's 100 expired before the batch: {:?}",
        items[0]
    );
    assert_eq!(available(&store, ada).await, (900, 900));
    audited(&store).await;
}

async fn concurrent_holds_and_spends_never_overdraw_what_is_available(
    store: Arc<SqlStore>,
    _clock: ManualClock,
) {
    let ada = user(&store, "ada@example.com").await;
    credit(&store, ada, 1000, "pack", GrantTerms::NEVER).await;
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                if i % 2 == 0 {
                    store
                        .open_hold(&hold(ada, 100, &format!("h{i}"), MINUTE))
                        .await
                        .map(|_| 100)
                } else {
                    spend(&store, ada, 100, &format!("c{i}")).await.map(|_| 100)
                }
            })
        })
        .collect();
    let mut taken = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(n) => taken += n,
            Err(StoreError::Ledger(LedgerError::InsufficientTokens { .. })) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(taken, 1000, "exactly what there was");
    let (balance, held) = available(&store, ada).await;
    assert_eq!(balance - held, 0);
    audited(&store).await;
}

/// A database at the schema before grants, holding a user with a balance: the grants
/// migration makes that balance one grant that never expires, and the audits agree.
async fn balances_from_before_grants_become_grants(target: crate::config::DatabaseTarget) {
    sqlx::any::install_default_drivers();
    let backend = match &target {
        crate::config::DatabaseTarget::Sqlite { .. } => "sqlite",
        crate::config::DatabaseTarget::Postgres { .. } => "postgres",
    };
    let before = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(format!("migrations/{backend}")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.as_str() < "0004" {
            std::fs::copy(&path, before.path().join(&name)).unwrap();
        }
    }
    let url = match &target {
        crate::config::DatabaseTarget::Sqlite { path } => {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            format!("sqlite://{}?mode=rwc", path.display())
        }
        crate::config::DatabaseTarget::Postgres { url } => url.expose().to_owned(),
    };
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::migrate::Migrator::new(before.path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    for statement in [
        "INSERT INTO users (id, email, role, created_at) VALUES (1, 'ada@example.com', 'user', 0)",
        "INSERT INTO users (id, email, role, created_at) VALUES (2, 'bob@example.com', 'user', 0)",
        "INSERT INTO token_balances (user_id, balance, updated_at) VALUES (1, 700, 5)",
        "INSERT INTO token_balances (user_id, balance, updated_at) VALUES (2, 0, 5)",
        "INSERT INTO token_ledger (user_id, delta, balance_after, source, reason, \
             idempotency_key, created_at) VALUES (1, 1000, 1000, 'stripe_checkout', 'Small pack', 'k1', 1)",
        "INSERT INTO token_ledger (user_id, delta, balance_after, source, reason, \
             idempotency_key, created_at) VALUES (1, -300, 700, 'consume', 'usage', 'k2', 2)",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    pool.close().await;

    let store = super::connect(&target)
        .await
        .expect("the grants migration applies");
    assert_eq!(store.audit_balances().await.unwrap(), vec![]);
    assert_eq!(store.audit_credits().await.unwrap(), vec![]);
    let ada = UserId::new(1).unwrap();
    let grants = store.grants(ada).await.unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!((grants[0].remaining, grants[0].expires_at), (700, None));
    assert_eq!(grants[0].label, "Balance from before grants");
    store
        .post(Posting::debit(ada, tokens(700), reason("usage"), key("k3")))
        .await
        .unwrap();
    assert_eq!(store.grants(UserId::new(2).unwrap()).await.unwrap(), vec![]);
    assert_eq!(store.audit_credits().await.unwrap(), vec![]);
}

#[tokio::test]
async fn balances_from_before_grants_become_grants_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    balances_from_before_grants_become_grants(crate::config::DatabaseTarget::Sqlite {
        path: dir.path().join("db/billing.sqlite3"),
    })
    .await;
}

#[tokio::test]
async fn balances_from_before_grants_become_grants_on_postgres() {
    if let Some(target) = crate::testing::empty_postgres().await {
        balances_from_before_grants_become_grants(target).await;
    }
}

/// 200 consume calls of one token at once, for a user with 150: they share transactions
/// (group commit), yet each is decided alone, answered only once written, and none overdraws.
async fn consumes_arriving_together_commit_together_each_decided_alone(
    store: Arc<SqlStore>,
    _clock: ManualClock,
) {
    let ada = user(&store, "ada@example.com").await;
    credit(&store, ada, 150, "pack", GrantTerms::NEVER).await;
    let before = store.group_commits();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let key = key(&format!("consume-{i}"));
                let spent = store
                    .spend(Debit::new(ada, tokens(1), reason("usage"), key.clone()))
                    .await;
                // Answered only after the commit: what was applied is there to read.
                let written = store.entry_by_key(&key).await.unwrap();
                match &spent {
                    Ok(posted) => assert_eq!(written.as_ref(), Some(&posted.entry)),
                    Err(_) => assert_eq!(written, None),
                }
                spent
            })
        })
        .collect();
    let (mut applied, mut refused) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(posted) => {
                assert!(!posted.replayed);
                applied += 1;
            }
            Err(StoreError::Ledger(LedgerError::InsufficientTokens { balance, .. })) => {
                assert_eq!(balance.get(), 0);
                refused += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((applied, refused), (150, 50));
    let groups = store.group_commits() - before;
    assert!(
        groups < 100,
        "200 consumes arriving together took {groups} transactions"
    );
    let (balance, held) = available(&store, ada).await;
    assert_eq!((balance, held), (0, 0));
    let page = store
        .ledger_page(ada, &LedgerQuery::first(100))
        .await
        .unwrap();
    let mut after: Vec<i64> = page.entries.iter().map(|e| e.balance_after.get()).collect();
    after.sort_unstable();
    assert_eq!(
        after[..3],
        [0, 1, 2],
        "each debit has its own row and balance"
    );
    audited(&store).await;
}

/// One key sent several times at once (a client's retries racing): spent once, the same
/// consume again is a replay of it, another amount under the key is refused.
async fn a_key_sent_twice_at_once_is_spent_once(store: Arc<SqlStore>, _clock: ManualClock) {
    let ada = user(&store, "ada@example.com").await;
    credit(&store, ada, 100, "pack", GrantTerms::NEVER).await;
    let tasks: Vec<_> = [7, 7, 7, 9]
        .into_iter()
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .spend(Debit::new(ada, tokens(n), reason("usage"), key("retried")))
                    .await
            })
        })
        .collect();
    let (mut applied, mut replayed, mut conflicts) = (Vec::new(), 0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(posted) if posted.replayed => replayed += 1,
            Ok(posted) => applied.push(posted.entry.delta.get()),
            Err(StoreError::Ledger(LedgerError::IdempotencyConflict { .. })) => conflicts += 1,
            Err(e) => panic!("{e}"),
        }
    }
    // Whichever comes first wins; the 9 may, and then each 7 is the conflict.
    match applied[..] {
        [-7] => assert_eq!((replayed, conflicts), (2, 1)),
        [-9] => assert_eq!((replayed, conflicts), (0, 3)),
        _ => panic!("spent {applied:?}: once is right"),
    }
    let (balance, _) = available(&store, ada).await;
    assert_eq!(balance, 100 + applied[0]);
    audited(&store).await;
}
