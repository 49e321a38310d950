//! What the store keeps for Stripe: the event inbox, customers, subscriptions, and the changes
//! an event makes, which the store applies together with marking the event done.

use serde::{Deserialize, Serialize};

use std::fmt;

use super::StoreError;
use crate::domain::{
    LedgerEntryId, Reason, SavedCard, Source, Timestamp, Tokens, UserId, group_thousands,
};
use crate::ledger::{Posted, Posting, StripeRefs};
use crate::stripe::events::DisputeStatus;
use crate::stripe::gateway::RefundState;
use crate::stripe::status::SubscriptionStatus;

/// A verified Stripe event, as delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxEvent {
    pub id: String,
    pub kind: String,
    pub livemode: bool,
    /// Stripe's creation time, unix seconds.
    pub created: i64,
    pub payload: String,
}

/// An event as the inbox holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub id: String,
    pub kind: String,
    pub payload: String,
    pub received_at: Timestamp,
    pub processed_at: Option<Timestamp>,
    pub outcome: Option<String>,
    pub detail: Option<String>,
    pub attempts: i64,
    /// Held back until this purchase is credited.
    pub awaiting: Option<Awaiting>,
}

/// The purchase a held-back event (a refund, a dispute that came first) waits for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Awaiting {
    /// A pack, paid by this payment intent.
    PaymentIntent(String),
    /// A subscription invoice.
    Invoice(String),
}

/// One kind of [`Awaiting`], made from its Stripe id.
type MakeAwaiting = fn(String) -> Awaiting;

impl Awaiting {
    const PAYMENT_INTENT: &str = "pi:";
    const INVOICE: &str = "invoice:";
    /// Each kind with the prefix the inbox keeps it under.
    const KINDS: [(&str, MakeAwaiting); 2] = [
        (Self::PAYMENT_INTENT, Self::PaymentIntent),
        (Self::INVOICE, Self::Invoice),
    ];

    /// The prefix it is kept under, and the Stripe id after it.
    fn parts(&self) -> (&'static str, &str) {
        match self {
            Self::PaymentIntent(id) => (Self::PAYMENT_INTENT, id),
            Self::Invoice(id) => (Self::INVOICE, id),
        }
    }

    /// How the inbox keeps it: `pi:...` or `invoice:...`.
    pub fn stored(&self) -> String {
        self.to_string()
    }

    /// What the inbox kept (the one reading of it): a known prefix, then an id.
    pub fn from_stored(raw: &str) -> Result<Self, StoreError> {
        Self::KINDS
            .iter()
            .find_map(|(prefix, kind)| {
                let id = raw.strip_prefix(prefix)?;
                (!id.is_empty()).then(|| kind(id.to_owned()))
            })
            .ok_or_else(|| {
                StoreError::Corrupt(format!("an event awaits `{raw}`, which names no purchase"))
            })
    }
}

impl fmt::Display for Awaiting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (prefix, id) = self.parts();
        write!(f, "{prefix}{id}")
    }
}

/// Why an attempt at an event left it unfinished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unfinished {
    /// Held back until its purchase is credited.
    Held(Awaiting),
    /// The store or Stripe failed midway: a retry may apply it. An event held back stays
    /// held, so the sweep still finds it (Stripe will not send it again).
    Interrupted,
    /// It cannot apply as it stands (an unknown price, no user): kept for an operator.
    Refused,
}

/// What the inbox knew of an event when it was delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// First delivery.
    New,
    /// Delivered before but not finished (a failure, a crash, or held back): apply again.
    Unfinished,
    /// Already applied; `outcome` says how.
    Processed { outcome: String },
}

/// One change an event makes. All of an event's changes and its "done" mark are one
/// transaction: either the event took effect and is marked, or nothing happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A credit (a purchase, an invoice) or any other posting.
    Post(Posting),
    /// What Stripe says now of a purchase's refunds or its dispute: the tokens taken back for
    /// each are brought to the share of the charge the money says.
    SyncReversals(ReversalSync),
    /// The Stripe customer of a user.
    LinkCustomer { user: UserId, customer: String },
    /// A subscription's latest state; an older event never overwrites a newer state.
    Subscription(SubscriptionRecord),
    /// A top-up's payment succeeded: after its credit (a `Post` before it in the same
    /// changes), the top-up is settled as paid, with its `topup.succeeded` event.
    TopUpPaid {
        topup: i64,
        payment_intent: String,
        tokens: Tokens,
    },
    /// A card saved in a setup-mode Checkout, for auto top-up (nothing when the user never
    /// chose it, or the card is saved already).
    SaveTopUpCard {
        user: UserId,
        card: SavedCard,
        /// When the setup session was made.
        as_of: Timestamp,
    },
}

