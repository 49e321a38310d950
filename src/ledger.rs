//! The ledger's rules: what each kind of entry may do to a balance.
//!
//! Every change to a balance is a [`Posting`]: a signed change with a source, a reason and an
//! idempotency key. The store applies a posting and its ledger row in one transaction, within
//! the bounds [`Posting::floor`] and [`Posting::ceiling`] set here.

use serde::{Deserialize, Serialize};

use crate::domain::{
    Balance, GrantTerms, HoldId, IdempotencyKey, LedgerEntry, LedgerEntryId, Money, Reason, Source,
    TokenDelta, Tokens, UserId,
};

/// What kind of change a posting is, which decides how low the balance may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostingKind {
    /// Tokens added: bought, granted, or given back.
    Credit,
    /// Tokens spent: never below zero.
    Debit,
    /// An earlier credit taken back (refund, dispute): may go below zero, because the tokens
    /// may already be spent.
    Reversal,
    /// An admin's correction, either way; a negative one never goes below zero.
    Adjustment,
    /// Tokens spent through a hold, which reserved them: within what it held, always applied
    /// (the work ran on its promise); beyond it, only from what is available.
    Capture,
}

/// The hold a capture spends: what it reserved, and whether the capture may take more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldRelease {
    pub hold: HoldId,
    pub held: Tokens,
    pub may_exceed: bool,
}

/// The Stripe objects behind a posting, kept on the ledger row for tracing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StripeRefs {
    pub event_id: Option<String>,
    /// Checkout session, invoice, refund or dispute.
    pub object_id: Option<String>,
    pub payment_intent: Option<String>,
}

/// One change to one user's balance, ready to be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    pub user: UserId,
    pub kind: PostingKind,
    pub delta: TokenDelta,
    pub source: Source,
    pub reason: Reason,
    pub key: IdempotencyKey,
    pub stripe: StripeRefs,
    pub amount_paid: Option<Money>,
    /// The admin behind a manual posting.
    pub actor: Option<UserId>,
    /// The purchase this posting reverses (or gives back), for refunds and disputes.
    pub reverses: Option<LedgerEntryId>,
    /// A credit's grant: when its tokens expire.
    pub terms: GrantTerms,
    /// A capture's hold.
    pub release: Option<HoldRelease>,
}

/// A spend on the product and nothing else (a consume call, a batch item): what a batch is
/// made of, so the store can decide a whole batch of them together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Debit(Posting);

impl Debit {
    pub fn new(user: UserId, tokens: Tokens, reason: Reason, key: IdempotencyKey) -> Self {
        Self(Posting::debit(user, tokens, reason, key))
    }

    pub fn posting(&self) -> &Posting {
        &self.0
    }
}

impl From<Debit> for Posting {
    fn from(debit: Debit) -> Self {
        debit.0
    }
}

impl Posting {
    fn new(
        user: UserId,
        kind: PostingKind,
        delta: TokenDelta,
        source: Source,
        reason: Reason,
        key: IdempotencyKey,
    ) -> Self {
        Self {
            user,
            kind,
            delta,
            source,
            reason,
            key,
            stripe: StripeRefs::default(),
            amount_paid: None,
            actor: None,
            reverses: None,
            terms: GrantTerms::NEVER,
            release: None,
        }
    }

    /// Tokens added for a purchase, an invoice, or a won dispute.
    pub fn credit(
        user: UserId,
        tokens: Tokens,
        source: Source,
        reason: Reason,
        key: IdempotencyKey,
    ) -> Self {
        Self::new(
            user,
            PostingKind::Credit,
            TokenDelta::increase(tokens),
            source,
            reason,
            key,
        )
    }

    /// Tokens spent on the product.
    pub fn debit(user: UserId, tokens: Tokens, reason: Reason, key: IdempotencyKey) -> Self {
        Self::new(
            user,
            PostingKind::Debit,
            TokenDelta::decrease(tokens),
            Source::Consume,
            reason,
            key,
        )
    }

    /// Tokens taken back for a refund or a dispute.
    pub fn reversal(
        user: UserId,
        tokens: Tokens,
        source: Source,
        reason: Reason,
        key: IdempotencyKey,
    ) -> Self {
        Self::new(
            user,
            PostingKind::Reversal,
            TokenDelta::decrease(tokens),
            source,
            reason,
            key,
        )
    }

