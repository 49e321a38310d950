//! What the HTTP server runs on: the billing settings every process reads
//! ([`billing::config::Config`]) and those only the server reads (sessions, device cookies,
//! `/metrics`, logs, the demo accounts it seeds), read by the same rules and helpers.

use std::num::NonZeroU32;
use std::time::Duration;

use billing::config::{Config, ConfigError, Secret, Vars};

use crate::mail::settings::MailSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub session_idle_timeout: Duration,
    /// The key device cookies are signed with (the same on every node); `None` in development
    /// only: the server makes one in `data_dir`.
    pub device_cookie_key: Option<Secret>,
    /// The bearer token `/metrics` asks for; `None` (development only): open to anyone who
    /// can reach the server.
    pub metrics_token: Option<Secret>,
    pub log_format: LogFormat,
    /// Create a demo user and admin when the database has no users (development only).
    pub demo_accounts: bool,
    /// Where email notices go, and from whom.
    pub mail: MailSettings,
}

/// Everything a serving process is set up with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub billing: Config,
    pub server: ServerSettings,
}

impl Settings {
    /// Reads the process environment, after loading `.env` when one exists.
    pub fn from_env() -> Result<Self, ConfigError> {
        // Loads `.env` into the environment first.
        let billing = Config::from_env()?;
        let lookup = |name: &str| std::env::var(name).ok();
        let server = ServerSettings::read(&Vars::new(&lookup), &billing)?;
        Ok(Self { billing, server })
    }

    /// Reads settings through `lookup`, so tests can pass their own variables.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let billing = Config::from_lookup(&lookup)?;
        let server = ServerSettings::read(&Vars::new(&lookup), &billing)?;
        Ok(Self { billing, server })
    }
}

