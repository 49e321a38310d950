//! How often clients may ask, and where the counts are kept.

use std::num::NonZeroU32;

use super::ConfigError;
use super::vars::Vars;

/// Where the rate limits keep their counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitBackend {
    /// In the database: shared by every node.
    Database,
    /// In this process: for a single node.
    Memory,
}

#[derive(Debug, Clone)]
pub struct LimitSettings {
    pub backend: RateLimitBackend,
    pub billing_writes_per_minute: NonZeroU32,
    /// How many proxies of the site's own stand in front of it (0: clients connect directly).
    /// Rate limits then take the client's address from `X-Forwarded-For`.
    pub trusted_proxies: u8,
}

/// `RATE_LIMIT_BACKEND` (database), `RATE_LIMIT_PER_MINUTE` (5), `TRUSTED_PROXIES` (0).
pub(super) fn from_env(vars: &Vars) -> Result<LimitSettings, ConfigError> {
    Ok(LimitSettings {
        backend: vars
            .var_choice(
                "RATE_LIMIT_BACKEND",
                &[
                    (&["database"], RateLimitBackend::Database),
                    (&["memory"], RateLimitBackend::Memory),
                ],
            )?
            .unwrap_or(RateLimitBackend::Database),
        billing_writes_per_minute: vars
            .var_parsed::<NonZeroU32>("RATE_LIMIT_PER_MINUTE", "a whole number above zero")?
            .unwrap_or(NonZeroU32::new(5).expect("5 is not zero")),
        trusted_proxies: vars
            .var_parsed::<u8>("TRUSTED_PROXIES", "a whole number of proxies, 0 or more")?
            .unwrap_or(0),
    })
}
