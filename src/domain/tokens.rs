//! Token counts. All integers: a token is never split.

use serde::{Deserialize, Serialize};

use super::DomainError;

/// A positive number of tokens moved by one operation (a purchase, a spend, a grant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Tokens(i64);

impl Tokens {
    /// The most one operation may move: far above any pack, far below overflow.
    pub const MAX: i64 = 1_000_000_000;

    pub fn new(count: i64) -> Result<Self, DomainError> {
        if (1..=Self::MAX).contains(&count) {
            Ok(Self(count))
        } else {
            Err(DomainError::TokensOutOfRange { max: Self::MAX })
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl TryFrom<i64> for Tokens {
    type Error = DomainError;
    fn try_from(count: i64) -> Result<Self, Self::Error> {
        Self::new(count)
    }
}

impl From<Tokens> for i64 {
    fn from(tokens: Tokens) -> i64 {
        tokens.0
    }
}

/// The signed change one ledger entry makes to a balance: never zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct TokenDelta(i64);

impl TokenDelta {
    pub fn new(delta: i64) -> Result<Self, DomainError> {
        if delta != 0 && delta.unsigned_abs() <= Tokens::MAX.unsigned_abs() {
            Ok(Self(delta))
        } else {
            Err(DomainError::DeltaOutOfRange { max: Tokens::MAX })
        }
    }

    pub fn increase(tokens: Tokens) -> Self {
        Self(tokens.get())
    }

    pub fn decrease(tokens: Tokens) -> Self {
        Self(-tokens.get())
    }

    pub fn get(self) -> i64 {
        self.0
    }

    pub fn is_increase(self) -> bool {
        self.0 > 0
    }

    /// The change with its sign and thousands separators: `+5,000`, `-1,000`.
    pub fn signed(self) -> String {
        if self.0 > 0 {
            format!("+{}", group_thousands(self.0))
        } else {
            group_thousands(self.0)
        }
    }

    /// The size of the change, without its sign.
    pub fn magnitude(self) -> Tokens {
        Tokens(self.0.abs())
    }
}

impl TryFrom<i64> for TokenDelta {
    type Error = DomainError;
    fn try_from(delta: i64) -> Result<Self, Self::Error> {
        Self::new(delta)
    }
}

impl From<TokenDelta> for i64 {
    fn from(delta: TokenDelta) -> i64 {
        delta.0
    }
}

/// A user's tokens. May be negative: a refund can reverse tokens already spent.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(try_from = "i64", into = "i64")]
pub struct Balance(i64);

impl Balance {
    /// No balance may pass this either way, so sums of balances and ledgers never overflow.
    pub const LIMIT: i64 = 1_000_000_000_000;
    pub const ZERO: Balance = Balance(0);

    pub fn new(tokens: i64) -> Result<Self, DomainError> {
        if tokens.unsigned_abs() <= Self::LIMIT.unsigned_abs() {
            Ok(Self(tokens))
        } else {
            Err(DomainError::BalanceOutOfRange { max: Self::LIMIT })
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }

    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// The balance after `delta`, or `None` when it would leave the allowed range.
    pub fn apply(self, delta: TokenDelta) -> Option<Balance> {
        self.0
            .checked_add(delta.get())
            .and_then(|b| Balance::new(b).ok())
    }

    /// Formats with thousands separators: `12,000`, `-1,500`.
    pub fn grouped(self) -> String {
        group_thousands(self.0)
    }
}

impl TryFrom<i64> for Balance {
    type Error = DomainError;
    fn try_from(tokens: i64) -> Result<Self, Self::Error> {
        Self::new(tokens)
    }
}

impl From<Balance> for i64 {
    fn from(balance: Balance) -> i64 {
        balance.0
    }
}

/// `1234567` -> `1,234,567`.
pub fn group_thousands(value: i64) -> String {
    let digits = value.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if value < 0 {
        out.push('-');
    }
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_positive_and_bounded() {
        assert!(Tokens::new(1).is_ok());
        assert!(Tokens::new(Tokens::MAX).is_ok());
        for bad in [0, -1, Tokens::MAX + 1, i64::MAX, i64::MIN] {
            assert!(Tokens::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn deserialising_checks_like_parsing() {
        assert_eq!(serde_json::from_str::<Tokens>("5000").unwrap().get(), 5000);
        assert!(serde_json::from_str::<Tokens>("-5").is_err());
        assert!(serde_json::from_str::<Tokens>("0").is_err());
        assert!(serde_json::from_str::<Tokens>("1.5").is_err());
        assert!(serde_json::from_str::<Tokens>("99999999999999999999").is_err());
        assert!(serde_json::from_str::<TokenDelta>("0").is_err());
        assert_eq!(
            serde_json::from_str::<TokenDelta>("-10").unwrap().get(),
            -10
        );
    }

    #[test]
    fn a_balance_refuses_to_leave_its_range() {
        let near_top = Balance::new(Balance::LIMIT - 5).unwrap();
        assert_eq!(
            near_top.apply(TokenDelta::new(5).unwrap()).unwrap().get(),
            Balance::LIMIT
        );
        assert!(near_top.apply(TokenDelta::new(6).unwrap()).is_none());
        let low = Balance::new(-Balance::LIMIT).unwrap();
        assert!(low.apply(TokenDelta::new(-1).unwrap()).is_none());
    }

    #[test]
    fn deltas_print_with_their_sign() {
        assert_eq!(TokenDelta::new(5000).unwrap().signed(), "+5,000");
        assert_eq!(TokenDelta::new(-1000).unwrap().signed(), "-1,000");
    }

    #[test]
    fn thousands_are_grouped() {
        for (n, s) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (12000, "12,000"),
            (-1500, "-1,500"),
            (1234567, "1,234,567"),
        ] {
            assert_eq!(group_thousands(n), s);
        }
    }
}
