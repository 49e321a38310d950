//! Settings, read once at start-up from environment variables (and an optional `.env`).
//!
//! Every setting is validated here, so a bad value stops the server before it serves anything,
//! with a message that names the variable at fault. `.env.example` lists them all.

use std::fmt;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use crate::domain::Tokens;

/// Why the configuration could not be loaded: always names the variable.
#[derive(Debug, thiserror::Error)]
#[error("configuration error in {var}: {problem}")]
pub struct ConfigError {
    pub var: &'static str,
    pub problem: String,
}

impl ConfigError {
    fn new(var: &'static str, problem: impl Into<String>) -> Self {
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

/// The database the server stores everything in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseTarget {
    /// A SQLite file, created when missing: the embedded default.
    Sqlite { path: PathBuf },
    /// A PostgreSQL server: the production shape, shared by several nodes.
    Postgres { url: Secret },
}

impl DatabaseTarget {
    pub fn backend_name(&self) -> &'static str {
        match self {
            DatabaseTarget::Sqlite { .. } => "sqlite",
            DatabaseTarget::Postgres { .. } => "postgres",
        }
    }
}

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

/// Where the billing rate limit keeps its counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitBackend {
    /// In the database: shared by every node.
    Database,
    /// In this process: for a single node.
    Memory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub env: AppEnv,
    pub database: DatabaseTarget,
    /// Folder for the embedded database and other local state.
    pub data_dir: PathBuf,
    /// The public origin of the site, e.g. `https://promptbloom.app`.
    pub site_url: Url,
    /// Where Stripe Checkout sends the user after paying.
    pub billing_return_url: Url,
    /// Where Stripe Checkout sends the user after cancelling.
    pub billing_cancel_url: Url,
    pub stripe: Option<StripeKeys>,
    /// The secret webhooks are signed with: the endpoint's `whsec_...` with live Stripe; with
    /// simulated payments, `STRIPE_WEBHOOK_SECRET`, or `None`: the server makes one on first
    /// start and keeps it in `data_dir` (see `local_secret`).
    pub webhook_secret: Option<Secret>,
    /// The key device cookies are signed with (the same on every node); `None` in development
    /// only: the server makes one in `data_dir`.
    pub device_cookie_key: Option<Secret>,
    /// The bearer token `/metrics` asks for; `None` (development only): open to anyone who
    /// can reach the server.
    pub metrics_token: Option<Secret>,
    pub prices: PriceIds,
    /// Tokens a subscription's free first invoice (a trial) grants, once per customer; `None`
    /// (the default) grants nothing for an invoice nobody paid.
    pub trial_allowance: Option<Tokens>,
    pub rate_limit_backend: RateLimitBackend,
    pub billing_writes_per_minute: NonZeroU32,
    pub session_idle_timeout: Duration,
    /// How many proxies of the site's own stand in front of it (0: clients connect directly).
    /// Rate limits then take the client's address from `X-Forwarded-For`.
    pub trusted_proxies: u8,
    pub log_format: LogFormat,
    /// Create a demo user and admin when the database has no users (development only).
    pub demo_accounts: bool,
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
        let vars = Vars(&lookup);

        let env = match vars.get("APP_ENV").as_deref() {
            None | Some("development") | Some("dev") => AppEnv::Development,
            Some("production") | Some("prod") => AppEnv::Production,
            Some(other) => {
                return Err(ConfigError::new(
                    "APP_ENV",
                    format!("expected `development` or `production`, got `{other}`"),
                ));
            }
        };

        let data_dir = PathBuf::from(vars.get("DATA_DIR").unwrap_or_else(|| "data".into()));
        let database = match vars.get("DATABASE_URL") {
            None => DatabaseTarget::Sqlite {
                path: data_dir.join("billing.sqlite3"),
            },
            Some(url) => parse_database_url(&url)?,
        };

        let site_url = match vars.get("SITE_URL") {
            Some(raw) => parse_url("SITE_URL", &raw)?,
            None if env.is_production() => {
                return Err(ConfigError::new(
                    "SITE_URL",
                    "required in production (the public origin, e.g. https://promptbloom.app)",
                ));
            }
            None => Url::parse("http://127.0.0.1:3000").expect("a valid literal URL"),
        };
        let billing_return_url = match vars.get("BILLING_RETURN_URL") {
            Some(raw) => parse_url("BILLING_RETURN_URL", &raw)?,
            None => site_url
                .join("/app/billing?checkout=success")
                .expect("a valid relative URL"),
        };
        let billing_cancel_url = match vars.get("BILLING_CANCEL_URL") {
            Some(raw) => parse_url("BILLING_CANCEL_URL", &raw)?,
            None => site_url
                .join("/app/billing?canceled=1")
                .expect("a valid relative URL"),
        };

        let stripe = match vars.get("STRIPE_SECRET_KEY") {
            None if env.is_production() => {
                return Err(ConfigError::new(
                    "STRIPE_SECRET_KEY",
                    "required in production: simulated payments are for development only",
                ));
            }
            None => None,
            Some(key) => {
                if !(key.starts_with("sk_") || key.starts_with("rk_")) {
                    return Err(ConfigError::new(
                        "STRIPE_SECRET_KEY",
                        "expected a Stripe secret key starting with sk_ or rk_",
                    ));
                }
                let webhook_secret = vars.get("STRIPE_WEBHOOK_SECRET").ok_or_else(|| {
                    ConfigError::new(
                        "STRIPE_WEBHOOK_SECRET",
                        "required when STRIPE_SECRET_KEY is set (the endpoint's whsec_... secret)",
                    )
                })?;
                let api_base = vars
                    .get("STRIPE_API_BASE")
                    .map(|raw| parse_url("STRIPE_API_BASE", &raw))
                    .transpose()?;
                Some(StripeKeys {
                    secret_key: Secret::new(key),
                    webhook_secret: Secret::new(webhook_secret),
                    publishable_key: vars.get("STRIPE_PUBLISHABLE_KEY"),
                    api_base,
                })
            }
        };

        let webhook_secret = match &stripe {
            Some(keys) => Some(keys.webhook_secret.clone()),
            None => vars.get("STRIPE_WEBHOOK_SECRET").map(Secret::new),
        };
        let device_cookie_key = vars.secret(
            "DEVICE_COOKIE_KEY",
            32,
            env,
            "the key login device cookies are signed with, the same on every node",
        )?;
        let metrics_token = vars.secret(
            "METRICS_TOKEN",
            24,
            env,
            "the bearer token Prometheus sends to read /metrics",
        )?;

        // Simulated payments use made-up price ids unless told otherwise; real Stripe needs
        // the real ones.
        let price = |var: &'static str, simulated: &str| match vars.get(var) {
            Some(id) => parse_price_id(var, id),
            None if stripe.is_some() => Err(ConfigError::new(
                var,
                "required when STRIPE_SECRET_KEY is set (a price_... id)",
            )),
            None => Ok(simulated.to_owned()),
        };
        let prices = PriceIds {
            tokens_small: price("STRIPE_PRICE_TOKENS_SMALL", "price_sim_tokens_small")?,
            tokens_medium: price("STRIPE_PRICE_TOKENS_MEDIUM", "price_sim_tokens_medium")?,
            tokens_large: price("STRIPE_PRICE_TOKENS_LARGE", "price_sim_tokens_large")?,
            subscription_starter: match vars.get("STRIPE_PRICE_SUBSCRIPTION_STARTER") {
                Some(id) => Some(parse_price_id("STRIPE_PRICE_SUBSCRIPTION_STARTER", id)?),
                None if stripe.is_some() => None,
                None => Some("price_sim_subscription_starter".to_owned()),
            },
        };

        let trial_allowance = match vars.get("TRIAL_TOKENS") {
            None => None,
            Some(raw) => match raw.trim().parse::<i64>().map(Tokens::new) {
                Ok(Ok(tokens)) => Some(tokens),
                Ok(Err(_)) if raw.trim() == "0" => None,
                _ => {
                    return Err(ConfigError::new(
                        "TRIAL_TOKENS",
                        format!("expected a whole number of tokens, 0 to {}", Tokens::MAX),
                    ));
                }
            },
        };

        let rate_limit_backend = match vars.get("RATE_LIMIT_BACKEND").as_deref() {
            None | Some("database") => RateLimitBackend::Database,
            Some("memory") => RateLimitBackend::Memory,
            Some(other) => {
                return Err(ConfigError::new(
                    "RATE_LIMIT_BACKEND",
                    format!("expected `database` or `memory`, got `{other}`"),
                ));
            }
        };
        let billing_writes_per_minute = vars
            .parse::<NonZeroU32>("RATE_LIMIT_PER_MINUTE", "a whole number above zero")?
            .unwrap_or(NonZeroU32::new(5).expect("5 is not zero"));
        let session_idle_minutes = vars
            .parse::<NonZeroU32>(
                "SESSION_IDLE_MINUTES",
                "a whole number of minutes above zero",
            )?
            .map_or(60 * 24, NonZeroU32::get);
        let trusted_proxies = vars
            .parse::<u8>("TRUSTED_PROXIES", "a whole number of proxies, 0 or more")?
            .unwrap_or(0);

        let log_format = match vars.get("LOG_FORMAT").as_deref() {
            None if env.is_production() => LogFormat::Json,
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::new(
                    "LOG_FORMAT",
                    format!("expected `pretty` or `json`, got `{other}`"),
                ));
            }
        };

        let demo_accounts = match vars.get("DEMO_ACCOUNTS").as_deref() {
            None => !env.is_production(),
            Some("true" | "1") if env.is_production() => {
                return Err(ConfigError::new(
                    "DEMO_ACCOUNTS",
                    "demo accounts with published passwords are refused in production",
                ));
            }
            Some("true" | "1") => true,
            Some("false" | "0") => false,
            Some(other) => {
                return Err(ConfigError::new(
                    "DEMO_ACCOUNTS",
                    format!("expected `true` or `false`, got `{other}`"),
                ));
            }
        };

        Ok(Config {
            env,
            database,
            data_dir,
            site_url,
            billing_return_url,
            billing_cancel_url,
            stripe,
            webhook_secret,
            device_cookie_key,
            metrics_token,
            prices,
            trial_allowance,
            rate_limit_backend,
            billing_writes_per_minute,
            session_idle_timeout: Duration::from_secs(u64::from(session_idle_minutes) * 60),
            trusted_proxies,
            log_format,
            demo_accounts,
        })
    }

    /// Whether cookies are marked Secure: in production, and on any site served over https (a
    /// staging site left in development mode still keeps its cookies off plain http).
    pub fn secure_cookies(&self) -> bool {
        self.env.is_production() || self.site_url.scheme() == "https"
    }

    /// True when payments go through the offline Stripe simulator.
    pub fn payments_simulated(&self) -> bool {
        self.stripe.is_none()
    }
}

