//! The billing settings as every process reads them: defaults, production's demands, and errors that name
//! their variable.

use std::collections::HashMap;
use std::path::PathBuf;

use super::*;
use crate::domain::Tokens;
use crate::testing::PRODUCTION_SETTINGS;

fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let vars: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(|name| vars.get(name).cloned())
}

#[test]
fn the_embedded_default_needs_no_settings() {
    let config = load(&[]).unwrap();
    assert_eq!(config.env, AppEnv::Development);
    assert_eq!(
        config.database,
        DatabaseTarget::Sqlite {
            path: PathBuf::from("data/billing.sqlite3")
        }
    );
    assert!(config.payments_simulated());
    assert_eq!(
        config.site.billing_cancel_url.as_str(),
        "http://127.0.0.1:3000/app/billing?canceled=1"
    );
    assert_eq!(config.limits.billing_writes_per_minute.get(), 5);
    assert_eq!(config.limits.backend, RateLimitBackend::Database);
}

#[test]
fn production_refuses_simulated_payments() {
    let err = load(&[
        ("APP_ENV", "production"),
        ("SITE_URL", "https://promptbloom.app"),
    ])
    .unwrap_err();
    assert_eq!(err.var, "STRIPE_SECRET_KEY");
}

#[test]
fn a_trial_allowance_is_offered_only_when_set() {
    assert_eq!(load(&[]).unwrap().stripe.trial_allowance, None);
    assert_eq!(
        load(&[("TRIAL_TOKENS", "0")])
            .unwrap()
            .stripe
            .trial_allowance,
        None
    );
    assert_eq!(
        load(&[("TRIAL_TOKENS", "500")])
            .unwrap()
            .stripe
            .trial_allowance,
        Some(Tokens::new(500).unwrap())
    );
    for bad in ["-5", "lots", "1e3", "2000000000"] {
        let err = load(&[("TRIAL_TOKENS", bad)]).unwrap_err();
        assert_eq!(err.var, "TRIAL_TOKENS", "{bad}");
    }
}

#[test]
fn production_with_live_stripe_loads_and_keeps_its_secrets_out_of_debug_output() {
    let config = load(&PRODUCTION_SETTINGS).unwrap();
    assert!(config.env.is_production());
    assert_eq!(config.stripe.webhook_secret, Some(Secret::new("whsec_abc")));
    let printed = format!("{config:?}");
    assert!(!printed.contains("whsec_abc"), "{printed}");

    // Development leaves the webhook secret to the server: made in the data folder.
    assert_eq!(load(&[]).unwrap().stripe.webhook_secret, None);
}

#[test]
fn production_requires_the_public_origin() {
    let err = load(&[("APP_ENV", "production")]).unwrap_err();
    assert_eq!(err.var, "SITE_URL");
}

#[test]
fn a_secret_key_needs_its_webhook_secret_and_prices() {
    let err = load(&[("STRIPE_SECRET_KEY", "sk_test_123")]).unwrap_err();
    assert_eq!(err.var, "STRIPE_WEBHOOK_SECRET");

    let err = load(&[
        ("STRIPE_SECRET_KEY", "sk_test_123"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_abc"),
    ])
    .unwrap_err();
    assert_eq!(err.var, "STRIPE_PRICE_TOKENS_SMALL");
}

#[test]
fn live_settings_load_and_keep_secrets_out_of_debug_output() {
    let config = load(&[
        ("STRIPE_SECRET_KEY", "sk_test_123"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_abc"),
        ("STRIPE_PRICE_TOKENS_SMALL", "price_s"),
        ("STRIPE_PRICE_TOKENS_MEDIUM", "price_m"),
        ("STRIPE_PRICE_TOKENS_LARGE", "price_l"),
        ("STRIPE_API_BASE", "http://127.0.0.1:12111"),
        (
            "DATABASE_URL",
            "postgres://billing:hunter2@localhost/billing",
        ),
    ])
    .unwrap();
    assert!(!config.payments_simulated());
    assert_eq!(config.stripe.prices.subscription_starter, None);
    let printed = format!("{config:?}");
    assert!(!printed.contains("sk_test_123"), "{printed}");
    assert!(!printed.contains("whsec_abc"), "{printed}");
    assert!(!printed.contains("hunter2"), "{printed}");
}

#[test]
fn bad_values_name_their_variable() {
    for (var, value) in [
        ("APP_ENV", "staging"),
        ("DATABASE_URL", "mysql://localhost/x"),
        ("DATABASE_URL", "sqlite::memory:"),
        ("SITE_URL", "promptbloom.app"),
        ("STRIPE_SECRET_KEY", "pk_test_123"),
        ("STRIPE_PRICE_TOKENS_SMALL", "prod_123"),
        ("RATE_LIMIT_BACKEND", "redis"),
        ("RATE_LIMIT_PER_MINUTE", "0"),
        ("RATE_LIMIT_PER_MINUTE", "five"),
    ] {
        let err = load(&[(var, value)]).unwrap_err();
        assert_eq!(err.var, var, "{var}={value} gave {err}");
        assert!(err.to_string().contains(var));
    }
}

#[test]
fn empty_values_count_as_unset() {
    let config = load(&[("DATABASE_URL", ""), ("STRIPE_SECRET_KEY", "  ")]).unwrap();
    assert_eq!(config.database.backend_name(), "sqlite");
    assert!(config.payments_simulated());
}

#[test]
fn choices_keep_their_messages() {
    for (var, value, problem) in [
        (
            "APP_ENV",
            "staging",
            "expected `development` or `production`, got `staging`",
        ),
        (
            "RATE_LIMIT_BACKEND",
            "redis",
            "expected `database` or `memory`, got `redis`",
        ),
    ] {
        assert_eq!(load(&[(var, value)]).unwrap_err().problem, problem);
    }
    assert_eq!(load(&[("APP_ENV", "prod")]).unwrap_err().var, "SITE_URL");
    let config = load(&[("APP_ENV", "dev")]).unwrap();
    assert_eq!(config.env, AppEnv::Development);
}

#[test]
fn packs_last_a_year_unless_set_and_plans_roll_nothing_over_unless_set() {
    let credits = |vars: &[(&str, &str)]| load(vars).map(|c| c.credits);
    assert_eq!(credits(&[]).unwrap().pack_expiry_days, Some(365));
    assert_eq!(credits(&[]).unwrap().plan_rollover_cap, None);
    assert_eq!(
        credits(&[("PACK_EXPIRY_DAYS", "30")])
            .unwrap()
            .pack_expiry_days,
        Some(30)
    );
    for never in ["0", "never"] {
        assert_eq!(
            credits(&[("PACK_EXPIRY_DAYS", never)])
                .unwrap()
                .pack_expiry_days,
            None
        );
    }
    assert_eq!(
        credits(&[("PLAN_ROLLOVER_CAP", "2000")])
            .unwrap()
            .plan_rollover_cap,
        Some(Tokens::new(2000).unwrap())
    );
    for bad in ["-1", "a year", "36501"] {
        assert_eq!(
            credits(&[("PACK_EXPIRY_DAYS", bad)]).unwrap_err().var,
            "PACK_EXPIRY_DAYS"
        );
    }
    for bad in ["-1", "lots", "2000000000"] {
        assert_eq!(
            credits(&[("PLAN_ROLLOVER_CAP", bad)]).unwrap_err().var,
            "PLAN_ROLLOVER_CAP"
        );
    }
}