impl Change {
    /// Whether the change is about tokens, so that doing nothing means they were already
    /// where they belong ([`Applied::Covered`]) rather than a state merely recorded.
    pub fn moves_tokens(&self) -> bool {
        match self {
            Change::Post(_) | Change::SyncReversals(_) => true,
            Change::LinkCustomer { .. }
            | Change::Subscription(_)
            | Change::TopUpPaid { .. }
            | Change::SaveTopUpCard { .. } => false,
        }
    }
}

/// News of a purchase's charge, to reflect in the tokens taken back from the purchase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReversalSync {
    /// The credit the charge paid for.
    pub purchase: LedgerEntryId,
    /// Whose credit it is.
    pub user: UserId,
    pub charge: String,
    /// What was charged, minor units.
    pub charge_amount: i64,
    /// Every refund of the charge, as Stripe lists them now (an event about refunds).
    pub refunds: Option<Vec<RefundState>>,
    /// The charge's dispute as the event describes it (an event about a dispute).
    pub dispute: Option<DisputeNews>,
    pub reasons: ReversalReasons,
    pub stripe: StripeRefs,
}

/// A dispute, as one event describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputeNews {
    pub dispute: String,
    pub status: DisputeStatus,
    /// Minor units disputed.
    pub amount: i64,
}

/// The ledger reasons of what a sync posts, worded from the purchase it is about: each row
/// says its part of what was bought ("Partial refund (1,250 of 5,000 tokens): Medium pack
/// (5,000 tokens)"), not only the pack, which would read as if it all went back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReversalReasons {
    /// The purchase's own reason: "Medium pack (5,000 tokens)".
    pub purchase: Reason,
}

/// What takes a purchase's tokens back: each has its own ledger rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reversal {
    Refund,
    Dispute,
}

impl Reversal {
    /// The source of its ledger rows.
    pub fn source(self) -> Source {
        match self {
            Reversal::Refund => Source::StripeRefund,
            Reversal::Dispute => Source::StripeDispute,
        }
    }
}

/// Why tokens taken back from a purchase come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GivenBack {
    /// A refund failed or was canceled: the money stayed with us.
    RefundUndone,
    DisputeWon,
    /// Lost, but the bank keeps only what had not been refunded: the refund took that part.
    DisputeLostAfterRefund,
    /// Ended otherwise (a status this build does not know moves nothing).
    DisputeClosed,
}

impl ReversalReasons {
    /// A row that takes `part` of the `whole` tokens bought back.
    pub fn taking(&self, by: Reversal, part: i64, whole: i64) -> Reason {
        let what = match by {
            Reversal::Refund if part == whole => "Refund".to_owned(),
            Reversal::Refund => format!("Partial refund ({})", of(part, whole)),
            Reversal::Dispute if part == whole => "Disputed payment".to_owned(),
            Reversal::Dispute => format!("Disputed payment ({})", of(part, whole)),
        };
        Reason::made_from(&format!("{what}: {}", self.purchase.as_str()))
    }

    /// A row that gives `part` of the `whole` tokens back.
    pub fn giving_back(&self, why: GivenBack, part: i64, whole: i64) -> Reason {
        let why = match why {
            GivenBack::RefundUndone => "Refund failed or canceled",
            GivenBack::DisputeWon => "Dispute won",
            GivenBack::DisputeLostAfterRefund => "Dispute lost, less what was refunded",
            GivenBack::DisputeClosed => "Dispute closed",
        };
        Reason::made_from(&format!(
            "{why} ({} restored): {}",
            of(part, whole),
            self.purchase.as_str()
        ))
    }
}

/// "1,250 of 5,000 tokens".
fn of(part: i64, whole: i64) -> String {
    format!(
        "{} of {} tokens",
        group_thousands(part),
        group_thousands(whole)
    )
}

