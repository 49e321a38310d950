//! What the store keeps for Stripe: the event inbox, customers, subscriptions, and the changes
//! an event makes, which the store applies together with marking the event done.

use serde::{Deserialize, Serialize};

use std::fmt;

use crate::domain::{LedgerEntryId, Reason, Timestamp, UserId};
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

impl Awaiting {
    /// How the inbox keeps it: `pi:...` or `invoice:...`.
    pub fn stored(&self) -> String {
        self.to_string()
    }

    pub fn from_stored(raw: &str) -> Option<Self> {
        match raw.split_once(':')? {
            ("pi", id) if !id.is_empty() => Some(Self::PaymentIntent(id.to_owned())),
            ("invoice", id) if !id.is_empty() => Some(Self::Invoice(id.to_owned())),
            _ => None,
        }
    }
}

impl fmt::Display for Awaiting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PaymentIntent(id) => write!(f, "pi:{id}"),
            Self::Invoice(id) => write!(f, "invoice:{id}"),
        }
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
}

impl Change {
    /// Whether the change is about tokens, so that doing nothing means they were already
    /// where they belong ([`Applied::Covered`]) rather than a state merely recorded.
    pub fn moves_tokens(&self) -> bool {
        match self {
            Change::Post(_) | Change::SyncReversals(_) => true,
            Change::LinkCustomer { .. } | Change::Subscription(_) => false,
        }
    }
}

/// News of a purchase's charge, to reflect in the tokens taken back from the purchase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReversalSync {
    /// The credit the charge paid for.
    pub purchase: LedgerEntryId,
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

/// The ledger reasons of what a sync posts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReversalReasons {
    pub refunded: Reason,
    pub refund_failed: Reason,
    pub disputed: Reason,
    pub dispute_won: Reason,
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