/// Variable lookup that treats empty values as unset, as `.env` files often leave them.
struct Vars<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Vars<'_> {
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// A secret setting of at least `min_chars` characters; required in production, where
    /// nothing may fall back to a development default.
    fn secret(
        &self,
        name: &'static str,
        min_chars: usize,
        env: AppEnv,
        what: &str,
    ) -> Result<Option<Secret>, ConfigError> {
        match self.get(name) {
            Some(value) if value.chars().count() >= min_chars => Ok(Some(Secret::new(value))),
            Some(_) => Err(ConfigError::new(
                name,
                format!(
                    "{what}: at least {min_chars} random characters (e.g. `openssl rand -hex 32`)"
                ),
            )),
            None if env.is_production() => Err(ConfigError::new(
                name,
                format!("required in production: {what} (e.g. `openssl rand -hex 32`)"),
            )),
            None => Ok(None),
        }
    }

    fn parse<T: std::str::FromStr>(
        &self,
        name: &'static str,
        expected: &str,
    ) -> Result<Option<T>, ConfigError> {
        self.get(name)
            .map(|raw| {
                raw.parse::<T>().map_err(|_| {
                    ConfigError::new(name, format!("expected {expected}, got `{raw}`"))
                })
            })
            .transpose()
    }
}

fn parse_url(var: &'static str, raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw).map_err(|e| ConfigError::new(var, format!("not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::new(var, "expected an http:// or https:// URL"));
    }
    Ok(url)
}

