//! What the store keeps for Stripe: the event inbox, customers, subscriptions, and the changes
//! an event makes, which the store applies together with marking the event done.

use serde::{Deserialize, Serialize};

use crate::domain::{IdempotencyKey, LedgerEntryId, Reason, Source, Timestamp, UserId};
use crate::ledger::{Posted, Posting, StripeRefs};

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
    /// Held back until this purchase is credited (`pi:...`, `invoice:...`).
    pub awaiting: Option<String>,
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
    /// Tokens taken back from a purchase (refund, dispute), never more than it granted.
    Reverse(Reversal),
    /// A won dispute gives back what its reversal took, once.
    Reinstate {
        dispute: String,
        key: IdempotencyKey,
        reason: Reason,
    },
    /// Remembers how a dispute ended (a late "created" event must not reverse a won one).
    DisputeStatus { dispute: String, status: String },
    /// The Stripe customer of a user.
    LinkCustomer { user: UserId, customer: String },
    /// A subscription's latest state; an older event never overwrites a newer state.
    Subscription(SubscriptionRecord),
}

/// Tokens to take back from a purchase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reversal {
    /// The credit being reversed.
    pub purchase: LedgerEntryId,
    pub target: ReversalTarget,
    /// `StripeRefund` or `StripeDispute`.
    pub source: Source,
    pub reason: Reason,
    pub key: IdempotencyKey,
    pub stripe: StripeRefs,
    /// For a dispute: skipped when the store knows the dispute was already won.
    pub dispute: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReversalTarget {
    /// All reversals of this source on the purchase should add up to this many tokens
    /// (refunds: the share of the charge refunded so far).
    Cumulative(i64),
    /// This many tokens, once (a dispute).
    Exactly(i64),
}

/// What applying a change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Posted(Posted),
    /// Nothing left to do: already reversed up to the target, or a won dispute.
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
