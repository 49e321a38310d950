//! The objects the simulated Stripe account keeps, with their states as types.

use std::collections::BTreeMap;

use url::Url;

use crate::domain::{Money, ProductId, UserId};
use crate::stripe::gateway::ListedEvent;
pub(super) use crate::stripe::status::{
    PaymentStatus, RefundStatus, SessionStatus, SubscriptionStatus,
};

/// How the simulated customer pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayMethod {
    /// A card: paid at once.
    Card,
    /// A bank debit that succeeds later.
    DelayedSuccess,
    /// A bank debit that fails later.
    DelayedFailure,
    /// A card, with a promotion code worth 100% of the first payment: nothing is charged.
    FreeCoupon,
}

/// A card the simulated setup page saves, each behaving as one of Stripe's test cards does
/// when it is charged while the customer is away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestCard {
    /// 4242 4242 4242 4242: paid.
    Succeeds,
    /// 4000 0000 0000 0002: declined (`card_declined`).
    Declines,
    /// 4000 0027 6000 3184: the bank asks for the cardholder (`authentication_required`).
    NeedsAuthentication,
}

impl TestCard {
    pub const ALL: [TestCard; 3] = [
        TestCard::Succeeds,
        TestCard::Declines,
        TestCard::NeedsAuthentication,
    ];

    pub fn last4(self) -> &'static str {
        match self {
            TestCard::Succeeds => "4242",
            TestCard::Declines => "0002",
            TestCard::NeedsAuthentication => "3184",
        }
    }

    /// What the page says the card does.
    pub fn behaviour(self) -> &'static str {
        match self {
            TestCard::Succeeds => "pays",
            TestCard::Declines => "is declined",
            TestCard::NeedsAuthentication => "needs the cardholder (authentication)",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TestCard::Succeeds => "succeeds",
            TestCard::Declines => "declines",
            TestCard::NeedsAuthentication => "needs_authentication",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|card| card.as_str() == raw)
    }
}

/// A setup-mode Checkout session: the customer saves a card.
#[derive(Debug, Clone)]
pub(super) struct SetupSession {
    pub id: String,
    pub user: UserId,
    pub customer: String,
    pub success_url: String,
    pub cancel_url: String,
    pub idempotency_key: String,
    pub status: SessionStatus,
    /// The setup intent and the card it saved, once it is.
    pub setup_intent: Option<String>,
    pub payment_method: Option<String>,
    pub created: i64,
}

