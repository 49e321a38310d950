//! The HTML document and the routes.

use leptos::prelude::*;
use leptos_meta::{HashedStylesheet, MetaTags, Title, provide_meta_context};
use leptos_router::components::{Redirect, Route, Router, Routes};
use leptos_router::{SsrMode, path};

use crate::components::layout::{CurrentUser, SiteHeader};
use crate::pages::admin::AdminPage;
use crate::pages::billing::BillingPage;
use crate::pages::login::LoginPage;
use crate::pages::signup::SignupPage;
use crate::pages::statement::StatementPage;

/// The whole document, rendered on the server around [`App`].
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    crate::content_security_policy::send(&options);
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                // `/pkg/billing.<hash>.css`: the name cargo-leptos made from its contents.
                <HashedStylesheet options=options.clone() id="leptos" />
                <AutoReload options=options.clone() />
                <HydrationScripts options islands=true />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();

    view! {
        <Title text="PromptBloom Billing" />
        <Router>
            <Pages />
        </Router>
    }
}

/// The header and the routes, inside the router (the signed-in user is read per page).
#[component]
fn Pages() -> impl IntoView {
    CurrentUser::provide();

    view! {
            <SiteHeader />
            // Pages behind a login render whole before sending (`Async`), so that a visitor
            // without a session gets a real redirect to the login page.
            <Routes fallback=NotFound>
                <Route path=path!("/") view=|| view! { <Redirect path="/app/billing" /> } />
                <Route path=path!("/login") view=LoginPage />
                <Route path=path!("/signup") view=SignupPage />
                <Route path=path!("/app/billing") view=BillingPage ssr=SsrMode::Async />
                <Route path=path!("/app/billing/statement") view=StatementPage ssr=SsrMode::Async />
                <Route path=path!("/admin") view=AdminPage ssr=SsrMode::Async />
            </Routes>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <main class="page">
            <h1>"Page not found"</h1>
            <p><a href="/app/billing">"Go to billing"</a></p>
        </main>
    }
}
