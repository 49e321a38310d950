//! The steps a history is made of, and how one is drawn at random from what exists so far.

use rand::Rng;
use rand::rngs::StdRng;

use crate::domain::ProductId;
use crate::stripe::simulated::{PayMethod, TestCard};

/// One step of a history. `id` is its place in the history as first drawn; a shortened
/// history keeps the ids, so that deliveries still name the events they meant.
#[derive(Debug, Clone)]
pub struct Step {
    pub id: usize,
    pub act: Act,
}

/// What happens in a step. Objects are named by their place among those of their kind made so
/// far (`nth`, taken modulo how many there are): a shortened history still names real ones.
#[derive(Debug, Clone)]
pub enum Act {
    /// A user buys a pack through Checkout.
    Buy {
        user: usize,
        pack: ProductId,
        method: PayMethod,
    },
    /// The bank answers the `nth` payment still waiting to clear.
    Settle {
        nth: usize,
    },
    /// A user subscribes through Checkout (free: with a 100% coupon for the first month).
    Subscribe {
        user: usize,
        free: bool,
    },
    /// The merchant subscribes a user in Stripe's Dashboard.
    DashboardSubscribe {
        user: usize,
    },
    /// The `nth` live subscription of a user renews (or ends, when set to).
    Renew {
        user: usize,
        nth: usize,
    },
    SetQuantity {
        user: usize,
        nth: usize,
        quantity: i64,
    },
    CancelAtPeriodEnd {
        user: usize,
        nth: usize,
    },
    CancelNow {
        user: usize,
        nth: usize,
    },
    /// The merchant refunds a share of the `nth` charge.
    Refund {
        nth: usize,
        percent: i64,
    },
    /// The `nth` refund fails at the customer's bank.
    FailRefund {
        nth: usize,
    },
    /// The customer's bank disputes the `nth` charge, as an inquiry first or a chargeback.
    Dispute {
        nth: usize,
        inquiry: bool,
    },
    Escalate {
        nth: usize,
    },
    CloseDispute {
        nth: usize,
        won: bool,
    },
    /// The product spends a user's tokens.
    Consume {
        user: usize,
        tokens: i64,
        key: Key,
    },
    /// An admin credits a user by hand.
    AdminCredit {
        user: usize,
        tokens: i64,
    },
    /// An admin takes tokens back by hand (refused below zero).
    AdminDebit {
        user: usize,
        tokens: i64,
    },
    /// Stripe delivers some of the events sent so far, all at once, as the picks say; the
    /// user may be back on a success page at the same moment.
    Deliver {
        picks: Vec<Pick>,
    },
    /// Time passes at Stripe.
    Tick {
        secs: u64,
    },
    /// Days pass, for Stripe and for the nodes: grants and holds expire.
    Advance {
        days: u64,
    },
    /// The product reserves a user's tokens before a job.
    Hold {
        user: usize,
        tokens: i64,
        ttl_secs: i64,
    },
    /// The job of the `nth` hold ends: it used `percent` of what was held (more than all of
    /// it only when `exceed`), or, `again`, the same capture is sent twice.
    Capture {
        nth: usize,
        percent: i64,
        exceed: bool,
        again: bool,
    },
    Release {
        nth: usize,
    },
    /// Several consume calls in one request.
    Batch {
        items: Vec<(usize, i64, Key)>,
    },
    /// A user turns auto top-up on with a mark (the small pack), saving one of the test cards
    /// (which pays, is declined, or needs the cardholder when charged).
    AutoTopUp {
        user: usize,
        below: i64,
        card: TestCard,
    },
    /// A node pays the top-ups started so far.
    PayTopUps {
        node: usize,
    },
}

/// The Idempotency-Key of a consume call.
#[derive(Debug, Clone)]
pub enum Key {
    New,
    /// The key and body of the consume call made in step `of`: a retry.
    Repeat {
        of: usize,
    },
    /// The key of step `of` with another amount: a client bug the server must refuse.
    Changed {
        of: usize,
    },
}

