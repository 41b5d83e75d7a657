//! One error type for every handler, rendered as the seed's envelope:
//! `{"success":false,"status":N,"content":{"error_code","message","error_type"}}`.
//!
//! Client-facing text is fixed per variant. The cause of a 5xx (driver errors, SQL text) goes
//! to the log with its whole chain and never into the body.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::auth::access_token::TokenError;
use crate::domain::ValidationError;
use crate::envelope::Envelope;
use crate::store::users::InsertError;
use crate::store::{Dependency, StoreError};

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

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

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no Authorization header")]
    ProtectedRoute,
    #[error("Authorization header is not a Bearer token")]
    InvalidAuthHeader,
    #[error("access token expired")]
    ExpiredAccessToken,
    #[error("access token invalid")]
    InvalidAccessToken,
    #[error("no jwt cookie")]
    NoRefreshCookie,
    #[error("empty jwt cookie")]
    NoRefreshToken,
    #[error("refresh token expired")]
    ExpiredRefreshToken,
    #[error("refresh token unknown or retired")]
    InvalidRefreshToken,
    #[error("retired refresh token presented again")]
    RefreshTokenReused,
    #[error("bad credentials")]
    UserNotFound,
    #[error("current password wrong")]
    InvalidCurrentPassword,
    #[error("email taken")]
    EmailTaken,
    #[error("reset token unknown or used")]
    InvalidResetToken,
    #[error("reset token expired")]
    ExpiredResetToken,
    #[error("verification token unknown or used")]
    InvalidVerifyToken,
    #[error("verification token expired")]
    ExpiredVerifyToken,
    #[error("email not verified")]
    EmailNotVerified,
    #[error("email already verified")]
    EmailAlreadyVerified,
    #[error("mail is not configured")]
    MailDisabled,
    #[error("invalid field {field}: {message}")]
    Validation { field: String, message: String },
    #[error("session not found")]
    SessionNotFound,
    #[error("body too large")]
    PayloadTooLarge,
    #[error("unsupported content type")]
    UnsupportedMediaType,
    #[error("route not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    #[error("too many requests")]
    RateLimited { retry_after_secs: u64 },
    #[error("account locked")]
    AccountLocked { retry_after_secs: u64 },
    #[error("cross-site request refused")]
    CsrfRejected,
    #[error("CORS request from an origin that is not allowed")]
    CorsRejected,
    #[error("request took too long")]
    RequestTimeout,
    #[error("request headers too large")]
    HeadersTooLarge,
    #[error("{} unavailable", .dependency.as_str())]
    Unavailable {
        dependency: Dependency,
        #[source]
        source: anyhow::Error,
    },
    /// This instance got SIGTERM and is waiting out `SHUTDOWN_DELAY` (readiness only).
    #[error("shutting down")]
    ShuttingDown,
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
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
}

