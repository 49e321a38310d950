//! The Content-Security-Policy of the pages: scripts run only from this site's files or with
//! this response's nonce, which Leptos puts on every inline script it writes (the hydration
//! script, the streamed resources, and `cargo leptos watch`'s reload script); WebAssembly may
//! be compiled; styles come from the stylesheet; nothing may frame the page.
//!
//! Leptos makes a fresh nonce for each response (`leptos_axum` provides it before rendering);
//! the shell sends the policy naming it. Other responses get a stricter one from the server.

/// The policy for a page whose inline scripts carry `nonce`. `reload_port`: the port of
/// `cargo leptos watch`'s live-reload socket, in development only.
pub fn page_policy(nonce: &str, reload_port: Option<u32>) -> String {
    let mut connect = "connect-src 'self'".to_owned();
    if let Some(port) = reload_port {
        // The reload script connects to the page's own host name, on the watcher's port.
        connect.push_str(&format!(" ws://*:{port} wss://*:{port}"));
    }
    [
        "default-src 'self'",
        &format!("script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'"),
        "style-src 'self'",
        &connect,
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
    .join("; ")
}

/// Sends this page's policy with the response being rendered (server side only).
#[cfg(feature = "ssr")]
pub fn send(options: &leptos::prelude::LeptosOptions) {
    use leptos::prelude::use_context;

    let Some(response) = use_context::<leptos_axum::ResponseOptions>() else {
        return; // not rendering a response (a test of a component, say)
    };
    let Some(nonce) = leptos::nonce::use_nonce() else {
        // The page would then go out under the server's "nothing loads" policy.
        tracing::error!("no nonce to render a page with: its scripts will not run");
        return;
    };
    let watching = std::env::var_os("LEPTOS_WATCH").is_some();
    let reload_port = watching.then(|| options.reload_external_port.unwrap_or(options.reload_port));
    match http::HeaderValue::from_str(&page_policy(&nonce, reload_port)) {
        Ok(policy) => response.insert_header(http::header::CONTENT_SECURITY_POLICY, policy),
        Err(error) => tracing::error!(%error, "the page's policy is not a header value"),
    }
}

#[cfg(test)]
mod tests {
    use super::page_policy;

    #[test]
    fn scripts_need_the_nonce_and_nothing_inline_is_allowed_otherwise() {
        let policy = page_policy("n0nce", None);
        assert!(
            policy.contains("script-src 'self' 'nonce-n0nce' 'wasm-unsafe-eval'"),
            "{policy}"
        );
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        assert!(
            !policy.contains("ws:"),
            "no socket outside development: {policy}"
        );
    }

    #[test]
    fn watch_mode_may_open_its_reload_socket() {
        let policy = page_policy("n0nce", Some(3001));
        assert!(
            policy.contains("connect-src 'self' ws://*:3001 wss://*:3001"),
            "{policy}"
        );
    }
}
