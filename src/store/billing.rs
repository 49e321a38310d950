//! What the store keeps for Stripe: the event inbox, customers, subscriptions, and the changes
//! an event makes, which the store applies together with marking the event done.

use serde::{Deserialize, Serialize};

use std::fmt;

use crate::domain::{IdempotencyKey, LedgerEntryId, Reason, Timestamp, Tokens, UserId};
use crate::ledger::{Posted, Posting, StripeRefs};
use crate::stripe::events::DisputeStatus;
use crate::stripe::gateway::RefundState;

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
    /// A charge's refunds as Stripe describes them now: the tokens taken back for them are
    /// brought to the share of the charge refunded (taken, or given back for a failed one).
    SyncRefunds(RefundSync),
    /// Where a dispute stands, and the tokens that follow from it.
    Dispute(DisputeChange),
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
            Change::Post(_) | Change::SyncRefunds(_) => true,
            Change::Dispute(d) => d.take.is_some() || d.status == DisputeStatus::Won,
            Change::LinkCustomer { .. } | Change::Subscription(_) => false,
        }
    }
}

/// A charge's refunds, to be reflected in the tokens of the purchase it paid for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundSync {
    /// The credit the charge paid for.
    pub purchase: LedgerEntryId,
    pub charge: String,
    /// What was charged, minor units.
    pub charge_amount: i64,
    pub refunds: Vec<RefundState>,
    /// The reason on a reversal for a refund.
    pub taken: Reason,
    /// The reason on tokens given back for a refund that failed.
    pub given_back: Reason,
    pub stripe: StripeRefs,
}

/// What a dispute event says, and what it would take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputeChange {
    pub dispute: String,
    pub status: DisputeStatus,
    /// The one key a dispute's reversal is made under, whichever event makes it.
    pub take_key: IdempotencyKey,
    /// The reversal a chargeback makes, for an event that knows its purchase: once, and
    /// never for a dispute that is (or ends up) won.
    pub take: Option<DisputeTake>,
    /// The key and reason of what a won dispute gives back.
    pub give_back_key: IdempotencyKey,
    pub give_back_reason: Reason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputeTake {
    pub purchase: LedgerEntryId,
    pub tokens: Tokens,
    pub reason: Reason,
    pub stripe: StripeRefs,
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

/// A subscription as Stripe last described it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionRecord {
    pub subscription: String,
    pub user: UserId,
    pub customer: String,
    pub status: String,
    pub price: Option<String>,
    /// Unix seconds.
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
    pub canceled_at: Option<i64>,
    /// The event time this state is from, unix seconds.
    pub as_of: i64,
}
