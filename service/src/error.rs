//! What can go wrong: [`ServiceError`] stops the service from starting (it says which file or
//! setting and what to do); [`ApiError`] is one refused or failed request, answered as JSON
//! `{"error": {"code", "message"}}` with its HTTP status. Neither ever carries a secret.

use std::path::PathBuf;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("the {what} {} cannot be used: {reason}", path.display())]
    Secret {
        what: String,
        path: PathBuf,
        reason: String,
    },
    #[error("cannot listen on {address}: {reason}")]
    Listen { address: String, reason: String },
    #[error(
        "{address} is not a loopback address and the service would serve it without TLS; give --tls-cert/--tls-key (or let the service make a self-signed certificate), or add --insecure-listen if you really mean it"
    )]
    InsecureListen { address: String },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("{} : {reason}", path.display())]
    File { path: PathBuf, reason: String },
    #[error(transparent)]
    Config(#[from] sstore_core::config::ConfigError),
    #[error("{0}")]
    Invalid(String),
}

/// A refused or failed request.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable, for scripts: `unauthenticated`, `forbidden`, `not-found`, `invalid-request`,
    /// `location-not-allowed`, `conflict`, `csrf`, `too-many-requests`, `internal`.
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "log in, or send Authorization: Bearer TOKEN (sstore operator token NAME)",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid-request", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// A request body that could not be read as JSON, with the status axum chose (413 for a
    /// body over the limit, 415 for another content type, 400 or 422 for bad JSON).
    pub fn body(rejection: &axum::extract::rejection::JsonRejection) -> Self {
        let status = rejection.status();
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "too-large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type",
            _ => "invalid-request",
        };
        Self::new(status, code, rejection.body_text())
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}