impl ServerSettings {
    fn read(vars: &Vars, billing: &Config) -> Result<Self, ConfigError> {
        let env = billing.env;
        let session_idle_minutes = vars
            .var_parsed::<NonZeroU32>(
                "SESSION_IDLE_MINUTES",
                "a whole number of minutes above zero",
            )?
            .map_or(60 * 24, NonZeroU32::get);
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
        let log_format = vars
            .var_choice(
                "LOG_FORMAT",
                &[
                    (&["pretty"], LogFormat::Pretty),
                    (&["json"], LogFormat::Json),
                ],
            )?
            .unwrap_or(if env.is_production() {
                LogFormat::Json
            } else {
                LogFormat::Pretty
            });
        let demo_accounts = vars
            .var_choice(
                "DEMO_ACCOUNTS",
                &[(&["true", "1"], true), (&["false", "0"], false)],
            )?
            .unwrap_or(!env.is_production());
        if demo_accounts && env.is_production() {
            return Err(ConfigError::new(
                "DEMO_ACCOUNTS",
                "demo accounts with published passwords are refused in production",
            ));
        }
        Ok(ServerSettings {
            session_idle_timeout: Duration::from_secs(u64::from(session_idle_minutes) * 60),
            device_cookie_key,
            metrics_token,
            log_format,
            demo_accounts,
            mail: MailSettings::read(vars, env, &billing.data_dir)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use billing::testing::PRODUCTION_SETTINGS;

    use super::*;
    use crate::mail::settings::{MailTransport, SmtpTls};

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let vars: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn development_needs_none_of_them() {
        let settings = load(&[]).unwrap();
        assert_eq!(settings.server.device_cookie_key, None);
        assert_eq!(settings.server.metrics_token, None);
        assert_eq!(settings.server.log_format, LogFormat::Pretty);
        assert!(settings.server.demo_accounts);
        assert_eq!(
            settings.server.session_idle_timeout,
            Duration::from_secs(86_400)
        );
        assert!(
            !load(&[("DEMO_ACCOUNTS", "0")])
                .unwrap()
                .server
                .demo_accounts
        );
    }

    #[test]
    fn production_needs_its_own_device_cookie_key_and_metrics_token() {
        let key = ("DEVICE_COOKIE_KEY", "0123456789abcdef0123456789abcdef");
        let token = ("METRICS_TOKEN", "a-metrics-token-of-some-length");
        let err = load(&PRODUCTION_SETTINGS).unwrap_err();
        assert_eq!(err.var, "DEVICE_COOKIE_KEY");
        assert!(err.problem.starts_with("required in production"), "{err}");
        let err = load(&[&PRODUCTION_SETTINGS[..], &[key]].concat()).unwrap_err();
        assert_eq!(err.var, "METRICS_TOKEN");
        let err = load(&[&PRODUCTION_SETTINGS[..], &[key, token]].concat()).unwrap_err();
        assert_eq!(err.var, "MAIL_FROM");
        let from = ("MAIL_FROM", "PromptBloom <billing@promptbloom.app>");
        let err = load(&[&PRODUCTION_SETTINGS[..], &[key, token, from]].concat()).unwrap_err();
        assert_eq!(err.var, "SMTP_HOST");
        assert!(err.problem.starts_with("required in production"), "{err}");

        let smtp = [key, token, from, ("SMTP_HOST", "smtp.example.com")];
        let settings = load(&[&PRODUCTION_SETTINGS[..], &smtp].concat()).unwrap();
        assert_eq!(settings.server.log_format, LogFormat::Json);
        assert!(!settings.server.demo_accounts);
        let printed = format!("{settings:?}");
        assert!(
            !printed.contains(key.1) && !printed.contains(token.1),
            "{printed}"
        );

        let demo = [
            key,
            token,
            from,
            ("SMTP_HOST", "smtp.example.com"),
            ("DEMO_ACCOUNTS", "1"),
        ];
        let err = load(&[&PRODUCTION_SETTINGS[..], &demo].concat()).unwrap_err();
        assert_eq!(err.var, "DEMO_ACCOUNTS");
    }

    #[test]
    fn mail_goes_to_a_folder_in_development_and_through_smtp_when_one_is_set() {
        let settings = load(&[("DATA_DIR", "/srv/billing")]).unwrap().server.mail;
        assert_eq!(
            settings.from.to_string(),
            "PromptBloom Billing <billing@localhost>"
        );
        assert!(matches!(
            settings.transport,
            MailTransport::Folder(ref dir) if dir == std::path::Path::new("/srv/billing/mailbox")
        ));

        let smtp = |pairs: &[(&str, &str)]| match load(pairs).unwrap().server.mail.transport {
            MailTransport::Smtp(smtp) => smtp,
            MailTransport::Folder(_) => panic!("SMTP_HOST is set"),
        };
        let plain = smtp(&[("SMTP_HOST", "mail.example.com")]);
        assert_eq!((plain.port, plain.tls), (587, SmtpTls::StartTls));
        assert!(plain.credentials.is_none());
        let implicit = smtp(&[("SMTP_HOST", "mail.example.com"), ("SMTP_TLS", "tls")]);
        assert_eq!((implicit.port, implicit.tls), (465, SmtpTls::Implicit));
        let password = "a-password-nobody-prints";
        let login = [
            ("SMTP_HOST", "127.0.0.1"),
            ("SMTP_PORT", "2525"),
            ("SMTP_TLS", "none"),
            ("SMTP_USERNAME", "billing"),
            ("SMTP_PASSWORD", password),
        ];
        let local = smtp(&login);
        assert_eq!((local.port, local.tls), (2525, SmtpTls::None));
        assert_eq!(local.credentials.as_ref().unwrap().0, "billing");
        let printed = format!("{:?}", load(&login).unwrap());
        assert!(!printed.contains(password), "{printed}");
        let err = load(&[("SMTP_HOST", "mail.example.com"), ("SMTP_TLS", "ssl")]).unwrap_err();
        assert_eq!(err.var, "SMTP_TLS");
        assert_eq!(
            err.problem,
            "expected `starttls` or `tls` or `none`, got `ssl`"
        );
        let err = load(&[("SMTP_HOST", "mail.example.com"), ("SMTP_USERNAME", "b")]).unwrap_err();
        assert_eq!(err.var, "SMTP_PASSWORD");
    }

    #[test]
    fn production_mail_is_sent_in_clear_text_only_to_this_machine() {
        let base = [
            ("DEVICE_COOKIE_KEY", "0123456789abcdef0123456789abcdef"),
            ("METRICS_TOKEN", "a-metrics-token-of-some-length"),
            ("MAIL_FROM", "billing@promptbloom.app"),
            ("SMTP_TLS", "none"),
        ];
        let with = |host| [&PRODUCTION_SETTINGS[..], &base, &[("SMTP_HOST", host)]].concat();
        let err = load(&with("smtp.example.com")).unwrap_err();
        assert_eq!(err.var, "SMTP_TLS");
        assert!(err.problem.contains("clear text"), "{err}");
        assert!(load(&with("localhost")).is_ok());
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value, problem) in [
            (
                "SESSION_IDLE_MINUTES",
                "-1",
                "expected a whole number of minutes above zero, got `-1`",
            ),
            (
                "LOG_FORMAT",
                "xml",
                "expected `pretty` or `json`, got `xml`",
            ),
            (
                "DEMO_ACCOUNTS",
                "maybe",
                "expected `true` or `false`, got `maybe`",
            ),
            (
                "METRICS_TOKEN",
                "too-short",
                "the bearer token Prometheus sends to read /metrics: at least 24 random \
                 characters (e.g. `openssl rand -hex 32`)",
            ),
            (
                "MAIL_FROM",
                "billing at example",
                "not an address like `Name <a@b.c>` (Invalid input)",
            ),
            (
                "DEVICE_COOKIE_KEY",
                "too-short",
                "the key login device cookies are signed with, the same on every node: at \
                 least 32 random characters (e.g. `openssl rand -hex 32`)",
            ),
        ] {
            let err = load(&[(var, value)]).unwrap_err();
            assert_eq!(err.var, var, "{var}={value} gave {err}");
            assert_eq!(err.problem, problem);
        }
    }
}
