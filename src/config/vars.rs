//! Reading variables: the helpers every concern's `from_env` is built on. Empty values count
//! as unset, as `.env` files often leave them; every error names its variable.

use super::{AppEnv, ConfigError, Secret};

/// The variables, through a lookup that tests can replace. Public so the server reads its
/// own settings (sessions, logs, `/metrics`) by the same rules.
pub struct Vars<'a>(&'a dyn Fn(&str) -> Option<String>);

impl<'a> Vars<'a> {
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self(lookup)
    }

    /// A setting's value, trimmed; `None` when unset or empty.
    pub fn var(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// A setting that must be there; `why` says when and what it is.
    pub fn required_var(&self, name: &'static str, why: &str) -> Result<String, ConfigError> {
        self.var(name).ok_or_else(|| ConfigError::new(name, why))
    }

    /// A setting parsed with `FromStr`; `expected` describes a good value.
    pub fn var_parsed<T: std::str::FromStr>(
        &self,
        name: &'static str,
        expected: &str,
    ) -> Result<Option<T>, ConfigError> {
        self.var(name)
            .map(|raw| {
                raw.parse::<T>().map_err(|_| {
                    ConfigError::new(name, format!("expected {expected}, got `{raw}`"))
                })
            })
            .transpose()
    }

    /// A setting that names one of a few values: `choices` holds each value with its
    /// spellings, the first of which the error message offers.
    pub fn var_choice<T: Copy>(
        &self,
        name: &'static str,
        choices: &[(&[&str], T)],
    ) -> Result<Option<T>, ConfigError> {
        let Some(raw) = self.var(name) else {
            return Ok(None);
        };
        if let Some((_, value)) = choices
            .iter()
            .find(|(spellings, _)| spellings.contains(&raw.as_str()))
        {
            return Ok(Some(*value));
        }
        let offered: Vec<String> = choices
            .iter()
            .map(|(spellings, _)| format!("`{}`", spellings[0]))
            .collect();
        Err(ConfigError::new(
            name,
            format!("expected {}, got `{raw}`", offered.join(" or ")),
        ))
    }

    /// A secret setting of at least `min_chars` characters; required in production, where
    /// nothing may fall back to a development default.
    pub fn secret(
        &self,
        name: &'static str,
        min_chars: usize,
        env: AppEnv,
        what: &str,
    ) -> Result<Option<Secret>, ConfigError> {
        match self.var(name) {
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
}

/// An http:// or https:// URL.
pub(super) fn parse_url(var: &'static str, raw: &str) -> Result<url::Url, ConfigError> {
    let url =
        url::Url::parse(raw).map_err(|e| ConfigError::new(var, format!("not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::new(var, "expected an http:// or https:// URL"));
    }
    Ok(url)
}
