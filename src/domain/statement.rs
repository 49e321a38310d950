//! A month's statement: the balance it opened and closed with, what came in and went out by
//! kind, and the entries between.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{DomainError, LedgerEntry, Source, Timestamp};

/// A calendar month, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Month {
    year: i32,
    /// 1 to 12.
    month: u8,
}

impl Month {
    pub fn new(year: i32, month: u8) -> Result<Self, DomainError> {
        if (1..=12).contains(&month) && (1970..=9999).contains(&year) {
            Ok(Self { year, month })
        } else {
            Err(DomainError::InvalidMonth)
        }
    }

    /// `2026-11`.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let (year, month) = raw
            .trim()
            .split_once('-')
            .ok_or(DomainError::InvalidMonth)?;
        if year.len() != 4 || month.len() != 2 {
            return Err(DomainError::InvalidMonth);
        }
        let year = year.parse().map_err(|_| DomainError::InvalidMonth)?;
        let month = month.parse().map_err(|_| DomainError::InvalidMonth)?;
        Self::new(year, month)
    }

    /// The month a moment falls in.
    pub fn of(at: Timestamp) -> Self {
        let date = at.date(); // `2026-11-25`
        Self::parse(&date[..7]).expect("a timestamp's date is a valid month")
    }

    /// Its first moment.
    pub fn start(self) -> Timestamp {
        Timestamp::from_millis(days_from_civil(self.year, self.month) * 86_400_000)
    }

    /// The first moment of the next month.
    pub fn end(self) -> Timestamp {
        self.next().start()
    }

    pub fn next(self) -> Self {
        if self.month == 12 {
            Self {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Self {
                month: self.month + 1,
                ..self
            }
        }
    }

    pub fn previous(self) -> Self {
        if self.month == 1 {
            Self {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Self {
                month: self.month - 1,
                ..self
            }
        }
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl TryFrom<String> for Month {
    type Error = DomainError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<Month> for String {
    fn from(month: Month) -> String {
        month.to_string()
    }
}

/// Days from 1970-01-01 to the first of `month` (Howard Hinnant's days-from-civil).
fn days_from_civil(year: i32, month: u8) -> i64 {
    let (y, m) = (i64::from(year) - i64::from(month <= 2), i64::from(month));
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5; // the first of the month
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// What a month's entries came to, by kind. `closing = opening + credits + reversals +
/// usage + expiries`, to the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    pub month: Month,
    /// The balance when the month began.
    pub opening: i64,
    /// Tokens added: purchases, plan periods, trials, admin credits.
    pub credits: i64,
    /// Tokens taken back (negative) or given back (positive) for refunds and disputes.
    pub reversals: i64,
    /// Tokens spent (negative): usage, captures of holds, admin debits.
    pub usage: i64,
    /// Tokens that expired unspent (negative).
    pub expiries: i64,
    /// The balance when the month ended (or now, for the month under way).
    pub closing: i64,
    /// The month's entries, oldest first.
    pub entries: Vec<LedgerEntry>,
}

impl Statement {
    /// The statement of `entries` (a month's, oldest first), opened at `opening`.
    pub fn of(month: Month, opening: i64, entries: Vec<LedgerEntry>) -> Self {
        let (mut credits, mut reversals, mut usage, mut expiries) = (0, 0, 0, 0);
        for entry in &entries {
            let delta = entry.delta.get();
            match entry.source {
                Source::StripeRefund | Source::StripeDispute => reversals += delta,
                Source::Expiry => expiries += delta,
                Source::Consume | Source::Capture => usage += delta,
                Source::Manual if delta < 0 => usage += delta,
                Source::Manual
                | Source::StripeCheckout
                | Source::StripeInvoice
                | Source::Trial
                | Source::AutoTopUp => credits += delta,
            }
        }
        let closing = entries
            .last()
            .map_or(opening, |last| last.balance_after.get());
        Self {
            month,
            opening,
            credits,
            reversals,
            usage,
            expiries,
            closing,
            entries,
        }
    }

    /// Whether the totals add up from the opening to the closing balance.
    pub fn adds_up(&self) -> bool {
        self.opening + self.credits + self.reversals + self.usage + self.expiries == self.closing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_and_know_their_bounds() {
        let nov = Month::parse("2026-11").unwrap();
        assert_eq!(nov.to_string(), "2026-11");
        assert_eq!(nov.start().rfc3339(), "2026-11-01T00:00:00Z");
        assert_eq!(nov.end().rfc3339(), "2026-12-01T00:00:00Z");
        assert_eq!(
            Month::parse("2024-02").unwrap().end().rfc3339(),
            "2024-03-01T00:00:00Z"
        );
        assert_eq!(
            Month::parse("2026-12").unwrap().next().to_string(),
            "2027-01"
        );
        assert_eq!(
            Month::parse("2027-01").unwrap().previous().to_string(),
            "2026-12"
        );
        assert_eq!(Month::parse("1970-01").unwrap().start().as_millis(), 0);
        assert_eq!(
            Month::of(Timestamp::from_millis(1_796_083_199_999)).to_string(),
            "2026-11"
        );
        assert_eq!(
            Month::of(Timestamp::from_millis(1_796_083_200_000)).to_string(),
            "2026-12"
        );
        for bad in [
            "2026-13", "2026-00", "26-11", "2026-1", "2026/11", "", "abcd-ef", "1969-12",
        ] {
            assert!(Month::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_month_from_1970_begins_where_the_last_ended() {
        let mut month = Month::parse("1970-01").unwrap();
        for _ in 0..2_000 {
            let next = month.next();
            assert_eq!(month.end(), next.start());
            assert_eq!(Month::of(next.start()), next);
            assert_eq!(
                Month::of(Timestamp::from_millis(next.start().as_millis() - 1)),
                month
            );
            assert!(
                next.start().date().ends_with("-01"),
                "{}",
                next.start().date()
            );
            month = next;
        }
    }
}
