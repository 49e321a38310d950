//! JSON on the wire, both ways. On the server serde_json writes and reads it; in the browser the
//! browser's own `JSON` does, with serde-wasm-bindgen between its values and Rust's, so the WASM
//! carries no JSON parser or printer of its own (serde_json's code, generic over every type the
//! page read, and twice, from text and from bytes, was a sixth of the billing page's WASM). The
//! JSON is the same either way: JSON clients see no difference.
//!
//! [`WireJson`] is the server functions' output encoding (`output = WireJson`); [`Carried`] is
//! the codec of loads whose answer the server's render carries in the page for hydration.

use leptos::prelude::codee::{Decoder, Encoder};
use leptos::server_fn::codec::Post;
use leptos::server_fn::{Bytes, ContentType, Decodes, Encodes, Format, FormatType};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// JSON that could not be read or written, and why.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct WireError(String);

/// `value` as JSON.
pub fn to_string<T: Serialize>(value: &T) -> Result<String, WireError> {
    #[cfg(feature = "hydrate")]
    {
        let serializer = serde_wasm_bindgen::Serializer::json_compatible();
        let value = value.serialize(&serializer).map_err(browser_error)?;
        web_sys::js_sys::JSON::stringify(&value)
            .map(String::from)
            .map_err(browser_error)
    }
    #[cfg(not(feature = "hydrate"))]
    serde_json::to_string(value).map_err(|e| WireError(e.to_string()))
}

/// `value` as a JSON object, with `field` set to `text` (in place of one of that name).
pub fn to_string_setting<T: Serialize>(
    value: &T,
    field: &str,
    text: &str,
) -> Result<String, WireError> {
    #[cfg(feature = "hydrate")]
    {
        let serializer = serde_wasm_bindgen::Serializer::json_compatible();
        let object = value.serialize(&serializer).map_err(browser_error)?;
        if object.is_object() {
            web_sys::js_sys::Reflect::set(&object, &field.into(), &text.into())
                .map_err(browser_error)?;
        }
        web_sys::js_sys::JSON::stringify(&object)
            .map(String::from)
            .map_err(browser_error)
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let mut object = serde_json::to_value(value).map_err(|e| WireError(e.to_string()))?;
        if let Some(fields) = object.as_object_mut() {
            fields.insert(field.into(), text.into());
        }
        serde_json::to_string(&object).map_err(|e| WireError(e.to_string()))
    }
}

/// What the JSON `text` says, as a `T`.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, WireError> {
    #[cfg(feature = "hydrate")]
    {
        let value = web_sys::js_sys::JSON::parse(text).map_err(browser_error)?;
        serde_wasm_bindgen::from_value(value).map_err(browser_error)
    }
    #[cfg(not(feature = "hydrate"))]
    serde_json::from_str(text).map_err(|e| WireError(e.to_string()))
}

/// [`from_str`] of a body, which must be UTF-8.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    let text = std::str::from_utf8(bytes).map_err(|e| WireError(e.to_string()))?;
    from_str(text)
}

/// Whether `bytes` are a JSON object with a field `name`.
pub fn has_field(bytes: &[u8], name: &str) -> bool {
    #[cfg(feature = "hydrate")]
    {
        std::str::from_utf8(bytes)
            .ok()
            .and_then(|text| web_sys::js_sys::JSON::parse(text).ok())
            .filter(|value| value.is_object())
            .is_some_and(|object| {
                web_sys::js_sys::Reflect::has(&object, &name.into()).unwrap_or(false)
            })
    }
    #[cfg(not(feature = "hydrate"))]
    serde_json::from_slice::<serde_json::Value>(bytes).is_ok_and(|body| body.get(name).is_some())
}

#[cfg(feature = "hydrate")]
fn browser_error(error: impl Into<web_sys::wasm_bindgen::JsValue>) -> WireError {
    use web_sys::wasm_bindgen::JsCast;
    let error = error.into();
    let message = match error.dyn_ref::<web_sys::js_sys::Error>() {
        Some(error) => error.message().into(),
        None => error.as_string().unwrap_or_default(),
    };
    WireError(message)
}

/// A server function's answer as JSON, read in the browser by [`from_slice`].
pub struct WireEncoding;

/// `output = WireJson`: a server function answers JSON.
pub type WireJson = Post<WireEncoding>;

impl ContentType for WireEncoding {
    const CONTENT_TYPE: &'static str = "application/json";
}

impl FormatType for WireEncoding {
    const FORMAT_TYPE: Format = Format::Text;
}

impl<T: Serialize> Encodes<T> for WireEncoding {
    type Error = WireError;

    fn encode(output: &T) -> Result<Bytes, Self::Error> {
        to_string(output).map(Bytes::from)
    }
}

impl<T: DeserializeOwned> Decodes<T> for WireEncoding {
    type Error = WireError;

    fn decode(bytes: Bytes) -> Result<T, Self::Error> {
        from_slice(&bytes)
    }
}

/// The codec of a load the page carries: the server writes its answer into the page, the
/// browser reads it back when it hydrates (`Resource::new_with_options`).
pub struct Carried;

impl<T: Serialize> Encoder<T> for Carried {
    type Error = WireError;
    type Encoded = String;

    fn encode(value: &T) -> Result<String, Self::Error> {
        to_string(value)
    }
}

impl<T: DeserializeOwned> Decoder<T> for Carried {
    type Error = WireError;
    type Encoded = str;

    fn decode(text: &str) -> Result<T, Self::Error> {
        from_str(text)
    }
}
