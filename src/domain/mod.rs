//! The vocabulary of billing: newtypes that can only hold valid values.
//!
//! WASM-safe (no I/O, no clock): the app uses these types on both sides of the wire, and
//! deserialising one runs the same checks as parsing it.

mod credits;
mod email;
mod error;
mod ids;
mod ledger;
mod money;
mod product;
mod statement;
mod text;
mod tokens;
mod topup;
mod user;

pub use credits::{Available, Expiry, Grant, GrantTerms, Hold, HoldState, Rollover};
pub use email::Email;
pub use error::DomainError;
pub use ids::{GrantId, HoldId, LedgerEntryId, UserId};
pub use ledger::{LedgerEntry, LedgerPage, LedgerTotals, Source, SourceTotals, Timestamp};
pub use money::{Currency, Money};
pub use product::{Offer, ProductId, ProductKind};
pub use statement::{Month, Statement};
pub use text::{IdempotencyKey, Reason};
pub use tokens::{Balance, TokenDelta, Tokens, group_thousands};
pub use topup::{
    AutoTopUp, AutoTopUpState, PauseReason, SavedCard, TopUp, TopUpChoice, TopUpState,
};
pub use user::{Role, User};