    /// An admin's credit (positive) or debit (negative), with the admin recorded.
    pub fn adjustment(
        user: UserId,
        delta: TokenDelta,
        reason: Reason,
        key: IdempotencyKey,
        admin: UserId,
    ) -> Self {
        Self {
            actor: Some(admin),
            ..Self::new(
                user,
                PostingKind::Adjustment,
                delta,
                Source::Manual,
                reason,
                key,
            )
        }
    }

    /// Tokens spent through `release`'s hold, which is settled by the same transaction.
    pub fn capture(
        user: UserId,
        tokens: Tokens,
        reason: Reason,
        key: IdempotencyKey,
        release: HoldRelease,
    ) -> Self {
        Self {
            release: Some(release),
            ..Self::new(
                user,
                PostingKind::Capture,
                TokenDelta::decrease(tokens),
                Source::Capture,
                reason,
                key,
            )
        }
    }

    /// When the tokens of a credit expire (credits never expire unless told).
    pub fn expiring(mut self, terms: GrantTerms) -> Self {
        self.terms = terms;
        self
    }

    pub fn with_stripe(mut self, refs: StripeRefs) -> Self {
        self.stripe = refs;
        self
    }

    /// Links the posting to the purchase it reverses or gives back.
    pub fn reversing(mut self, purchase: LedgerEntryId) -> Self {
        self.reverses = Some(purchase);
        self
    }

    pub fn with_amount_paid(mut self, amount: Money) -> Self {
        self.amount_paid = Some(amount);
        self
    }

    /// Whether this posting spends from what is available (the balance less open holds), and
    /// so may not take that below zero. Credits and reversals may leave any balance (within
    /// the limit); a capture within its hold was promised its tokens when the hold was made.
    pub fn spends_available(&self) -> bool {
        match self.kind {
            PostingKind::Debit => true,
            PostingKind::Adjustment => !self.delta.is_increase(),
            PostingKind::Capture => self
                .release
                .is_some_and(|r| self.delta.magnitude().get() > r.held.get()),
            PostingKind::Credit | PostingKind::Reversal => false,
        }
    }

    /// What the posting takes off the user's reserved tokens: a capture settles its hold.
    pub fn releases(&self) -> i64 {
        self.release.map_or(0, |r| r.held.get())
    }

    /// The lowest value the guarded quantity may reach: what is available after the posting
    /// when [`Posting::spends_available`], else the balance after it.
    pub fn floor(&self) -> i64 {
        if self.spends_available() {
            0
        } else {
            -Balance::LIMIT
        }
    }

    /// The highest balance this posting may leave behind.
    pub fn ceiling(&self) -> i64 {
        Balance::LIMIT
    }

    /// The balance after applying this posting to a balance with `held` tokens reserved, or
    /// why it cannot be applied.
    pub fn apply_to(&self, balance: Balance, held: i64) -> Result<Balance, LedgerError> {
        let after = balance.get() + self.delta.get(); // both far below i64::MAX
        if after < -Balance::LIMIT || after > self.ceiling() {
            return Err(LedgerError::BalanceLimit);
        }
        let available_after = after - (held - self.releases());
        if self.spends_available() && available_after < 0 {
            return Err(LedgerError::InsufficientTokens {
                balance: Balance::new(balance.get() - held + self.releases())
                    .unwrap_or(Balance::ZERO),
                requested: self.delta.magnitude(),
            });
        }
        Ok(Balance::new(after).expect("within the limit"))
    }

    /// Whether `entry` is this very posting, applied before: same user, change, source and
    /// reason. A key reused for anything else is a conflict, never a silent success.
    pub fn matches(&self, entry: &LedgerEntry) -> bool {
        entry.user_id == self.user
            && entry.delta == self.delta
            && entry.source == self.source
            && entry.reason == self.reason.as_str()
    }
}

/// `whole × part / of`, rounded down, in exact integers, capped at `whole`: the tokens a part
/// of a payment stands for (a refund, a dispute). Parts that add up to the whole payment add
/// up to the whole grant, because shares are taken of running totals, not summed.
pub fn share_of(whole: i64, part: i64, of: i64) -> i64 {
    if of <= 0 || part <= 0 {
        return 0;
    }
    let part = part.min(of);
    i64::try_from(i128::from(whole) * i128::from(part) / i128::from(of)).unwrap_or(whole)
}