fn parse_database_url(raw: &str) -> Result<DatabaseTarget, ConfigError> {
    const VAR: &str = "DATABASE_URL";
    if let Some(rest) = raw
        .strip_prefix("sqlite://")
        .or_else(|| raw.strip_prefix("sqlite:"))
    {
        let path = rest.split('?').next().unwrap_or_default();
        if path.is_empty() || path == ":memory:" {
            return Err(ConfigError::new(
                VAR,
                "a SQLite URL needs a file path, e.g. sqlite://data/billing.sqlite3",
            ));
        }
        return Ok(DatabaseTarget::Sqlite {
            path: PathBuf::from(path),
        });
    }
    if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
        Url::parse(raw).map_err(|_| ConfigError::new(VAR, "not a valid PostgreSQL URL"))?;
        return Ok(DatabaseTarget::Postgres {
            url: Secret::new(raw),
        });
    }
    Err(ConfigError::new(
        VAR,
        "expected a sqlite:// or postgres:// URL",
    ))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

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
            config.billing_cancel_url.as_str(),
            "http://127.0.0.1:3000/app/billing?canceled=1"
        );
        assert_eq!(config.billing_writes_per_minute.get(), 5);
        assert_eq!(config.rate_limit_backend, RateLimitBackend::Database);
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
        assert_eq!(load(&[]).unwrap().trial_allowance, None);
        assert_eq!(
            load(&[("TRIAL_TOKENS", "0")]).unwrap().trial_allowance,
            None
        );
        assert_eq!(
            load(&[("TRIAL_TOKENS", "500")]).unwrap().trial_allowance,
            Some(Tokens::new(500).unwrap())
        );
        for bad in ["-5", "lots", "1e3", "2000000000"] {
            let err = load(&[("TRIAL_TOKENS", bad)]).unwrap_err();
            assert_eq!(err.var, "TRIAL_TOKENS", "{bad}");
        }
    }

    #[test]
    fn production_needs_its_own_device_cookie_key_and_metrics_token() {
        let production = [
            ("APP_ENV", "production"),
            ("SITE_URL", "https://promptbloom.app"),
            ("STRIPE_SECRET_KEY", "sk_live_123"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_abc"),
            ("STRIPE_PRICE_TOKENS_SMALL", "price_s"),
            ("STRIPE_PRICE_TOKENS_MEDIUM", "price_m"),
            ("STRIPE_PRICE_TOKENS_LARGE", "price_l"),
        ];
        let key = ("DEVICE_COOKIE_KEY", "0123456789abcdef0123456789abcdef");
        let token = ("METRICS_TOKEN", "a-metrics-token-of-some-length");
        let err = load(&production).unwrap_err();
        assert_eq!(err.var, "DEVICE_COOKIE_KEY");
        assert!(err.problem.starts_with("required in production"), "{err}");
        let err = load(&[&production[..], &[key]].concat()).unwrap_err();
        assert_eq!(err.var, "METRICS_TOKEN");

        let config = load(&[&production[..], &[key, token]].concat()).unwrap();
        assert_eq!(config.webhook_secret, Some(Secret::new("whsec_abc")));
        let printed = format!("{config:?}");
        assert!(
            !printed.contains(key.1) && !printed.contains(token.1),
            "{printed}"
        );

        // Development leaves them to the server: made in the data folder, /metrics open.
        let config = load(&[]).unwrap();
        assert_eq!(config.webhook_secret, None);
        assert_eq!(config.device_cookie_key, None);
        assert_eq!(config.metrics_token, None);
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
        assert_eq!(config.prices.subscription_starter, None);
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
            ("SESSION_IDLE_MINUTES", "-1"),
            ("LOG_FORMAT", "xml"),
            ("DEMO_ACCOUNTS", "maybe"),
            ("METRICS_TOKEN", "too-short"),
            ("DEVICE_COOKIE_KEY", "too-short"),
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
}
