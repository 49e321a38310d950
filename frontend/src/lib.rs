//! The browser's entry point: take over the server-rendered page's islands (the parts that
//! change in place; the rest of the page is the server's HTML).

// The islands (`#[island]` components) are exported by the app crate: linked here.
use app as _;
use wasm_bindgen::prelude::wasm_bindgen;

#[wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_islands();
}
