//! Cross-site request forgery: a state-changing request that a browser sends from another site
//! is refused before it reaches any handler.
//!
//! Browsers say where a request comes from (`Sec-Fetch-Site`, and `Origin` on every POST).
//! A request is allowed when it is a safe method, when the browser calls it `same-origin` or
//! `none` (typed by the user), or when its `Origin` is this site: the same scheme, host and
//! port as the configured `SITE_URL`, or as the `Host` it was sent to under `SITE_URL`'s
//! scheme (`https://host` is another origin than `http://host`). A request with neither header does not come from a browser
//! (curl, a server), so it cannot carry a victim's cookies against their will.
//! The webhook and the service API (consume, batches, holds) carry no cookies (a signature, an
//! API key) and are exempt.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use url::Url;

use app::error::ErrorCode;

use crate::error::ApiError;

/// Paths (and the paths below them) whose callers authenticate without cookies.
const EXEMPT: &[&str] = &[
    "/api/webhooks/stripe",
    "/api/tokens/consume",
    "/api/tokens/holds",
];

fn exempt(path: &str) -> bool {
    EXEMPT.iter().any(|root| {
        path.strip_prefix(root)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

#[derive(Clone)]
pub struct SiteOrigin(pub Url);

pub async fn same_origin_only(
    State(site): State<SiteOrigin>,
    request: Request,
    next: Next,
) -> Response {
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if safe || exempt(request.uri().path()) || is_same_origin(request.headers(), &site.0) {
        return next.run(request).await;
    }
    tracing::warn!(
        path = request.uri().path(),
        origin = ?request.headers().get(header::ORIGIN),
        "refused a cross-site request"
    );
    ApiError::new(
        ErrorCode::CrossSiteRequest,
        "This request came from another site and was refused.",
    )
    .into_response()
}

fn is_same_origin(headers: &HeaderMap, site: &Url) -> bool {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    match header("sec-fetch-site") {
        Some("same-origin" | "none") => return true,
        Some(_) => return false,
        None => {}
    }
    let Some(origin) = header(header::ORIGIN.as_str()) else {
        // Not a browser: nothing to forge.
        return true;
    };
    let Ok(origin) = Url::parse(origin) else {
        return false; // includes `Origin: null` (sandboxed frames, privacy redirects)
    };
    // Origins compare as (scheme, host, port), default ports filled in.
    let sent_to = header(header::HOST.as_str())
        .and_then(|host| Url::parse(&format!("{}://{host}", site.scheme())).ok());
    origin.origin() == site.origin() || sent_to.is_some_and(|url| url.origin() == origin.origin())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_service_routes_and_what_is_below_them_are_exempt_and_nothing_else() {
        for path in [
            "/api/webhooks/stripe",
            "/api/tokens/consume",
            "/api/tokens/consume/batch",
            "/api/tokens/holds",
            "/api/tokens/holds/12/capture",
        ] {
            assert!(exempt(path), "{path}");
        }
        for path in [
            "/api/tokens/consumed",
            "/api/tokens/holdsx",
            "/api/admin/tokens/credit",
            "/api/tokens/consum",
        ] {
            assert!(!exempt(path), "{path}");
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn site() -> Url {
        Url::parse("https://promptbloom.app").unwrap()
    }

    #[test]
    fn same_origin_requests_pass() {
        for pairs in [
            &[("sec-fetch-site", "same-origin")][..],
            &[("sec-fetch-site", "none")],
            &[
                ("origin", "https://10.0.0.7:8080"),
                ("host", "10.0.0.7:8080"),
            ],
            &[
                ("origin", "https://promptbloom.app"),
                ("host", "10.0.0.7:8080"),
            ],
            &[("host", "127.0.0.1:3000")],
        ] {
            assert!(is_same_origin(&headers(pairs), &site()), "{pairs:?}");
        }
    }

    #[test]
    fn cross_site_requests_are_refused() {
        for pairs in [
            &[
                ("sec-fetch-site", "cross-site"),
                ("origin", "https://promptbloom.app"),
            ][..],
            &[("sec-fetch-site", "same-site")],
            &[
                ("origin", "https://evil.example"),
                ("host", "promptbloom.app"),
            ],
            &[
                ("origin", "http://127.0.0.1:3001"),
                ("host", "127.0.0.1:3000"),
            ],
            &[("origin", "null"), ("host", "promptbloom.app")],
            // The site's own host, but over plain http: another origin.
            &[
                ("origin", "http://promptbloom.app"),
                ("host", "promptbloom.app"),
            ],
        ] {
            assert!(!is_same_origin(&headers(pairs), &site()), "{pairs:?}");
        }
    }

    #[test]
    fn the_scheme_host_and_port_must_all_match() {
        let site = Url::parse("http://127.0.0.1:3000").unwrap();
        let host = ("host", "127.0.0.1:3000");
        for (origin, same) in [
            ("http://127.0.0.1:3000", true),
            ("https://127.0.0.1:3000", false),
            ("http://127.0.0.1:3001", false),
            ("http://127.0.0.1", false),
            ("http://localhost:3000", false),
        ] {
            let pairs = [("origin", origin), host];
            assert_eq!(is_same_origin(&headers(&pairs), &site), same, "{origin}");
        }
        // Served at another address than SITE_URL says (a node behind a proxy): the Host it
        // was sent to counts, with the site's scheme.
        let node = ("host", "10.0.0.7:8080");
        assert!(is_same_origin(
            &headers(&[("origin", "http://10.0.0.7:8080"), node]),
            &site
        ));
        assert!(!is_same_origin(
            &headers(&[("origin", "https://10.0.0.7:8080"), node]),
            &site
        ));
        // Default ports are the same origin written either way.
        let plain = Url::parse("http://shop.test").unwrap();
        assert!(is_same_origin(
            &headers(&[("origin", "http://shop.test"), ("host", "shop.test:80")]),
            &plain
        ));
    }
}
