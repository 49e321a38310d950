//! The error vocabulary of every answer the server gives, and the one place it is written
//! down. A JSON error body, from a server function or from one of the server's own routes
//! (consume, the webhook, the CSV export, the stream), is
//! `{"error": CODE, "message": "A sentence for people.", ...details}`, with the HTTP status
//! that goes with `CODE`:
//!
//! | code | status | meaning |
//! |---|---:|---|
//! | `bad_request` | 400 | the request cannot be read: malformed JSON, a missing header, a form that is not UTF-8, a webhook whose signature is refused |
//! | `unauthorized` | 401 | no session (or no valid API key) |
//! | `wrong_credentials` | 401 | login: the email or the password is wrong (never says which) |
//! | `insufficient_tokens` | 402 | a debit larger than the balance (`balance`, `requested`); nothing changed |
//! | `forbidden` | 403 | signed in, but not allowed (an admin function, an API key without the scope) |
//! | `cross_site_request` | 403 | a state-changing request from another site |
//! | `not_found` | 404 | no such object (or someone else's) |
//! | `unknown_user` | 404 | consume: no such user |
//! | `conflict` | 409 | the request clashes with what exists (an email taken, a second subscription); `field` names a form field at fault, if one is |
//! | `idempotency_conflict` | 409 | an `Idempotency-Key` used before for a different request |
//! | `payload_too_large` | 413 | the body is over the limit |
//! | `unsupported_media_type` | 415 | the body is not JSON where JSON is required |
//! | `invalid` | 422 | the request reads, but a value is not acceptable (the message says which, `field` names a form field at fault) |
//! | `rate_limited` | 429 | too many requests (`retry_after_secs`, and a `Retry-After` header) |
//! | `internal` | 500 | a failure on our side; its cause is logged, never sent |
//! | `payments_unavailable` | 503 | Stripe could not be reached or failed; try again later |
//! | `unavailable` | 503 | the database could not be reached or failed; try again later |
//! | `network` | 503 | made by the browser itself: the request got no answer |
//!
//! [`ErrorCode`] is that list. Server functions answer [`AppError`], whose variants carry their
//! code; the server's routes answer `server::error::ApiError`, made from an [`ErrorCode`] (or
//! from an [`AppError`]). Internal failures never carry their cause to the client: the server
//! logs it and answers `internal` (or `unavailable`).

use billing::domain::group_thousands;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use leptos::server_fn::{Bytes, ContentType, Decodes, Encodes, Format, FormatType};
use serde::{Deserialize, Serialize};

use crate::api::wire::{self, WireError};

/// Every code an error body may carry (the table above), with its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    WrongCredentials,
    InsufficientTokens,
    Forbidden,
    CrossSiteRequest,
    NotFound,
    UnknownUser,
    Conflict,
    IdempotencyConflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    Invalid,
    RateLimited,
    Internal,
    PaymentsUnavailable,
    Unavailable,
    Network,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 18] = [
        ErrorCode::BadRequest,
        ErrorCode::Unauthorized,
        ErrorCode::WrongCredentials,
        ErrorCode::InsufficientTokens,
        ErrorCode::Forbidden,
        ErrorCode::CrossSiteRequest,
        ErrorCode::NotFound,
        ErrorCode::UnknownUser,
        ErrorCode::Conflict,
        ErrorCode::IdempotencyConflict,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::Invalid,
        ErrorCode::RateLimited,
        ErrorCode::Internal,
        ErrorCode::PaymentsUnavailable,
        ErrorCode::Unavailable,
        ErrorCode::Network,
    ];

    /// The code as the JSON's `error` field carries it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::WrongCredentials => "wrong_credentials",
            ErrorCode::InsufficientTokens => "insufficient_tokens",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::CrossSiteRequest => "cross_site_request",
            ErrorCode::NotFound => "not_found",
            ErrorCode::UnknownUser => "unknown_user",
            ErrorCode::Conflict => "conflict",
            ErrorCode::IdempotencyConflict => "idempotency_conflict",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::Invalid => "invalid",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Internal => "internal",
            ErrorCode::PaymentsUnavailable => "payments_unavailable",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Network => "network",
        }
    }

    /// The HTTP status that goes with the code.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::Unauthorized | ErrorCode::WrongCredentials => 401,
            ErrorCode::InsufficientTokens => 402,
            ErrorCode::Forbidden | ErrorCode::CrossSiteRequest => 403,
            ErrorCode::NotFound | ErrorCode::UnknownUser => 404,
            ErrorCode::Conflict | ErrorCode::IdempotencyConflict => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::Invalid => 422,
            ErrorCode::RateLimited => 429,
            ErrorCode::Internal => 500,
            ErrorCode::PaymentsUnavailable | ErrorCode::Unavailable | ErrorCode::Network => 503,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a server function answers when it fails; serialized with its [`ErrorCode`] as the tag,
