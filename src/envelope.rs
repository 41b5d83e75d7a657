//! The seed's response envelope, `{"success", "status", "content"}`, kept for its clients, and
//! errors rendered in it.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, HttpResponseBuilder, ResponseError};
use serde::Serialize;

use crate::error::ApiError;

/// Headers every response carries: nothing here is meant to be sniffed, framed, leaked in a
/// Referer or cached (bodies carry tokens and personal data). The API's middleware adds them to
/// every response; an error a middleware returns (a panic caught, a request timed out) is
/// rendered by actix after every middleware, so its envelope carries them itself.
pub const SECURITY_HEADERS: [(&str, &str); 4] = [
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cache-control", "no-store"),
];

/// Every response body: `status` repeats the HTTP status code.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Envelope<T> {
    success: bool,
    status: u16,
    content: T,
}

impl<T: Serialize> Envelope<T> {
    pub fn new(status: StatusCode, content: T) -> Self {
        Self {
            success: status.is_success(),
            status: status.as_u16(),
            content,
        }
    }
}

/// 200 with `content` in the envelope.
pub fn ok<T: Serialize>(content: T) -> HttpResponse {
    ok_with(HttpResponse::Ok(), content)
}

/// 200 with `content`, on a builder that already carries headers or cookies.
pub fn ok_with<T: Serialize>(mut builder: HttpResponseBuilder, content: T) -> HttpResponse {
    builder.json(Envelope::new(StatusCode::OK, content))
}

/// The `content` of an error envelope.
#[derive(Serialize)]
struct ErrorContent<'a> {
    error_code: &'static str,
    message: &'a str,
    error_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dependency: Option<&'static str>,
    /// `MFA_REQUIRED` only: how to go on.
    #[serde(skip_serializing_if = "Option::is_none")]
    mfa: Option<MfaChallenge<'a>>,
}

/// What a login that needs its second factor answers, instead of tokens.
#[derive(Serialize)]
struct MfaChallenge<'a> {
    challenge: &'a str,
    methods: &'a [&'static str],
    expires_in: u64,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            // `{:#}` prints the whole cause chain on one line: the only place it is shown.
            ApiError::Internal(source) => {
                tracing::error!(error = format!("{source:#}"), "request failed")
            }
            ApiError::Unavailable { dependency, source } => {
                tracing::warn!(
                    dependency = dependency.as_str(),
                    error = format!("{source:#}"),
                    "dependency unavailable"
                )
            }
            _ => {}
        }
        let (error_code, error_type, message) = self.describe();
        let content = ErrorContent {
            error_code,
            message,
            error_type,
            field: match self {
                ApiError::Validation { field, .. } => Some(field),
                _ => None,
            },
            dependency: match self {
                ApiError::Unavailable { dependency, .. } => Some(dependency.as_str()),
                _ => None,
            },
            mfa: match self {
                ApiError::MfaRequired {
                    challenge,
                    expires_in_secs,
                    passkey,
                } => Some(MfaChallenge {
                    challenge: secrecy::ExposeSecret::expose_secret(challenge),
                    methods: if *passkey {
                        &crate::domain::Proof::METHODS_WITH_PASSKEY
                    } else {
                        &crate::domain::Proof::METHODS
                    },
                    expires_in: *expires_in_secs,
                }),
                _ => None,
            },
        };
        let status = self.status_code();
        let mut response = HttpResponse::build(status);
        for header in SECURITY_HEADERS {
            response.insert_header(header);
        }
        match self {
            ApiError::Unavailable { .. } => {
                response.insert_header(("Retry-After", "1"));
            }
            ApiError::MethodNotAllowed { allow } => {
                response.insert_header((actix_web::http::header::ALLOW, *allow));
            }
            ApiError::RateLimited { retry_after_secs } | ApiError::AccountLocked { retry_after_secs } => {
                response.insert_header(("Retry-After", retry_after_secs.max(&1).to_string()));
            }
            _ => {}
        }
        response.json(Envelope::new(status, content))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn internal_errors_hide_their_cause() {
        let err = ApiError::Internal(anyhow::anyhow!(
            "duplicate key value violates unique constraint \"users_email_key\""
        ));
        let body = actix_web::body::to_bytes(err.error_response().into_body())
            .await
            .unwrap();
        let text = std::str::from_utf8(&body).unwrap();
        assert_eq!(
            text,
            r#"{"success":false,"status":500,"content":{"error_code":"INTERNAL_ERROR","message":"internal server error","error_type":"CritError"}}"#
        );
    }
}
