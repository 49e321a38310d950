//! `LocalTime`: a moment in the viewer's own time zone, with UTC on hover (and in the CSV).
//!
//! The server does not know the viewer's zone, so its HTML says UTC; once the browser has taken
//! the page over, it shows the same moment in the zone and language the browser is set to
//! ("Dec 1, 2026, 3:03 PM GMT+1").

use billing::domain::Timestamp;
use leptos::prelude::*;

#[component]
pub fn LocalTime(at: Timestamp) -> impl IntoView {
    let utc = at.utc_minutes();
    // The server's text at hydration (the two must match), the local one after.
    let shown = RwSignal::new(utc.clone());
    Effect::new(move |_| {
        if let Some(local) = local_minutes(at) {
            shown.set(local);
        }
    });
    view! {
        <time datetime=at.rfc3339() title=utc>
            {shown}
        </time>
    }
}

/// `at` as the browser writes a date and time to the minute, with its zone.
#[cfg(feature = "hydrate")]
fn local_minutes(at: Timestamp) -> Option<String> {
    use leptos::wasm_bindgen::JsValue;
    use web_sys::js_sys::{Array, Date, Function, Intl, Object, Reflect};

    thread_local! {
        // One formatter for the page (making one per row costs more than formatting).
        static FORMAT: Option<Function> = {
            let options = Object::new();
            [
                ("year", "numeric"),
                ("month", "short"),
                ("day", "numeric"),
                ("hour", "numeric"),
                ("minute", "2-digit"),
                ("timeZoneName", "short"),
            ]
            .into_iter()
            .all(|(field, value)| Reflect::set(&options, &field.into(), &value.into()).is_ok())
            // No locales: the browser's own.
            .then(|| Intl::DateTimeFormat::new(&Array::new(), &options).format())
        };
    }
    let date = Date::new(&JsValue::from_f64(at.as_millis() as f64));
    FORMAT.with(|format| {
        format
            .as_ref()?
            .call1(&JsValue::NULL, &date)
            .ok()?
            .as_string()
    })
}

#[cfg(not(feature = "hydrate"))]
fn local_minutes(_at: Timestamp) -> Option<String> {
    None
}
