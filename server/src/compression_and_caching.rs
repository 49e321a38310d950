//! How answers travel: compressed when the browser accepts it, and with what a browser or a
//! shared cache may keep.
//!
//! - **Compression.** Pages, JSON and CSV are compressed as they are sent (brotli, else gzip).
//!   The front end's files are compressed once, at build time (`scripts/release` builds with
//!   cargo-leptos `--precompress`, `scripts/test` compresses its debug build): the site folder
//!   holds `billing.<hash>.wasm.br` beside the file, and it is sent as it is. A WASM file
//!   without one is sent uncompressed (development: loopback is fast, compressing is not). Server-sent events are never compressed (a compressor holds
//!   bytes back until it has enough, and a balance change must arrive at once), nor are images.
//! - **Caching.** The front end's files carry a hash of their contents in their names
//!   (cargo-leptos `hash-files`): a new build is a new name, so a browser keeps them a year and
//!   never asks again. Pages show one person's balance: only their browser may keep them, and
//!   it asks again each time (`private, no-cache`). API answers, streams and downloads are not
//!   kept at all (`no-store`). The site's other files (its icon) may be kept an hour; a
//!   front-end file without a hash (a build without hashing) is asked for again each time.
//!   An answer that says for itself (the balance stream's `no-cache`) keeps its word.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::CompressionLevel;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, NotForContentType, Predicate};

/// Brotli's quality for answers compressed as they go: 4 of 11 makes a page about as small as
/// gzip's best in a fraction of the time (11 is for files compressed once, at build time).
const ON_THE_FLY_QUALITY: i32 = 4;

/// Where the front end's files are served from: `/pkg/` (`LEPTOS_SITE_PKG_DIR`).
#[derive(Clone)]
pub struct FrontEndFiles {
    prefix: String,
}

impl FrontEndFiles {
    pub fn at(pkg_dir: &str) -> Self {
        Self {
            prefix: format!("/{}/", pkg_dir.trim_matches('/')),
        }
    }

    /// The file's name inside the front end's folder, if the path is there.
    fn file<'a>(&self, path: &'a str) -> Option<&'a str> {
        path.strip_prefix(&self.prefix)
    }

    /// A file whose name cargo-leptos made from its contents: `<name>.<hash>.<extension>`,
    /// the hash 22 characters of URL-safe base64 (an MD5). Not the lazy islands' loader
    /// (`__wasm_split.<hash>.js`): it names the chunks, and cargo-leptos may keep its name when
    /// only they change (cargo-leptos#658).
    fn is_hashed(&self, path: &str) -> bool {
        let Some(file) = self.file(path) else {
            return false;
        };
        let mut parts = file.rsplit('.');
        let (Some(_extension), Some(hash), Some(name)) = (parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        !name.is_empty()
            && name != "__wasm_split"
            && !file.contains('/')
            && hash.len() == 22
            && hash
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }
}

/// What an answer lets caches do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caching {
    /// A front-end file named by its contents.
    Immutable,
    /// A front-end file without a hash in its name (a build without `hash-files`): asked
    /// again each time, or a new build would meet an old WASM.
    Revalidate,
    /// One of the site's own files without a hash in its name (the icon).
    AnHour,
    /// A page: the viewer's browser only, asked again each time.
    Private,
    /// API answers, downloads and anything else.
    NoStore,
}

impl Caching {
    fn of(files: &FrontEndFiles, path: &str, response: &Response) -> Self {
        // A 304's headers renew what the browser keeps: the same rule as the answer it renews.
        let status = response.status();
        let success = status.is_success() || status == StatusCode::NOT_MODIFIED;
        let is_html = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("text/html"));
        if path.starts_with("/api/") {
            Caching::NoStore
        } else if success && files.is_hashed(path) {
            Caching::Immutable
        } else if success && files.file(path).is_some() {
            Caching::Revalidate
        } else if is_html {
            Caching::Private
        } else if success && response.headers().contains_key(header::LAST_MODIFIED) {
            // Only the site folder's files say when they last changed.
            Caching::AnHour
        } else {
            Caching::NoStore
        }
    }

    /// Kept by a cache, so it must be kept per encoding (a `.br` file for a browser that takes
    /// brotli, the plain one for one that does not).
    fn is_shared(self) -> bool {
        matches!(
            self,
            Caching::Immutable | Caching::Revalidate | Caching::AnHour
        )
    }

    fn header(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Caching::Immutable => "public, max-age=31536000, immutable",
            Caching::Revalidate => "public, no-cache",
            Caching::AnHour => "public, max-age=3600",
            Caching::Private => "private, no-cache",
            Caching::NoStore => "no-store",
        })
    }
}