/// read back through [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "error", rename_all = "snake_case", try_from = "ErrorBody")]
pub enum AppError {
    #[error("Please log in to continue.")]
    Unauthorized,
    #[error("Wrong email or password.")]
    WrongCredentials,
    #[error("You do not have permission to do that.")]
    Forbidden,
    #[error("Too many requests. Please wait {retry_after_secs} seconds and try again.")]
    RateLimited { retry_after_secs: u64 },
    /// `field`: the form field at fault, by its name (`email`), for the form to mark.
    #[error("{message}")]
    Invalid {
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        field: Option<String>,
    },
    #[error("{message}")]
    Conflict {
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        field: Option<String>,
    },
    #[error("{message}")]
    NotFound { message: String },
    #[error(
        "Not enough tokens: the balance is {}; {} were requested.",
        group_thousands(*balance),
        group_thousands(*requested)
    )]
    InsufficientTokens { balance: i64, requested: i64 },
    #[error("Payments are unavailable right now. Please try again in a few minutes.")]
    PaymentsUnavailable,
    #[error("Something went wrong on our side. Please try again.")]
    Internal,
    /// Raised in the browser: the request did not get an answer.
    #[error("The server could not be reached. Check your connection and try again.")]
    Network,
}

/// An error body as it is read: its code and whichever details come with it. (Reading the
/// tagged enum directly would buffer the whole body first, generic code that was the largest
/// function in the browser's WASM after the billing page itself.)
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorCode,
    message: Option<String>,
    field: Option<String>,
    retry_after_secs: Option<u64>,
    balance: Option<i64>,
    requested: Option<i64>,
}

impl TryFrom<ErrorBody> for AppError {
    type Error = String;

    fn try_from(body: ErrorBody) -> Result<Self, String> {
        let code = body.error;
        let needs = |name: &str| format!("a `{code}` error without `{name}`");
        let message = || body.message.clone().ok_or_else(|| needs("message"));
        Ok(match code {
            ErrorCode::Unauthorized => AppError::Unauthorized,
            ErrorCode::WrongCredentials => AppError::WrongCredentials,
            ErrorCode::Forbidden => AppError::Forbidden,
            ErrorCode::RateLimited => AppError::RateLimited {
                retry_after_secs: body
                    .retry_after_secs
                    .ok_or_else(|| needs("retry_after_secs"))?,
            },
            ErrorCode::Invalid => AppError::Invalid {
                message: message()?,
                field: body.field,
            },
            ErrorCode::Conflict => AppError::Conflict {
                message: message()?,
                field: body.field,
            },
            ErrorCode::NotFound => AppError::NotFound {
                message: message()?,
            },
            ErrorCode::InsufficientTokens => AppError::InsufficientTokens {
                balance: body.balance.ok_or_else(|| needs("balance"))?,
                requested: body.requested.ok_or_else(|| needs("requested"))?,
            },
            ErrorCode::PaymentsUnavailable => AppError::PaymentsUnavailable,
            ErrorCode::Internal => AppError::Internal,
            ErrorCode::Network => AppError::Network,
            other => return Err(format!("`{other}` is not a server function's error")),
        })
    }
}

impl AppError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid {
            message: message.into(),
            field: None,
        }
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict {
            message: message.into(),
            field: None,
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound {
            message: message.into(),
        }
    }

    /// The same error, about the form field named `name`.
    pub fn on_field(self, name: &str) -> Self {
        match self {
            Self::Invalid { message, .. } => Self::Invalid {
                message,
                field: Some(name.to_owned()),
            },
            Self::Conflict { message, .. } => Self::Conflict {
                message,
                field: Some(name.to_owned()),
            },
            other => other,
        }
    }

    /// The form field at fault, if the error is about one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Invalid { field, .. } | Self::Conflict { field, .. } => field.as_deref(),
            _ => None,
        }
    }

    /// The code a JSON client reads in `error`.
    pub fn code(&self) -> ErrorCode {
        match self {
            AppError::Unauthorized => ErrorCode::Unauthorized,
            AppError::WrongCredentials => ErrorCode::WrongCredentials,
            AppError::Forbidden => ErrorCode::Forbidden,
            AppError::RateLimited { .. } => ErrorCode::RateLimited,
            AppError::Invalid { .. } => ErrorCode::Invalid,
            AppError::Conflict { .. } => ErrorCode::Conflict,
            AppError::NotFound { .. } => ErrorCode::NotFound,
            AppError::InsufficientTokens { .. } => ErrorCode::InsufficientTokens,
            AppError::PaymentsUnavailable => ErrorCode::PaymentsUnavailable,
            AppError::Internal => ErrorCode::Internal,
            AppError::Network => ErrorCode::Network,
        }
    }

    /// The HTTP status a JSON client sees.
    pub fn status(&self) -> u16 {
        self.code().status()
    }
}

