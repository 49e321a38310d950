//! `FormOrJson`: a server function input that a plain HTML form (urlencoded, no JavaScript)
//! and a JSON client (`Content-Type: application/json`, as the seed's clients send) can both
//! call. The hydrated page sends JSON (written by the browser's own, [`super::wire`]).
//!
//! Rust's orphan rule allows these impls only for this crate's own types, so each server
//! function that takes this input is listed in [`form_or_json!`].

use leptos::server_fn::ContentType;
use leptos::server_fn::codec::Encoding;
use leptos::server_fn::error::{FromServerFnError, IntoAppError, ServerFnErrorErr};
use leptos::server_fn::request::{ClientReq, Req};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub struct FormOrJson;

impl ContentType for FormOrJson {
    const CONTENT_TYPE: &'static str = "application/json";
}

impl Encoding for FormOrJson {
    const METHOD: http::Method = http::Method::POST;
}

/// The browser side: arguments as JSON.
pub fn encode<T, Request, E>(args: &T, path: &str, accepts: &str) -> Result<Request, E>
where
    T: Serialize,
    Request: ClientReq<E>,
    E: FromServerFnError,
{
    let body = super::wire::to_string(args)
        .map_err(|e| ServerFnErrorErr::Serialization(e.to_string()).into_app_error())?;
    Request::try_new_post(path, FormOrJson::CONTENT_TYPE, accepts, body)
}

/// The server side: JSON when the request says so, a urlencoded form otherwise. A field
/// outside `fields` is refused, so a client cannot slip in what the server decides (a price,
/// an amount) and believe it was used. Only the server reads arguments: the browser's build
/// leaves the readers out.
pub async fn decode<T, Request, E>(req: Request, fields: &[&str]) -> Result<T, E>
where
    T: DeserializeOwned,
    Request: Req<E> + Send + 'static,
    E: FromServerFnError,
{
    #[cfg(not(feature = "ssr"))]
    {
        let _ = (req, fields);
        Err(ServerFnErrorErr::Args("arguments are read on the server".into()).into_app_error())
    }
    #[cfg(feature = "ssr")]
    read_on_server(req, fields).await
}

#[cfg(feature = "ssr")]
async fn read_on_server<T, Request, E>(req: Request, fields: &[&str]) -> Result<T, E>
where
    T: DeserializeOwned,
    Request: Req<E> + Send + 'static,
    E: FromServerFnError,
{
    let is_json = req
        .to_content_type()
        .is_some_and(|ct| ct.trim_start().starts_with("application/json"));
    let body = req.try_into_string().await?;
    let invalid = |message: String| ServerFnErrorErr::Args(message).into_app_error();
    if is_json {
        let value: serde_json::Value = if body.trim().is_empty() {
            serde_json::Value::Object(Default::default())
        } else {
            serde_json::from_str(&body).map_err(|e| invalid(format!("not valid JSON: {e}")))?
        };
        if let Some(unknown) = value
            .as_object()
            .and_then(|o| o.keys().find(|k| !fields.contains(&k.as_str())))
        {
            return Err(invalid(format!("unknown field `{unknown}`")));
        }
        serde_json::from_value(value).map_err(|e| invalid(e.to_string()))
    } else {
        let keys: std::collections::BTreeMap<String, serde::de::IgnoredAny> =
            serde_qs::Config::new(5, false)
                .deserialize_str(&body)
                .map_err(|e| invalid(e.to_string()))?;
        if let Some(unknown) = keys.keys().find(|k| !fields.contains(&k.as_str())) {
            return Err(invalid(format!("unknown field `{unknown}`")));
        }
        serde_qs::Config::new(5, false)
            .deserialize_str(&body)
            .map_err(|e| invalid(e.to_string()))
    }
}

/// Lets the listed server functions' argument types travel as [`FormOrJson`], each with the
/// fields it accepts: `form_or_json!(AdminCredit => ["user", "tokens"])`.
macro_rules! form_or_json {
    ($($args:ty => [$($field:literal),* $(,)?]),* $(,)?) => {$(
        impl<E, Request> leptos::server_fn::codec::IntoReq<$crate::api::codec::FormOrJson, Request, E>
            for $args
        where
            Request: leptos::server_fn::request::ClientReq<E>,
            E: leptos::server_fn::error::FromServerFnError,
        {
            fn into_req(self, path: &str, accepts: &str) -> Result<Request, E> {
                $crate::api::codec::encode(&self, path, accepts)
            }
        }

        impl<E, Request> leptos::server_fn::codec::FromReq<$crate::api::codec::FormOrJson, Request, E>
            for $args
        where
            Request: leptos::server_fn::request::Req<E> + Send + 'static,
            E: leptos::server_fn::error::FromServerFnError,
        {
            async fn from_req(req: Request) -> Result<Self, E> {
                $crate::api::codec::decode(req, &[$($field),*]).await
            }
        }
    )*};
}
pub(crate) use form_or_json;
