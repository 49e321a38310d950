//! A plan's invoices: the tokens of the period they start or renew, for the seats of that
//! period, when money was paid for them.

use crate::domain::{IdempotencyKey, ProductKind, Source, Timestamp, Tokens};
use crate::ledger::{Posting, StripeRefs};
use crate::store::{Awaiting, Change};
use crate::stripe::events::{self, EventError, InvoicePaid};

use super::{Plan, group, reason};
use crate::fulfilment::Outcome;
use crate::fulfilment::{Fulfilment, FulfilmentError};

/// What an invoice is worth in tokens.
pub(in crate::fulfilment) enum InvoiceTokens {
    /// The new period's: the plan's tokens times its seats, until the period's end.
    Period(Tokens, Option<Period>),
    /// A subscription's first invoice, nobody paid: the trial allowance, when one is offered.
    Trial(Tokens, Option<Period>),
    /// None, and why.
    Nothing(&'static str),
    /// Cannot be told as it stands (an unknown price): kept for an operator.
    Refused(String),
}

/// Where a plan period starts and ends.
pub(in crate::fulfilment) type Period = (Timestamp, Timestamp);

const NOT_A_PERIOD: &str = "not a new subscription period: no tokens";
const NOTHING_PAID: &str =
    "nothing was paid (a trial, a 100% coupon, or the customer's credit balance): no tokens";

impl Fulfilment {
    /// Weighs an invoice: only one that starts or renews a period (`subscription_create`,
    /// `subscription_cycle`, or one that gives no reason), and was paid with money, brings the
    /// period's tokens. Prorations and time given back bring nothing.
    pub(in crate::fulfilment) async fn invoice_tokens(
        &self,
        invoice: &InvoicePaid,
    ) -> Result<InvoiceTokens, FulfilmentError> {
        if invoice
            .billing_reason
            .as_ref()
            .is_some_and(|reason| !reason.starts_a_period())
        {
            return Ok(InvoiceTokens::Nothing(NOT_A_PERIOD));
        }
        let Some(paid) = invoice.amount_paid else {
            return Ok(InvoiceTokens::Refused(format!(
                "invoice {} says nothing of what was paid",
                invoice.invoice
            )));
        };
        // The payload carries only the first page of a long invoice's lines.
        let lines = if invoice.lines_complete {
            invoice.lines.clone()
        } else {
            self.gateway
                .invoice_lines(&invoice.invoice)
                .await?
                .iter()
                .filter_map(events::invoice_line)
                .collect()
        };
        let mut total: i64 = 0;
        let mut period: Option<Period> = None;
        for line in lines.iter().filter(|l| !l.proration && l.amount >= 0) {
            if let Some(product) = self.catalog.product_of(&line.price)
                && product.kind() == ProductKind::Subscription
            {
                // The plan's lines share one period; were they ever not to, the latest end.
                period = latest(period, line.period);
                let seats = line.quantity.max(0);
                total = product
                    .tokens()
                    .get()
                    .checked_mul(seats)
                    .and_then(|tokens| total.checked_add(tokens))
                    .filter(|&t| t <= Tokens::MAX)
                    .ok_or(FulfilmentError::Malformed(EventError::Malformed(format!(
                        "invoice {} has more seats than tokens can count",
                        invoice.invoice
                    ))))?;
            }
        }
        if paid.minor() <= 0 {
            let first = invoice.billing_reason == Some(events::BillingReason::SubscriptionCreate);
            return Ok(match self.catalog.trial_allowance() {
                Some(allowance) if first && total > 0 => InvoiceTokens::Trial(allowance, period),
                _ => InvoiceTokens::Nothing(NOTHING_PAID),
            });
        }
        // Every subscription sold here is the token plan: a paid invoice for none of its
        // prices (a price changed in Stripe but not in the settings) is a subscriber going
        // without tokens, kept for an operator rather than passed over.
        Ok(match Tokens::new(total) {
            Ok(tokens) => InvoiceTokens::Period(tokens, period),
            Err(_) => {
                let prices: Vec<&str> = lines.iter().map(|l| l.price.as_str()).collect();
                InvoiceTokens::Refused(format!(
                    "unknown price in invoice {}: {} is not the token plan's",
                    invoice.invoice,
                    if prices.is_empty() {
                        "a line without a price".to_owned()
                    } else {
                        prices.join(", ")
                    }
                ))
            }
        })
    }

    pub(super) async fn invoice_credit(
        &self,
        invoice: &InvoicePaid,
        refs: StripeRefs,
    ) -> Result<Plan, FulfilmentError> {
        let weighed = self.invoice_tokens(invoice).await?;
        let user = self
            .user_of(invoice.user, invoice.customer.as_deref())
            .await?;
        let (tokens, source, key, label, period) = match (weighed, user) {
            (InvoiceTokens::Nothing(why), _) => return Ok(Plan::record(why)),
            (InvoiceTokens::Refused(why), _) => return Ok(Plan::Fail(why)),
            (_, None) => {
                return Ok(Plan::Fail(format!(
                    "invoice {} names no user",
                    invoice.invoice
                )));
            }
            (InvoiceTokens::Trial(tokens, period), Some(user)) => {
                // Once per customer: a new subscription of the same customer gets none.
                let once_for = invoice.customer.clone().unwrap_or_else(|| user.to_string());
                (
                    tokens,
                    Source::Trial,
                    IdempotencyKey::scoped("stripe:trial", &once_for),
                    format!("Trial allowance ({} tokens)", group(tokens.get())),
                    period,
                )
            }
            (InvoiceTokens::Period(tokens, period), Some(_)) => (
                tokens,
                Source::StripeInvoice,
                IdempotencyKey::scoped("stripe:invoice", &invoice.invoice),
                format!("Starter monthly ({} tokens)", group(tokens.get())),
                period,
            ),
        };
        let user = user.expect("matched above");
        let key = key.map_err(|e| EventError::Malformed(e.to_string()))?;
        let posting = Posting::credit(user, tokens, source, reason(&label), key)
            .with_stripe(refs)
            .expiring(self.catalog.period_terms(period));
        let paid = source == Source::StripeInvoice;
        let posting = match invoice.amount_paid.filter(|_| paid) {
            Some(amount) => posting.with_amount_paid(amount),
            None => posting,
        };
        Ok(Plan::Apply {
            changes: vec![Change::Post(posting)],
            intent: Outcome::Credited(()),
            detail: None,
            releases: paid.then(|| Awaiting::Invoice(invoice.invoice.clone())),
        })
    }
}

/// Of two periods, the one that ends last.
fn latest(a: Option<Period>, b: Option<Period>) -> Option<Period> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.1 > a.1 { b } else { a }),
        (a, b) => a.or(b),
    }
}
