//! Where email goes: an SMTP server (host, port, TLS, credentials) in production, a mailbox
//! folder of `.eml` files in development when none is set; and who it is from.

use std::path::{Path, PathBuf};

use billing::config::{AppEnv, ConfigError, Secret, Vars};
use lettre::message::Mailbox;

#[derive(Debug, Clone)]
pub struct MailSettings {
    /// `MAIL_FROM`: the sender every notice names, e.g. `PromptBloom <billing@example.com>`.
    pub from: Mailbox,
    pub transport: MailTransport,
}

#[derive(Debug, Clone)]
pub enum MailTransport {
    /// Through an SMTP server.
    Smtp(SmtpSettings),
    /// Kept as `.eml` files in a folder (development, when no SMTP server is set).
    Folder(PathBuf),
}

#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// The login and password, when the server asks for them.
    pub credentials: Option<(String, Secret)>,
}

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// TLS from the first byte (port 465).
    Implicit,
    /// Plain first, then upgraded with STARTTLS, refusing to go on without it (port 587).
    StartTls,
    /// Plain text: only for a relay on this machine (a local mail daemon, the tests' server).
    None,
}

impl SmtpTls {
    fn default_port(self) -> u16 {
        match self {
            SmtpTls::Implicit => 465,
            SmtpTls::StartTls => 587,
            SmtpTls::None => 25,
        }
    }
}

impl MailSettings {
    pub(crate) fn read(vars: &Vars, env: AppEnv, data_dir: &Path) -> Result<Self, ConfigError> {
        let from = match vars.var("MAIL_FROM") {
            Some(raw) => raw.parse::<Mailbox>().map_err(|e| {
                ConfigError::new(
                    "MAIL_FROM",
                    format!("not an address like `Name <a@b.c>` ({e})"),
                )
            })?,
            None if env.is_production() => {
                return Err(ConfigError::new(
                    "MAIL_FROM",
                    "required in production: the sender of email notices, e.g. \
                     `PromptBloom <billing@example.com>`",
                ));
            }
            None => "PromptBloom Billing <billing@localhost>"
                .parse()
                .expect("a valid address"),
        };
        let transport = match vars.var("SMTP_HOST") {
            Some(host) => MailTransport::Smtp(SmtpSettings::read(vars, env, host)?),
            None if env.is_production() => {
                return Err(ConfigError::new(
                    "SMTP_HOST",
                    "required in production: the SMTP server email notices go through",
                ));
            }
            None => MailTransport::Folder(
                vars.var("MAIL_DIR")
                    .map_or_else(|| data_dir.join("mailbox"), PathBuf::from),
            ),
        };
        Ok(MailSettings { from, transport })
    }
}

impl SmtpSettings {
    fn read(vars: &Vars, env: AppEnv, host: String) -> Result<Self, ConfigError> {
        let tls = vars
            .var_choice(
                "SMTP_TLS",
                &[
                    (&["starttls"], SmtpTls::StartTls),
                    (&["tls", "implicit"], SmtpTls::Implicit),
                    (&["none"], SmtpTls::None),
                ],
            )?
            .unwrap_or(SmtpTls::StartTls);
        let local = matches!(host.as_str(), "localhost" | "127.0.0.1" | "::1");
        if tls == SmtpTls::None && env.is_production() && !local {
            return Err(ConfigError::new(
                "SMTP_TLS",
                "`none` sends the password and every notice in clear text: in production \
                 only to a relay on this machine (SMTP_HOST=localhost)",
            ));
        }
        let port = vars
            .var_parsed::<u16>("SMTP_PORT", "a TCP port")?
            .unwrap_or(tls.default_port());
        let credentials = match (vars.var("SMTP_USERNAME"), vars.var("SMTP_PASSWORD")) {
            (Some(user), Some(password)) => Some((user, Secret::new(password))),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "SMTP_PASSWORD",
                    "SMTP_USERNAME is set: the password that goes with it",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "SMTP_USERNAME",
                    "SMTP_PASSWORD is set: the login that goes with it",
                ));
            }
        };
        Ok(SmtpSettings {
            host,
            port,
            tls,
            credentials,
        })
    }
}