#[derive(Debug, Clone)]
pub enum Pick {
    /// The event made `ordinal`-th by step `step`, to node `node`, `copies` times at once;
    /// with `fault`, the database fails whatever would finish it during this delivery.
    Event {
        step: usize,
        ordinal: usize,
        node: usize,
        copies: usize,
        fault: bool,
    },
    /// The user of the `nth` Checkout session is back on its success page.
    SuccessPage { nth: usize, node: usize },
    /// The product spends a user's tokens (a new key), during the deliveries.
    Consume {
        user: usize,
        tokens: i64,
        node: usize,
    },
    /// Stripe's API answers nothing but errors while this delivery lasts.
    StripeDown,
}

/// What a history can draw on when it draws its next step.
pub(super) struct Known {
    pub users: usize,
    pub nodes: usize,
    pub sessions: usize,
    pub settling: usize,
    pub charges: usize,
    pub refunds: usize,
    pub disputes: usize,
    /// Step ids of the consume calls made so far.
    pub consumes: Vec<usize>,
    pub holds: usize,
    /// Whether the nodes pay top-ups when told to (those in this process do).
    pub topups: bool,
    /// (step, ordinal) of every event not yet delivered.
    pub pending: Vec<(usize, usize)>,
    /// (step, ordinal) of every event delivered at least once.
    pub delivered: Vec<(usize, usize)>,
}

/// Draws the next step.
pub(super) fn draw(rng: &mut StdRng, id: usize, known: &Known) -> Step {
    let user = rng.random_range(0..known.users);
    let nth = |rng: &mut StdRng| rng.random_range(0..usize::MAX / 2);
    let act = loop {
        let act = match rng.random_range(0..126) {
            0..=13 => Act::Buy {
                user,
                pack: [ProductId::Small, ProductId::Medium, ProductId::Large]
                    [rng.random_range(0..3)],
                method: match rng.random_range(0..10) {
                    0..=5 => PayMethod::Card,
                    6 | 7 => PayMethod::DelayedSuccess,
                    8 => PayMethod::DelayedFailure,
                    _ => PayMethod::FreeCoupon,
                },
            },
            14..=17 if known.settling > 0 => Act::Settle { nth: nth(rng) },
            18..=22 => Act::Subscribe {
                user,
                free: rng.random_bool(0.25),
            },
            23 => Act::DashboardSubscribe { user },
            24..=28 => Act::Renew {
                user,
                nth: nth(rng),
            },
            29..=31 => Act::SetQuantity {
                user,
                nth: nth(rng),
                quantity: rng.random_range(1..=5),
            },
            32 if rng.random_bool(0.5) => Act::CancelAtPeriodEnd {
                user,
                nth: nth(rng),
            },
            32 => Act::CancelNow {
                user,
                nth: nth(rng),
            },
            33..=39 if known.charges > 0 => Act::Refund {
                nth: nth(rng),
                percent: [10, 25, 33, 50, 100][rng.random_range(0..5)],
            },
            40..=41 if known.refunds > 0 => Act::FailRefund { nth: nth(rng) },
            42..=45 if known.charges > 0 => Act::Dispute {
                nth: nth(rng),
                inquiry: rng.random_bool(0.4),
            },
            46 if known.disputes > 0 => Act::Escalate { nth: nth(rng) },
            47..=49 if known.disputes > 0 => Act::CloseDispute {
                nth: nth(rng),
                won: rng.random_bool(0.5),
            },
            50..=59 => Act::Consume {
                user,
                tokens: [1, 50, 400, 1_000, 3_000][rng.random_range(0..5)],
                key: match rng.random_range(0..10) {
                    0 | 1 if !known.consumes.is_empty() => Key::Repeat {
                        of: known.consumes[rng.random_range(0..known.consumes.len())],
                    },
                    2 if !known.consumes.is_empty() => Key::Changed {
                        of: known.consumes[rng.random_range(0..known.consumes.len())],
                    },
                    _ => Key::New,
                },
            },
            60 => Act::AdminCredit {
                user,
                tokens: rng.random_range(1..=2_000),
            },
            61 => Act::AdminDebit {
                user,
                tokens: rng.random_range(1..=2_000),
            },
            62..=91 if !known.pending.is_empty() || !known.delivered.is_empty() => Act::Deliver {
                picks: picks(rng, known),
            },
            92..=99 => Act::Tick {
                secs: [0, 1, 1, 2, 3600][rng.random_range(0..5)],
            },
            100 | 101 => Act::Advance {
                days: [1, 3, 31][rng.random_range(0..3)],
            },
            102..=106 => Act::Hold {
                user,
                tokens: [1, 100, 1_000, 5_000][rng.random_range(0..4)],
                ttl_secs: [60, 3_600, 86_400][rng.random_range(0..3)],
            },
            107..=111 if known.holds > 0 => Act::Capture {
                nth: nth(rng),
                percent: [0, 50, 100, 150][rng.random_range(0..4)],
                exceed: rng.random_bool(0.5),
                again: rng.random_bool(0.2),
            },
            112 | 113 if known.holds > 0 => Act::Release { nth: nth(rng) },
            114..=117 => Act::Batch {
                items: (0..rng.random_range(1..=6))
                    .map(|_| {
                        let key = match rng.random_range(0..10) {
                            0 if !known.consumes.is_empty() => Key::Repeat {
                                of: known.consumes[rng.random_range(0..known.consumes.len())],
                            },
                            1 if !known.consumes.is_empty() => Key::Changed {
                                of: known.consumes[rng.random_range(0..known.consumes.len())],
                            },
                            _ => Key::New,
                        };
                        (
                            rng.random_range(0..known.users),
                            [1, 50, 400, 1_000][rng.random_range(0..4)],
                            key,
                        )
                    })
                    .collect(),
            },
            118 | 119 if known.topups => Act::AutoTopUp {
                user,
                below: [100, 1_000, 5_000][rng.random_range(0..3)],
                card: [
                    TestCard::Succeeds,
                    TestCard::Succeeds,
                    TestCard::Declines,
                    TestCard::NeedsAuthentication,
                ][rng.random_range(0..4)],
            },
            120..=125 if known.topups => Act::PayTopUps {
                node: rng.random_range(0..known.nodes),
            },
            _ => continue,
        };
        break act;
    };
    Step { id, act }
}