impl ApiError {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Stable code, the seed's error type, and the fixed message clients see.
    pub fn describe(&self) -> (&'static str, &'static str, &str) {
        use ApiError::*;
        match self {
            ProtectedRoute => (
                "PROTECTED_ROUTE",
                "AuthError",
                "this route needs `Authorization: Bearer <access_token>`",
            ),
            InvalidAuthHeader => (
                "INVALID_AUTH_HEADER",
                "AuthError",
                "the Authorization header must be `Bearer <access_token>`",
            ),
            ExpiredAccessToken => (
                "EXPIRED_ACCESS_TOKEN",
                "AuthError",
                "your access token has expired, please refresh at /auth/refreshAccessToken",
            ),
            InvalidAccessToken => ("INVALID_ACCESS_TOKEN", "AuthError", "your access token is invalid"),
            NoRefreshCookie => (
                "NO_JWT_REFTOKEN_COOKIE",
                "AuthError",
                "no `jwt` refresh token cookie was sent",
            ),
            NoRefreshToken => (
                "NO_REFRESH_TOKEN",
                "AuthError",
                "the `jwt` cookie holds no refresh token",
            ),
            ExpiredRefreshToken => (
                "EXPIRED_REFRESH_TOKEN",
                "AuthError",
                "your refresh token has expired, please log in again",
            ),
            InvalidRefreshToken => (
                "INVALID_REFRESH_TOKEN",
                "AuthError",
                // Never-issued, rotated away or ended: the answer cannot tell which, so it names none.
                "this refresh token is not valid (unknown, replaced or its session ended): please log in again",
            ),
            RefreshTokenReused => (
                "REFRESH_TOKEN_REUSED",
                "AuthError",
                "this refresh token was already used; the session has been revoked, please log in again",
            ),
            UserNotFound => ("USER_NOT_FOUND", "DbError", "no user with this email and password"),
            InvalidCurrentPassword => (
                "INVALID_CURRENT_PASSWORD",
                "AuthError",
                "the current password is not correct",
            ),
            EmailTaken => ("EMAIL_TAKEN", "UserError", "an account with this email already exists"),
            InvalidResetToken => (
                "INVALID_RESET_TOKEN",
                "UserError",
                "this password-reset link is not valid or was already used; ask for a new one",
            ),
            ExpiredResetToken => (
                "EXPIRED_RESET_TOKEN",
                "UserError",
                "this password-reset link has expired; ask for a new one",
            ),
            InvalidVerifyToken => (
                "INVALID_VERIFY_TOKEN",
                "UserError",
                "this verification link is not valid or was already used",
            ),
            ExpiredVerifyToken => (
                "EXPIRED_VERIFY_TOKEN",
                "UserError",
                "this verification link has expired; ask for a new one",
            ),
            EmailNotVerified => (
                "EMAIL_NOT_VERIFIED",
                "AuthError",
                "confirm your email address first: follow the link we mailed you",
            ),
            EmailAlreadyVerified => (
                "EMAIL_ALREADY_VERIFIED",
                "UserError",
                "this email address is already verified",
            ),
            MailDisabled => (
                "MAIL_DISABLED",
                "HostError",
                "this server sends no mail (SMTP_URL is not set)",
            ),
            Validation { message, .. } => ("VALIDATION_ERROR", "UserError", message),
            SessionNotFound => ("SESSION_NOT_FOUND", "UserError", "no such session"),
            PayloadTooLarge => ("PAYLOAD_TOO_LARGE", "UserError", "the request body is too large"),
            UnsupportedMediaType => (
                "UNSUPPORTED_MEDIA_TYPE",
                "UserError",
                "send the body as application/json",
            ),
            NotFound => ("NOT_FOUND", "HostError", "no such route"),
            RateLimited { .. } => (
                "RATE_LIMITED",
                "UserError",
                "too many requests, retry after the Retry-After delay",
            ),
            AccountLocked { .. } => (
                "ACCOUNT_LOCKED",
                "AuthError",
                "too many failed logins for this account, retry after the Retry-After delay",
            ),
            CsrfRejected => (
                "CSRF_REJECTED",
                "AuthError",
                "this request did not come from an allowed origin",
            ),
            CorsRejected => (
                "CORS_REJECTED",
                "AuthError",
                "this origin, method or header is not allowed to call the API (CORS_ALLOWED_ORIGINS)",
            ),
            RequestTimeout => ("REQUEST_TIMEOUT", "UserError", "the request took too long"),
            HeadersTooLarge => ("HEADERS_TOO_LARGE", "UserError", "the request headers are too large"),
            MethodNotAllowed { .. } => (
                "METHOD_NOT_ALLOWED",
                "HostError",
                "this route does not accept that method",
            ),
            Unavailable { .. } => (
                "SERVICE_UNAVAILABLE",
                "CritError",
                "a backing service is unavailable, retry shortly",
            ),
            ShuttingDown => (
                "SHUTTING_DOWN",
                "HostError",
                "this instance is shutting down; send new requests elsewhere",
            ),
            Internal(_) => ("INTERNAL_ERROR", "CritError", "internal server error"),
        }
    }

    pub fn code(&self) -> &'static str {
        self.describe().0
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        use ApiError::*;
        match self {
            ProtectedRoute | InvalidAuthHeader | ExpiredAccessToken | InvalidAccessToken | NoRefreshCookie
            | NoRefreshToken | ExpiredRefreshToken | InvalidRefreshToken | RefreshTokenReused | UserNotFound => {
                StatusCode::UNAUTHORIZED
            }
            EmailTaken | EmailAlreadyVerified => StatusCode::CONFLICT,
            InvalidResetToken | ExpiredResetToken | InvalidVerifyToken | ExpiredVerifyToken => StatusCode::BAD_REQUEST,
            EmailNotVerified => StatusCode::FORBIDDEN,
            // Switched off by configuration: not offered here, and no server fault to alert on.
            MailDisabled => StatusCode::NOT_FOUND,
            Validation { .. } => StatusCode::BAD_REQUEST,
            SessionNotFound | NotFound => StatusCode::NOT_FOUND,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            RateLimited { .. } | AccountLocked { .. } => StatusCode::TOO_MANY_REQUESTS,
            CsrfRejected | CorsRejected | InvalidCurrentPassword => StatusCode::FORBIDDEN,
            RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Unavailable { .. } | ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
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

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(dependency, source) => ApiError::Unavailable { dependency, source },
            StoreError::Failed(_, source) => ApiError::Internal(source),
        }
    }
}

impl From<InsertError> for ApiError {
    fn from(e: InsertError) -> Self {
        match e {
            InsertError::EmailTaken => ApiError::EmailTaken,
            InsertError::Store(e) => e.into(),
        }
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError::validation(e.field, e.message)
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Expired => ApiError::ExpiredAccessToken,
            TokenError::Invalid => ApiError::InvalidAccessToken,
        }
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