/// Sets `Cache-Control` on every answer that has none.
async fn cache_control(
    State(files): State<FrontEndFiles>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let mut response = next.run(request).await;
    if !response.headers().contains_key(header::CACHE_CONTROL) {
        let caching = Caching::of(&files, &path, &response);
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, caching.header());
        if caching.is_shared() && !headers.contains_key(header::VARY) {
            headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        }
    }
    response
}

pub fn layer(router: Router, files: FrontEndFiles) -> Router {
    router
        .layer(axum::middleware::from_fn_with_state(files, cache_control))
        // Its default rules leave out server-sent events, images, gRPC and tiny bodies, and
        // anything already compressed (a precompressed file). A WASM file is compressed at
        // build time or not at all: a debug build's 10 MiB take brotli two seconds a request.
        .layer(
            CompressionLayer::new()
                .br(true)
                .gzip(true)
                .quality(CompressionLevel::Precise(ON_THE_FLY_QUALITY))
                .compress_when(
                    DefaultPredicate::new().and(NotForContentType::const_new("application/wasm")),
                ),
        )
}

#[cfg(test)]
mod tests {
    use axum::body::Body;

    use super::*;

    fn answer(content_type: &str, status: StatusCode) -> Response {
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::empty())
            .unwrap()
    }

    #[test]
    fn only_front_end_files_named_by_their_contents_are_immutable() {
        let files = FrontEndFiles::at("pkg");
        assert!(files.is_hashed("/pkg/billing.ZDnEBm7ThC5VRLnTRmL8Zw.wasm"));
        assert!(files.is_hashed("/pkg/billing.a-b_cdefghijklmnopqrst.css"));
        // A lazy island's code, and a chunk lazy islands share.
        assert!(files.is_hashed(
            "/pkg/split_admin_tools_loader_1991187029901649519.rLAAdApKZMIM0DwNjue6aA.wasm"
        ));
        assert!(files.is_hashed("/pkg/chunk_4.JOQyX9OPoF0BL9G5XzRnlw.wasm"));
        for path in [
            "/pkg/billing.wasm",
            "/pkg/billing.short.js",
            "/pkg/.ZDnEBm7ThC5VRLnTRmL8Zw.js",
            "/pkg/snippets/x/billing.ZDnEBm7ThC5VRLnTRmL8Zw.js",
            "/pkg/billing.ZDnEBm7ThC5VRLnTRm+8Zw.wasm",
            // The lazy islands' loader: it names the chunks, and keeps its name when only
            // they change (cargo-leptos#658), so it is asked again each time.
            "/pkg/__wasm_split.ZDnEBm7ThC5VRLnTRmL8Zw.js",
            "/favicon.ZDnEBm7ThC5VRLnTRmL8Zw.svg",
            "/app/billing",
        ] {
            assert!(!files.is_hashed(path), "{path}");
        }
    }

    #[test]
    fn pages_are_private_api_answers_are_not_kept_and_missing_files_are_not_immutable() {
        let files = FrontEndFiles::at("/pkg/");
        let hashed = "/pkg/billing.ZDnEBm7ThC5VRLnTRmL8Zw.wasm";
        let (html, wasm, json) = (
            "text/html; charset=utf-8",
            "application/wasm",
            "application/json",
        );
        let (ok, not_modified) = (StatusCode::OK, StatusCode::NOT_MODIFIED);
        for (path, content_type, status, expected) in [
            (hashed, wasm, ok, Caching::Immutable),
            (hashed, wasm, not_modified, Caching::Immutable),
            (hashed, html, StatusCode::NOT_FOUND, Caching::Private),
            ("/app/billing", html, ok, Caching::Private),
            ("/api/tokens/ledger.csv", "text/csv", ok, Caching::NoStore),
            ("/api/tokens/balance", json, ok, Caching::NoStore),
            ("/pkg/billing.wasm", wasm, ok, Caching::Revalidate),
            ("/healthz", json, ok, Caching::NoStore),
        ] {
            let response = answer(content_type, status);
            assert_eq!(
                Caching::of(&files, path, &response),
                expected,
                "{path} {status}"
            );
        }
        let mut icon = answer("image/svg+xml", StatusCode::OK);
        icon.headers_mut().insert(
            header::LAST_MODIFIED,
            HeaderValue::from_static("Tue, 01 Dec 2026 10:00:00 GMT"),
        );
        assert_eq!(Caching::of(&files, "/favicon.svg", &icon), Caching::AnHour);
    }
}
