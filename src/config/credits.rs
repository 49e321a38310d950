//! When granted tokens expire.

use super::ConfigError;
use super::vars::Vars;
use crate::domain::Tokens;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreditSettings {
    /// How long a pack's tokens last after they are credited; `None`: for ever.
    pub pack_expiry_days: Option<u32>,
    /// What a plan period's unspent tokens keep for one more period; `None`: nothing (they
    /// expire at the period's end).
    pub plan_rollover_cap: Option<Tokens>,
}

impl CreditSettings {
    pub const DEFAULT_PACK_EXPIRY_DAYS: u32 = 365;
}

impl Default for CreditSettings {
    fn default() -> Self {
        Self {
            pack_expiry_days: Some(Self::DEFAULT_PACK_EXPIRY_DAYS),
            plan_rollover_cap: None,
        }
    }
}

/// `PACK_EXPIRY_DAYS` (365; `0` or `never`: packs never expire), `PLAN_ROLLOVER_CAP` (unset
/// or 0: nothing rolls over).
pub(super) fn from_env(vars: &Vars) -> Result<CreditSettings, ConfigError> {
    let pack_expiry_days = match vars.var("PACK_EXPIRY_DAYS").as_deref() {
        None => Some(CreditSettings::DEFAULT_PACK_EXPIRY_DAYS),
        Some("never" | "0") => None,
        Some(raw) => Some(
            raw.parse::<u32>()
                .ok()
                .filter(|d| *d <= 36_500)
                .ok_or_else(|| {
                    ConfigError::new(
                        "PACK_EXPIRY_DAYS",
                        "expected a number of days (1 to 36500), or 0 or never for no expiry",
                    )
                })?,
        ),
    };
    let plan_rollover_cap = match vars.var("PLAN_ROLLOVER_CAP").as_deref() {
        None | Some("0") => None,
        Some(raw) => Some(
            raw.parse::<i64>()
                .ok()
                .and_then(|n| Tokens::new(n).ok())
                .ok_or_else(|| {
                    ConfigError::new(
                        "PLAN_ROLLOVER_CAP",
                        format!("expected a whole number of tokens, 0 to {}", Tokens::MAX),
                    )
                })?,
        ),
    };
    Ok(CreditSettings {
        pack_expiry_days,
        plan_rollover_cap,
    })
}
