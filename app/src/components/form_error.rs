//! `FormError`: the error of a form's last submission, announced to screen readers. After a
//! plain (unhydrated) post, the server sends the error back in the URL and it shows the same
//! ([`recall_plain_post_error`]).

use leptos::prelude::*;
use leptos::server_fn::ServerFn;

use crate::error::AppError;

/// Starts an island's server actions from the error a plain form post, made before the page
/// hydrated, was sent back with (the address's `__err` and `__path`), as the server's render of
/// the page did: otherwise the browser would build the island without the error the server's HTML
/// shows, and hydration would fail. On the server the router provides it; islands in the browser
/// have no router, so each island that holds server actions calls this first.
pub fn recall_plain_post_error() {
    #[cfg(feature = "hydrate")]
    {
        let search = window().location().search().unwrap_or_default();
        // Each refused post adds its pair to the address it came from, which may hold an
        // earlier one: the last pair is the latest, and the one the server's router reads.
        let last =
            |params: &web_sys::UrlSearchParams, key: &str| params.get_all(key).pop().as_string();
        if let Ok(params) = web_sys::UrlSearchParams::new_with_str(&search)
            && let (Some(err), Some(path)) = (last(&params, "__err"), last(&params, "__path"))
        {
            provide_context(ServerActionError::new(&path, &err));
        }
    }
}

/// The error of a form's last submission, announced to screen readers. A field the error is
/// about names it (`aria-describedby`, [`field_state`]) by its `id`.
#[component]
pub fn FormError<S>(action: ServerAction<S>, #[prop(optional)] id: &'static str) -> impl IntoView
where
    S: ServerFn<Error = AppError> + Clone + Send + Sync + 'static,
    S::Output: Clone + Send + Sync + 'static,
{
    let message = move || match action.value().get() {
        Some(Err(error)) => Some(error.to_string()),
        _ => None,
    };
    view! {
        <p id=(!id.is_empty()).then_some(id) class="error" role="alert" hidden=move || message().is_none()>
            {message}
        </p>
    }
}

/// The ARIA state of the form field named `field`: `aria-invalid` while the last submission's
/// error is about it, and `aria-describedby` naming that error (`error_id`) before the field's
/// own hint (`hint_id`, or none).
pub fn field_state<S>(
    action: ServerAction<S>,
    field: &'static str,
    error_id: &'static str,
    hint_id: Option<&'static str>,
) -> (
    impl Fn() -> Option<&'static str> + Copy + Send + Sync + 'static,
    impl Fn() -> Option<String> + Copy + Send + Sync + 'static,
)
where
    S: ServerFn<Error = AppError> + Clone + Send + Sync + 'static,
    S::Output: Clone + Send + Sync + 'static,
{
    let at_fault = move || {
        action
            .value()
            .with(|value| matches!(value, Some(Err(error)) if error.field() == Some(field)))
    };
    let invalid = move || at_fault().then_some("true");
    let described_by = move || match (at_fault(), hint_id) {
        (true, Some(hint)) => Some(format!("{error_id} {hint}")),
        (true, None) => Some(error_id.to_owned()),
        (false, hint) => hint.map(str::to_owned),
    };
    (invalid, described_by)
}