/// A posting applied, or found already applied under the same key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    pub entry: LedgerEntry,
    /// True when the key had been used before and nothing changed now.
    pub replayed: bool,
}

impl Posted {
    /// True when the balance is below zero after this entry (a reversal of spent tokens).
    pub fn left_negative(&self) -> bool {
        self.entry.balance_after.is_negative()
    }
}

/// Why a posting was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// `balance` is what was available: the balance less open holds (plus, for a capture,
    /// what its own hold reserved).
    #[error("insufficient tokens: {balance:?} available, {requested:?} requested")]
    InsufficientTokens { balance: Balance, requested: Tokens },
    #[error("the balance would leave its allowed range")]
    BalanceLimit,
    #[error("no such user: {0}")]
    UnknownUser(UserId),
    #[error("the idempotency key was already used for a different change")]
    IdempotencyConflict { existing: Box<LedgerEntry> },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> UserId {
        UserId::new(1).unwrap()
    }
    fn reason() -> Reason {
        Reason::parse("test").unwrap()
    }
    fn key() -> IdempotencyKey {
        IdempotencyKey::parse("k").unwrap()
    }
    fn tokens(n: i64) -> Tokens {
        Tokens::new(n).unwrap()
    }
    fn balance(n: i64) -> Balance {
        Balance::new(n).unwrap()
    }

    #[test]
    fn shares_round_down_and_reach_the_whole_exactly() {
        assert_eq!(share_of(5000, 500, 1200), 2083);
        assert_eq!(share_of(5000, 1200, 1200), 5000);
        assert_eq!(
            share_of(5000, 5000, 1200),
            5000,
            "never more than the whole"
        );
        assert_eq!(share_of(5000, 0, 1200), 0);
        assert_eq!(share_of(5000, 10, 0), 0);
        assert_eq!(share_of(1_000_000_000, i64::MAX, i64::MAX), 1_000_000_000);
    }

    #[test]
    fn a_debit_never_goes_below_zero() {
        let debit = Posting::debit(user(), tokens(10), reason(), key());
        assert_eq!(debit.apply_to(balance(10), 0).unwrap(), balance(0));
        assert_eq!(
            debit.apply_to(balance(9), 0).unwrap_err(),
            LedgerError::InsufficientTokens {
                balance: balance(9),
                requested: tokens(10)
            }
        );
    }

    #[test]
    fn a_reversal_may_go_below_zero() {
        let reversal =
            Posting::reversal(user(), tokens(5000), Source::StripeRefund, reason(), key());
        assert_eq!(reversal.apply_to(balance(1000), 0).unwrap(), balance(-4000));
    }

    #[test]
    fn a_negative_adjustment_never_goes_below_zero_and_records_the_admin() {
        let admin = UserId::new(7).unwrap();
        let take = Posting::adjustment(
            user(),
            TokenDelta::new(-50).unwrap(),
            reason(),
            key(),
            admin,
        );
        assert_eq!(take.actor, Some(admin));
        assert!(take.apply_to(balance(49), 0).is_err());
        assert_eq!(take.apply_to(balance(50), 0).unwrap(), balance(0));
        // A positive adjustment lifts a negative balance.
        let give =
            Posting::adjustment(user(), TokenDelta::new(50).unwrap(), reason(), key(), admin);
        assert_eq!(give.apply_to(balance(-100), 0).unwrap(), balance(-50));
    }

    #[test]
    fn no_posting_passes_the_balance_limit() {
        let credit = Posting::credit(user(), tokens(Tokens::MAX), Source::Manual, reason(), key());
        assert_eq!(
            credit.apply_to(balance(Balance::LIMIT), 0).unwrap_err(),
            LedgerError::BalanceLimit
        );
        let reversal = Posting::reversal(
            user(),
            tokens(Tokens::MAX),
            Source::StripeDispute,
            reason(),
            key(),
        );
        assert_eq!(
            reversal.apply_to(balance(-Balance::LIMIT), 0).unwrap_err(),
            LedgerError::BalanceLimit
        );
    }
}