impl FromServerFnError for AppError {
    type Encoder = ErrorJson;

    /// In the browser, an error answer that is not one of ours (a proxy's 502 page while the
    /// server is down, an empty 504) means the server was not reached: the server answers every
    /// error under `/api/` in JSON (`server::error::api_errors_as_json`). One of ours with a
    /// code this build does not know is internal, and so is anything undecodable on the server
    /// (a no-JavaScript form's error read back from its URL).
    fn de(data: Bytes) -> Self {
        ErrorJson::decode(data.clone()).unwrap_or_else(|_| {
            if wire::has_field(&data, "error") || cfg!(feature = "ssr") {
                AppError::Internal
            } else {
                AppError::Network
            }
        })
    }

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
    type Error = WireError;

    fn encode(error: &AppError) -> Result<Bytes, Self::Error> {
        wire::to_string_setting(error, "message", &error.to_string()).map(Bytes::from)
    }
}

impl Decodes<AppError> for ErrorJson {
    type Error = WireError;

    fn decode(bytes: Bytes) -> Result<AppError, Self::Error> {
        wire::from_slice(&bytes)
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
    fn an_answer_not_ours_means_the_server_was_not_reached() {
        let de = |body: &'static [u8]| AppError::de(Bytes::from_static(body));
        // In the browser; on the server (a form's error read back from its URL), internal.
        let not_reached = if cfg!(feature = "ssr") {
            AppError::Internal
        } else {
            AppError::Network
        };
        assert_eq!(de(b"<html><h1>502 Bad Gateway</h1></html>"), not_reached);
        assert_eq!(de(b""), not_reached);
        // Ours, with a code only the server's routes use: not a connection problem.
        assert_eq!(
            de(br#"{"error":"unavailable","message":"Try again later."}"#),
            AppError::Internal
        );
        assert_eq!(de(br#"{"error":"forbidden"}"#), AppError::Forbidden);
    }

    #[test]
    fn a_field_at_fault_travels_with_its_error() {
        let error = AppError::invalid("Enter a valid email address.").on_field("email");
        let json: serde_json::Value =
            serde_json::from_slice(&ErrorJson::encode(&error).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "error": "invalid",
                "field": "email",
                "message": "Enter a valid email address."
            })
        );
        assert_eq!(
            ErrorJson::decode(Bytes::from(json.to_string())).unwrap(),
            error
        );
        // Without one, no `field` at all.
        let plain = serde_json::to_value(AppError::conflict("Taken.")).unwrap();
        assert_eq!(
            plain,
            serde_json::json!({ "error": "conflict", "message": "Taken." })
        );
        assert_eq!(error.field(), Some("email"));
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
    fn every_error_travels_under_its_code() {
        let errors = [
            AppError::Unauthorized,
            AppError::WrongCredentials,
            AppError::Forbidden,
            AppError::RateLimited {
                retry_after_secs: 1,
            },
            AppError::invalid("x"),
            AppError::conflict("x"),
            AppError::not_found("x"),
            AppError::InsufficientTokens {
                balance: 1,
                requested: 2,
            },
            AppError::PaymentsUnavailable,
            AppError::Internal,
            AppError::Network,
        ];
        for error in errors {
            let json = serde_json::to_value(&error).unwrap();
            assert_eq!(json["error"], error.code().as_str(), "{error:?}");
            assert_eq!(
                serde_json::to_value(error.code()).unwrap(),
                json["error"],
                "{error:?}"
            );
            let bytes = ErrorJson::encode(&error).unwrap();
            assert_eq!(ErrorJson::decode(bytes).unwrap(), error, "read back");
        }
        // A body without the detail its code needs is not one of ours.
        for body in [
            r#"{"error":"rate_limited"}"#,
            r#"{"error":"insufficient_tokens","balance":3}"#,
            r#"{"error":"not_found"}"#,
        ] {
            assert!(ErrorJson::decode(Bytes::from(body)).is_err(), "{body}");
        }
    }

    #[test]
    fn codes_are_unique_and_statuses_are_errors() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "{code} twice");
            assert!((400..600).contains(&code.status()), "{code}");
            let back: ErrorCode = serde_json::from_value(serde_json::json!(code.as_str())).unwrap();
            assert_eq!(back, code);
        }
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
