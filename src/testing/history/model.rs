//! The reference model: what each user's balance must be, from Stripe's side of a history.
//!
//! Written apart from fulfilment and sharing none of its code. It hears what happened at
//! Stripe (a pack paid, an invoice paid with so many seats, a refund made or failed, a dispute
//! opened, escalated or closed) and what the product's calls were answered, and keeps the
//! rules in the plainest arithmetic:
//! - a paid pack grants its tokens; a paid plan invoice grants 6,000 per seat of the new
//!   period; a free first invoice grants the trial allowance once per customer, if offered;
//! - a charge's refunds take back `grant × refunded / charged` (rounded down), refunds that
//!   failed not counted;
//! - a dispute takes `grant × disputed / charged` while the bank holds the money (a
//!   chargeback), and `grant × min(disputed, charged − refunded) / charged` once lost (the
//!   refunded part of a payment disputed in full comes back); an inquiry, a closed inquiry
//!   and a won dispute take nothing;
//! - a debit answered as applied takes its tokens; an admin credit adds its tokens.

use std::collections::BTreeMap;

/// Where a dispute stands, in the model's own words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dispute {
    Inquiry,
    InquiryClosed,
    Chargeback,
    Won,
    Lost,
}

#[derive(Debug, Clone)]
struct Payment {
    user: usize,
    granted: i64,
    charged: i64,
    /// Refund id -> (amount, failed).
    refunds: BTreeMap<String, (i64, bool)>,
    dispute: Option<(String, i64, Dispute)>,
}

#[derive(Debug, Default, Clone)]
pub struct Model {
    /// Charge id -> what it paid for.
    payments: BTreeMap<String, Payment>,
    /// Tokens per user that no payment can take back: trials, admin credits, debits.
    fixed: BTreeMap<usize, i64>,
    trials_given: Vec<String>,
}

pub const PLAN_TOKENS: i64 = 6_000;

fn share(whole: i64, part: i64, of: i64) -> i64 {
    if of <= 0 {
        return 0;
    }
    let part = part.clamp(0, of);
    (i128::from(whole) * i128::from(part) / i128::from(of)) as i64
}

impl Model {
    /// A payment that bought `granted` tokens for `charged` minor units.
    pub fn paid(&mut self, user: usize, charge: &str, granted: i64, charged: i64) {
        self.payments.insert(
            charge.to_owned(),
            Payment {
                user,
                granted,
                charged,
                refunds: BTreeMap::new(),
                dispute: None,
            },
        );
    }

    /// A subscription's first invoice, free: the trial allowance, once per customer.
    pub fn free_first_invoice(&mut self, user: usize, customer: &str, allowance: Option<i64>) {
        if let Some(tokens) = allowance
            && !self.trials_given.iter().any(|c| c == customer)
        {
            self.trials_given.push(customer.to_owned());
            *self.fixed.entry(user).or_default() += tokens;
        }
    }

    /// What a charge has left to refund.
    pub fn refundable(&self, charge: &str) -> i64 {
        self.payments.get(charge).map_or(0, |p| {
            p.charged
                - p.refunds
                    .values()
                    .filter(|(_, failed)| !failed)
                    .map(|(a, _)| a)
                    .sum::<i64>()
        })
    }

    pub fn refunded(&mut self, charge: &str, refund: &str, amount: i64) {
        if let Some(payment) = self.payments.get_mut(charge) {
            payment.refunds.insert(refund.to_owned(), (amount, false));
        }
    }

    pub fn refund_failed(&mut self, refund: &str) {
        for payment in self.payments.values_mut() {
            if let Some((_, failed)) = payment.refunds.get_mut(refund) {
                *failed = true;
            }
        }
    }

    pub fn disputed(&mut self, charge: &str, dispute: &str, amount: i64, inquiry: bool) {
        if let Some(payment) = self.payments.get_mut(charge) {
            let state = if inquiry {
                Dispute::Inquiry
            } else {
                Dispute::Chargeback
            };
            payment.dispute = Some((dispute.to_owned(), amount, state));
        }
    }

    /// The dispute moves on: escalated, or closed won or lost.
    pub fn dispute_now(&mut self, dispute: &str, to: Dispute) {
        for payment in self.payments.values_mut() {
            if let Some((id, _, state)) = &mut payment.dispute
                && id == dispute
            {
                *state = to;
            }
        }
    }

    pub fn debited(&mut self, user: usize, tokens: i64) {
        *self.fixed.entry(user).or_default() -= tokens;
    }

    pub fn credited(&mut self, user: usize, tokens: i64) {
        *self.fixed.entry(user).or_default() += tokens;
    }

    /// The balance `user` must have.
    pub fn balance(&self, user: usize) -> i64 {
        let mut balance = self.fixed.get(&user).copied().unwrap_or(0);
        for payment in self.payments.values().filter(|p| p.user == user) {
            let refunded: i64 = payment
                .refunds
                .values()
                .filter(|(_, failed)| !failed)
                .map(|(a, _)| a)
                .sum();
            let mut taken = share(payment.granted, refunded, payment.charged);
            match &payment.dispute {
                // The bank holds the whole disputed amount until it is decided...
                Some((_, amount, Dispute::Chargeback)) => {
                    taken += share(payment.granted, *amount, payment.charged);
                }
                // ...and, lost, keeps it but for what had been refunded already.
                Some((_, amount, Dispute::Lost)) => {
                    let kept = (*amount).min(payment.charged - refunded);
                    taken += share(payment.granted, kept, payment.charged);
                }
                _ => {}
            }
            balance += payment.granted - taken;
        }
        balance
    }

    /// The dispute of a charge, if any, and where it stands.
    pub fn dispute_of(&self, charge: &str) -> Option<Dispute> {
        self.payments
            .get(charge)?
            .dispute
            .as_ref()
            .map(|(_, _, s)| *s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refunds_and_disputes_take_their_share_and_failures_give_it_back() {
        let mut m = Model::default();
        m.paid(0, "ch_1", 5_000, 4_000);
        assert_eq!(m.balance(0), 5_000);
        m.refunded("ch_1", "re_1", 1_000);
        assert_eq!(m.balance(0), 3_750);
        m.refunded("ch_1", "re_2", 1_000);
        m.refund_failed("re_2");
        assert_eq!(m.balance(0), 3_750);
        assert_eq!(m.refundable("ch_1"), 3_000);
        m.disputed("ch_1", "du_1", 4_000, true);
        assert_eq!(m.balance(0), 3_750, "an inquiry takes nothing");
        m.dispute_now("du_1", Dispute::Chargeback);
        assert_eq!(
            m.balance(0),
            3_750 - 5_000,
            "the bank holds all of it for now"
        );
        m.dispute_now("du_1", Dispute::Lost);
        assert_eq!(m.balance(0), 0, "lost: all but the refunded part");
        m.debited(0, 100);
        m.credited(0, 40);
        assert_eq!(m.balance(0), -60);
        m.free_first_invoice(0, "cus_1", Some(500));
        m.free_first_invoice(0, "cus_1", Some(500));
        assert_eq!(m.balance(0), 440, "once per customer");
    }
}
