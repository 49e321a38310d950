//! What the store is asked about holds and batches: a hold to open, a capture, and the
//! answers.

use crate::domain::{Available, Hold, HoldId, HoldState, IdempotencyKey, Reason, Tokens, UserId};
use crate::ledger::{LedgerError, Posted};

/// A hold to open: `tokens` of `user`'s available balance, reserved for `ttl_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHold {
    pub user: UserId,
    pub tokens: Tokens,
    pub reason: Reason,
    pub ttl_ms: i64,
    /// Unique per hold: the same key again answers with the same hold.
    pub key: IdempotencyKey,
    /// The service key opening it; only it may capture or release the hold.
    pub api_key: Option<i64>,
}

impl NewHold {
    /// The longest a hold may last: a day.
    pub const MAX_TTL_MS: i64 = 24 * 3_600_000;
}

/// A hold opened, or found opened before under the same key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldOpened {
    pub hold: Hold,
    /// What is available right after (a replay answers with what is available now).
    pub available: Available,
    pub replayed: bool,
}

/// A hold's capture: the tokens the work actually used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldCapture {
    pub hold: HoldId,
    pub tokens: Tokens,
    /// Whether the capture may take more than the hold reserved (from what is available).
    pub may_exceed: bool,
    pub api_key: Option<i64>,
}

/// A hold given up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldReleased {
    pub hold: Hold,
    pub available: Available,
    /// True when it was not open any more (released before, or expired): nothing changed now.
    pub replayed: bool,
}

/// Why a hold could not be captured or released. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoldError {
    /// No such hold, or one another service key opened.
    #[error("no such hold")]
    NotFound,
    /// Released, expired, or captured (for a release): it cannot be used.
    #[error("the hold is {0:?}")]
    Settled(HoldState),
    /// More than the hold reserved, and the capture did not ask to exceed it.
    #[error("the hold reserved {held:?} tokens")]
    ExceedsHold { held: Tokens },
    /// Captured before with a different amount.
    #[error("the hold was captured before for {captured:?} tokens")]
    CapturedDifferently { captured: Tokens },
    /// The same idempotency key opened a different hold.
    #[error("the idempotency key was already used for a different hold")]
    KeyReused,
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// One item of a batch of postings: applied, or why not.
pub type BatchItem = Result<Posted, LedgerError>;

/// A user whose grants or holds disagree with their balance row (should never be found).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditMismatch {
    pub user: UserId,
    pub balance: i64,
    /// What the live grants have left: `max(balance, 0)` when all is well.
    pub grants_remaining: i64,
    pub held: i64,
    /// What the open holds reserve: `held` when all is well.
    pub open_holds: i64,
}
