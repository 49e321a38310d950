//! What the ledger holds, as the page and the API show it.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Balance, DomainError, HoldId, LedgerEntryId, Money, TokenDelta, UserId};

/// What caused a ledger entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A token pack bought through Stripe Checkout.
    StripeCheckout,
    /// A paid subscription invoice.
    StripeInvoice,
    /// Tokens taken back because a payment was refunded.
    StripeRefund,
    /// Tokens taken back for a dispute, or given back when the dispute was won.
    StripeDispute,
    /// An admin's credit or debit.
    Manual,
    /// Tokens spent on the product.
    Consume,
    /// A trial's allowance, granted once per Stripe customer when that is offered.
    Trial,
    /// Tokens spent on the product through a hold made before the work ran.
    Capture,
    /// What was left of a grant when it expired.
    Expiry,
    /// A token pack bought by auto top-up: a payment made with the user's saved card when
    /// what they could spend went under their mark.
    #[serde(rename = "auto_topup")]
    AutoTopUp,
}

impl Source {
    pub const ALL: [Source; 10] = [
        Source::StripeCheckout,
        Source::StripeInvoice,
        Source::StripeRefund,
        Source::StripeDispute,
        Source::Manual,
        Source::Consume,
        Source::Trial,
        Source::Capture,
        Source::Expiry,
        Source::AutoTopUp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::StripeCheckout => "stripe_checkout",
            Source::StripeInvoice => "stripe_invoice",
            Source::StripeRefund => "stripe_refund",
            Source::StripeDispute => "stripe_dispute",
            Source::Manual => "manual",
            Source::Consume => "consume",
            Source::Trial => "trial",
            Source::Capture => "capture",
            Source::Expiry => "expiry",
            Source::AutoTopUp => "auto_topup",
        }
    }

    /// A short label for people.
    pub fn label(self) -> &'static str {
        match self {
            Source::StripeCheckout => "Purchase",
            Source::StripeInvoice => "Subscription",
            Source::StripeRefund => "Refund",
            Source::StripeDispute => "Dispute",
            Source::Manual => "Adjustment",
            Source::Consume => "Usage",
            Source::Trial => "Trial",
            Source::Capture => "Usage (reserved)",
            Source::Expiry => "Expired",
            Source::AutoTopUp => "Auto top-up",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        Source::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| DomainError::UnknownSource(raw.to_owned()))
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    pub fn as_millis(self) -> i64 {
        self.0
    }

    /// Now, from the system clock (not available in the browser build).
    #[cfg(feature = "server")]
    pub fn now() -> Self {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
    }

    /// `2026-11-25 10:34 UTC`.
    pub fn utc_minutes(self) -> String {
        let (date, rest) = civil_from_millis(self.0);
        format!(
            "{date} {:02}:{:02} UTC",
            rest / 3_600_000,
            rest / 60_000 % 60
        )
    }

    /// `2026-11-25T10:34:05Z`, for exports.
    pub fn rfc3339(self) -> String {
        let (date, rest) = civil_from_millis(self.0);
        format!(
            "{date}T{:02}:{:02}:{:02}Z",
            rest / 3_600_000,
            rest / 60_000 % 60,
            rest / 1000 % 60
        )
    }

    /// `2026-11-25`.
    pub fn date(self) -> String {
        civil_from_millis(self.0).0
    }
}

/// The calendar date of a moment, and the milliseconds since that day began.
/// (Howard Hinnant's days-to-civil algorithm; no clock and no time zone database needed.)
fn civil_from_millis(millis: i64) -> (String, i64) {
    const DAY: i64 = 86_400_000;
    let days = millis.div_euclid(DAY);
    let rest = millis.rem_euclid(DAY);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (format!("{year:04}-{month:02}-{day:02}"), rest)
}

/// One row of a user's ledger. Entries are never changed or deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub id: LedgerEntryId,
    pub user_id: UserId,
    pub delta: TokenDelta,
    /// The user's balance right after this entry.
    pub balance_after: Balance,
    pub source: Source,
    pub reason: String,
    pub created_at: Timestamp,
    /// What the user paid, for purchases.
    pub amount_paid: Option<Money>,
    /// The Stripe object behind the entry (checkout session, invoice, refund, dispute).
    pub stripe_object_id: Option<String>,
    /// The admin who made a manual entry.
    pub actor_id: Option<UserId>,
    /// The purchase a refund or dispute entry reverses (or gives back).
    pub reverses: Option<LedgerEntryId>,
    /// The hold a capture spent.
    #[serde(default)]
    pub hold: Option<HoldId>,
}

/// A page of a ledger, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerPage {
    pub entries: Vec<LedgerEntry>,
    /// Pass as `before` to get the next (older) page; `None` on the last page.
    pub next_cursor: Option<LedgerEntryId>,
    /// Pass as `after` to get the previous (newer) page; `None` on the first page.
    pub prev_cursor: Option<LedgerEntryId>,
}

/// Sums of one source's entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceTotals {
    pub source: Source,
    /// Tokens added (the sum of positive deltas).
    pub added: i64,
    /// Tokens taken (the sum of negative deltas, as a positive number).
    pub taken: i64,
    pub entries: i64,
}

/// A user's ledger summed up, by source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerTotals {
    pub by_source: Vec<SourceTotals>,
}

impl LedgerTotals {
    /// Added minus taken over every source: equals the balance.
    pub fn net(&self) -> i64 {
        self.by_source.iter().map(|t| t.added - t.taken).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_round_trip_through_their_names() {
        for source in Source::ALL {
            assert_eq!(Source::parse(source.as_str()).unwrap(), source);
            assert_eq!(
                serde_json::to_string(&source).unwrap(),
                format!("\"{}\"", source.as_str())
            );
        }
        assert!(Source::parse("bonus").is_err());
    }

    #[test]
    fn timestamps_format_as_utc_calendar_dates() {
        let t = Timestamp::from_millis(1_795_602_845_123); // 2026-11-25T10:34:05.123Z
        assert_eq!(t.rfc3339(), "2026-11-25T10:34:05Z");
        assert_eq!(t.utc_minutes(), "2026-11-25 10:34 UTC");
        assert_eq!(Timestamp::from_millis(0).rfc3339(), "1970-01-01T00:00:00Z");
        // A leap day, and before the epoch.
        assert_eq!(Timestamp::from_millis(951_782_400_000).date(), "2000-02-29");
        assert_eq!(Timestamp::from_millis(-86_400_000).date(), "1969-12-31");
    }
}
