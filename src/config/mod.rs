//! Settings, read once at start-up from environment variables (and an optional `.env`).
//!
//! Every setting is validated here, so a bad value stops the server before it serves anything,
//! with a message that names the variable at fault. `.env.example` lists them all. Each
//! concern reads its own variables in its own module ([`database`], [`site`], [`stripe`],
//! [`limits`], [`credits`]), on the helpers of [`Vars`]; what only the HTTP server reads
//! (sessions, logs, `/metrics`) is the server crate's, read by the same helpers.

mod credits;
mod database;
mod limits;
mod site;
mod stripe;
mod vars;

use std::fmt;
use std::path::PathBuf;

pub use credits::CreditSettings;
pub use database::DatabaseTarget;
pub use limits::{LimitSettings, RateLimitBackend};
pub use site::SiteUrls;
pub use stripe::{PriceIds, StripeKeys, StripeSettings};

pub use vars::Vars;

/// Why the configuration could not be loaded: always names the variable.
#[derive(Debug, thiserror::Error)]
#[error("configuration error in {var}: {problem}")]
pub struct ConfigError {
    pub var: &'static str,
    pub problem: String,
}

impl ConfigError {
    pub fn new(var: &'static str, problem: impl Into<String>) -> Self {
        Self {
            var,
            problem: problem.into(),
        }
    }
}

/// Where the server runs. Production refuses development conveniences (simulated payments,
/// seeded demo accounts, insecure cookies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    Development,
    Production,
}

impl AppEnv {
    pub fn is_production(self) -> bool {
        self == AppEnv::Production
    }

    /// `APP_ENV`: `development` (`dev`, the default) or `production` (`prod`).
    pub fn from_env(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(vars
            .var_choice(
                "APP_ENV",
                &[
                    (&["development", "dev"], AppEnv::Development),
                    (&["production", "prod"], AppEnv::Production),
                ],
            )?
            .unwrap_or(AppEnv::Development))
    }
}

/// A value that must never reach a log line or a browser.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub env: AppEnv,
    /// Folder for the embedded database and other local state.
    pub data_dir: PathBuf,
    pub database: DatabaseTarget,
    pub site: SiteUrls,
    pub stripe: StripeSettings,
    pub limits: LimitSettings,
    pub credits: CreditSettings,
}

impl Config {
    /// Reads the process environment, after loading `.env` when one exists.
    pub fn from_env() -> Result<Self, ConfigError> {
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(ConfigError::new(".env", e.to_string())),
        }
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests can pass their own variables.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars::new(&lookup);
        let env = AppEnv::from_env(&vars)?;
        let (data_dir, database) = database::from_env(&vars)?;
        Ok(Config {
            env,
            data_dir,
            database,
            site: site::from_env(&vars, env)?,
            stripe: stripe::from_env(&vars, env)?,
            limits: limits::from_env(&vars)?,
            credits: credits::from_env(&vars)?,
        })
    }

    /// Whether cookies are marked Secure: in production, and on any site served over https (a
    /// staging site left in development mode still keeps its cookies off plain http).
    pub fn secure_cookies(&self) -> bool {
        self.env.is_production() || self.site.url.scheme() == "https"
    }

    /// True when payments go through the offline Stripe simulator.
    pub fn payments_simulated(&self) -> bool {
        self.stripe.keys.is_none()
    }
}

#[cfg(test)]
mod tests;
