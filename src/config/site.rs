//! The site's public origin and where Stripe Checkout sends the user back to.

use url::Url;

use super::vars::{Vars, parse_url};
use super::{AppEnv, ConfigError};

#[derive(Debug, Clone)]
pub struct SiteUrls {
    /// The public origin of the site, e.g. `https://promptbloom.app`.
    pub url: Url,
    /// Where Stripe Checkout sends the user after paying.
    pub billing_return_url: Url,
    /// Where Stripe Checkout sends the user after cancelling.
    pub billing_cancel_url: Url,
}

impl SiteUrls {
    /// The billing page, which email notices link to.
    pub fn billing_page(&self) -> Url {
        self.url.join("/app/billing").expect("a valid relative URL")
    }
}

/// `SITE_URL` (required in production), `BILLING_RETURN_URL`, `BILLING_CANCEL_URL`.
pub(super) fn from_env(vars: &Vars, env: AppEnv) -> Result<SiteUrls, ConfigError> {
    let url = match vars.var("SITE_URL") {
        Some(raw) => parse_url("SITE_URL", &raw)?,
        None if env.is_production() => {
            return Err(ConfigError::new(
                "SITE_URL",
                "required in production (the public origin, e.g. https://promptbloom.app)",
            ));
        }
        None => Url::parse("http://127.0.0.1:3000").expect("a valid literal URL"),
    };
    let page = |var: &'static str, default: &str| match vars.var(var) {
        Some(raw) => parse_url(var, &raw),
        None => Ok(url.join(default).expect("a valid relative URL")),
    };
    Ok(SiteUrls {
        billing_return_url: page("BILLING_RETURN_URL", "/app/billing?checkout=success")?,
        billing_cancel_url: page("BILLING_CANCEL_URL", "/app/billing?canceled=1")?,
        url,
    })
}
