//! What PromptBloom sells. The token amounts live here, on the server's side of every
//! request: a client names a product, never an amount.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{DomainError, Money, Tokens};

/// A token pack (bought once) or the monthly plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductId {
    Small,
    Medium,
    Large,
    Starter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductKind {
    /// Paid once through Checkout in payment mode.
    Pack,
    /// Paid every month; each paid invoice grants the tokens.
    Subscription,
}

impl ProductId {
    pub const ALL: [ProductId; 4] = [
        ProductId::Small,
        ProductId::Medium,
        ProductId::Large,
        ProductId::Starter,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProductId::Small => "small",
            ProductId::Medium => "medium",
            ProductId::Large => "large",
            ProductId::Starter => "starter",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        ProductId::ALL
            .into_iter()
            .find(|p| p.as_str() == raw.trim())
            .ok_or_else(|| DomainError::UnknownProduct(raw.to_owned()))
    }

    pub fn label(self) -> &'static str {
        match self {
            ProductId::Small => "Small pack",
            ProductId::Medium => "Medium pack",
            ProductId::Large => "Large pack",
            ProductId::Starter => "Starter monthly",
        }
    }

    /// Tokens a purchase grants: once for a pack, per paid invoice for the plan.
    pub fn tokens(self) -> Tokens {
        let count = match self {
            ProductId::Small => 1_000,
            ProductId::Medium => 5_000,
            ProductId::Large => 12_000,
            ProductId::Starter => 6_000,
        };
        Tokens::new(count).expect("catalog amounts are valid")
    }

    pub fn kind(self) -> ProductKind {
        match self {
            ProductId::Starter => ProductKind::Subscription,
            _ => ProductKind::Pack,
        }
    }
}

/// A product as the page offers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    pub product: ProductId,
    pub label: String,
    pub kind: ProductKind,
    pub tokens: Tokens,
    /// What it costs, when Stripe (or the simulator) has told us.
    pub price: Option<Money>,
}

impl fmt::Display for ProductId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_grants_the_seeds_amounts() {
        let amounts: Vec<_> = ProductId::ALL.iter().map(|p| p.tokens().get()).collect();
        assert_eq!(amounts, [1_000, 5_000, 12_000, 6_000]);
        assert_eq!(ProductId::Starter.kind(), ProductKind::Subscription);
        assert_eq!(ProductId::Medium.kind(), ProductKind::Pack);
    }

    #[test]
    fn products_parse_by_name_only() {
        assert_eq!(ProductId::parse("medium").unwrap(), ProductId::Medium);
        assert!(ProductId::parse("price_123").is_err());
        assert!(ProductId::parse("huge").is_err());
        assert!(serde_json::from_str::<ProductId>("\"mega\"").is_err());
    }
}