/// A payment made with a saved card while the customer was away.
#[derive(Debug, Clone)]
pub(super) struct OffSessionIntent {
    pub id: String,
    pub amount: Money,
    pub customer: String,
    pub payment_method: String,
    pub metadata: Vec<(String, String)>,
    /// The charge, when it was paid.
    pub charge: Option<String>,
    /// Why the bank said no: Stripe's error code, decline code and message.
    pub failure: Option<(&'static str, Option<&'static str>, &'static str)>,
    pub created: i64,
}

/// A card saved for a customer.
#[derive(Debug, Clone)]
pub(super) struct SavedMethod {
    pub id: String,
    pub customer: String,
    pub card: TestCard,
}

#[derive(Debug, Clone)]
pub(super) struct Session {
    pub id: String,
    pub user: UserId,
    pub customer: String,
    pub price: String,
    pub product: ProductId,
    pub amount: Money,
    /// What the customer pays: `amount`, or nothing with a free coupon.
    pub amount_total: i64,
    pub success_url: String,
    pub cancel_url: String,
    pub idempotency_key: String,
    pub status: SessionStatus,
    pub payment_status: PaymentStatus,
    /// An asynchronous payment method chosen, not settled yet.
    pub settling: Option<PayMethod>,
    pub payment_intent: Option<String>,
    pub subscription: Option<String>,
    pub invoice: Option<String>,
    pub created: i64,
}

/// A successful payment: Stripe's charge and payment intent.
#[derive(Debug, Clone)]
pub(super) struct Charge {
    pub id: String,
    pub payment_intent: String,
    pub customer: String,
    pub amount: Money,
    pub invoice: Option<String>,
    pub description: String,
    pub created: i64,
}

#[derive(Debug, Clone)]
pub(super) struct Refund {
    pub id: String,
    pub charge: String,
    pub payment_intent: String,
    pub amount: i64,
    pub status: RefundStatus,
    pub created: i64,
}

/// A line added to the next invoice: what a mid-period change costs or credits.
#[derive(Debug, Clone)]
pub(super) struct Proration {
    pub id: String,
    pub quantity: i64,
    /// Minor units; negative for unused time given back.
    pub amount: i64,
    pub description: String,
    pub period_start: i64,
    pub period_end: i64,
}

#[derive(Debug, Clone)]
pub(super) struct Subscription {
    pub id: String,
    pub customer: String,
    /// In the metadata when the app's Checkout made it; not when made in the Dashboard.
    pub user: Option<UserId>,
    pub price: String,
    /// The price of one unit for one period.
    pub unit: Money,
    pub quantity: i64,
    pub status: SubscriptionStatus,
    pub period_start: i64,
    pub period_end: i64,
    pub cancel_at_period_end: bool,
    pub canceled_at: Option<i64>,
    pub created: i64,
    /// Prorations waiting for the next invoice.
    pub pending: Vec<Proration>,
}

impl Subscription {
    pub(super) fn item_id(&self) -> String {
        format!("si_{}", &self.id[4..])
    }
}

/// One line of an invoice.
#[derive(Debug, Clone)]
pub(super) struct InvoiceLine {
    pub id: String,
    pub quantity: i64,
    /// Minor units.
    pub amount: i64,
    pub proration: bool,
    /// The pending item a proration came from.
    pub invoice_item: Option<String>,
    pub description: String,
    pub period_start: i64,
    pub period_end: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BillingReason {
    Create,
    Cycle,
    Update,
}

impl BillingReason {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            BillingReason::Create => "subscription_create",
            BillingReason::Cycle => "subscription_cycle",
            BillingReason::Update => "subscription_update",
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Invoice {
    pub id: String,
    pub subscription: String,
    pub reason: BillingReason,
    pub lines: Vec<InvoiceLine>,
    /// After discounts; negative when time given back is worth more than what is billed.
    pub total: i64,
    /// What was charged to the card.
    pub amount_paid: i64,
    /// The customer's credit balance before and after this invoice (negative: a credit).
    pub starting_balance: i64,
    pub ending_balance: i64,
    pub charge: Option<String>,
    pub payment_intent: Option<String>,
    pub created: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisputeStatus {
    /// An inquiry: the bank asks questions; no money has moved.
    WarningNeedsResponse,
    /// An inquiry closed without becoming a chargeback.
    WarningClosed,
    /// A chargeback: the money is withdrawn until it is decided.
    NeedsResponse,
    Won,
    Lost,
}

impl DisputeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DisputeStatus::WarningNeedsResponse => "warning_needs_response",
            DisputeStatus::WarningClosed => "warning_closed",
            DisputeStatus::NeedsResponse => "needs_response",
            DisputeStatus::Won => "won",
            DisputeStatus::Lost => "lost",
        }
    }

    pub fn is_open(self) -> bool {
        matches!(
            self,
            DisputeStatus::WarningNeedsResponse | DisputeStatus::NeedsResponse
        )
    }
}

#[derive(Debug, Clone)]
pub(super) struct Dispute {
    pub id: String,
    pub charge: String,
    /// Minor units: the whole charge, as banks dispute it.
    pub amount: i64,
    pub status: DisputeStatus,
    pub created: i64,
}

#[derive(Debug, Clone)]
pub(super) struct Portal {
    pub customer: String,
    pub return_url: Url,
}

/// Everything the simulated account holds.
#[derive(Default, Clone)]
pub(super) struct State {
    pub sessions: BTreeMap<String, Session>,
    pub charges: Vec<Charge>,
    pub refunds: Vec<Refund>,
    pub subscriptions: BTreeMap<String, Subscription>,
    pub invoices: BTreeMap<String, Invoice>,
    pub disputes: Vec<Dispute>,
    pub portals: BTreeMap<String, Portal>,
    pub setups: BTreeMap<String, SetupSession>,
    pub methods: Vec<SavedMethod>,
    /// Payments made while customers were away, by idempotency key: a retry answers as the
    /// first did.
    pub off_session: BTreeMap<String, OffSessionIntent>,
    /// Customers' credit balances, minor units (what Stripe keeps as a negative balance):
    /// time given back on an invoice that came to less than nothing.
    pub credit: BTreeMap<String, i64>,
    /// Every event made, oldest first (what `GET /v1/events` lists).
    pub log: Vec<(i64, ListedEvent)>,
}

impl State {
    pub(super) fn charge(&self, id: &str) -> Option<&Charge> {
        self.charges.iter().find(|c| c.id == id)
    }

    /// What is refunded of a charge now: refunds that failed or were canceled gave it back.
    pub(super) fn refunded(&self, charge: &str) -> i64 {
        self.refunds
            .iter()
            .filter(|r| r.charge == charge && r.status.returns_money())
            .map(|r| r.amount)
            .sum()
    }

    pub(super) fn dispute_of(&self, charge: &str) -> Option<&Dispute> {
        self.disputes.iter().find(|d| d.charge == charge)
    }
}
