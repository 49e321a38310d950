//! What travels on the wire: compressed for browsers that accept it (the front end's files as
//! compressed at build time), never for server-sent events, and with what caches may keep.

use std::io::Read;
use std::time::Duration;

use crate::support::{Answer, spawn_app, spawn_app_serving};

/// A name cargo-leptos gives a file from its contents (22 characters of base64, an MD5).
const HASHED_WASM: &str = "billing.ZDnEBm7ThC5VRLnTRmL8Zw.wasm";
const HASHED_CSS: &str = "billing.dXsIMI87Rpt_jrVxjDqqdw.css";

fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(bytes, 4096)
        .read_to_end(&mut out)
        .expect("a brotli body");
    out
}

fn ungzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("a gzip body");
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).expect("compressed");
    encoder.finish().expect("compressed")
}

fn brotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let params = brotli::enc::BrotliEncoderParams::default();
    brotli::BrotliCompress(&mut &bytes[..], &mut out, &params).expect("compressed");
    out
}

fn encoding(answer: &Answer) -> Option<&str> {
    answer.header("content-encoding")
}

#[tokio::test]
async fn pages_and_json_are_compressed_for_browsers_that_accept_it_and_kept_by_nobody_else() {
    let app = spawn_app().await;

    let plain = app.browser().get("/login").await;
    assert_eq!(plain.status, 200);
    assert_eq!(encoding(&plain), None, "not asked for");
    assert!(plain.text.contains("<h1>Log in</h1>"), "{}", plain.text);

    let br = app
        .browser()
        .get("/login")
        .header("accept-encoding", "gzip, deflate, br")
        .await;
    assert_eq!(br.status, 200);
    assert_eq!(encoding(&br), Some("br"));
    assert_eq!(br.header("vary"), Some("accept-encoding"));
    let page = String::from_utf8(unbrotli(&br.bytes)).unwrap();
    assert!(page.contains("<h1>Log in</h1>"), "{page}");
    assert!(br.bytes.len() * 2 < page.len(), "a page compresses well");
    assert_eq!(br.header("cache-control"), Some("private, no-cache"));

    let gzip = app
        .browser()
        .get("/login")
        .header("accept-encoding", "gzip")
        .await;
    assert_eq!(encoding(&gzip), Some("gzip"));
    assert!(
        String::from_utf8(ungzip(&gzip.bytes))
            .unwrap()
            .contains("<h1>Log in</h1>")
    );

    // A user's own answers: compressed too, and stored by no cache at all.
    let ada = app.user("ada").await;
    let me = ada
        .get("/api/auth/me")
        .header("accept-encoding", "br")
        .await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(encoding(&me), Some("br"));
    let me: serde_json::Value = serde_json::from_slice(&unbrotli(&me.bytes)).unwrap();
    assert_eq!(me["email"], "ada@example.com", "{me}");
    let ledger = ada
        .get("/api/tokens/ledger.csv")
        .header("accept-encoding", "gzip")
        .await;
    assert_eq!(ledger.status, 200, "{}", ledger.text);
    assert_eq!(ledger.header("cache-control"), Some("no-store"));
}

#[tokio::test]
async fn the_balance_stream_is_not_compressed_and_its_events_arrive_at_once() {
    let app = spawn_app().await;
    let ada = app.user("ada").await;
    let mut stream = ada
        .get("/api/tokens/stream")
        .header("accept-encoding", "br, gzip")
        .events()
        .await;
    assert_eq!(stream.status, 200);
    assert!(
        !stream.headers.contains_key("content-encoding"),
        "{:?}",
        stream.headers
    );
    assert_eq!(stream.headers["cache-control"], "no-cache");
    let first = stream.next(Duration::from_secs(5)).await.expect("an event");
    assert_eq!(first.name, "balance");
    billing::testing::paid_purchase(&*app.store, ada.me().id, 300, "compressed?").await;
    let changed = stream.next(Duration::from_secs(5)).await.expect("an event");
    assert!(changed.data.contains("300"), "{changed:?}");
}

