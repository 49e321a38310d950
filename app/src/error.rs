//! The errors server functions answer with: a sentence for the person, a stable code for
//! programs (the JSON's `error` field), and an HTTP status. Internal failures never carry their
//! cause here: the server logs it and answers [`AppError::Internal`].

use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use leptos::server_fn::{Bytes, ContentType, Decodes, Encodes, Format, FormatType};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum AppError {
    #[error("Please log in to continue.")]
    Unauthorized,
    #[error("Wrong email or password.")]
    WrongCredentials,
    #[error("You do not have permission to do that.")]
    Forbidden,
    #[error("Too many requests. Please wait {retry_after_secs} seconds and try again.")]
    RateLimited { retry_after_secs: u64 },
    #[error("{message}")]
    Invalid { message: String },
    #[error("{message}")]
    Conflict { message: String },
    #[error("{message}")]
    NotFound { message: String },
    #[error("Not enough tokens: the balance is {balance}, {requested} were requested.")]
    InsufficientTokens { balance: i64, requested: i64 },
    #[error("Payments are unavailable right now. Please try again in a few minutes.")]
    PaymentsUnavailable,
    #[error("Something went wrong on our side. Please try again.")]
    Internal,
    /// Raised in the browser: the request did not get an answer.
    #[error("The server could not be reached. Check your connection and try again.")]
    Network,
}

impl AppError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid {
            message: message.into(),
        }
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict {
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound {
            message: message.into(),
        }
    }

    /// The HTTP status a JSON client sees.
    pub fn status(&self) -> u16 {
        match self {
            AppError::Unauthorized | AppError::WrongCredentials => 401,
            AppError::Forbidden => 403,
            AppError::NotFound { .. } => 404,
            AppError::Conflict { .. } => 409,
            AppError::InsufficientTokens { .. } => 402,
            AppError::Invalid { .. } => 422,
            AppError::RateLimited { .. } => 429,
            AppError::PaymentsUnavailable | AppError::Network => 503,
            AppError::Internal => 500,
        }
    }
}

impl FromServerFnError for AppError {
    type Encoder = ErrorJson;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        let error = match value {
            ServerFnErrorErr::Request(_) => AppError::Network,
            ServerFnErrorErr::Args(message) => {
                AppError::invalid(format!("The request is not valid: {message}"))
            }
            ServerFnErrorErr::MissingArg(name) => {
                AppError::invalid(format!("The request is missing `{name}`."))
            }
            other => {
                #[cfg(feature = "ssr")]
                tracing::error!(error = %other, "a server function failed in the framework");
                #[cfg(not(feature = "ssr"))]
                let _ = other;
                AppError::Internal
            }
        };
        // Arguments that do not parse fail before the function body (and its status
        // handling) runs: give them their status here, where the request is still in context.
        #[cfg(feature = "ssr")]
        if matches!(error, AppError::Invalid { .. })
            && let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>()
        {
            response.set_status(http::StatusCode::UNPROCESSABLE_ENTITY);
        }
        error
    }
}

/// Errors on the wire: the tagged JSON of [`AppError`] plus its sentence as `message`, so a
/// JSON client reads `{"error": "rate_limited", "retry_after_secs": 12, "message": "..."}`.
pub struct ErrorJson;

impl ContentType for ErrorJson {
    const CONTENT_TYPE: &'static str = "application/json";
}

impl FormatType for ErrorJson {
    const FORMAT_TYPE: Format = Format::Text;
}

impl Encodes<AppError> for ErrorJson {
    type Error = serde_json::Error;

    fn encode(error: &AppError) -> Result<Bytes, Self::Error> {
        let mut value = serde_json::to_value(error)?;
        if let Some(fields) = value.as_object_mut() {
            fields.insert("message".into(), error.to_string().into());
        }
        serde_json::to_vec(&value).map(Bytes::from)
    }
}

impl Decodes<AppError> for ErrorJson {
    type Error = serde_json::Error;

    fn decode(bytes: Bytes) -> Result<AppError, Self::Error> {
        serde_json::from_slice(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_travel_as_json_with_a_stable_code() {
        let json = serde_json::to_value(AppError::RateLimited {
            retry_after_secs: 12,
        })
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({ "error": "rate_limited", "retry_after_secs": 12 })
        );
        let back: AppError = serde_json::from_value(json).unwrap();
        assert_eq!(
            back.to_string(),
            "Too many requests. Please wait 12 seconds and try again."
        );
        assert_eq!(back.status(), 429);
    }

    #[test]
    fn the_wire_format_carries_the_sentence_and_reads_back() {
        let bytes = ErrorJson::encode(&AppError::Forbidden).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "error": "forbidden",
                "message": "You do not have permission to do that."
            })
        );
        assert_eq!(ErrorJson::decode(bytes).unwrap(), AppError::Forbidden);
    }

    #[test]
    fn framework_errors_never_leak_their_text() {
        let e = AppError::from_server_fn_error(ServerFnErrorErr::ServerError(
            "connection to 10.0.0.5 refused".into(),
        ));
        assert_eq!(e, AppError::Internal);
        assert!(!e.to_string().contains("10.0.0.5"));
    }
}
