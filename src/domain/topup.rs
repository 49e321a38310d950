//! Auto top-up: what a user chose (a mark, a pack, a monthly cap), the card it pays with, where
//! it stands, and each top-up it started.

use serde::{Deserialize, Serialize};

use super::{DomainError, ProductId, ProductKind, Timestamp, Tokens};

/// What the user chose: when what they can spend goes under `below`, buy `pack`, adding at
/// most `monthly_cap` tokens a calendar month (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopUpChoice {
    pub below: Tokens,
    pack: ProductId,
    pub monthly_cap: Tokens,
}

impl TopUpChoice {
    /// Refuses a product that is not a pack (the plan is not bought by top-ups).
    pub fn new(below: Tokens, pack: ProductId, monthly_cap: Tokens) -> Result<Self, DomainError> {
        if pack.kind() != ProductKind::Pack {
            return Err(DomainError::UnknownProduct(pack.as_str().to_owned()));
        }
        Ok(Self {
            below,
            pack,
            monthly_cap,
        })
    }

    pub fn pack(&self) -> ProductId {
        self.pack
    }
}

/// Where auto top-up stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "reason")]
pub enum AutoTopUpState {
    /// Tops up when what is available goes under the mark.
    On,
    /// Chosen, waiting for a card to be saved.
    CardNeeded,
    /// The last top-up failed; a card saved again turns it back on.
    Paused(PauseReason),
    /// Turned off by the user.
    Off,
}

impl AutoTopUpState {
    pub fn as_str(self) -> &'static str {
        match self {
            AutoTopUpState::On => "on",
            AutoTopUpState::CardNeeded => "card_needed",
            AutoTopUpState::Paused(_) => "paused",
            AutoTopUpState::Off => "off",
        }
    }

    /// From the stored state and pause reason.
    pub fn parse(state: &str, reason: Option<&str>) -> Result<Self, DomainError> {
        match (state, reason) {
            ("on", None) => Ok(AutoTopUpState::On),
            ("card_needed", None) => Ok(AutoTopUpState::CardNeeded),
            ("off", None) => Ok(AutoTopUpState::Off),
            ("paused", Some(reason)) => Ok(AutoTopUpState::Paused(PauseReason::parse(reason)?)),
            _ => Err(DomainError::UnknownState(format!("{state}/{reason:?}"))),
        }
    }

    pub fn paused_reason(self) -> Option<PauseReason> {
        match self {
            AutoTopUpState::Paused(reason) => Some(reason),
            _ => None,
        }
    }
}

/// Why a top-up failed, and auto top-up paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseReason {
    /// The bank declined the card.
    Declined,
    /// The bank asked for the cardholder, who was not there (strong customer authentication).
    AuthenticationRequired,
}

impl PauseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PauseReason::Declined => "declined",
            PauseReason::AuthenticationRequired => "authentication_required",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        match raw {
            "declined" => Ok(PauseReason::Declined),
            "authentication_required" => Ok(PauseReason::AuthenticationRequired),
            other => Err(DomainError::UnknownState(other.to_owned())),
        }
    }
}

/// The card top-ups pay with: Stripe's payment method, and how the page names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedCard {
    /// Stripe's id of the card: the server's to charge with, never sent to the browser.
    #[serde(default, skip_serializing)]
    pub payment_method: String,
    /// e.g. `Visa •••• 4242`.
    pub label: String,
}

/// A user's auto top-up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoTopUp {
    pub choice: TopUpChoice,
    pub state: AutoTopUpState,
    pub card: Option<SavedCard>,
}

/// How one top-up ended, or that it has not yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "reason")]
pub enum TopUpState {
    Pending,
    /// Paid and credited.
    Succeeded,
    Failed(PauseReason),
    /// It would have passed the month's cap: nothing was charged.
    Capped,
    /// Auto top-up was turned off before it was paid.
    Canceled,
}

/// One top-up, as the page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopUp {
    pub id: i64,
    pub pack: ProductId,
    pub state: TopUpState,
    /// The pack's tokens, once it was paid for.
    pub tokens: Option<i64>,
    pub created_at: Timestamp,
    pub settled_at: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_pack_is_bought_by_top_ups() {
        let n = |n| Tokens::new(n).unwrap();
        assert!(TopUpChoice::new(n(500), ProductId::Medium, n(20_000)).is_ok());
        assert!(TopUpChoice::new(n(500), ProductId::Starter, n(20_000)).is_err());
    }

    #[test]
    fn states_round_trip_and_a_pause_needs_its_reason() {
        for state in [
            AutoTopUpState::On,
            AutoTopUpState::CardNeeded,
            AutoTopUpState::Off,
            AutoTopUpState::Paused(PauseReason::Declined),
            AutoTopUpState::Paused(PauseReason::AuthenticationRequired),
        ] {
            let reason = state.paused_reason().map(PauseReason::as_str);
            assert_eq!(
                AutoTopUpState::parse(state.as_str(), reason).unwrap(),
                state
            );
        }
        assert!(AutoTopUpState::parse("paused", None).is_err());
        assert!(AutoTopUpState::parse("on", Some("declined")).is_err());
    }
}
