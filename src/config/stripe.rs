//! Stripe: the API keys (absent: payments are simulated), the webhook secret, which price is
//! which product, and the trial allowance.

use url::Url;

use super::vars::{Vars, parse_url};
use super::{AppEnv, ConfigError, Secret};
use crate::domain::Tokens;

/// Keys for the real Stripe API. Absent: payments are simulated (never in production).
#[derive(Debug, Clone)]
pub struct StripeKeys {
    pub secret_key: Secret,
    pub webhook_secret: Secret,
    pub publishable_key: Option<String>,
    /// Another API base URL (a Stripe mock server in tests); `None` is Stripe itself.
    pub api_base: Option<Url>,
}

/// Stripe price ids of the catalog. The token amounts they grant live in the catalog, on the
/// server; the ids here only say which Stripe price is which product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceIds {
    pub tokens_small: String,
    pub tokens_medium: String,
    pub tokens_large: String,
    pub subscription_starter: Option<String>,
}

#[derive(Debug, Clone)]
pub struct StripeSettings {
    /// `None`: payments are simulated.
    pub keys: Option<StripeKeys>,
    /// The secret webhooks are signed with: the endpoint's `whsec_...` with live Stripe; with
    /// simulated payments, `STRIPE_WEBHOOK_SECRET`, or `None`: the server makes one on first
    /// start and keeps it in `data_dir` (see `local_secret`).
    pub webhook_secret: Option<Secret>,
    pub prices: PriceIds,
    /// Tokens a subscription's free first invoice (a trial) grants, once per customer; `None`
    /// (the default) grants nothing for an invoice nobody paid.
    pub trial_allowance: Option<Tokens>,
}

/// Whether this build has the simulated Stripe (the `simulator` feature; tests always do).
const SIMULATOR_BUILT: bool = cfg!(any(test, feature = "simulator"));

pub(super) fn from_env(vars: &Vars, env: AppEnv) -> Result<StripeSettings, ConfigError> {
    let keys = keys(vars, env, SIMULATOR_BUILT)?;
    let webhook_secret = match &keys {
        Some(keys) => Some(keys.webhook_secret.clone()),
        None => vars.var("STRIPE_WEBHOOK_SECRET").map(Secret::new),
    };
    Ok(StripeSettings {
        prices: prices(vars, keys.is_some())?,
        keys,
        webhook_secret,
        trial_allowance: trial_allowance(vars)?,
    })
}

fn keys(vars: &Vars, env: AppEnv, simulator: bool) -> Result<Option<StripeKeys>, ConfigError> {
    let Some(key) = vars.var("STRIPE_SECRET_KEY") else {
        if env.is_production() {
            return Err(ConfigError::new(
                "STRIPE_SECRET_KEY",
                "required in production: simulated payments are for development only",
            ));
        }
        if !simulator {
            return Err(ConfigError::new(
                "STRIPE_SECRET_KEY",
                "required: this server was built without the simulated Stripe \
                 (the `simulator` feature), so payments need real Stripe keys",
            ));
        }
        return Ok(None);
    };
    if !(key.starts_with("sk_") || key.starts_with("rk_")) {
        return Err(ConfigError::new(
            "STRIPE_SECRET_KEY",
            "expected a Stripe secret key starting with sk_ or rk_",
        ));
    }
    let webhook_secret = vars.required_var(
        "STRIPE_WEBHOOK_SECRET",
        "required when STRIPE_SECRET_KEY is set (the endpoint's whsec_... secret)",
    )?;
    let api_base = vars
        .var("STRIPE_API_BASE")
        .map(|raw| parse_url("STRIPE_API_BASE", &raw))
        .transpose()?;
    Ok(Some(StripeKeys {
        secret_key: Secret::new(key),
        webhook_secret: Secret::new(webhook_secret),
        publishable_key: vars.var("STRIPE_PUBLISHABLE_KEY"),
        api_base,
    }))
}

/// Simulated payments use made-up price ids unless told otherwise; real Stripe needs the
/// real ones.
fn prices(vars: &Vars, live: bool) -> Result<PriceIds, ConfigError> {
    let price = |var: &'static str, simulated: &str| match vars.var(var) {
        Some(id) => parse_price_id(var, id),
        None if live => Err(ConfigError::new(
            var,
            "required when STRIPE_SECRET_KEY is set (a price_... id)",
        )),
        None => Ok(simulated.to_owned()),
    };
    Ok(PriceIds {
        tokens_small: price("STRIPE_PRICE_TOKENS_SMALL", "price_sim_tokens_small")?,
        tokens_medium: price("STRIPE_PRICE_TOKENS_MEDIUM", "price_sim_tokens_medium")?,
        tokens_large: price("STRIPE_PRICE_TOKENS_LARGE", "price_sim_tokens_large")?,
        subscription_starter: match vars.var("STRIPE_PRICE_SUBSCRIPTION_STARTER") {
            Some(id) => Some(parse_price_id("STRIPE_PRICE_SUBSCRIPTION_STARTER", id)?),
            None if live => None,
            None => Some("price_sim_subscription_starter".to_owned()),
        },
    })
}

fn parse_price_id(var: &'static str, id: String) -> Result<String, ConfigError> {
    if id.starts_with("price_") && id.len() <= 255 && id.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(id)
    } else {
        Err(ConfigError::new(
            var,
            format!("expected a Stripe price id starting with price_, got `{id}`"),
        ))
    }
}

/// `TRIAL_TOKENS`: unset or 0 grants nothing.
fn trial_allowance(vars: &Vars) -> Result<Option<Tokens>, ConfigError> {
    let Some(raw) = vars.var("TRIAL_TOKENS") else {
        return Ok(None);
    };
    match raw.parse::<i64>().map(Tokens::new) {
        Ok(Ok(tokens)) => Ok(Some(tokens)),
        Ok(Err(_)) if raw == "0" => Ok(None),
        _ => Err(ConfigError::new(
            "TRIAL_TOKENS",
            format!("expected a whole number of tokens, 0 to {}", Tokens::MAX),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_without_the_simulator_needs_stripe_keys() {
        let none = |_: &str| None;
        let err = keys(&Vars::new(&none), AppEnv::Development, false).unwrap_err();
        assert_eq!(err.var, "STRIPE_SECRET_KEY");
        assert!(
            err.problem.contains("without the simulated Stripe"),
            "{err}"
        );
        assert!(
            keys(&Vars::new(&none), AppEnv::Development, true)
                .unwrap()
                .is_none()
        );
    }
}
