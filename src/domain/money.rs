//! Money, in the currency's minor unit (cents): never a float.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::DomainError;
use super::tokens::group_thousands;

/// An ISO 4217 currency code, lower-case as Stripe writes it (`usd`, `eur`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let bytes = raw.trim().as_bytes();
        match bytes {
            [a, b, c] if bytes.iter().all(u8::is_ascii_alphabetic) => Ok(Self([
                a.to_ascii_lowercase(),
                b.to_ascii_lowercase(),
                c.to_ascii_lowercase(),
            ])),
            _ => Err(DomainError::InvalidCurrency),
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("built from ASCII letters")
    }

    /// Digits after the decimal point (Stripe's zero-decimal currencies have none).
    pub fn minor_digits(self) -> u32 {
        const ZERO_DECIMAL: [&str; 16] = [
            "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd",
            "vuv", "xaf", "xof", "xpf",
        ];
        if ZERO_DECIMAL.contains(&self.as_str()) {
            0
        } else {
            2
        }
    }

    fn symbol(self) -> Option<&'static str> {
        match self.as_str() {
            "usd" => Some("$"),
            "eur" => Some("€"),
            "gbp" => Some("£"),
            "jpy" => Some("¥"),
            _ => None,
        }
    }
}

impl TryFrom<String> for Currency {
    type Error = DomainError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<Currency> for String {
    fn from(currency: Currency) -> String {
        currency.as_str().to_owned()
    }
}

/// An amount of money: whole minor units of one currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

impl Money {
    pub fn new(minor: i64, currency: Currency) -> Result<Self, DomainError> {
        if minor < 0 {
            return Err(DomainError::NegativeMoney);
        }
        Ok(Self { minor, currency })
    }

    pub fn minor(self) -> i64 {
        self.minor
    }

    pub fn currency(self) -> Currency {
        self.currency
    }
}

/// `$12.00`, `€5.50`, `¥500`, `CHF 9.90`.
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.currency.minor_digits();
        let unit = 10_i64.pow(digits);
        let whole = group_thousands(self.minor / unit);
        match self.currency.symbol() {
            Some(symbol) => write!(f, "{symbol}{whole}")?,
            None => write!(f, "{} {whole}", self.currency.as_str().to_uppercase())?,
        }
        if digits > 0 {
            write!(f, ".{:0width$}", self.minor % unit, width = digits as usize)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(minor: i64, currency: &str) -> Money {
        Money::new(minor, Currency::parse(currency).unwrap()).unwrap()
    }

    #[test]
    fn money_prints_in_its_currency() {
        assert_eq!(money(1200, "usd").to_string(), "$12.00");
        assert_eq!(money(550, "EUR").to_string(), "€5.50");
        assert_eq!(money(500, "jpy").to_string(), "¥500");
        assert_eq!(money(990, "chf").to_string(), "CHF 9.90");
        assert_eq!(money(123456789, "usd").to_string(), "$1,234,567.89");
        assert_eq!(money(5, "usd").to_string(), "$0.05");
    }

    #[test]
    fn bad_money_is_refused() {
        assert!(Currency::parse("us").is_err());
        assert!(Currency::parse("us1").is_err());
        assert!(Currency::parse("dollars").is_err());
        assert!(Money::new(-1, Currency::parse("usd").unwrap()).is_err());
    }
}