#[tokio::test]
async fn the_front_ends_files_go_as_compressed_at_build_time_and_hashed_ones_are_kept_a_year() {
    let site = tempfile::tempdir().unwrap();
    let pkg = site.path().join("pkg");
    std::fs::create_dir(&pkg).unwrap();
    // Like a WASM file: repetitive enough to compress.
    let wasm: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    std::fs::write(pkg.join(HASHED_WASM), &wasm).unwrap();
    let precompressed = brotli(&wasm);
    std::fs::write(pkg.join(format!("{HASHED_WASM}.br")), &precompressed).unwrap();
    std::fs::write(
        pkg.join("billing.js"),
        "export function hydrate() {}\n".repeat(10),
    )
    .unwrap();
    std::fs::write(site.path().join("favicon.svg"), "<svg></svg>".repeat(10)).unwrap();
    // A style sheet with both, as `--precompress` leaves it.
    let css = "main { display: grid; }\n".repeat(100);
    std::fs::write(pkg.join(HASHED_CSS), &css).unwrap();
    std::fs::write(pkg.join(format!("{HASHED_CSS}.br")), brotli(css.as_bytes())).unwrap();
    let css_gz = gzip(css.as_bytes());
    std::fs::write(pkg.join(format!("{HASHED_CSS}.gz")), &css_gz).unwrap();
    let app = spawn_app_serving(site.path()).await;
    let browser = app.browser();
    let path = format!("/pkg/{HASHED_WASM}");

    let br = browser
        .get(&path)
        .header("accept-encoding", "gzip, br")
        .await;
    assert_eq!(br.status, 200);
    assert_eq!(encoding(&br), Some("br"));
    assert_eq!(br.header("content-type"), Some("application/wasm"));
    assert_eq!(
        br.bytes, precompressed,
        "the file compressed at build time, as it is"
    );
    assert_eq!(
        br.header("vary"),
        Some("accept-encoding"),
        "a cache keeps each encoding"
    );
    assert_eq!(
        br.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );

    let plain = browser.get(&path).await;
    assert_eq!(encoding(&plain), None);
    assert_eq!(plain.header("vary"), Some("accept-encoding"));
    assert_eq!(plain.bytes, wasm);
    assert_eq!(
        plain.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );

    // No `.gz` beside it: a WASM file is compressed at build time or not at all (a debug
    // build's would take seconds a request).
    let gzip = browser.get(&path).header("accept-encoding", "gzip").await;
    assert_eq!(encoding(&gzip), None);
    assert_eq!(gzip.bytes, wasm);

    // A browser that takes gzip alone gets the `.gz` made at build time.
    let css_path = format!("/pkg/{HASHED_CSS}");
    let gzipped = browser
        .get(&css_path)
        .header("accept-encoding", "gzip")
        .await;
    assert_eq!(gzipped.status, 200);
    assert_eq!(encoding(&gzipped), Some("gzip"));
    assert_eq!(gzipped.bytes, css_gz, "the file compressed at build time");
    assert_eq!(ungzip(&gzipped.bytes), css.as_bytes());
    assert!(
        gzipped
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/css")),
        "{:?}",
        gzipped.header("content-type")
    );
    assert_eq!(
        gzipped.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    let either = browser
        .get(&css_path)
        .header("accept-encoding", "gzip, br")
        .await;
    assert_eq!(encoding(&either), Some("br"), "brotli when both are taken");

    // Without a hash in its name a file may change under it: asked for again each time.
    let js = browser.get("/pkg/billing.js").await;
    assert_eq!(js.status, 200);
    assert_eq!(js.header("cache-control"), Some("public, no-cache"));
    let icon = browser.get("/favicon.svg").await;
    assert_eq!(icon.status, 200);
    assert_eq!(icon.header("cache-control"), Some("public, max-age=3600"));

    // A hashed name that is not there is the site's 404 page, which no one keeps a year.
    let missing = browser
        .get("/pkg/billing.AAAAAAAAAAAAAAAAAAAAAA.wasm")
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("cache-control"), Some("private, no-cache"));
}
