//! The frame every page shares: the site header with its navigation and account controls.

use leptos::prelude::*;

use crate::api::auth::{LogOut, SessionUser, who_am_i};
use crate::error::AppError;

/// Who is signed in, loaded once per page and shared by the header and the pages.
#[derive(Clone, Copy)]
pub struct CurrentUser(pub Resource<Result<Option<SessionUser>, AppError>>);

impl CurrentUser {
    /// Loads the user for the page being rendered (on the server: the header and the gates
    /// are not islands).
    pub fn provide() {
        provide_context(CurrentUser(Resource::new_blocking(|| (), |_| who_am_i())));
    }

    pub fn expect() -> Self {
        expect_context()
    }
}

/// Marks the page's `main[data-hydrated]` "true" once the browser's WASM has taken the island
/// that calls this over (effects run only there). The server's HTML says "false". The browser tests
/// wait for it before they rely on anything better than plain HTML.
pub fn mark_hydrated() {
    Effect::new(move |_| {
        #[cfg(feature = "hydrate")]
        if let Ok(Some(main)) = document().query_selector("main[data-hydrated]") {
            let _ = main.set_attribute("data-hydrated", "true");
        }
    });
}

#[component]
pub fn SiteHeader() -> impl IntoView {
    let CurrentUser(user) = CurrentUser::expect();
    view! {
        <header class="site-header">
            <a class="brand" href="/app/billing">
                "PromptBloom"
            </a>
            <nav aria-label="Main">
                <Transition>
                    {move || Suspend::new(async move {
                        match user.await {
                            Ok(Some(user)) => view! { <AccountNav user /> }.into_any(),
                            _ => {
                                view! {
                                    <a href="/login">"Log in"</a>
                                    <a href="/signup">"Sign up"</a>
                                }
                                    .into_any()
                            }
                        }
                    })}
                </Transition>
            </nav>
        </header>
    }
}

#[component]
fn AccountNav(user: SessionUser) -> impl IntoView {
    let log_out = ServerAction::<LogOut>::new();
    view! {
        <a href="/app/billing">"Billing"</a>
        {user.is_admin().then(|| view! { <a href="/admin">"Admin"</a> })}
        <span class="muted account-email">{user.email}</span>
        <ActionForm action=log_out>
            <button type="submit" class="button button-quiet">
                "Log out"
            </button>
        </ActionForm>
    }
}
