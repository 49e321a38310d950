//! `RequireUser`: renders its children for a signed-in user and sends anyone else to log in
//! (a 302 from the server, which alone renders it: it is not an island), then back here.

use std::sync::Arc;

use leptos::prelude::*;
use leptos_router::hooks::use_location;

use crate::api::auth::SessionUser;
use crate::components::layout::CurrentUser;
use crate::error::AppError;

#[component]
pub fn RequireUser<V>(
    /// What the signed-in user sees.
    children: impl Fn(SessionUser) -> V + Send + Sync + 'static,
    /// Only admins may see the children; anyone else gets a 403 page.
    #[prop(optional)]
    admin: bool,
) -> impl IntoView
where
    V: IntoView + 'static,
{
    let CurrentUser(user) = CurrentUser::expect();
    let location = use_location();
    let children = Arc::new(children);
    // Taken now: the reactive context is gone once the async block below has awaited.
    let forbidden = forbidden_status();
    let to_login = login_redirect();
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || {
                let children = children.clone();
                let forbidden = forbidden.clone();
                let to_login = to_login.clone();
                let here = here(&location);
                Suspend::new(async move {
                    match user.await {
                        Ok(Some(user)) if admin && !user.is_admin() => {
                            forbidden();
                            view! {
                                <section class="card" role="alert">
                                    <h2>"Admins only"</h2>
                                    <p>"You do not have permission to see this page."</p>
                                    <p><a href="/app/billing">"Go to billing"</a></p>
                                </section>
                            }
                                .into_any()
                        }
                        Ok(Some(user)) => children(user).into_any(),
                        Ok(None) | Err(AppError::Unauthorized) => {
                            let path = format!("/login?next={}", encode_component(&here));
                            to_login(&path);
                            view! {
                                <p>
                                    <a href=path>"Log in to continue."</a>
                                </p>
                            }
                                .into_any()
                        }
                        Err(error) => {
                            view! { <p class="error" role="alert">{error.to_string()}</p> }
                                .into_any()
                        }
                    }
                })
            }}
        </Suspense>
    }
}

/// The current path and query, to come back to after logging in.
fn here(location: &leptos_router::location::Location) -> String {
    let path = location.pathname.get_untracked();
    let search = location.search.get_untracked();
    let query = search.trim_start_matches('?');
    if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    }
}

/// Sends the visitor to `path` with a 302. The server renders this part of the page alone (it is
/// not an island), so the browser never runs it.
fn login_redirect() -> impl Fn(&str) + Clone + Send + Sync + 'static {
    #[cfg(feature = "ssr")]
    let response = use_context::<leptos_axum::ResponseOptions>();
    move |path: &str| {
        #[cfg(feature = "ssr")]
        if let (Some(response), Ok(location)) = (&response, http::HeaderValue::from_str(path)) {
            response.set_status(http::StatusCode::FOUND);
            response.insert_header(http::header::LOCATION, location);
        }
        #[cfg(not(feature = "ssr"))]
        let _ = path;
    }
}

/// Sends a visitor without a session to log in (and back here), rendering nothing for a
/// signed-in user. Unlike [`RequireUser`] it leaves the page's content to the page, so that
/// the content's data loads are created in the same order on the server and in the browser.
#[component]
pub fn LoginGate() -> impl IntoView {
    let CurrentUser(user) = CurrentUser::expect();
    let location = use_location();
    let to_login = login_redirect();
    view! {
        <Suspense>
            {move || {
                let to_login = to_login.clone();
                let here = here(&location);
                Suspend::new(async move {
                    match user.await {
                        Ok(Some(_)) => ().into_any(),
                        _ => {
                            let path = format!("/login?next={}", encode_component(&here));
                            to_login(&path);
                            view! {
                                <p class="banner banner-info">
                                    <a href=path>"Log in to continue."</a>
                                </p>
                            }
                                .into_any()
                        }
                    }
                })
            }}
        </Suspense>
    }
}

/// Sets a 403 on the server's response (a no-op in the browser).
fn forbidden_status() -> impl Fn() + Clone + Send + Sync + 'static {
    #[cfg(feature = "ssr")]
    let response = use_context::<leptos_axum::ResponseOptions>();
    move || {
        #[cfg(feature = "ssr")]
        if let Some(response) = &response {
            response.set_status(http::StatusCode::FORBIDDEN);
        }
    }
}

/// Percent-encodes everything but unreserved characters, for a URL query value.
pub fn encode_component(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::encode_component;

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode_component("/app/billing"), "/app/billing");
        assert_eq!(
            encode_component("/admin?q=a b&x=é"),
            "/admin%3Fq%3Da%20b%26x%3D%C3%A9"
        );
    }
}
