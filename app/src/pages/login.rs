//! `/login`: email and password. Works as a plain form before the page is hydrated.

use leptos::prelude::*;

use crate::api::auth::LogIn;
use crate::components::address::query_param;
use crate::components::form_error::{FormError, recall_plain_post_error};
use crate::components::layout::mark_hydrated;
use crate::components::require_user::encode_component;

#[component]
pub fn LoginPage() -> impl IntoView {
    view! { <LoginForm /> }
}

/// The page itself, hydrated: the form shows its errors without a reload.
#[cfg_attr(feature = "lazy-islands", island(lazy))]
#[cfg_attr(not(feature = "lazy-islands"), island)]
fn LoginForm() -> impl IntoView {
    mark_hydrated();
    recall_plain_post_error();
    let next = query_param("next").unwrap_or_default();
    let log_in = ServerAction::<LogIn>::new();
    let next = StoredValue::new(next);
    let next = move || next.get_value();
    let signup_href = move || match next() {
        next if next.is_empty() => "/signup".to_owned(),
        next => format!("/signup?next={}", encode_component(&next)),
    };
    view! {
        <main class="page page-narrow" data-hydrated="false">
            <h1>"Log in"</h1>
            <section class="card">
                <ActionForm action=log_in attr:class="form">
                    <FormError action=log_in />
                    <div class="field">
                        <label for="login-email">"Email"</label>
                        <input id="login-email" type="email" name="email" autocomplete="email" required />
                    </div>
                    <div class="field">
                        <label for="login-password">"Password"</label>
                        <input
                            id="login-password"
                            type="password"
                            name="password"
                            autocomplete="current-password"
                            required
                        />
                    </div>
                    <input type="hidden" name="next" value=next />
                    <button type="submit" class="button" disabled=move || log_in.pending().get()>
                        "Log in"
                    </button>
                </ActionForm>
            </section>
            <p>"New here? " <a href=signup_href>"Create an account"</a></p>
        </main>
    }
}
