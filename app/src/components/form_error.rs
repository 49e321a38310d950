//! `FormError`: the error of a form's last submission, announced to screen readers. After a
//! plain (unhydrated) post, the server sends the error back in the URL and it shows the same.

use leptos::prelude::*;
use leptos::server_fn::ServerFn;

use crate::error::AppError;

/// The error of a form's last submission, announced to screen readers.
#[component]
pub fn FormError<S>(action: ServerAction<S>) -> impl IntoView
where
    S: ServerFn<Error = AppError> + Clone + Send + Sync + 'static,
    S::Output: Clone + Send + Sync + 'static,
{
    let message = move || match action.value().get() {
        Some(Err(error)) => Some(error.to_string()),
        _ => None,
    };
    view! {
        <p class="error" role="alert" hidden=move || message().is_none()>
            {message}
        </p>
    }
}