/// Some pending events (each maybe several times at once, maybe with a failure), sometimes one
/// delivered before again, sometimes a success page.
fn picks(rng: &mut StdRng, known: &Known) -> Vec<Pick> {
    let mut picks = Vec::new();
    let mut pending = known.pending.clone();
    let take = rng.random_range(1..=pending.len().clamp(1, 6));
    for _ in 0..take {
        if pending.is_empty() {
            break;
        }
        let (step, ordinal) = pending.swap_remove(rng.random_range(0..pending.len()));
        picks.push(Pick::Event {
            step,
            ordinal,
            node: rng.random_range(0..known.nodes),
            copies: if rng.random_bool(0.2) { 2 } else { 1 },
            fault: rng.random_bool(0.1),
        });
    }
    if !known.delivered.is_empty() && rng.random_bool(0.3) {
        let (step, ordinal) = known.delivered[rng.random_range(0..known.delivered.len())];
        picks.push(Pick::Event {
            step,
            ordinal,
            node: rng.random_range(0..known.nodes),
            copies: 1,
            fault: false,
        });
    }
    if known.sessions > 0 && rng.random_bool(0.3) {
        picks.push(Pick::SuccessPage {
            nth: rng.random_range(0..usize::MAX / 2),
            node: rng.random_range(0..known.nodes),
        });
    }
    if rng.random_bool(0.3) {
        picks.push(Pick::Consume {
            user: rng.random_range(0..known.users),
            tokens: [1, 100, 2_500][rng.random_range(0..3)],
            node: rng.random_range(0..known.nodes),
        });
    }
    if rng.random_bool(0.05) {
        picks.push(Pick::StripeDown);
    }
    picks
}
