//! What only the HTTP server reads: sessions, device cookies, `/metrics`, logs, and the demo
//! accounts it seeds.

use std::num::NonZeroU32;
use std::time::Duration;

use super::vars::Vars;
use super::{AppEnv, ConfigError, Secret};

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
}

pub(super) fn from_env(vars: &Vars, env: AppEnv) -> Result<ServerSettings, ConfigError> {
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
    })
}
