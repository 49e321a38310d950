//! What an island reads from its page's address. On the server the router has it; an island in
//! the browser hydrates without the router, so it reads `location.search` the way the router
//! would (the last value of a name, percent-decoded). Islands read the address rather than take
//! it as props: props travel as JSON in the page, and reading them would bring a JSON parser
//! into the WASM.

/// The address's query parameter `name`, if it has one.
pub fn query_param(name: &str) -> Option<String> {
    #[cfg(feature = "ssr")]
    {
        use leptos::prelude::WithUntracked;
        leptos_router::hooks::use_query_map().with_untracked(|query| query.get(name))
    }
    #[cfg(all(feature = "hydrate", not(feature = "ssr")))]
    {
        let search = leptos::prelude::window()
            .location()
            .search()
            .unwrap_or_default();
        let (_, value) = search
            .trim_start_matches('?')
            .split('&')
            .rev()
            .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
            .find(|(key, _)| *key == name)?;
        Some(
            web_sys::js_sys::decode_uri_component(value)
                .map(String::from)
                .unwrap_or_else(|_| value.to_owned()),
        )
    }
    #[cfg(not(any(feature = "ssr", feature = "hydrate")))]
    {
        let _ = name;
        None
    }
}