/// What applying a change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Posted(Posted),
    /// Nothing left to do: the tokens already are where Stripe's state puts them.
    Covered,
    /// State recorded; no ledger change.
    Recorded,
}

/// Stripe's statuses of a subscription that is not over (see [`SubscriptionStatus::is_live`]).
pub fn live_subscription_statuses() -> impl Iterator<Item = SubscriptionStatus> {
    SubscriptionStatus::ALL
        .iter()
        .copied()
        .filter(|s| s.is_live())
}

impl SubscriptionRecord {
    pub fn is_live(&self) -> bool {
        self.status.is_live()
    }
}

/// A subscription as Stripe last described it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionRecord {
    pub subscription: String,
    pub user: UserId,
    pub customer: String,
    pub status: SubscriptionStatus,
    pub price: Option<String>,
    /// Unix seconds.
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
    pub canceled_at: Option<i64>,
    /// The event time this state is from, unix seconds.
    pub as_of: i64,
    /// When this state was read from Stripe, milliseconds: a later read wins, whatever the
    /// order the events arrived in.
    pub read_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reversal_rows_say_their_part_and_why() {
        let reasons = ReversalReasons {
            purchase: Reason::parse("Medium pack (5,000 tokens)").unwrap(),
        };
        let taking = |by, part| reasons.taking(by, part, 5_000).as_str().to_owned();
        let back = |why, part| reasons.giving_back(why, part, 5_000).as_str().to_owned();
        let pack = ": Medium pack (5,000 tokens)";
        for (said, expected) in [
            (taking(Reversal::Refund, 5_000), "Refund"),
            (
                taking(Reversal::Refund, 1_250),
                "Partial refund (1,250 of 5,000 tokens)",
            ),
            (taking(Reversal::Dispute, 5_000), "Disputed payment"),
            (
                taking(Reversal::Dispute, 3_750),
                "Disputed payment (3,750 of 5,000 tokens)",
            ),
            (
                back(GivenBack::RefundUndone, 1_250),
                "Refund failed or canceled (1,250 of 5,000 tokens restored)",
            ),
            (
                back(GivenBack::DisputeWon, 5_000),
                "Dispute won (5,000 of 5,000 tokens restored)",
            ),
            (
                back(GivenBack::DisputeLostAfterRefund, 1_250),
                "Dispute lost, less what was refunded (1,250 of 5,000 tokens restored)",
            ),
            (
                back(GivenBack::DisputeClosed, 5_000),
                "Dispute closed (5,000 of 5,000 tokens restored)",
            ),
        ] {
            assert_eq!(said, format!("{expected}{pack}"));
        }
        // A purchase reason as long as a reason may be still makes a valid one, cut to the limit.
        let long = ReversalReasons {
            purchase: Reason::parse(&"x".repeat(Reason::MAX_CHARS)).unwrap(),
        };
        assert_eq!(
            long.taking(Reversal::Refund, 1, 2).as_str().chars().count(),
            Reason::MAX_CHARS
        );
    }

    #[test]
    fn what_an_event_awaits_is_read_back_as_it_was_kept() {
        for awaiting in [
            Awaiting::PaymentIntent("pi_3Abc_9".into()),
            Awaiting::Invoice("in_1Xyz".into()),
            // The id is what follows the prefix, whatever it holds.
            Awaiting::Invoice("in_with:colon".into()),
        ] {
            let stored = awaiting.stored();
            assert_eq!(
                Awaiting::from_stored(&stored).unwrap(),
                awaiting,
                "{stored}"
            );
        }
        assert_eq!(Awaiting::PaymentIntent("pi_1".into()).stored(), "pi:pi_1");
        assert_eq!(Awaiting::Invoice("in_1".into()).stored(), "invoice:in_1");
    }

    #[test]
    fn an_unknown_prefix_or_no_id_is_a_corrupt_row() {
        for raw in [
            "charge:ch_1",
            "pi_1",
            "pi:",
            "invoice:",
            "",
            ":pi_1",
            "PI:pi_1",
        ] {
            assert!(
                matches!(Awaiting::from_stored(raw), Err(StoreError::Corrupt(_))),
                "`{raw}` is refused as corrupt"
            );
        }
    }
}
