/// Why a value was refused. The messages are written for the person who typed the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("the number of tokens must be a whole number from 1 to {max}")]
    TokensOutOfRange { max: i64 },
    #[error("a token change cannot be zero or larger than {max} either way")]
    DeltaOutOfRange { max: i64 },
    #[error("a balance must stay within ±{max} tokens")]
    BalanceOutOfRange { max: i64 },
    #[error("that does not look like an email address")]
    InvalidEmail,
    #[error("a reason is required (at most {max} characters)")]
    InvalidReason { max: usize },
    #[error("an idempotency key is 1 to {max} printable ASCII characters")]
    InvalidIdempotencyKey { max: usize },
    #[error("a currency is a three-letter ISO 4217 code")]
    InvalidCurrency,
    #[error("an amount of money cannot be negative")]
    NegativeMoney,
    #[error("unknown ledger source `{0}`")]
    UnknownSource(String),
    #[error("unknown role `{0}` (expected user or admin)")]
    UnknownRole(String),
    #[error("unknown product `{0}` (expected small, medium, large or starter)")]
    UnknownProduct(String),
    #[error("an id must be a positive whole number")]
    InvalidId,
    #[error("unknown state `{0}`")]
    UnknownState(String),
    #[error("a month is written YYYY-MM (1970-01 to 9999-12)")]
    InvalidMonth,
}
