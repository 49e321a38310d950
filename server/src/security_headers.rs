//! Headers every response carries, so that browsers hold the site to what it means to do:
//! no framing by another site (`frame-ancestors 'none'`, `X-Frame-Options`), no guessing of
//! content types, no full URLs in the `Referer` sent to other sites, and (when the site is
//! served over https) https only from then on.
//!
//! Pages send their own Content-Security-Policy, which allows their scripts by this response's
//! nonce (`app::content_security_policy`). Everything else (JSON, files, errors) gets the
//! strictest policy: it loads nothing.

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use tower_http::set_header::SetResponseHeaderLayer;
use url::Url;

/// The policy of responses that are not pages.
pub const NOTHING_LOADS: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";

/// A year: what browsers (and preload lists) expect of a site that means it.
const HSTS: &str = "max-age=31536000";

pub fn layer<S>(router: Router<S>, site: &Url) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let set = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value))
    };
    let router = router
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(NOTHING_LOADS),
        ))
        .layer(set(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(set(header::X_FRAME_OPTIONS, "DENY"))
        .layer(set(
            header::REFERRER_POLICY,
            "strict-origin-when-cross-origin",
        ));
    // Behind a proxy that terminates TLS the server itself speaks http: the public origin
    // says how browsers reach it.
    if site.scheme() == "https" {
        router.layer(set(header::STRICT_TRANSPORT_SECURITY, HSTS))
    } else {
        router
    }
}
