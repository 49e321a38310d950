//! `/signup`: a new account. Works as a plain form before the page is hydrated.

use leptos::prelude::*;

use crate::api::auth::{EMAIL, PASSWORD, SignUp};
use crate::components::address::query_param;
use crate::components::form_error::{FormError, field_state, recall_plain_post_error};
use crate::components::layout::mark_hydrated;
use crate::components::require_user::encode_component;

#[component]
pub fn SignupPage() -> impl IntoView {
    view! { <SignupForm /> }
}

/// The page itself, hydrated: the form shows its errors without a reload.
#[cfg_attr(feature = "lazy-islands", island(lazy))]
#[cfg_attr(not(feature = "lazy-islands"), island)]
fn SignupForm() -> impl IntoView {
    mark_hydrated();
    recall_plain_post_error();
    let next = query_param("next").unwrap_or_default();
    let sign_up = ServerAction::<SignUp>::new();
    let next = StoredValue::new(next);
    let next = move || next.get_value();
    let login_href = move || match next() {
        next if next.is_empty() => "/login".to_owned(),
        next => format!("/login?next={}", encode_component(&next)),
    };
    let (email_invalid, email_described_by) = field_state(sign_up, EMAIL, "signup-error", None);
    let (password_invalid, password_described_by) = field_state(
        sign_up,
        PASSWORD,
        "signup-error",
        Some("signup-password-hint"),
    );
    view! {
        <main class="page page-narrow" data-hydrated="false">
            <h1>"Create your account"</h1>
            <section class="card">
                <ActionForm action=sign_up attr:class="form">
                    <FormError action=sign_up id="signup-error" />
                    <div class="field">
                        <label for="signup-email">"Email"</label>
                        <input
                            id="signup-email"
                            type="email"
                            name="email"
                            autocomplete="email"
                            aria-invalid=email_invalid
                            aria-describedby=email_described_by
                            required
                        />
                    </div>
                    <div class="field">
                        <label for="signup-password">"Password"</label>
                        <input
                            id="signup-password"
                            type="password"
                            name="password"
                            autocomplete="new-password"
                            minlength="10"
                            aria-invalid=password_invalid
                            aria-describedby=password_described_by
                            required
                        />
                        <p id="signup-password-hint" class="hint">
                            "At least 10 characters. A few unusual words make a strong password."
                        </p>
                    </div>
                    <input type="hidden" name="next" value=next />
                    <button type="submit" class="button" disabled=move || sign_up.pending().get()>
                        "Create account"
                    </button>
                </ActionForm>
            </section>
            <p>"Already have an account? " <a href=login_href>"Log in"</a></p>
        </main>
    }
}
