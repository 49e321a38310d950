//! Grants and holds as the page and the API show them: what a credit left to spend and until
//! when, and the tokens reserved for work that has not ended.

use serde::{Deserialize, Serialize};

use super::{Balance, DomainError, GrantId, HoldId, LedgerEntryId, Timestamp, Tokens, UserId};

/// When a grant's tokens stop being spendable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GrantTerms {
    pub expiry: Expiry,
    /// What a plan period's grant keeps for one more period when it expires.
    pub rollover: Option<Rollover>,
}

/// When a grant expires: never, at a moment (a plan period's end), or a while after it is
/// made (a pack: the store's clock says when that is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expiry {
    #[default]
    Never,
    At(Timestamp),
    AfterMs(i64),
}

impl GrantTerms {
    pub const NEVER: GrantTerms = GrantTerms {
        expiry: Expiry::Never,
        rollover: None,
    };

    pub fn expiring_at(at: Timestamp) -> Self {
        Self {
            expiry: Expiry::At(at),
            rollover: None,
        }
    }

    pub fn lasting_ms(ms: i64) -> Self {
        Self {
            expiry: Expiry::AfterMs(ms),
            rollover: None,
        }
    }

    /// The moment the grant expires, for one made at `now`.
    pub fn expires_at(self, now: Timestamp) -> Option<Timestamp> {
        match self.expiry {
            Expiry::Never => None,
            Expiry::At(at) => Some(at),
            Expiry::AfterMs(ms) => Some(Timestamp::from_millis(now.as_millis().saturating_add(ms))),
        }
    }
}

/// Up to `cap` tokens left at expiry stay for `period_ms` more, once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollover {
    pub cap: Tokens,
    pub period_ms: i64,
}

/// A credit's tokens: what is left of them and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub id: GrantId,
    /// The credit that brought them; `None` for a balance carried over from before grants.
    pub entry: Option<LedgerEntryId>,
    /// What the credit was, for people ("Medium pack", "Starter monthly").
    pub label: String,
    pub tokens: Tokens,
    pub remaining: i64,
    pub expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// Where a hold stands. Only an open hold reserves tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldState {
    Open,
    /// Its tokens were spent (all or part; the rest went back).
    Captured,
    /// Given up: nothing was spent.
    Released,
    /// Its time ran out before a capture: nothing was spent.
    Expired,
}

impl HoldState {
    pub const ALL: [HoldState; 4] = [
        HoldState::Open,
        HoldState::Captured,
        HoldState::Released,
        HoldState::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HoldState::Open => "open",
            HoldState::Captured => "captured",
            HoldState::Released => "released",
            HoldState::Expired => "expired",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| DomainError::UnknownState(raw.to_owned()))
    }
}

/// A reservation of a user's tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub id: HoldId,
    pub user_id: UserId,
    pub tokens: Tokens,
    pub reason: String,
    /// The state as stored; an open hold past `expires_at` is [`Hold::state_at`] expired.
    pub state: HoldState,
    pub expires_at: Timestamp,
    pub created_at: Timestamp,
    /// The capture's ledger entry.
    pub capture: Option<LedgerEntryId>,
}

impl Hold {
    /// The state at `now`: an open hold whose time has passed is expired, swept or not.
    pub fn state_at(&self, now: Timestamp) -> HoldState {
        match self.state {
            HoldState::Open if self.expires_at <= now => HoldState::Expired,
            state => state,
        }
    }
}

/// A balance and what open holds reserve of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Available {
    pub balance: Balance,
    /// Reserved by open holds.
    pub held: i64,
}

impl Available {
    /// What a new spend or hold may take: the balance less what is reserved.
    pub fn spendable(self) -> i64 {
        self.balance.get() - self.held
    }
}
